"""A streaming student run chunk by chunk, as audio arrives.

A streaming model (``model.chunk_frames = C > 0``, ``model.left_frames = L``) attends
within its own chunk of ``C`` output frames and ``L`` frames before it, and its depthwise
convolutions are causal (:mod:`pipeline.model.conformer`). Its outputs for a chunk therefore depend
on no later audio, and :class:`StreamingStep` computes them one chunk per call from

* ``feats``: the chunk's fbank window, ``4 C + 3`` frames: the subsampling convolutions
  (kernel 3, stride 2, twice) turn ``4 C + 3`` frames into exactly ``C``, and consecutive
  windows overlap by 3 frames;
* ``att_cache`` ``(layers, 2, heads, L, d_head)``: each layer's attention keys and values
  of the last ``L`` frames;
* ``conv_cache`` ``(layers, kernel - 1, channels)``: each layer's depthwise-convolution
  input over the last ``kernel - 1`` frames;
* ``cached`` ``(1,)``: how many of the ``L`` cached frames exist (fewer at the start);
* ``valid`` ``(1,)``: how many of the chunk's ``C`` frames are audio (fewer at the end),

and returns the chunk's ``logits (1, C, V)`` and the next caches. Chunk by chunk, the
logits equal the full-utterance forward pass of the same model (tested), and the decoder
(:mod:`pipeline.model.decoding`: greedy, or flashlight's incremental beam search) takes them chunk
by chunk, so a stream's final text is the offline decode's with the same decoder.

Latency: a chunk's last output frame needs fbank frames up to ``4 C + 2`` of its window,
i.e. ``2 * frame_shift + frame_length`` of audio past the chunk's end; the algorithmic
latency is ``C * 40 ms`` plus that lookahead (:func:`algorithmic_latency_ms`).

Usage::

    stream = StreamingModel.load(Path("export/streaming/streaming.onnx"))
    decoder = stream.stream()
    for block in audio_blocks:           # any size, e.g. 100 ms of samples
        partial = decoder.accept(block)  # text so far
    text = decoder.finish()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch
from torch import nn

from pipeline.audio.fbank import fbank
from pipeline.audio.read import read_speech
from pipeline.config import FbankConfig
from pipeline.deploy.inference import DeployConformer
from pipeline.deploy.runtime import CONFIG, onnx_session
from pipeline.io import read_json
from pipeline.model.conformer import ConformerCTC
from pipeline.model.decoding import Decoder, export_settings, make_decoder
from pipeline.tokens import load_tokenizer

SUBSAMPLING = 4  # input frames per output frame
OVERLAP = 3  # extra input frames a window of C output frames needs (4 C + 3)


def window_frames(chunk_frames: int) -> int:
    """Fbank frames one streaming step consumes."""
    return SUBSAMPLING * chunk_frames + OVERLAP


def algorithmic_latency_ms(chunk_frames: int, features: FbankConfig) -> float:
    """Audio a chunk's outputs wait for past the chunk's first sample, minus nothing:
    the chunk (``C * 4`` frame shifts) plus the fbank lookahead its last frame needs."""
    lookahead = (OVERLAP - 1) * features.frame_shift_ms + features.frame_length_ms
    return SUBSAMPLING * chunk_frames * features.frame_shift_ms + lookahead


class StreamingStep(nn.Module):
    """One chunk of a streaming :class:`ConformerCTC` (see the module docstring for the contract)."""

    def __init__(self, model: ConformerCTC) -> None:
        super().__init__()
        if not model.cfg.streaming:
            raise ValueError("a full-context model cannot stream: set model.chunk_frames and left_frames")
        deploy = DeployConformer(model)
        self.cmvn_scale, self.cmvn_shift = deploy.cmvn_scale, deploy.cmvn_shift
        self.subsampling, self.layers, self.output = deploy.subsampling, deploy.layers, deploy.output
        self.chunk, self.left = model.cfg.chunk_frames, model.cfg.left_frames
        self.kernel = model.cfg.conv_kernel
        self.n_mels, self.vocab_size = model.n_mels, model.vocab_size
        layer = deploy.layers[0]
        self.heads, self.head_dim = layer.heads, layer.head_dim
        self.conv_channels = layer.pointwise1.out_features // 2
        self.eval()

    def initial_state(self) -> dict[str, torch.Tensor]:
        """Caches before the first chunk: zeros, none of them valid."""
        n = len(self.layers)
        return {
            "att_cache": torch.zeros(n, 2, self.heads, self.left, self.head_dim),
            "conv_cache": torch.zeros(n, self.kernel - 1, self.conv_channels),
            "cached": torch.zeros(1, dtype=torch.int64),
        }

    def forward(
        self,
        feats: torch.Tensor,
        valid: torch.Tensor,
        att_cache: torch.Tensor,
        conv_cache: torch.Tensor,
        cached: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.subsampling(feats * self.cmvn_scale + self.cmvn_shift)  # (1, C, D)
        frame = torch.arange(self.chunk)
        pad = frame >= valid  # (C,) frames past the end of the audio
        old = torch.arange(self.left) < self.left - cached  # (L,) cache slots before the start
        blocked = torch.cat([old, pad])[None, :].expand(self.chunk, -1)  # (C, L + C)
        own = torch.zeros(self.chunk, self.left + self.chunk, dtype=torch.bool)
        own[frame, self.left + frame] = True  # a frame always sees itself (no all-blocked row)
        attn_bias = torch.zeros(blocked.shape).masked_fill(blocked & ~own, float("-inf"))
        keep = (~pad).to(x.dtype)[None, :, None]  # (1, C, 1)
        new_att, new_conv = [], []
        for i, layer in enumerate(self.layers):
            x = x + layer.ffn1(x)
            q, k, v = layer.qkv_heads(x)  # (1, H, C, d_head)
            k_all = torch.cat([att_cache[i, 0][None], k], dim=2)  # (1, H, L + C, d_head)
            v_all = torch.cat([att_cache[i, 1][None], v], dim=2)
            x = x + layer.attend((q, k_all, v_all), attn_bias)
            y = torch.nn.functional.glu(layer.pointwise1(layer.conv_norm(x)), dim=-1) * keep  # (1, C, ch)
            y_all = torch.cat([conv_cache[i][None], y], dim=1)  # (1, K - 1 + C, ch)
            x = layer.finish(x, layer.depthwise(y_all.transpose(1, 2)).transpose(1, 2))
            new_att.append(torch.stack([k_all[0, :, -self.left :], v_all[0, :, -self.left :]]))
            new_conv.append(y_all[0, -(self.kernel - 1) :])
        cached = torch.clamp(cached + valid, max=self.left)
        return self.output(x), torch.stack(new_att), torch.stack(new_conv), cached


STREAM_INPUTS = ["feats", "valid", "att_cache", "conv_cache", "cached"]
STREAM_OUTPUTS = ["logits", "next_att_cache", "next_conv_cache", "next_cached"]


def example_inputs(step: StreamingStep) -> tuple[torch.Tensor, ...]:
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
