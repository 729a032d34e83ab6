"""Stage ``features``: 80-dim log-mel filterbanks into sharded fp16 stores + CMVN.

Usage: python stages/features.py --manifests data/manifests --out data/features --metrics reports/features.json
"""
from pathlib import Path

from pipeline.features import extract_features
from pipeline.io import write_json
from pipeline.stage import parser, run


def main(args, params):
    metrics = extract_features(Path(args.manifests), Path(args.out), params.features,
                               params.data.sample_rate)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--manifests", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    run(main, p.parse_args())
