"""Speech to text with the exported student: audio file -> fbank -> ONNX -> CTC decoder.

The export directory (see :mod:`pipeline.export.formats`) holds everything needed:
the ONNX model, ``tokenizer.model``, the decoding resources (``lexicon.txt``, ``lm.arpa``)
and ``config.json`` with the sample rate and fbank settings the model was trained on and its
decoders (``decoding``: the default one, the beam size, the LM weight and word score chosen
on dev). The model's default decoder runs unless another is named
(:mod:`pipeline.model.decoding`). Features are computed with the
same functions as the ``features`` stage, so the model sees what it saw in training, and
each file gets the audio checks of the ``prepare`` stage (:func:`pipeline.audio.read.read_speech`).

Long audio runs window by window, in bounded memory. The exported model attends over its
whole input, so its memory grows with the square of the length (a 10-minute file took
4.6 GB in one piece). The fbank of the whole file is kept (an hour of 80-mel frames is
115 MB), computed in blocks of :data:`FBANK_BLOCK_SECONDS` (one call on an hour of audio
would hold several GB of intermediate frames and spectra), but the model sees one window at
a time:

* a window is ``window`` model output frames (:data:`WINDOW_SECONDS`, 20 s: 500 frames of
  40 ms), i.e. fbank frames ``[4 start, 4 (start + window) + 3)``. Window starts are multiples
  of 4 fbank frames, so output frame ``i`` of a window starting at output frame ``start`` is
  output frame ``start + i`` of the file, computed from the same fbank frames;
* consecutive windows start ``window - 2 context`` output frames apart (the last one ends at
  the file's last frame), so they overlap by at least ``2 context`` frames
  (:data:`CONTEXT_SECONDS`, 4 s on each side);
* stitching cuts each overlap in half: a window keeps its central part, from the middle of
  its overlap with the previous window to the middle of its overlap with the next (the first
  keeps from frame 0, the last to the end). Every kept frame thus has at least ``context``
  frames (4 s) of audio on both sides inside its window, except at the file's own ends, and
  the stitched logits have exactly ``subsampled_lengths(fbank frames)`` frames;
* the stitched logits are decoded as one utterance (as for short audio).

Audio of at most one window (20 s) runs in one piece: one model call on the whole input.
Longest length tried: one hour (noise, ``benchmarks/long_audio.py`` on the tests' tiny random
int8 export, one thread): 300 windows, 3.8 s with the lexicon+lm decoder (0.49 s of it
decoding), peak resident memory 1108 MiB (1072 MiB greedy) against 740 MiB for 10 minutes
and 566 MiB with just the model loaded. What grows with the length is linear: the samples
(read whole by :func:`pipeline.audio.read.read_speech`), the fbank, the stitched logits and the
beam decoders' per-frame hypotheses (the whole file is decoded as one utterance). A random
model on noise proposes few words; a trained model on speech makes the beam work harder.

Usage::

    model = ExportedModel.load(Path("export/distilled/student.onnx"))
    result = model.transcribe(Path("speech.flac"))
    result.text, result.rtf
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch

from pipeline.audio.fbank import fbank, num_frames
from pipeline.audio.read import AudioError, read_speech
from pipeline.config import FbankConfig
from pipeline.deploy.runtime import CONFIG, CONFIG_FORMAT, Runner, as_batch, onnx_runner
from pipeline.io import read_json
from pipeline.model.conformer import subsampled_lengths
from pipeline.model.decoding import Decoder, export_settings, make_decoder
from pipeline.tokens import load_tokenizer

log = logging.getLogger(__name__)

WINDOW_SECONDS = 20.0
"""Audio the model sees at once. Self-attention memory grows with the square of this (20 s:
500 output frames, 1 MB per attention matrix of one head), and 20 s is much closer than a
whole recording to the length of the utterances a model is trained on."""

CONTEXT_SECONDS = 4.0
"""Audio kept on each side of a window's central part. The frames there see a truncated
context, so they are dropped in favour of the neighbouring window's; 4 s of context is
several words, and costs ``window / (window - 2 context)`` = 1.67x the model time of one pass."""

FBANK_BLOCK_SECONDS = 60.0
"""Audio per :func:`pipeline.audio.fbank.fbank` call on long files. Fbank frames are computed
independently of each other, so blocks give the frames of one call, while the call's
intermediates (frames, padded frames, spectra) stay those of 60 s: on 10 minutes of audio
(40 mels) one call raised peak memory by about 460 MB, 60 s blocks by about 47 MB. Files up
to one block take a single call, as the ``features`` stage does."""

SUBSAMPLING = 4  # fbank frames per model output frame (two stride-2 convolutions)
EDGE_FRAMES = 3  # extra fbank frames n output frames need: subsampled_lengths(4 n + 3) == n


@dataclass(frozen=True)
class Window:
    """One run of the model: output frames ``[start, stop)``, of which ``[keep_start, keep_stop)``
    go into the stitched logits. Its input is fbank frames :meth:`feats_slice`."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int

    def feats_slice(self) -> slice:
        """The fbank frames whose subsampling gives exactly output frames ``[start, stop)``."""
        return slice(SUBSAMPLING * self.start, SUBSAMPLING * self.stop + EDGE_FRAMES)


