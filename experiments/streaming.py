"""The streaming student, on the teachers and soft targets of a finished run.

Trains, next to a finished `dvc repro` (nothing of the run is changed):

- ``stream_baseline``: the default student's architecture made streaming
  (``chunk_frames``, ``left_frames`` below: 240 ms chunks, about 1 s of left context),
  trained on the transcripts alone (the streaming twin);
- ``stream_distilled``: the same, distilled with the default recipe, soft targets as they are;
- ``stream_distilled_shift``: the same, with the soft targets delayed by the mean spike delay
  (in whole frames) measured between the full-context ensemble and ``stream_baseline`` on dev
  (``students.<name>.kd_shift``).

Then measures, against the run's own full-context ``baseline`` and ``distilled`` students:
dev and test WER (the run's ``evaluate.decoder``) with 95 % paired-bootstrap intervals,
each streaming distilled student against its streaming twin and against the full-context
distilled student (relative WER), the token delay of every model against the ensemble's
spikes on test, and, for the streaming student chosen on dev, its export (``streaming.onnx``),
the exact agreement of streaming and offline greedy decodes of the exported graphs on every
test utterance, per-chunk compute time on one CPU thread and the algorithmic latency.

Usage (in a checkout where ``make run`` finished; results in ``experiments/runs/streaming.*``)::

    python experiments/streaming.py              # train what is missing (two at a time), then score
    python experiments/streaming.py --score-only
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep import fmt, model_path, score, train_variants  # noqa: E402

from pipeline.config import Params, parse_params  # noqa: E402
from pipeline.deploy.runtime import ONNX_FP32, STREAMING, as_batch, onnx_runner, single_thread  # noqa: E402
from pipeline.deploy.streaming import StreamingModel, streaming_parity, time_streaming  # noqa: E402
from pipeline.export.formats import load_split, write_artifacts  # noqa: E402
from pipeline.io import read_json, write_json  # noqa: E402
from pipeline.loader import make_loader  # noqa: E402
from pipeline.model.conformer import count_parameters, load_model  # noqa: E402
from pipeline.model.spikes import DelayMeter  # noqa: E402
from pipeline.stage import setup_logging  # noqa: E402
from pipeline.store import Store  # noqa: E402
from pipeline.tokens import load_tokenizer  # noqa: E402

log = logging.getLogger("asr_distill.streaming")

CHUNK_FRAMES, LEFT_FRAMES = 6, 24  # 240 ms chunks, 960 ms of left context


def variants(raw: dict[str, Any], shift: int | None) -> dict[str, tuple[str, dict[str, Any], str | None]]:
    """name: (student, overrides, twin); the streaming twin is a new entry of ``twins``, the
    streaming distilled students new entries of ``students``."""
    model = {**raw["student_defaults"]["model"], "chunk_frames": CHUNK_FRAMES, "left_frames": LEFT_FRAMES}
    base = {**raw["twins"]["baseline"], "model": model}
    distilled = {**raw["students"]["distilled"], "model": model, "twin": "stream_baseline"}
    out = {
        "baseline": ("baseline", {}, None),
        "distilled": ("distilled", {}, "baseline"),
        "stream_baseline": ("stream_baseline", {"twins.stream_baseline": base}, None),
        "stream_distilled": (
            "stream_distilled",
            {"twins.stream_baseline": base, "students.stream_distilled": distilled},
            "stream_baseline",
        ),
    }
    if shift is not None:
        shifted = {**distilled, "kd_shift": shift}
        out["stream_distilled_shift"] = (
            "stream_distilled_shift",
            {"twins.stream_baseline": base, "students.stream_distilled_shift": shifted},
            "stream_baseline",
        )
    return out


@torch.no_grad()
def argmaxes(path: Path, loader) -> dict[str, np.ndarray]:
    model = load_model(path).eval()
    out = {}
    for batch in loader:
        logits, lengths = model(batch.feats, batch.lengths)
        for u, row, n in zip(batch.ids, logits.argmax(-1), lengths.tolist()):
            out[u] = row[:n].numpy()
    return out


def delays(run: Path, models: dict[str, Path], split: str, params: Params) -> dict[str, dict[str, Any]]:
    """Token delay of each model against the ensemble's spikes (argmax of the averaged soft targets)."""
    sp = load_tokenizer(run / "data/tokenizer/spm.model")
    loader = make_loader(run / "data/features", run / "data/manifests", split, sp, params.train.batch_frames)
    soft = Store(run / "data/soft_targets" / split)
    reference = {u: soft.get(u, "ids")[:, 0].astype(np.int64) for u in soft.ids()}
    result = {}
    for name, path in models.items():
        meter = DelayMeter()
        for u, best in argmaxes(path, loader).items():
            meter.update(reference[u], best)
        result[name] = meter.result()
        log.info("%s %s delay vs ensemble: %s", split, name, result[name])
    return result


def train_parallel(run: Path, params_file: Path, names: list[str], shift: int | None) -> None:
    """Train ``names`` two at a time, one thread each, in child processes of this script."""
    procs = []
    for name in names:
        cmd = [sys.executable, __file__, "--run", str(run), "--params", str(params_file), "--train-one", name]
        if shift is not None:
            cmd += ["--shift", str(shift)]
        procs.append(subprocess.Popen(cmd))
    if any(p.wait() for p in procs):
        raise SystemExit("a training process failed")


