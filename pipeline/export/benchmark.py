"""Single-thread CPU real-time factor of the ensemble and the students, side by side.

What is timed: the acoustic model's forward pass only, from precomputed raw
fbank ``(1, T, n_mels)`` to logits, one utterance at a time (batch 1, as a
device transcribing one recording would run it), with one CPU thread
(``torch.set_num_threads(1)``; onnxruntime ``intra_op_num_threads=1``). For the
ensemble it is every teacher's forward pass plus the averaging of their
posteriors. Not timed: reading audio, fbank extraction, greedy decoding and
model loading. Each model first runs once untimed (warm-up); then
``repeats`` passes over the utterances are timed, the models interleaved
within each pass so that load from other processes hits them alike, and the
fastest pass per model is kept.

``RTF = compute seconds / audio seconds`` (lower is faster; 0.01 means one
second of audio takes 10 ms).

Usage::

    rtf = measure_rtf({"student.distilled.onnx": onnx_runner(path)}, feats, seconds, repeats=3)

Every distilled student is exported (``export/<name>/``) and benchmarked in each format.

The export stage runs :func:`run_benchmark` and writes the result into
``reports/export.json``; evaluate copies it into ``reports/metrics.json`` with the
test WER of every runtime (:func:`pipeline.evaluate.score.deployment_metrics`). On the machine you deploy
to, ``python benchmarks/rtf.py`` (after ``dvc repro export``) repeats it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.config import GoalsConfig
from pipeline.deploy.runtime import (
    ONNX_FP32,
    ONNX_INT8,
    TORCHSCRIPT,
    Runner,
    as_batch,
    onnx_runner,
    single_thread,
    torch_runner,
    torchscript_runner,
)
from pipeline.model.conformer import ConformerCTC
from pipeline.model.ensemble import combine_posteriors

log = logging.getLogger(__name__)


def ensemble_runner(teachers: Sequence[ConformerCTC], combine: str) -> Runner:
    """Every teacher's forward pass plus posterior averaging, as one :data:`Runner`."""

    def run(feats: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, n = torch.from_numpy(feats), torch.from_numpy(lengths)
        with torch.no_grad():
            outs = [t(x, n) for t in teachers]
            probs = combine_posteriors([logits for logits, _ in outs], 1.0, combine)
        return probs.log().numpy(), outs[0][1].numpy()

    return run


def file_sizes(paths: dict[str, Sequence[Path]]) -> dict[str, int]:
    """Bytes on disk per name (a name may cover several files, e.g. the ensemble)."""
    return {name: sum(Path(p).stat().st_size for p in files) for name, files in paths.items()}


def time_pass(runner: Runner, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Seconds to run ``runner`` over ``batches`` once."""
    start = time.perf_counter()
    for feats, lengths in batches:
        runner(feats, lengths)
    return time.perf_counter() - start


def measure_rtf(
    runners: dict[str, Runner], examples: Sequence[np.ndarray], audio_seconds: float, repeats: int
) -> dict[str, float]:
    """Real-time factor per runner name over ``examples`` (each ``(T, F)`` fbank).

    ``audio_seconds``: total duration of the audio the examples were computed from.
    """
    if not examples or audio_seconds <= 0:
        raise ValueError("RTF benchmark needs at least one utterance with positive duration")
    batches = [as_batch(f) for f in examples]
    best = {name: float("inf") for name in runners}
    with single_thread():
        for runner in runners.values():
            runner(*batches[0])  # warm-up: allocations, onnxruntime graph caches
        for _ in range(repeats):
            for name, runner in runners.items():
                best[name] = min(best[name], time_pass(runner, batches))
    rtf = {name: round(seconds / audio_seconds, 6) for name, seconds in best.items()}
    log.info("RTF over %d utterances (%.1f s of audio): %s", len(examples), audio_seconds, rtf)
    return rtf


def all_runners(
    teachers: Sequence[ConformerCTC],
    students: dict[str, ConformerCTC],
    exported: dict[str, Path],
    combine: str,
    twins: dict[str, ConformerCTC] | None = None,
) -> dict[str, Runner]:
    """The benchmark's line-up: the ensemble, teachers that are a student's twin
    (``twins``, e.g. ``{"teacher.guide": model}``), every student in PyTorch, and every
    exported student (``exported``: student name -> its export folder) in each format."""
    runners = {
        "ensemble": ensemble_runner(teachers, combine),
        **{f"{n}.torch": torch_runner(m.eval()) for n, m in (twins or {}).items()},
        **{f"student.{n}.torch": torch_runner(m.eval()) for n, m in students.items()},
    }
    for name, folder in exported.items():
        runners.update(
            {
                f"student.{name}.torchscript": torchscript_runner(folder / TORCHSCRIPT),
                f"student.{name}.onnx": onnx_runner(folder / ONNX_FP32),
                f"student.{name}.int8": onnx_runner(folder / ONNX_INT8),
            }
        )
    return runners


def run_benchmark(
    teachers: dict[str, ConformerCTC],
    students: dict[str, ConformerCTC],
    model_files: dict[str, Path],
    exported: dict[str, Path],
    examples: Sequence[dict],
    combine: str,
    repeats: int,
    twins: Sequence[str] = (),
    *,
    goals: GoalsConfig,
) -> dict[str, object]:
    """The export stage's benchmark: RTF and file size of every runtime, and the speed goals
    (``goals``: ``export.goals``).

    ``teachers`` / ``students``: the loaded models by name; ``model_files``: their files
    keyed ``teacher.<name>`` / ``student.<name>``; ``exported``: student name -> the folder
    it was exported to; ``examples``: test utterances (``feats``, ``duration``) to time;
    ``twins``: teachers (``teacher.<name>``) that are a distilled student's twin, timed alone.
    """
    seconds = sum(u["duration"] for u in examples)
    twin_models = {n: teachers[n.removeprefix("teacher.")] for n in twins}
    rtf = measure_rtf(
        all_runners(list(teachers.values()), students, exported, combine, twin_models),
        [u["feats"] for u in examples],
        seconds,
        repeats,
    )
    files = {
        "ensemble": [model_files[f"teacher.{n}"] for n in teachers],
        **{f"{n}.torch": [model_files[n]] for n in twins},
        **{f"student.{n}.torch": [model_files[f"student.{n}"]] for n in students},
    }
    for name, folder in exported.items():
        files.update(
            {
                f"student.{name}.{fmt}": [folder / f]
                for fmt, f in (("torchscript", TORCHSCRIPT), ("onnx", ONNX_FP32), ("int8", ONNX_INT8))
            }
        )
    sizes = file_sizes(files)
    return {
        "rtf": rtf,
        "sizes": sizes,
        "goals": speed_goals(rtf, goals),
        "rtf_utterances": len(examples),
        "rtf_audio_seconds": round(seconds, 3),
    }


def speed_goals(
    rtf: dict[str, float],
    goals: GoalsConfig,
    fast: str = "student.distilled.int8",
    slow: str = "ensemble",
) -> dict[str, object]:
    """Whether ``fast`` meets ``export.goals``: at least ``min_speedup`` times faster than
    ``slow``, RTF at most ``max_rtf``. The keys name the goal they check, e.g.
    ``int8_at_least_50x_faster`` and ``int8_rtf_at_most_0.01``."""
    speedup = rtf[slow] / rtf[fast] if rtf[fast] > 0 else float("inf")
    return {
        "int8_speedup": round(speedup, 2),
        f"int8_at_least_{goals.min_speedup:g}x_faster": bool(speedup >= goals.min_speedup),
        f"int8_rtf_at_most_{goals.max_rtf:g}": bool(rtf[fast] <= goals.max_rtf),
    }
