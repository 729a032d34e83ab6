"""The deployed figures of any exported model directory, on this machine: per runtime (ONNX fp32
and int8), the decoder, test WER with its paired-bootstrap interval, the end-to-end real-time
factor on one thread (file read with soundfile, fbank, model, decoding) and decoding's share
of it: the ``deployed`` entry of ``reports/evaluation.json``, for your own CPU or your own data.

``MANIFEST`` is a JSONL file with ``audio`` (a path) and ``text`` per line, e.g.
``data/manifests/test.jsonl``. WER runs over every line (or the first ``--wer-utterances``),
timing over the first ``--utterances`` files, the fastest of ``--repeats`` passes; the bootstrap
takes ``evaluate.bootstrap_*`` from ``--params``. Prints JSON to stdout.

Usage: python benchmarks/deployed.py [EXPORT_DIR] [--manifest data/manifests/test.jsonl] \
         [--decoder greedy|lexicon|lexicon+lm] [--utterances 50] [--repeats 5] [--params params.yaml]
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

import torch  # noqa: E402

from pipeline.config import load_params  # noqa: E402
from pipeline.deploy.runtime import ONNX_FP32, ONNX_INT8  # noqa: E402
from pipeline.deploy.transcribe import ExportedModel, end_to_end_rtf  # noqa: E402
from pipeline.export.formats import deployed_wer  # noqa: E402
from pipeline.io import read_jsonl  # noqa: E402
from pipeline.model.decoding import DECODERS  # noqa: E402


def measure(model_file: Path, rows: list[dict], args, params) -> dict:
    model = ExportedModel.load(model_file, threads=1, decoder=args.decoder)
    scored = rows[: args.wer_utterances] if args.wer_utterances else rows
    texts = [model.transcribe(Path(r["audio"])).text for r in scored]
    result = deployed_wer(texts, [r["text"] for r in scored], model.decoder.name, params.evaluate)
    result["wer_utterances"] = len(scored)
    files = [Path(r["audio"]) for r in rows[: args.utterances]]
    return {**result, **end_to_end_rtf(model, files, args.repeats)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir", nargs="?", type=Path, default=ROOT / "export" / "distilled")
    p.add_argument("--manifest", type=Path, default=Path("data/manifests/test.jsonl"))
    p.add_argument("--decoder", choices=DECODERS, help="default: the model's own (config.json)")
    p.add_argument("--utterances", type=int, default=50, help="files timed (default 50)")
    p.add_argument("--wer-utterances", type=int, help="utterances scored (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes; the fastest is kept (default 5)")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="for evaluate.bootstrap_*")
    args = p.parse_args()
    torch.set_num_threads(1)  # fbank runs in torch: one thread, as transcribe's default
    params = load_params(args.params)
    rows = read_jsonl(args.manifest)
    report = {
        f"{args.export_dir.name}.{fmt}": measure(args.export_dir / file, rows, args, params)
        for fmt, file in (("onnx", ONNX_FP32), ("int8", ONNX_INT8))
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
