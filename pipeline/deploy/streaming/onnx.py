"""The streaming step as ONNX: named inputs, outputs and caches, exported with example inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.deploy.streaming.step import SUBSAMPLING, StreamingStep, window_frames
from pipeline.model.conformer import ConformerCTC

STREAM_INPUTS = ["feats", "valid", "att_cache", "conv_cache", "cached"]
STREAM_OUTPUTS = ["logits", "next_att_cache", "next_conv_cache", "next_cached"]


def example_inputs(step: StreamingStep) -> tuple[torch.Tensor, ...]:
    """Inputs of the step's shapes for tracing: random ``feats``, a full chunk, the initial caches."""
    state = step.initial_state()
    feats = torch.randn(1, window_frames(step.chunk), step.n_mels)
    return feats, torch.tensor([step.chunk]), state["att_cache"], state["conv_cache"], state["cached"]


def export_streaming_onnx(model: ConformerCTC, path: Path, opset: int) -> dict[str, Any]:
    """Write the one-chunk step of ``model`` as ONNX (static shapes); returns its config entry."""
    import warnings

    step = StreamingStep(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            example_inputs(step),
            str(path),
            input_names=STREAM_INPUTS,
            output_names=STREAM_OUTPUTS,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    state = step.initial_state()
    return {
        "file": path.name,
        "chunk_frames": step.chunk,
        "left_frames": step.left,
        "window_frames": window_frames(step.chunk),
        "window_shift_frames": SUBSAMPLING * step.chunk,
        "inputs": {
            "feats": f"(1, {window_frames(step.chunk)}, n_mels) float32 raw fbank",
            "valid": "(1,) int64 output frames of this chunk that are audio",
            "att_cache": f"{tuple(state['att_cache'].shape)} float32",
            "conv_cache": f"{tuple(state['conv_cache'].shape)} float32",
            "cached": "(1,) int64 valid frames in att_cache",
        },
        "outputs": {
            "logits": f"(1, {step.chunk}, vocab_size) float32",
            "next_*": "the caches for the next call",
        },
        "state_shapes": {k: list(v.shape) for k, v in state.items()},
    }
