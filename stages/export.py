"""Stage ``export``: the distilled student as ONNX fp32, with a parity check against PyTorch.

Usage: python stages/export.py --model models/students/distilled.pt --tokenizer data/tokenizer/spm.model \
         --features data/features --out export --metrics reports/export.json
"""
import shutil
from pathlib import Path

from pipeline.export import export_onnx, parity
from pipeline.io import atomic_path, write_json
from pipeline.model import load_model
from pipeline.stage import parser, run
from pipeline.store import Store


def main(args, params):
    model = load_model(args.model)
    test = Store(Path(args.features) / "test")
    examples = [test.get(u, "fbank") for u in test.ids()[:5]]
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        export_onnx(model, tmp / "student.onnx", params.export.opset)
        shutil.copy(args.tokenizer, tmp / "tokenizer.model")
        check = parity(model, tmp / "student.onnx", examples)
        if check["max_abs_diff"] > params.export.parity_atol:
            raise RuntimeError(f"ONNX parity failed: max |logit diff| {check['max_abs_diff']:.2e} "
                               f"> export.parity_atol {params.export.parity_atol}")
        size = (tmp / "student.onnx").stat().st_size
    write_json(args.metrics, {"onnx_fp32": {**check, "bytes": size}})


if __name__ == "__main__":
    p = parser(__doc__)
    for flag in ("model", "tokenizer", "features", "out", "metrics"):
        p.add_argument(f"--{flag}", required=True)
    run(main, p.parse_args())
