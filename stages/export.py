"""Stage ``export``: the distilled student as TorchScript, ONNX fp32 and ONNX int8, with
parity checks (logits against eager PyTorch, test WER of every format).

Writes ``export/`` (see :mod:`pipeline.export`) and ``reports/export.json``
(``parity``, ``wer``). The CPU benchmark of these files runs in ``evaluate``,
which comes after this stage and writes ``rtf`` into ``reports/metrics.json``.

Usage: python stages/export.py --students models/students \
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --out export --metrics reports/export.json
"""
from pathlib import Path

import torch

from pipeline import export as ex
from pipeline.io import atomic_path, write_json
from pipeline.model import load_model
from pipeline.stage import parser, run
from pipeline.store import Store
from pipeline.tokenizer import load_tokenizer


def main(args, params):
    torch.set_num_threads(1)  # batch-1 parity runs of a small model: one thread is fastest
    sp = load_tokenizer(args.tokenizer)
    distilled = load_model(Path(args.students) / "distilled.pt")
    test = ex.load_split(Path(args.features) / "test", Path(args.manifests) / "test.jsonl")
    with atomic_path(args.out) as out:
        out.mkdir()
        ex.write_artifacts(distilled, out, Path(args.tokenizer),
                           Store(Path(args.features) / "test").meta, params.export.opset)
        report = ex.check_parity(distilled, out, [u["feats"] for u in test],
                                 [u["text"] for u in test], sp, params.export)
    write_json(args.metrics, {"parity": report["parity"], "wer": report["wer"]})


if __name__ == "__main__":
    p = parser(__doc__)
    for flag in ("students", "features", "manifests", "tokenizer", "out", "metrics"):
        p.add_argument(f"--{flag}", required=True)
    run(main, p.parse_args())
