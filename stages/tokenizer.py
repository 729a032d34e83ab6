"""Stage ``tokenizer``: sentencepiece over the train transcripts; see :mod:`pipeline.tokenizer.stage`.

Usage: python stages/tokenizer.py --manifests data/manifests --out data/tokenizer \
         --report reports/tokenizer.json
"""

from pipeline.stage import parser, run
from pipeline.tokenizer.stage import tokenizer_stage

if __name__ == "__main__":
    run(tokenizer_stage, parser(__doc__, "manifests", "out", "report").parse_args())
