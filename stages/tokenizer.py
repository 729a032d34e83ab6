"""Stage ``tokenizer``: sentencepiece over the train transcripts.

Usage: python stages/tokenizer.py --manifests data/manifests --out data/tokenizer \
         --report reports/tokenizer.json
"""

from pathlib import Path

from pipeline.io import write_json
from pipeline.stage import parser, run
from pipeline.tokenizer.spm import train_tokenizer


def main(args, params):
    metrics = train_tokenizer(Path(args.manifests) / "train.jsonl", Path(args.out), params.tokenizer)
    write_json(args.report, metrics)


if __name__ == "__main__":
    run(main, parser(__doc__, "manifests", "out", "report").parse_args())
