"""An exported streaming model and its decoder: audio blocks -> fbank -> step -> CTC decoder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from pipeline.audio.read import read_speech
from pipeline.config import FbankConfig
from pipeline.deploy.runtime import CONFIG, onnx_session
from pipeline.deploy.streaming.fbank import StreamingFbank
from pipeline.deploy.streaming.onnx import STREAM_OUTPUTS
from pipeline.deploy.streaming.step import OVERLAP, SUBSAMPLING, algorithmic_latency_ms, window_frames
from pipeline.io import read_json
from pipeline.model.decoding import Decoder, export_settings, make_decoder
from pipeline.tokens import load_tokenizer


@dataclass
class StreamingModel:
    """An exported streaming step (ONNX), its tokenizer and front-end settings."""

    session: Any
    sp: spm.SentencePieceProcessor
    features: FbankConfig
    sample_rate: int
    chunk_frames: int
    state_shapes: dict[str, list[int]]
    decoder: Decoder

    @classmethod
    def load(cls, path: Path, threads: int = 1, decoder: str | None = None) -> StreamingModel:
        """The streaming graph ``path`` with its export's decoder ``decoder`` (None: the default)."""
        path = Path(path)
        config_path = path.parent / CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path}: streaming model not found (export a streaming student)")
        if not config_path.exists():
            raise FileNotFoundError(f"{config_path}: export config not found beside {path}")
        config = read_json(config_path)
        stream = config.get("streaming")
        if not stream:
            raise ValueError(f"{config_path}: no 'streaming' entry: {path.parent} holds a full-context model")
        sp = load_tokenizer(path.parent / config["tokenizer"])
        return cls(
            onnx_session(path, threads),
            sp,
            FbankConfig(**config["features"]),
            int(config["sample_rate"]),
            int(stream["chunk_frames"]),
            stream["state_shapes"],
            make_decoder(sp=sp, **export_settings(config, path.parent, decoder)),
        )

    def stream(self, keep_logits: bool = False) -> StreamDecoder:
        """A new stream: feed it audio (or fbank) as it arrives."""
        return StreamDecoder(self, keep_logits)

    @property
    def chunk_seconds(self) -> float:
        return SUBSAMPLING * self.chunk_frames * self.features.frame_shift_ms / 1000.0

    def transcribe(
        self, path: Path, on_partial: Callable[[float, str], None] | None = None
    ) -> dict[str, Any]:
        """Feed ``path`` chunk by chunk as if live; ``on_partial(seconds_heard, text)`` whenever
        the text grows. Returns the final text with per-chunk compute times and latency; a bad
        file raises :class:`pipeline.audio.read.AudioError` with ``prepare``'s reason."""
        wav = read_speech(path, self.sample_rate).samples
        block = int(round(self.chunk_seconds * self.sample_rate))
        decoder, text = self.stream(), ""
        for start in range(0, len(wav), block):
            partial = decoder.accept(wav[start : start + block])
            if partial != text and on_partial:
                on_partial(min(len(wav), start + block) / self.sample_rate, partial)
            text = partial
        text = decoder.finish()
        seconds = len(wav) / self.sample_rate
        times = np.asarray(decoder.chunk_seconds) * 1000.0
        return {
            "file": str(path),
            "text": text,
            "decoder": self.decoder.name,
            "audio_seconds": round(seconds, 3),
            "chunks": len(times),
            "chunk_ms": round(self.chunk_seconds * 1000.0, 1),
            "algorithmic_latency_ms": algorithmic_latency_ms(self.chunk_frames, self.features),
            "compute_ms_per_chunk_mean": round(float(times.mean()), 3) if len(times) else None,
            "compute_ms_per_chunk_max": round(float(times.max()), 3) if len(times) else None,
            "rtf": round(float(times.sum()) / 1000.0 / seconds, 5) if seconds else None,
        }

    def step(self, window: np.ndarray, valid: int, state: dict[str, np.ndarray]) -> np.ndarray:
        """Run one chunk; updates ``state`` in place and returns the chunk's valid logits."""
        logits, att, conv, cached = self.session.run(
            STREAM_OUTPUTS,
            {"feats": window[None], "valid": np.array([valid], np.int64), **state},
        )
        state.update(att_cache=att, conv_cache=conv, cached=cached)
        return logits[0, :valid]


@dataclass
class StreamDecoder:
    """Feeds audio blocks through fbank and the streaming step, and each chunk's logits to the
    model's decoder (:meth:`pipeline.model.decoding.Greedy.stream`,
    :meth:`pipeline.model.decoding.Beam.stream`)."""

    model: StreamingModel
    frames: np.ndarray = field(init=False)
    keep_logits: bool = False  # keep every chunk's logits in ``logits`` (checks, delay measurement)
    chunk_seconds: list[float] = field(default_factory=list)  # compute time of each chunk
    logits: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = self.model
        self.fbank = StreamingFbank(m.sample_rate, m.features)
        self.frames = np.zeros((0, m.features.n_mels), np.float32)
        self.state = {
            "att_cache": np.zeros(m.state_shapes["att_cache"], np.float32),
            "conv_cache": np.zeros(m.state_shapes["conv_cache"], np.float32),
            "cached": np.zeros(m.state_shapes["cached"], np.int64),
        }
        self.window = window_frames(m.chunk_frames)
        self.shift = SUBSAMPLING * m.chunk_frames
        self.search = m.decoder.stream()
        self.output_frames = 0

    @property
    def text(self) -> str:
        return self.search.text

    def _run(self, window: np.ndarray, valid: int) -> None:
        start = time.perf_counter()
        logits = self.model.step(window, valid, self.state)  # (valid, V)
        self.search.step(logits)
        self.chunk_seconds.append(time.perf_counter() - start)
        if self.keep_logits:
            self.logits.append(logits)
        self.output_frames += valid

    def accept(self, samples: np.ndarray) -> str:
        """Take the next block of samples; run every chunk now complete; the text so far."""
        return self.accept_features(self.fbank.accept(samples))

    def accept_features(self, frames: np.ndarray) -> str:
        """Take the next fbank frames ``(n, n_mels)``; run every chunk now complete; the text so far."""
        self.frames = np.concatenate([self.frames, np.asarray(frames, np.float32)])
        while len(self.frames) >= self.window:
            self._run(self.frames[: self.window], self.model.chunk_frames)
            self.frames = self.frames[self.shift :]
        return self.text

    def finish(self) -> str:
        """End of audio: run the last, partial chunk; the final text."""
        n = len(self.frames)
        valid = ((n - 1) // 2 - 1) // 2 if n >= OVERLAP + 1 else 0  # its output frames
        if valid > 0:
            window = np.zeros((self.window, self.frames.shape[1]), np.float32)
            window[:n] = self.frames
            self._run(window, valid)
        self.frames = self.frames[:0]
        return self.search.finish()