def fbank_in_blocks(
    wav: np.ndarray, sample_rate: int, cfg: FbankConfig, block_seconds: float = FBANK_BLOCK_SECONDS
) -> np.ndarray:
    """``(frames, n_mels)`` fbank of ``wav``, the frames of a single :func:`fbank` call, computed
    ``block_seconds`` of frames at a time (one call for audio up to one block)."""
    shift = int(sample_rate * cfg.frame_shift_ms / 1000)  # samples, rounded as kaldi.fbank rounds
    length = int(sample_rate * cfg.frame_length_ms / 1000)
    frames = num_frames(len(wav), sample_rate, cfg)
    block = max(1, round(block_seconds * 1000 / cfg.frame_shift_ms))
    if frames <= block:
        return fbank(wav, sample_rate, cfg)
    parts = []
    for first in range(0, frames, block):
        n = min(block, frames - first)
        part = fbank(wav[first * shift : (first + n - 1) * shift + length], sample_rate, cfg)  # (n, n_mels)
        if len(part) != n:
            raise RuntimeError(f"fbank block at frame {first}: {len(part)} frames, expected {n}")
        parts.append(part)
    return np.concatenate(parts)


def output_frames(seconds: float, features: FbankConfig) -> int:
    """Model output frames in ``seconds`` of audio (one per ``4 frame_shift``, 40 ms at 10 ms)."""
    return round(seconds * 1000.0 / (SUBSAMPLING * features.frame_shift_ms))


