"""Reading audio files: the one reader behind ``prepare``, ``features`` and ``asr-distill transcribe``.

:func:`read_audio` returns mono float32 samples at the rate asked for, and the fixes it
applied (``downmixed``, ``resampled``). soundfile (libsndfile) reads first; a format it
cannot open (m4a, or mp3 with an old libsndfile) goes through librosa. Several channels
are averaged; another sample rate is resampled with torchaudio.

A file that cannot be used raises :class:`AudioError`: ``str(e)`` is ``"<path>: <reason>"``,
``e.reason`` the reason alone (the reject reason ``prepare`` records), one of ``missing
file``, ``not a file (a directory)``, ``empty audio (...)``, ``unreadable audio (...)`` or
``truncated audio (...)``.

Decoded samples can still be unusable: :func:`sample_problem` is the one check of their
content (``empty audio``, ``non-finite samples``, ``silent audio``), the same for the
``prepare`` stage (which rejects such an utterance) and for ``asr-distill transcribe``
(which reads through :func:`read_speech` and refuses such a file).

Usage::

    from pipeline.audio.read import read_audio, read_speech
    samples, fixes = read_audio(Path("speech.flac"), 16000)
    samples, fixes = read_speech(Path("speech.flac"), 16000)  # AudioError for NaN or silent audio
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SILENCE_PEAK = 1e-4  # below this peak amplitude (about -80 dBFS) audio counts as silent


class AudioError(ValueError):
    """An audio file is missing, not a file, unreadable, truncated, empty, non-finite or
    silent; the message names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # rebuilt from (path, reason) when it crosses a process boundary
        return type(self), (self.path, self.reason)


class Audio(NamedTuple):
    """Mono float32 ``samples`` at the requested rate and the ``fixes`` applied to get them."""

    samples: np.ndarray
    fixes: list[str]


def wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file whose data chunk is shorter than its header says, the shortfall.

    libsndfile quietly reads what is there, so a cut-off WAV would otherwise
    pass as a shorter, valid file whose transcript no longer matches.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                available = size - offset - 8
                unknown = chunk_size in (0, 0xFFFFFFFF)
                if not unknown and available < chunk_size:
                    return f"data chunk has {available} of {chunk_size} bytes"
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _read_librosa(path: Path) -> tuple[np.ndarray, int]:
    """Fallback decoder for formats libsndfile lacks; (frames, channels) float32."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on its own fallback chain
        wav, sr = librosa.load(str(path), sr=None, mono=False)
    return np.atleast_2d(wav).T.astype(np.float32), int(sr)


def _short(e: Exception) -> str:
    """A one-line error message without the path (the caller's message has it)."""
    return str(e).replace("\n", " ").split(": ", 1)[-1][:120]


def not_a_file(path: Path) -> str:
    """The reason ``path``, which is not a regular file, cannot be read as audio."""
    if path.is_dir():
        return "not a file (a directory)"
    if path.exists():
        return "not a file (not a regular file)"
    return "missing file"


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples ``(frames, channels)`` float32 and the file's sample rate.

    soundfile first, librosa for formats soundfile cannot open. Raises
    :class:`AudioError` for missing, unreadable, truncated or empty files and for
    directories.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, not_a_file(path))
    if path.stat().st_size == 0:
        raise AudioError(path, "empty audio (zero-byte file)")
    try:
        info = sf.info(str(path))
    except Exception as e:  # noqa: BLE001 - any decoder failure is a reason to reject the file
        try:
            wav, sr = _read_librosa(path)
        except Exception:  # noqa: BLE001
            raise AudioError(path, f"unreadable audio ({_short(e)})") from None
    else:
        shortfall = wav_truncation(path)
        if shortfall:
            raise AudioError(path, f"truncated audio ({shortfall})")
        try:
            wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # noqa: BLE001
            raise AudioError(path, f"truncated audio ({_short(e)})") from None
        if info.frames > 0 and len(wav) < info.frames:
            raise AudioError(path, f"truncated audio (read {len(wav)} of {info.frames} frames)")
    if wav.size == 0:
        raise AudioError(path, "empty audio (no samples)")
    return wav, sr


def read_audio(path: str | Path, sample_rate: int) -> Audio:
    """Mono float32 samples at ``sample_rate`` and the fixes applied ('downmixed', 'resampled')."""
    wav, sr = decode(path)  # (frames, channels)
    fixes = []
    if wav.shape[1] > 1:
        wav = wav.mean(axis=1, keepdims=True)
        fixes.append("downmixed")
    mono = wav[:, 0]
    if sr != sample_rate:
        mono = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), sr, sample_rate).numpy()
        fixes.append("resampled")
    return Audio(mono.astype(np.float32), fixes)


def sample_problem(samples: np.ndarray) -> str | None:
    """Why decoded samples are unusable, or ``None``: ``empty audio (no samples)``,
    ``non-finite samples`` (NaN or inf) or ``silent audio`` (peak below :data:`SILENCE_PEAK`).

    The one check of audio content, shared by ``prepare`` (a reject reason) and
    ``asr-distill transcribe`` (via :func:`read_speech`).
    """
    if samples.size == 0:
        return "empty audio (no samples)"
    if not np.all(np.isfinite(samples)):
        return "non-finite samples"
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        return "silent audio"
    return None


def read_speech(path: str | Path, sample_rate: int) -> Audio:
    """:func:`read_audio`, then :func:`sample_problem`: samples fit to transcribe, or
    :class:`AudioError` naming the file and the problem ``prepare`` would reject it for."""
    audio = read_audio(path, sample_rate)
    problem = sample_problem(audio.samples)
    if problem:
        raise AudioError(path, problem)
    return audio