def deployment(run: Path, out: Path, name: str, model_file: Path, params: Params) -> dict[str, Any]:
    """Export ``name``; stream every test utterance through it; single-thread timings."""
    target = out / "export" / name
    target.mkdir(parents=True, exist_ok=True)
    model = load_model(model_file)
    features = Store(run / "data/features/test")
    with single_thread():
        if not (target / STREAMING).exists():
            write_artifacts(
                model, target, run / "data/tokenizer/spm.model", features.meta, params.export.opset
            )
        test = load_split(run / "data/features/test", run / "data/manifests/test.jsonl")
        feats = [u["feats"].astype(np.float32) for u in test]
        offline = onnx_runner(target / ONNX_FP32)
        offline_logits = [offline(*as_batch(f))[0][0] for f in feats]
        stream = StreamingModel.load(target / STREAMING)
        parity = streaming_parity(stream, feats, offline_logits)
        timed = feats[: params.export.rtf_utterances]
        seconds = sum(u["duration"] for u in test[: len(timed)])
        timing = time_streaming(stream, timed, seconds, params.export.rtf_repeats)
    return {
        "student": name,
        "params": count_parameters(model),
        "left_context_ms": LEFT_FRAMES * 40.0,
        **timing,
        "streaming_vs_offline": parity,
        "size_mb": round((target / STREAMING).stat().st_size / 1e6, 3),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| model | context | params | dev WER | test WER [95 %] | vs twin (diff [95 %]) | "
        "vs full-context distilled (relative [95 %]) | token delay vs ensemble (mean ms, within 1 frame) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, info in result["variants"].items():
        dev, test, d = result["dev"][name], result["test"][name], result["delays"][name]
        twin = (
            f"{test['wer_diff']:+.4f} {fmt(test['wer_diff_ci'])} vs {test['twin']}"
            if test.get("twin")
            else ""
        )
        rel = (
            f"{100 * test['relative_wer']:+.1f} % "
            f"[{100 * test['relative_wer_ci'][0]:+.1f}, "
            f"{100 * test['relative_wer_ci'][1]:+.1f}]"
            if "relative_wer" in test
            else ""
        )
        context = f"{info['chunk_ms']:.0f} ms chunks" if info["chunk_ms"] else "full"
        if info.get("kd_shift"):
            context += f", targets delayed {info['kd_shift']} frames"
        lines.append(
            f"| {name} | {context} | {info['params']:,} | {dev['wer']:.4f} | {test['wer']:.4f} "
            f"{fmt(test['wer_ci'])} | {twin} | {rel} | {d.get('mean_ms')} ms, {d.get('within_1_frame')} |"
        )
    ens = result["test"]["ensemble"]
    dev_wer = result["dev"]["ensemble"]["wer"]
    lines.append(f"| ensemble | full | | {dev_wer:.4f} | {ens['wer']:.4f} {fmt(ens['wer_ci'])} | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=".", help="checkout where `make run` finished (default .)")
    p.add_argument("--params", default=None, help="params file of the run (default <run>/params.yaml)")
    p.add_argument("--score-only", action="store_true", help="score what is trained, train nothing")
    p.add_argument("--train-one", help=argparse.SUPPRESS)
    p.add_argument("--shift", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    setup_logging()
    run = Path(args.run).resolve()
    out = run / "experiments" / "runs" / "streaming"
    params_file = Path(args.params or run / "params.yaml").resolve()
    raw = yaml.safe_load(params_file.read_text())
    params = parse_params(raw)
    if args.train_one:
        torch.set_num_threads(1)
        vs = variants(raw, args.shift)
        train_variants(run, out, raw, {args.train_one: vs[args.train_one]}, threads=1)
        return
    shift_file = out / "shift.json"
    if not args.score_only:
        train_parallel(run, params_file, ["stream_baseline"], None)
    if not shift_file.exists():
        models = {"stream_baseline": out / "models" / "stream_baseline.pt"}
        measured = delays(run, models, "dev", params)["stream_baseline"]
        if not measured["paired_tokens"]:
            log.warning("stream_baseline emits no token the ensemble emits on dev: kd_shift 0")
        shift = max(0, int(round(measured.get("mean_frames", 0))))  # the mean delay, in whole frames
        write_json(shift_file, {"dev_delay": measured, "kd_shift": shift})
    shift = read_json(shift_file)["kd_shift"]
    if not args.score_only:  # the two distilled students side by side, one thread each
        train_parallel(run, params_file, ["stream_distilled", "stream_distilled_shift"], shift)
    vs = variants(raw, shift)
    torch.set_num_threads(params.train.threads)
    t0 = time.time()
    files = {n: model_path(run, out, n, s, c) for n, (s, c, _) in vs.items()}
    for f in files.values():  # the run's own students may still be training beside these
        while not f.exists():
            log.info("waiting for %s", f)
            time.sleep(30)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "chunk_frames": CHUNK_FRAMES,
        "left_frames": LEFT_FRAMES,
        "kd_shift": shift,
        "dev_delay_of_stream_baseline": read_json(shift_file)["dev_delay"],
        "variants": {
            n: {
                "params": count_parameters(load_model(f)),
                "chunk_ms": 4 * load_model(f).cfg.chunk_frames * 10.0,
                "kd_shift": shift if n == "stream_distilled_shift" else 0,
            }
            for n, f in files.items()
        },
        **{
            split: score(
                run, out, params, vs, split, {n: "distilled" for n in vs if n.startswith("stream_d")}
            )
            for split in ("dev", "test")
        },
        "delays": delays(run, files, "dev", params),  # the ensemble's soft targets cover dev
    }
    chosen = min(("stream_distilled", "stream_distilled_shift"), key=lambda n: result["dev"][n]["wer"])
    result["chosen_on_dev"] = chosen
    result["deployment"] = deployment(run, out, chosen, files[chosen], params)
    log.info("scored in %.0fs", time.time() - t0)
    write_json(out.parent / "streaming.json", result)
    (out.parent / "streaming.md").write_text(markdown(result))
    print(markdown(result))
    print(yaml.safe_dump(result["deployment"], sort_keys=False))


if __name__ == "__main__":
    main()