def plan_windows(frames: int, window: int, context: int) -> list[Window]:
    """Windows covering ``frames`` output frames, ``window`` frames each, kept parts tiling
    ``[0, frames)`` (see the module docstring). One window if ``frames <= window``."""
    if context < 0 or window <= 2 * context:
        raise ValueError(f"window of {window} frames leaves no central part with context {context}")
    if frames <= window:
        return [Window(0, frames, 0, frames)]
    hop = window - 2 * context
    starts = list(range(0, frames - window, hop)) + [frames - window]
    cuts = [(nxt + start + window) // 2 for start, nxt in zip(starts, starts[1:])]  # overlap middles
    bounds = [0, *cuts, frames]
    return [Window(s, s + window, a, b) for s, a, b in zip(starts, bounds, bounds[1:])]


def stitched_logits(runner: Runner, feats: np.ndarray, windows: list[Window]) -> np.ndarray:
    """Logits ``(T', V)`` of fbank ``(T, n_mels)``: each window run alone, its kept part kept."""
    return np.concatenate(list(kept_parts(runner, feats, windows)), axis=0)


def kept_parts(runner: Runner, feats: np.ndarray, windows: list[Window]) -> Iterator[np.ndarray]:
    """Each window's kept logits ``(keep_stop - keep_start, V)``, one model run at a time."""
    for w in windows:
        logits, _ = runner(*as_batch(feats[w.feats_slice()]))  # (1, stop - start, V)
        yield logits[0, w.keep_start - w.start : w.keep_stop - w.start]


@dataclass
class Transcript:
    """One file's result. ``compute_seconds`` covers fbank, the model and decoding; ``seconds``
    splits the whole call, the file read included, into ``read``, ``fbank``, ``model`` and
    ``decode``."""

    file: str
    text: str
    decoder: str
    audio_seconds: float
    compute_seconds: float
    rtf: float
    seconds: dict[str, float]

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
    window: int  # model output frames per window
    context: int  # output frames of context on each side of a window's kept part
    decoder: Decoder

    @classmethod
    def load(
        cls,
        model: Path,
        threads: int = 1,
        window_seconds: float = WINDOW_SECONDS,
        context_seconds: float = CONTEXT_SECONDS,
        decoder: str | None = None,
    ) -> ExportedModel:
        """Load ``model`` (an ONNX file) plus ``config.json``, the tokenizer and the decoding
        resources beside it; ``decoder`` names one of the exported decoders (None: the default).

        Audio longer than ``window_seconds`` is run in windows with ``context_seconds`` of
        context on each side (module docstring); a window too short to leave a central part,
        or shorter than the model's minimum input, raises ``ValueError``.
        """
        if not model.is_file():
            raise FileNotFoundError(f"{model}: exported model not found (run the export stage)")
        config_path = model.parent / CONFIG
        if not config_path.exists():
            raise FileNotFoundError(f"{config_path}: export config not found beside {model}")
        config = read_json(config_path)
        if config.get("format") != CONFIG_FORMAT:
            raise ValueError(f"{config_path}: format {config.get('format')!r}, expected {CONFIG_FORMAT!r}")
        features = FbankConfig(**config["features"])
        window, context = output_frames(window_seconds, features), output_frames(context_seconds, features)
        plan_windows(window + 1, window, context)  # raises for a window with no central part
        if SUBSAMPLING * window + EDGE_FRAMES < int(config["min_frames"]):
            raise ValueError(f"window of {window_seconds} s is shorter than the model's shortest input")
        sp = load_tokenizer(model.parent / config["tokenizer"])
        loaded = cls(
            onnx_runner(model, threads),
            sp,
            features,
            int(config["sample_rate"]),
            int(config["min_frames"]),
            window,
            context,
            make_decoder(sp=sp, **export_settings(config, model.parent, decoder)),
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
        return fbank_in_blocks(wav, self.sample_rate, self.features)

    def windows(self, frames: int) -> list[Window]:
        """The windows for fbank of ``frames`` frames (one for audio up to one window)."""
        return plan_windows(subsampled_lengths(frames), self.window, self.context)

    def logits(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(1, T', V)`` and lengths ``(1,)`` of one utterance's fbank ``(T, n_mels)``:
        one model run up to one window, else the windows' stitched logits."""
        windows = self.windows(len(feats))
        if len(windows) == 1:  # the whole utterance in one run, as before windowing
            return self.runner(*as_batch(feats))
        log.debug("%d fbank frames: %d windows of %d output frames", len(feats), len(windows), self.window)
        logits = stitched_logits(self.runner, feats, windows)[None]
        return logits, np.array([logits.shape[1]], dtype=np.int64)

    def decode(self, feats: np.ndarray) -> str:
        """The transcript of one utterance's fbank ``(T, n_mels)`` with the model's decoder."""
        logits, lengths = self.logits(feats)
        return self.decoder(torch.from_numpy(logits), torch.from_numpy(lengths))[0]

    def transcribe(self, path: Path) -> Transcript:
        """Read, featurize and decode one file.

        A file ``prepare`` would reject for its audio (missing, a directory, unreadable, empty,
        non-finite or silent samples) raises :class:`AudioError` with the same reason.
        """
        start = time.perf_counter()
        wav = read_speech(path, self.sample_rate).samples
        read = time.perf_counter()
        feats = self.features_of(path, wav)
        featurized = time.perf_counter()
        logits, lengths = self.logits(feats)
        modelled = time.perf_counter()
        text = self.decoder(torch.from_numpy(logits), torch.from_numpy(lengths))[0]
        done = time.perf_counter()
        seconds = len(wav) / self.sample_rate
        parts = {"read": read - start, "fbank": featurized - read, "model": modelled - featurized}
        parts["decode"] = done - modelled
        compute = done - read
        return Transcript(
            str(path),
            text,
            self.decoder.name,
            round(seconds, 3),
            round(compute, 4),
            round(compute / seconds, 5),
            {k: round(v, 6) for k, v in parts.items()},
        )


def end_to_end_rtf(model: ExportedModel, files: Sequence[Path], repeats: int) -> dict[str, Any]:
    """Real-time factor of the whole of :meth:`ExportedModel.transcribe` over ``files``: file
    read (soundfile), fbank, model and decoding, one file at a time with the model's own
    threads; the fastest of ``repeats`` passes. ``decode_share``: decoding's part of it."""
    best: dict[str, float] | None = None
    audio = 0.0
    for _ in range(repeats):
        totals = {"read": 0.0, "fbank": 0.0, "model": 0.0, "decode": 0.0}
        audio = 0.0
        for path in files:
            result = model.transcribe(path)
            audio += result.audio_seconds
            for k, v in result.seconds.items():
                totals[k] += v
        if best is None or sum(totals.values()) < sum(best.values()):
            best = totals
    if best is None or audio <= 0:
        raise ValueError("end_to_end_rtf needs at least one file of audio and one pass")
    total = sum(best.values())
    return {
        "decoder": model.decoder.name,
        "rtf_end_to_end": round(total / audio, 5),
        "decode_share": round(best["decode"] / total, 4),
        "seconds": {k: round(v, 6) for k, v in best.items()},
        "files": len(files),
        "audio_seconds": round(audio, 3),
    }
