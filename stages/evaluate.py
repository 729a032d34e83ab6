"""Stage ``evaluate``: every model's test WER/CER with intervals and comparisons, the export
benchmark, ``reports/evaluation.json``, ``reports/metrics.json``, ``reports/summary.md`` and the
plots; see :mod:`pipeline.evaluate.stage`.

Usage: python stages/evaluate.py --teachers models/teachers --students models/students \
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --lm data/lm --soft-targets-report reports/soft_targets.json --prepare-report reports/prepare.json \
         --train-reports reports --live dvclive --metrics reports/metrics.json \
         --report reports/evaluation.json --summary reports/summary.md \
         --plot reports/plots/wer_per_model.json --plots-dir reports/plots --export-report reports/export.json
"""

from pipeline.evaluate.stage import evaluate_stage
from pipeline.stage import parser, run

if __name__ == "__main__":
    flags = (
        *("teachers", "students", "features", "manifests", "tokenizer", "lm"),
        *("soft-targets-report", "prepare-report", "export-report", "train-reports", "live"),
        *("metrics", "report", "summary", "plot", "plots-dir"),
    )
    run(evaluate_stage, parser(__doc__, *flags).parse_args())
