"""Conformer-CTC acoustic model shared by teachers and students.

Input: raw (un-normalized) fbank ``(N, T, n_mels)`` and lengths ``(N,)``.
CMVN lives inside the model as buffers, so an exported model needs only fbank.
Two stride-2 convolutions subsample time by 4: every model in the pipeline
emits one frame per 40 ms, so teacher and student frames correspond 1:1.

A streaming model (``model.chunk_frames > 0``) runs the same layers with a chunk
attention mask (:func:`chunk_mask`) and causal depthwise convolutions, so the outputs
of a chunk depend on no later audio; :mod:`pipeline.streaming` runs it chunk by chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchaudio.models import Conformer

from pipeline.config import ModelConfig, Params


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after two (kernel 3, stride 2, no padding) convolutions."""
    return ((lengths - 1) // 2 - 1) // 2


def chunk_mask(frames: int, chunk: int, left: int, device: torch.device | None = None) -> torch.Tensor:
    """``(T, T)`` bool, True where query frame i may NOT attend to key frame j.

    Frame i of chunk ``c = i // chunk`` sees frames ``[c * chunk - left, (c + 1) * chunk)``:
    its own chunk whole and ``left`` frames before it, nothing after the chunk.
    """
    i = torch.arange(frames, device=device)[:, None]
    j = torch.arange(frames, device=device)[None, :]
    start = (i // chunk) * chunk
    return (j >= start + chunk) | (j < start - left)


def attention_blocked(pad_mask: torch.Tensor, chunk: int, left: int) -> torch.Tensor:
    """``(N, T, T)`` bool, True where attention is blocked: padded keys, and keys outside the
    chunk window of a streaming model (``chunk > 0``). A frame always sees itself, so no row
    is all blocked (padded frames' outputs are ignored, but must not be NaN)."""
    n, t = pad_mask.shape
    blocked = pad_mask[:, None, :].expand(n, t, t)
    if chunk:
        blocked = blocked | chunk_mask(t, chunk, left, pad_mask.device)[None]
    return blocked & ~torch.eye(t, dtype=torch.bool, device=pad_mask.device)[None]


class Subsampling(nn.Module):
    """``(N, T, F) -> (N, T', d_model)`` with ``T' = subsampled_lengths(T)``."""

    def __init__(self, n_mels: int, channels: int, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2),
            nn.ReLU(),
        )
        freq = ((n_mels - 1) // 2 - 1) // 2
        self.proj = nn.Linear(channels * freq, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.unsqueeze(1))  # (N, C, T', F')
        n, c, t, f = x.shape
        return self.proj(x.transpose(1, 2).reshape(n, t, c * f))  # (N, T', d_model)


class ChannelNorm(nn.Module):
    """LayerNorm over channels of a ``(N, C, T)`` tensor, frame by frame.

    Replaces the BatchNorm of torchaudio's convolution module: batch statistics
    would mix padded frames and other utterances into every frame (so outputs
    would depend on batch composition and differ between DDP ranks and a
    single process), and train/eval behaviour would differ.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def _convolution(layer: nn.Module, x: torch.Tensor, keep: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """torchaudio's convolution module with padded frames zeroed before the depthwise conv.

    Without the mask, padding leaks into the last valid frames through the
    depthwise kernel, so a frame's posterior would depend on what it was batched
    with: fatal when teacher and student frames must correspond 1:1.
    ``x``: ``(T, N, D)``, ``keep``: ``(N, 1, T)`` 1 for valid frames. ``causal``: the depthwise
    conv (built without padding) sees the current frame and ``kernel - 1`` frames before it.
    """
    module = layer.conv_module
    y = module.layer_norm(x.transpose(0, 1)).transpose(1, 2)  # (N, D, T)
    pointwise, glu, depthwise, *rest = module.sequential
    y = glu(pointwise(y)) * keep  # (N, C, T)
    if causal:
        y = F.pad(y, (depthwise.kernel_size[0] - 1, 0))
    y = depthwise(y)
    for sub in rest:  # norm, activation, pointwise, dropout
        y = sub(y)
    return x + y.permute(2, 0, 1)  # (T, N, D)


def _conformer_layer(
    layer: nn.Module,
    x: torch.Tensor,
    pad_mask: torch.Tensor,
    keep: torch.Tensor,
    blocked: torch.Tensor | None = None,
) -> torch.Tensor:
    """``torchaudio.models.conformer.ConformerLayer.forward`` with :func:`_convolution`.

    ``blocked``: a streaming model's ``(N * heads, T, T)`` attention mask (see
    :func:`attention_blocked`), which also makes the convolution causal; None: full context.
    """
    x = x + 0.5 * layer.ffn1(x)
    y = layer.self_attn_layer_norm(x)
    if blocked is None:
        y, _ = layer.self_attn(query=y, key=y, value=y, key_padding_mask=pad_mask, need_weights=False)
    else:
        y, _ = layer.self_attn(query=y, key=y, value=y, attn_mask=blocked, need_weights=False)
    x = x + layer.self_attn_dropout(y)
    x = _convolution(layer, x, keep, causal=blocked is not None)
    x = x + 0.5 * layer.ffn2(x)
    return layer.final_layer_norm(x)


class ConformerCTC(nn.Module):
    """CMVN -> 4x subsampling -> Conformer -> linear over ``vocab_size`` (blank = 0)."""

    def __init__(self, cfg: ModelConfig, n_mels: int, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_mels = n_mels
        self.vocab_size = vocab_size
        self.register_buffer("cmvn_mean", torch.zeros(n_mels))
        self.register_buffer("cmvn_std", torch.ones(n_mels))
        self.subsampling = Subsampling(n_mels, cfg.subsampling_channels, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder = Conformer(
            input_dim=cfg.d_model,
            num_heads=cfg.num_heads,
            ffn_dim=cfg.ffn_dim,
            num_layers=cfg.num_layers,
            depthwise_conv_kernel_size=cfg.conv_kernel,
            dropout=cfg.dropout,
        )
        for layer in self.encoder.conformer_layers:
            seq = layer.conv_module.sequential
            seq[3] = ChannelNorm(seq[3].num_features)  # was BatchNorm1d
            if cfg.streaming:
                seq[2].padding = (0,)  # causal: _convolution pads the past only
        self.output = nn.Linear(cfg.d_model, vocab_size)

    def set_cmvn(self, mean: list[float], std: list[float]) -> None:
        self.cmvn_mean.copy_(torch.tensor(mean))
        self.cmvn_std.copy_(torch.tensor(std))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns logits ``(N, T', V)`` and output lengths ``(N,)``."""
        x = (feats - self.cmvn_mean) / self.cmvn_std  # (N, T, F)
        x = self.dropout(self.subsampling(x))  # (N, T', D)
        out_lengths = subsampled_lengths(lengths).clamp(min=1, max=x.shape[1])
        # Our own padding mask, sized by the padded time axis rather than by max(lengths)
        # as torchaudio's Conformer.forward does: inputs padded past the longest
        # utterance stay valid, and export needs no data-dependent shapes.
        pad_mask = torch.arange(x.shape[1], device=x.device)[None, :] >= out_lengths[:, None]
        keep = (~pad_mask).unsqueeze(1).to(x.dtype)  # (N, 1, T')
        blocked = None
        if self.cfg.streaming:
            blocked = attention_blocked(pad_mask, self.cfg.chunk_frames, self.cfg.left_frames)
            blocked = blocked.repeat_interleave(self.cfg.num_heads, dim=0)  # (N * heads, T', T')
        x = x.transpose(0, 1)  # (T', N, D)
        for layer in self.encoder.conformer_layers:
            x = _conformer_layer(layer, x, pad_mask, keep, blocked)
        return self.output(x.transpose(0, 1)), out_lengths  # (N, T', V)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model(model: ConformerCTC, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Save weights plus the config needed to rebuild the model (tensors and plain types only)."""
    torch.save(
        {
            "config": model.cfg.model_dump(),
            "n_mels": model.n_mels,
            "vocab_size": model.vocab_size,
            "state_dict": model.state_dict(),
            "extra": extra or {},
        },
        path,
    )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ConformerCTC:
    """Rebuild a saved model in eval mode (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    ckpt = torch.load(path, map_location=device, weights_only=True)
    model = ConformerCTC(ModelConfig(**ckpt["config"]), ckpt["n_mels"], ckpt["vocab_size"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval()


def model_files(params: Params, teachers_dir: Path, students_dir: Path) -> dict[str, Path]:
    """Every model file the params name, keyed ``teacher.<name>`` / ``student.<name>``."""
    return {
        **{f"teacher.{n}": Path(teachers_dir) / f"{n}.pt" for n in params.teacher_names()},
        **{f"student.{n}": Path(students_dir) / f"{n}.pt" for n in params.student_names()},
    }
