"""Speech to text with the exported student: audio file -> fbank -> ONNX -> greedy CTC.

The export directory (see :mod:`pipeline.export`) holds everything needed:
the ONNX model, ``tokenizer.model`` and ``config.json`` with the sample rate
and fbank settings the model was trained on. Features are computed with the
same functions as the ``features`` stage, so the model sees what it saw in training, and
each file gets the audio checks of the ``prepare`` stage (:func:`pipeline.audio.read_speech`).

Usage::

    model = ExportedModel.load(Path("export/distilled/student.onnx"))
    result = model.transcribe(Path("speech.flac"))
    result.text, result.rtf
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch

from pipeline.audio import AudioError, read_speech
from pipeline.config import FbankConfig
from pipeline.ctc import greedy_decode
from pipeline.fbank import fbank
from pipeline.io import read_json
from pipeline.runtime import CONFIG, CONFIG_FORMAT, Runner, as_batch, onnx_runner
from pipeline.tokens import load_tokenizer

log = logging.getLogger(__name__)


@dataclass
class Transcript:
    """One file's result. ``compute_seconds`` covers fbank, the model and decoding."""

    file: str
    text: str
    audio_seconds: float
    compute_seconds: float
    rtf: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExportedModel:
    """An exported ONNX student with its tokenizer and front-end settings."""

    runner: Runner
    sp: spm.SentencePieceProcessor
    features: FbankConfig
    sample_rate: int
    min_frames: int

    @classmethod
    def load(cls, model: Path, threads: int = 1) -> ExportedModel:
        """Load ``model`` (an ONNX file) plus ``config.json`` and the tokenizer beside it."""
        if not model.is_file():
            raise FileNotFoundError(f"{model}: exported model not found (run the export stage)")
        config_path = model.parent / CONFIG
        if not config_path.exists():
            raise FileNotFoundError(f"{config_path}: export config not found beside {model}")
        config = read_json(config_path)
        if config.get("format") != CONFIG_FORMAT:
            raise ValueError(f"{config_path}: format {config.get('format')!r}, expected {CONFIG_FORMAT!r}")
        loaded = cls(
            onnx_runner(model, threads),
            load_tokenizer(model.parent / config["tokenizer"]),
            FbankConfig(**config["features"]),
            int(config["sample_rate"]),
            int(config["min_frames"]),
        )
        loaded.decode(np.zeros((4 * loaded.min_frames, loaded.features.n_mels), np.float32))  # warm-up
        return loaded

    def features_of(self, path: Path, wav: np.ndarray) -> np.ndarray:
        """``(frames, n_mels)`` fbank; audio too short for the model raises :class:`AudioError`."""
        min_seconds = (
            self.min_frames * self.features.frame_shift_ms + self.features.frame_length_ms
        ) / 1000.0
        if len(wav) < int(min_seconds * self.sample_rate):
            raise AudioError(
                path,
                f"audio too short ({len(wav) / self.sample_rate:.3f} s; "
                f"the model needs at least {min_seconds:.2f} s)",
            )
        return fbank(wav, self.sample_rate, self.features)

    def decode(self, feats: np.ndarray) -> str:
        """Greedy CTC transcript of one utterance's fbank ``(T, n_mels)``."""
        logits, lengths = self.runner(*as_batch(feats))
        return self.sp.decode(greedy_decode(torch.from_numpy(logits), torch.from_numpy(lengths))[0])

    def transcribe(self, path: Path) -> Transcript:
        """Read, featurize and decode one file.

        A file ``prepare`` would reject for its audio (missing, a directory, unreadable, empty,
        non-finite or silent samples) raises :class:`AudioError` with the same reason.
        """
        wav = read_speech(path, self.sample_rate).samples
        start = time.perf_counter()
        text = self.decode(self.features_of(path, wav))
        compute = time.perf_counter() - start
        seconds = len(wav) / self.sample_rate
        return Transcript(str(path), text, round(seconds, 3), round(compute, 4), round(compute / seconds, 5))
