"""Stage ``export``: every distilled student as TorchScript, ONNX fp32 and int8 with parity
checks, the CPU benchmark and the deployed runtimes; see :mod:`pipeline.export.stage`.

Usage: python stages/export.py --teachers models/teachers --students models/students \
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --lm data/lm --out export --report reports/export.json
"""

from pipeline.export.stage import export_stage
from pipeline.stage import parser, run

if __name__ == "__main__":
    flags = ("teachers", "students", "features", "manifests", "tokenizer", "lm", "out", "report")
    run(export_stage, parser(__doc__, *flags).parse_args())
