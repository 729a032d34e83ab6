"""Checks and timing of an exported streaming model: parity with the offline logits and
transcripts, per-chunk compute time and latency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pipeline.deploy.streaming.decoder import StreamingModel
from pipeline.deploy.streaming.step import algorithmic_latency_ms


def streaming_parity(
    stream: StreamingModel, examples: Sequence[np.ndarray], offline_logits: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Stream each utterance's fbank ``(T, F)`` chunk by chunk and compare with the offline
    logits ``(T', V)`` of the same model: largest logit difference and how many utterances'
    transcripts differ (a streaming model must give exactly the offline transcript; ``stream``'s
    decoder decodes both)."""
    worst, differ = 0.0, 0
    for feats, offline in zip(examples, offline_logits):
        decoder = stream.stream(keep_logits=True)
        decoder.accept_features(feats)
        decoder.finish()
        got = np.concatenate(decoder.logits) if decoder.logits else np.zeros((0, offline.shape[-1]))
        if got.shape != offline.shape:
            worst = float("inf")
            differ += 1
            continue
        worst = max(worst, float(np.abs(got - offline).max()))
        batch = torch.from_numpy(offline[None]), torch.tensor([len(offline)])
        differ += stream.decoder(*batch)[0] != decoder.text
    return {"utterances": len(examples), "max_abs_logit_diff": worst, "transcripts_differ": differ}


def time_streaming(
    stream: StreamingModel, examples: Sequence[np.ndarray], seconds: float, repeats: int
) -> dict[str, Any]:
    """Per-chunk compute time of ``stream`` over ``examples`` (fbank ``(T, F)``, ``seconds`` of
    audio in all), the fastest of ``repeats`` passes; latency figures beside it."""
    best: list[float] | None = None
    for _ in range(repeats):
        chunk_ms: list[float] = []
        for feats in examples:
            decoder = stream.stream()
            decoder.accept_features(feats)
            decoder.finish()
            chunk_ms += [1000.0 * s for s in decoder.chunk_seconds]
        if best is None or sum(chunk_ms) < sum(best):
            best = chunk_ms
    times = np.asarray(best)
    chunk_audio_ms = stream.chunk_seconds * 1000.0
    return {
        "chunk_ms": round(chunk_audio_ms, 1),
        "algorithmic_latency_ms": algorithmic_latency_ms(stream.chunk_frames, stream.features),
        "compute_ms_per_chunk": {
            "mean": round(float(times.mean()), 3),
            "p50": round(float(np.percentile(times, 50)), 3),
            "p95": round(float(np.percentile(times, 95)), 3),
            "max": round(float(times.max()), 3),
        },
        "chunk_rtf": round(float(times.mean()) / chunk_audio_ms, 5),
        "rtf": round(float(times.sum()) / 1000.0 / seconds, 5),
        "utterances": len(examples),
        "chunks": len(times),
    }
