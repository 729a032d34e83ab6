"""Stage ``tokenizer``: sentencepiece over the train transcripts.

Usage: python stages/tokenizer.py --manifests data/manifests --out data/tokenizer \
         --metrics reports/tokenizer.json
"""

from pathlib import Path

from pipeline.io import write_json
from pipeline.stage import parser, run
from pipeline.tokenizer import train_tokenizer


def main(args, params):
    metrics = train_tokenizer(Path(args.manifests) / "train.jsonl", Path(args.out), params.tokenizer)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--manifests", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    run(main, p.parse_args())
