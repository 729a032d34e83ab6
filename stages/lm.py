"""Stage ``lm``: the lexicon and the word n-gram LM of the train transcripts, for decoding;
see :mod:`pipeline.lm.stage`.

Usage: python stages/lm.py --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --out data/lm --report reports/lm.json
"""

from pipeline.lm.stage import lm_stage
from pipeline.stage import parser, run

if __name__ == "__main__":
    run(lm_stage, parser(__doc__, "manifests", "tokenizer", "out", "report").parse_args())
