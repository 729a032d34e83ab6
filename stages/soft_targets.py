"""Stage ``soft_targets``: averaged temperature-softened teacher posteriors, top-k + rest;
see :mod:`pipeline.soft_targets.stage`.

Usage: python stages/soft_targets.py --teachers models/teachers --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --out data/soft_targets --report reports/soft_targets.json
"""

from pipeline.soft_targets.stage import soft_targets_stage
from pipeline.stage import parser, run

if __name__ == "__main__":
    flags = ("teachers", "features", "manifests", "tokenizer", "out", "report")
    run(soft_targets_stage, parser(__doc__, *flags).parse_args())
