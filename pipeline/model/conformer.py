"""Conformer-CTC acoustic model shared by teachers and students.

Input: raw (un-normalized) fbank ``(N, T, n_mels)`` and lengths ``(N,)``.
CMVN lives inside the model as buffers, so an exported model needs only fbank.
Two stride-2 convolutions subsample time by 4: every model in the pipeline
emits one frame per 40 ms, so teacher and student frames correspond 1:1.

A streaming model (``model.chunk_frames > 0``) runs the same layers with a chunk
attention mask (:func:`chunk_mask`) and causal depthwise convolutions, so the outputs
of a chunk depend on no later audio; :mod:`pipeline.deploy.streaming` runs it chunk by chunk.
"""

from __future__ import annotations

import math
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


_INT16_SPAN = 65536


def keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, device: torch.device | None = None
) -> torch.Tensor:
    """Bool mask of ``shape``, each element True (kept) with probability ``1 - p``.

    Four 16-bit lanes per 64-bit draw of torch's generator (seeded and checkpointed like
    any other draw): on the CPU about 4x faster than ``bernoulli_``, which drew one
    random number per element and took a fifth of a teacher's training step. ``p`` is
    quantised to 1/65536.
    """
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None)
    return bits.view(torch.int16)[:n].view(shape) >= round(p * _INT16_SPAN) - _INT16_SPAN // 2


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        mask = keep_mask(x.shape, p, x.device)
        ctx.save_for_backward(mask)
        ctx.scale = 1.0 / (1.0 - p)
        return torch.where(mask, x, 0.0).mul_(ctx.scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, 0.0).mul_(ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with :func:`keep_mask` (identity in eval mode or at ``p == 0``)."""
    if not training or p == 0.0:
        return x
    return _Dropout.apply(x, p)


def _feed_forward(ffn: nn.Module, x: torch.Tensor, training: bool) -> torch.Tensor:
    """torchaudio's ``_FeedForwardModule`` (LayerNorm, Linear, SiLU, Dropout, Linear, Dropout)."""
    norm, inner, _, drop, outer, _ = ffn.sequential
    y = dropout(F.silu(inner(norm(x))), drop.p, training)  # (N, T, ffn_dim)
    return dropout(outer(y), drop.p, training)  # (N, T, D)


def _self_attention(
    attn: nn.MultiheadAttention, x: torch.Tensor, bias: torch.Tensor, training: bool
) -> torch.Tensor:
    """``nn.MultiheadAttention(x, x, x)`` with an additive ``bias`` ``(N, 1, 1 or T, T)``, in
    ``(N, T, D)`` layout; the attention weights' dropout uses :func:`dropout`."""
    n, t, d = x.shape
    h = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(n, t, 3, h, d // h)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (N, H, T, d_head) each
    if training and attn.dropout > 0:
        weights = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5 + bias, dim=-1)  # (N, H, T, T)
        y = dropout(weights, attn.dropout, training) @ v
    else:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return attn.out_proj(y.transpose(1, 2).reshape(n, t, d))  # (N, T, D)


def _convolution(conv: nn.Module, x: torch.Tensor, keep: torch.Tensor, causal: bool, training: bool):
    """torchaudio's convolution module in ``(N, T, D)`` layout, padded frames zeroed before the
    depthwise convolution.

    Without the mask, padding leaks into the last valid frames through the depthwise kernel,
    so a frame's posterior would depend on what it was batched with: fatal when teacher and
    student frames must correspond 1:1. The pointwise (kernel-1) convolutions run as linear
    layers on their own weights. ``keep``: ``(N, T, 1)`` 1 for valid frames. ``causal``: the
    depthwise conv (built without padding) sees the current frame and ``kernel - 1`` before it.
    """
    pointwise1, _, depthwise, channel_norm, _, pointwise2, drop = conv.sequential
    y = F.linear(conv.layer_norm(x), pointwise1.weight.squeeze(-1), pointwise1.bias)  # (N, T, 2C)
    y = (F.glu(y, dim=-1) * keep).transpose(1, 2)  # (N, C, T)
    if causal:
        y = F.pad(y, (depthwise.kernel_size[0] - 1, 0))
    y = depthwise(y).transpose(1, 2)  # (N, T, C)
    y = F.silu(channel_norm.norm(y))
    return dropout(F.linear(y, pointwise2.weight.squeeze(-1), pointwise2.bias), drop.p, training)


def conformer_layer(
    layer: nn.Module, x: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor, causal: bool = False
) -> torch.Tensor:
    """``torchaudio.models.conformer.ConformerLayer.forward`` on its own weights, in ``(N, T, D)``
    layout, with :func:`_convolution` and :func:`dropout`.

    ``bias``: ``(N, 1, 1, T)`` additive attention mask, ``-inf`` on padded keys (a streaming
    model's ``(N, 1, T, T)`` also blocks keys outside the chunk window, see
    :func:`attention_blocked`); ``causal``: the streaming model's causal convolution.
    """
    training = layer.training
    x = x + 0.5 * _feed_forward(layer.ffn1, x, training)
    y = _self_attention(layer.self_attn, layer.self_attn_layer_norm(x), bias, training)
    x = x + dropout(y, layer.self_attn_dropout.p, training)
    x = x + _convolution(layer.conv_module, x, keep, causal, training)
    x = x + 0.5 * _feed_forward(layer.ffn2, x, training)
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
        x = dropout(self.subsampling(x), self.dropout.p, self.training)  # (N, T', D)
        out_lengths = subsampled_lengths(lengths).clamp(min=1, max=x.shape[1])
        # Our own padding mask, sized by the padded time axis rather than by max(lengths)
        # as torchaudio's Conformer.forward does: inputs padded past the longest
        # utterance stay valid, and export needs no data-dependent shapes.
        pad_mask = torch.arange(x.shape[1], device=x.device)[None, :] >= out_lengths[:, None]
        keep = (~pad_mask).unsqueeze(-1).to(x.dtype)  # (N, T', 1)
        if self.cfg.streaming:
            blocked = attention_blocked(pad_mask, self.cfg.chunk_frames, self.cfg.left_frames)[:, None]
        else:
            blocked = pad_mask[:, None, None, :]  # (N, 1, 1, T')
        bias = torch.zeros(blocked.shape, dtype=x.dtype, device=x.device).masked_fill(blocked, float("-inf"))
        for layer in self.encoder.conformer_layers:
            x = conformer_layer(layer, x, bias, keep, causal=self.cfg.streaming)
        return self.output(x), out_lengths  # (N, T', V)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
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
