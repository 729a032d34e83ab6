"""Incremental fbank: frames of audio given block by block, equal to the whole signal's."""

from __future__ import annotations

import numpy as np

from pipeline.audio.fbank import fbank
from pipeline.config import FbankConfig


class StreamingFbank:
    """Fbank frames of audio given block by block, equal to the fbank of the whole signal.

    Kaldi fbank frames (``snip_edges``) each read ``frame_length`` of samples every
    ``frame_shift``, with no whole-signal step (dither 0), so a frame is final as soon as its
    samples have arrived.
    """

    def __init__(self, sample_rate: int, features: FbankConfig) -> None:
        self.sample_rate, self.features = sample_rate, features
        self.shift = int(sample_rate * features.frame_shift_ms / 1000)
        self.window = int(sample_rate * features.frame_length_ms / 1000)
        self.buffer = np.zeros(0, np.float32)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """New complete frames ``(n, n_mels)`` after ``samples`` arrive (possibly none)."""
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, np.float32)])
        if len(self.buffer) < self.window:
            return np.zeros((0, self.features.n_mels), np.float32)
        frames = fbank(self.buffer, self.sample_rate, self.features)
        self.buffer = self.buffer[len(frames) * self.shift :]
        return frames
