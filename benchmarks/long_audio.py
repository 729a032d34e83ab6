"""Wall time, real-time factor and peak memory of ``asr-distill transcribe`` on long audio (prints).

Usage::

    python benchmarks/long_audio.py [MODEL] [--minutes 1 10 60] [--threads 1] [--window 20 --context 4] \
        [--decoder greedy|lexicon|lexicon+lm]

``MODEL`` is an exported ONNX file with its ``config.json`` and tokenizer beside it (default
``export/distilled/student.int8.onnx``; any export folder works, e.g. the tests' tiny random
one). For each length, a WAV of that many minutes of noise at the model's sample rate is
written to a temp dir (in one-minute blocks, so the parent stays small), and a fresh child
process loads the model and transcribes it as the CLI does (:meth:`ExportedModel.transcribe`:
read, fbank, model window by window, then the model's default decoder or ``--decoder``). The
child reports:

* ``wall_s``: the ``transcribe`` call, reading the file included; ``rtf``: ``wall_s`` / audio;
  ``decode_s``: the decoder's part of it (the stitched logits of the whole file are decoded as
  one utterance; the beam decoders keep every frame's beam until the end, so their memory
  grows with the length too);
* ``peak_mib``: the child's peak resident memory over its life (``VmHWM`` from
  /proc/self/status; ``ru_maxrss`` where /proc is missing: on Linux ``ru_maxrss`` survives
  exec, so a child would report its parent's peak), and ``loaded_mib``, the peak once the
  model was loaded (imports and runtime), before the file was read.

Noise is enough: what is measured is time and memory, which do not depend on the words. A
``--window`` longer than the audio measures the model run whole (the behaviour before
windowing); expect its memory to grow with the square of the length.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

DEFAULT_MODEL = ROOT / "export" / "distilled" / "student.int8.onnx"
BLOCK_SECONDS = 60


def peak_mib() -> float:
    """This process's peak resident memory so far, MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_noise(path: Path, minutes: float, sample_rate: int, seed: int = 0) -> None:
    """``minutes`` of 16-bit Gaussian noise (std 0.1, speech-like level), written block by block."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * sample_rate)
    with sf.SoundFile(path, "w", sample_rate, 1, subtype="PCM_16") as out:
        for start in range(0, total, BLOCK_SECONDS * sample_rate):
            n = min(BLOCK_SECONDS * sample_rate, total - start)
            out.write(np.clip(rng.normal(0.0, 0.1, n), -1.0, 1.0).astype(np.float32))


def child(model: Path, audio: Path, threads: int, window: float, context: float, decoder: str | None) -> dict:
    """Load ``model``, transcribe ``audio`` once; the figures of the module docstring."""
    import torch

    from pipeline.audio.fbank import num_frames
    from pipeline.deploy.transcribe import ExportedModel

    torch.set_num_threads(threads)  # as the CLI does: fbank runs in torch
    exported = ExportedModel.load(model, threads, window, context, decoder)
    loaded = peak_mib()
    start = time.perf_counter()
    result = exported.transcribe(audio)
    wall = time.perf_counter() - start
    frames = num_frames(
        round(result.audio_seconds * exported.sample_rate), exported.sample_rate, exported.features
    )
    return {
        "audio_s": result.audio_seconds,
        "decoder": result.decoder,
        "decode_s": round(result.seconds["decode"], 2),
        "windows": len(exported.windows(frames)),
        "wall_s": round(wall, 2),
        "rtf": round(wall / result.audio_seconds, 4),
        "loaded_mib": round(loaded),
        "peak_mib": round(peak_mib()),
        "words": len(result.text.split()),
    }


def measure(model: Path, minutes: float, args: argparse.Namespace, tmp: Path) -> dict:
    """Write the noise file and run :func:`child` on it in a fresh process."""
    from pipeline.deploy.runtime import CONFIG
    from pipeline.io import read_json

    audio = tmp / f"noise_{minutes:g}min.wav"
    write_noise(audio, minutes, int(read_json(model.parent / CONFIG)["sample_rate"]))
    cmd = [sys.executable, __file__, str(model), "--child", str(audio)]
    cmd += ["--threads", str(args.threads), "--window", str(args.window), "--context", str(args.context)]
    cmd += ["--decoder", args.decoder] if args.decoder else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    audio.unlink()
    if proc.returncode:
        raise SystemExit(f"{minutes:g} min: child failed\n{proc.stderr}")
    return {"minutes": minutes, **json.loads(proc.stdout.splitlines()[-1])}


def main() -> None:
    from pipeline.deploy.transcribe import CONTEXT_SECONDS, WINDOW_SECONDS
    from pipeline.model.decoding import DECODERS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL, help="exported ONNX file")
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60], help="lengths to try")
    p.add_argument("--threads", type=int, default=1, help="CPU threads, as asr-distill transcribe --threads")
    p.add_argument("--window", type=float, default=WINDOW_SECONDS, help="window seconds")
    p.add_argument("--context", type=float, default=CONTEXT_SECONDS, help="context seconds on each side")
    p.add_argument("--decoder", choices=DECODERS, help="default: the model's own (config.json)")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: one measurement
    args = p.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"{args.model}: exported model not found (run the export stage, or pass one)")
    if args.child:
        print(
            json.dumps(child(args.model, args.child, args.threads, args.window, args.context, args.decoder))
        )
        return
    print(f"model {args.model}, window {args.window:g} s, context {args.context:g} s, threads {args.threads}")
    columns = (
        "minutes",
        "audio_s",
        "windows",
        "wall_s",
        "decode_s",
        "rtf",
        "loaded_MiB",
        "peak_MiB",
        "decoder",
    )
    print(" ".join(f"{c:>10}" for c in columns))
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            r = measure(args.model, minutes, args, Path(tmp))
            print(
                f"{r['minutes']:>10g} {r['audio_s']:>10.1f} {r['windows']:>10d} {r['wall_s']:>10.2f} "
                f"{r['decode_s']:>10.2f} {r['rtf']:>10.4f} {r['loaded_mib']:>10d} {r['peak_mib']:>10d} "
                f"{r['decoder']:>10}",
                flush=True,
            )


if __name__ == "__main__":
    main()
