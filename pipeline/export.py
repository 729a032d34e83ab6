"""The ``export`` stage: the distilled student as ONNX (fp32) with a parity check.

The exported graph takes raw fbank ``feats (N, T, n_mels)`` and ``lengths (N,)``
(CMVN is inside the model) and returns ``logits (N, T', V)`` and
``out_lengths (N,)``; batch and time axes are dynamic.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.model import ConformerCTC

log = logging.getLogger(__name__)


def export_onnx(model: ConformerCTC, path: Path, opset: int) -> None:
    """Write ``model`` as ONNX with dynamic batch and time axes."""
    model.eval()
    feats = torch.randn(2, 400, model.n_mels)
    lengths = torch.tensor([400, 300])
    batch = torch.export.Dim("batch", min=1, max=1024)
    time = torch.export.Dim("time", min=16, max=1_000_000)
    # The dynamo exporter keeps the time axis symbolic through the attention reshapes,
    # which the legacy tracer bakes in as constants.
    torch.onnx.export(
        model, (feats, lengths), str(path), input_names=["feats", "lengths"],
        output_names=["logits", "out_lengths"], opset_version=opset, dynamo=True,
        dynamic_shapes={"feats": {0: batch, 1: time}, "lengths": {0: batch}}, verbose=False)

def onnx_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def parity(model: ConformerCTC, path: Path, examples: list[np.ndarray]) -> dict[str, Any]:
    """Max absolute logit difference between eager PyTorch and onnxruntime."""
    session = onnx_session(path)
    worst = 0.0
    for feats in examples:
        x = torch.from_numpy(np.asarray(feats, dtype=np.float32))[None]
        n = torch.tensor([x.shape[1]])
        ref, _ = model(x, n)
        got = session.run(["logits"], {"feats": x.numpy(), "lengths": n.numpy()})[0]
        worst = max(worst, float(np.abs(ref.numpy() - got).max()))
    return {"max_abs_diff": worst, "utterances": len(examples)}
