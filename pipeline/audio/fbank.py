"""The acoustic front end: Kaldi-compatible log-mel filterbanks (torchaudio).

One function for every place that turns audio into model input: the ``features`` stage,
and ``asr-distill transcribe`` with the settings the export folder's ``config.json``
records, so a deployed model sees what it saw in training.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from pipeline.config import FbankConfig


def fbank(wav: np.ndarray, sample_rate: int, cfg: FbankConfig) -> np.ndarray:
    """``(frames, n_mels)`` float32 log-mel filterbank of a float waveform in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).unsqueeze(0) * 32768.0
    feats = kaldi.fbank(
        x,
        num_mel_bins=cfg.n_mels,
        frame_shift=cfg.frame_shift_ms,
        frame_length=cfg.frame_length_ms,
        dither=cfg.dither,
        sample_frequency=sample_rate,
        energy_floor=0.0,
    )
    return feats.numpy()


def num_frames(samples: int, sample_rate: int, cfg: FbankConfig) -> int:
    """Frames ``kaldi.fbank`` emits for ``samples`` samples (``snip_edges=True``)."""
    window = int(sample_rate * cfg.frame_length_ms / 1000)  # rounded as kaldi.fbank rounds
    shift = int(sample_rate * cfg.frame_shift_ms / 1000)
    return 0 if samples < window else 1 + (samples - window) // shift
