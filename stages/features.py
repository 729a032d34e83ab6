"""Stage ``features``: 80-dim log-mel filterbanks into sharded fp16 stores + CMVN.

Usage: python stages/features.py --manifests data/manifests --out data/features \
         --work data/features.partial --report reports/features.json

An interrupted run resumes from the finished shards in ``--work``; see :mod:`pipeline.features.extract`.
"""

from pathlib import Path

from pipeline.features.extract import extract_features
from pipeline.io import write_json
from pipeline.stage import parser, run


def main(args, params):
    metrics = extract_features(
        Path(args.manifests),
        Path(args.out),
        params.features,
        params.data.sample_rate,
        work_dir=Path(args.work) if args.work else None,
    )
    write_json(args.report, metrics)


if __name__ == "__main__":
    p = parser(__doc__, "manifests", "out", "report")
    p.add_argument(
        "--work",
        default=None,
        help="folder for finished shards kept across interrupted runs (default: <out>.partial)",
    )
    run(main, p.parse_args())
