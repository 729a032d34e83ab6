"""Stage ``features``: 80-dim log-mel filterbanks into sharded fp16 stores + CMVN;
see :mod:`pipeline.features.stage`.

Usage: python stages/features.py --manifests data/manifests --out data/features \
         --work data/features.partial --report reports/features.json
"""

from pipeline.features.stage import features_stage
from pipeline.stage import parser, run

if __name__ == "__main__":
    p = parser(__doc__, "manifests", "out", "report")
    p.add_argument(
        "--work",
        default=None,
        help="folder for finished shards kept across interrupted runs (default: <out>.partial)",
    )
    run(features_stage, p.parse_args())
