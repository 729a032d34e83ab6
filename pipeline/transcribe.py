"""Speech to text with the exported student: audio file -> fbank -> ONNX -> greedy CTC.

The export directory (see :mod:`pipeline.export`) holds everything needed:
the ONNX model, ``tokenizer.model`` and ``config.json`` with the sample rate
and fbank settings the model was trained on. Features are computed with the
same functions as the ``features`` stage, so the model sees what it saw in training.

Usage::

    model = ExportedModel.load(Path("export/distilled/student.onnx"))
    result = model.transcribe(Path("speech.flac"))
    result.text, result.rtf
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import soundfile as sf
import torch
import torchaudio.functional as AF

from pipeline.config import FeaturesConfig
from pipeline.ctc import greedy_decode
from pipeline.export import CONFIG, CONFIG_FORMAT, Runner, as_batch, onnx_runner
from pipeline.features import fbank, load_audio
from pipeline.io import read_json
from pipeline.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


class AudioError(ValueError):
    """An input file is missing, unreadable, empty or too short; the message names it."""


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


def read_with_librosa(path: Path, sample_rate: int) -> np.ndarray:
    """Formats libsndfile lacks (e.g. m4a through audioread): mono float32 at ``sample_rate``."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on its own fallback chain
        wav, sr = librosa.load(str(path), sr=None, mono=True)
    if sr != sample_rate:
        wav = AF.resample(torch.from_numpy(wav), int(sr), sample_rate).numpy()
    return wav.astype(np.float32)


def is_empty_soundfile(path: Path) -> bool:
    """True for a file libsndfile reads as zero samples (resampling would fail on it)."""
    try:
        return sf.info(str(path)).frames == 0
    except Exception:  # not a libsndfile format: the readers below decide
        return False


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at ``sample_rate``: soundfile first (as in training), librosa after.

    Raises :class:`AudioError` naming the file when it is missing, unreadable or empty.
    """
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    if is_empty_soundfile(path):
        raise AudioError(f"{path}: empty audio (no samples)")
    try:
        wav = load_audio(path, sample_rate)
    except (ValueError, RuntimeError) as first:
        try:
            wav = read_with_librosa(path, sample_rate)
        except Exception as second:  # librosa/audioread raise many types; report both readers
            soundfile_says = str(first).removeprefix(f"{path}: ")
            librosa_says = str(second) or "no audio backend could decode it"
            raise AudioError(
                f"{path}: cannot read audio (soundfile: {soundfile_says}; "
                f"librosa: {type(second).__name__}: {librosa_says})"
            ) from None
    if wav.size == 0:
        raise AudioError(f"{path}: empty audio (no samples)")
    return wav


@dataclass
class ExportedModel:
    """An exported ONNX student with its tokenizer and front-end settings."""

    runner: Runner
    sp: spm.SentencePieceProcessor
    features: FeaturesConfig
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
            FeaturesConfig(**config["features"]),
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
                f"{path}: audio too short ({len(wav) / self.sample_rate:.3f} s; "
                f"the model needs at least {min_seconds:.2f} s)"
            )
        return fbank(wav, self.sample_rate, self.features)

    def decode(self, feats: np.ndarray) -> str:
        """Greedy CTC transcript of one utterance's fbank ``(T, n_mels)``."""
        logits, lengths = self.runner(*as_batch(feats))
        return self.sp.decode(greedy_decode(torch.from_numpy(logits), torch.from_numpy(lengths))[0])

    def transcribe(self, path: Path) -> Transcript:
        """Read, featurize and decode one file."""
        wav = read_audio(path, self.sample_rate)
        start = time.perf_counter()
        text = self.decode(self.features_of(path, wav))
        compute = time.perf_counter() - start
        seconds = len(wav) / self.sample_rate
        return Transcript(str(path), text, round(seconds, 3), round(compute, 4), round(compute / seconds, 5))
