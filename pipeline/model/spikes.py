"""Where CTC models emit their tokens, and how late one model is against another.

A CTC model's greedy path emits a token on the first frame of each run of the same
non-blank argmax (the spike). Two models that transcribe an utterance alike emit
the same tokens; the delay of a token is the frame where the candidate emits it minus
the frame where the reference emits it. Tokens are paired along the longest matching
blocks of the two token sequences (``difflib``), so a substitution or an insertion
does not shift the pairing of the rest.

A streaming model sees no audio after its chunk and emits later than full-context
models; :class:`DelayMeter` measures by how much, in output frames (40 ms each).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.tokens import BLANK


def spikes(argmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, tokens)`` of the greedy path's emissions: first frame of each non-blank run."""
    a = np.asarray(argmax)
    start = np.ones(len(a), dtype=bool)
    start[1:] = a[1:] != a[:-1]
    frames = np.flatnonzero(start & (a != BLANK))
    return frames, a[frames]


def token_delays(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Frame delays (candidate minus reference) of the tokens both argmax paths emit, paired
    along their longest matching blocks."""
    ref_frames, ref_tokens = spikes(reference)
    hyp_frames, hyp_tokens = spikes(candidate)
    matcher = difflib.SequenceMatcher(a=ref_tokens.tolist(), b=hyp_tokens.tolist(), autojunk=False)
    delays = [
        hyp_frames[b + i] - ref_frames[a + i]
        for a, b, size in matcher.get_matching_blocks()
        for i in range(size)
    ]
    return np.asarray(delays, dtype=np.int64)


class DelayMeter:
    """Pooled token delays of one model against a reference over many utterances."""

    def __init__(self) -> None:
        self.delays: list[np.ndarray] = []
        self.reference_tokens = 0

    def update(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        self.delays.append(token_delays(reference, candidate))
        self.reference_tokens += len(spikes(reference)[0])

    def result(self, frame_ms: float = 40.0) -> dict[str, Any]:
        d = np.concatenate(self.delays) if self.delays else np.zeros(0, np.int64)
        if not len(d):
            return {"paired_tokens": 0, "reference_tokens": self.reference_tokens}
        return {
            "paired_tokens": int(len(d)),
            "reference_tokens": self.reference_tokens,
            "mean_frames": round(float(d.mean()), 3),
            "median_frames": float(np.median(d)),
            "p90_frames": float(np.percentile(d, 90)),
            "mean_ms": round(float(d.mean()) * frame_ms, 1),
            "within_1_frame": round(float(np.mean(np.abs(d) <= 1)), 4),
        }


def measure_delays(references: Sequence[np.ndarray], candidates: Sequence[np.ndarray]) -> dict[str, Any]:
    """:class:`DelayMeter` over paired argmax paths."""
    meter = DelayMeter()
    for r, c in zip(references, candidates):
        meter.update(r, c)
    return meter.result()
