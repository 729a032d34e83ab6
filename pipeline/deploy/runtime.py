"""Running a model on the CPU one utterance at a time, and the files of an export folder.

Eager PyTorch, TorchScript and ONNX (onnxruntime) models are wrapped as one
:data:`Runner` signature, so the export stage's parity checks, the CPU benchmark and
``asr-distill transcribe`` run them alike. An export folder (``export/<student>/``,
written by :mod:`pipeline.export.formats`) holds the files named here.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

CONFIG_FORMAT = "asr-distill-export/1"
TORCHSCRIPT = "student.torchscript.pt"
ONNX_FP32 = "student.onnx"
ONNX_INT8 = "student.int8.onnx"
STREAMING = "streaming.onnx"  # streaming students only: one chunk per call (pipeline.deploy.streaming)
TOKENIZER = "tokenizer.model"
CONFIG = "config.json"
# Shortest input the ONNX graph is exported for (the dynamo exporter's lower bound
# on the time axis); transcribe rejects shorter audio with a clear error.
MIN_FRAMES = 16

# (N, T, F) float32 feats, (N,) int64 lengths -> (N, T', V) float32 logits, (N,) lengths
Runner = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run PyTorch on one intra-op thread, restoring the previous setting after.

    Batch-1 inference of a small model gains nothing from more threads, and on
    a shared machine their spin-waiting makes it many times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def jit_warnings_off() -> Iterator[None]:
    """Silence "`torch.jit.*` is deprecated": still how C++ and mobile runtimes load a model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.")
        yield


def onnx_session(path: Path, threads: int = 1):
    """A CPU onnxruntime session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: ONNX model not found (run the export stage)")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def torch_runner(model: torch.nn.Module) -> Runner:
    """Wrap an eager or TorchScript model as a numpy :data:`Runner`."""

    def run(feats: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, out = model(torch.from_numpy(feats), torch.from_numpy(lengths))
        return logits.numpy(), out.numpy()

    return run


def torchscript_runner(path: Path) -> Runner:
    """Load a TorchScript file as a numpy :data:`Runner`."""
    with jit_warnings_off():
        return torch_runner(torch.jit.load(str(path)))


def onnx_runner(path: Path, threads: int = 1) -> Runner:
    """Wrap an ONNX file as a numpy :data:`Runner`."""
    session = onnx_session(path, threads)

    def run(feats: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, out = session.run(["logits", "out_lengths"], {"feats": feats, "lengths": lengths})
        return logits, out

    return run


def as_batch(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One utterance ``(T, F)`` (any float dtype) as a batch of one: ``(1, T, F)``, ``(1,)``."""
    x = np.ascontiguousarray(feats, dtype=np.float32)[None]
    return x, np.array([x.shape[1]], dtype=np.int64)
