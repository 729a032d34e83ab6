"""An inference-only rewrite of :class:`~pipeline.model.conformer.ConformerCTC` for export.

Same weights, same outputs (to float rounding), fewer graph ops. A 0.19 M-parameter
student running one utterance at a time spends most of its time in per-op overhead,
not arithmetic, so the exported graph's op count is its speed. Compared with the
training model (torchaudio's Conformer layers, ``(T, N, D)`` layout,
``nn.MultiheadAttention``), :class:`DeployConformer`:

* keeps one ``(N, T, D)`` layout throughout, so the only transposes left are the
  subsampling's, the two around each depthwise convolution and the attention head
  split/merge;
* computes the convolution module's pointwise (kernel-1) convolutions as linear
  layers: no transposes around them, and onnxruntime's dynamic quantization turns
  them into int8 matrix products like the rest;
* applies the per-frame LayerNorm that replaced BatchNorm (:class:`~pipeline.model.conformer.ChannelNorm`)
  on the last axis directly;
* folds constants into weights: the macaron ``0.5`` into each feed-forward
  module's output layer, attention's ``1/sqrt(d_head)`` into the query projection,
  CMVN into one multiply-add;
* builds the key-padding mask once as an additive ``-inf`` bias shared by every
  layer, rather than masking inside each attention call.

Dropout is dropped (inference only). ``pipeline.export.formats`` exports this module and
checks its logits against the eager training model on every test utterance.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.model.conformer import ConformerCTC, attention_blocked, subsampled_lengths


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, scale: float = 1.0) -> nn.Linear:
    """An ``nn.Linear`` holding ``scale * weight`` (``(out, in)`` or a kernel-1 conv's
    ``(out, in, 1)``) and ``scale * bias``."""
    weight = weight.detach().reshape(weight.shape[0], -1)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight * scale)
        if bias is not None:
            layer.bias.copy_(bias.detach() * scale)
    return layer


class _FeedForward(nn.Module):
    """``0.5 * FFN(x)`` of the macaron Conformer, the 0.5 folded into the output layer."""

    def __init__(self, ffn: nn.Module) -> None:
        super().__init__()
        norm, inner, _, _, outer, _ = ffn.sequential
        self.norm = copy.deepcopy(norm)
        self.inner = _linear(inner.weight, inner.bias)
        self.outer = _linear(outer.weight, outer.bias, scale=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(F.silu(self.inner(self.norm(x))))


class _Layer(nn.Module):
    """One Conformer layer (torchaudio's ``ConformerLayer`` as
    :func:`pipeline.model.conformer.conformer_layer` runs it), in ``(N, T, D)`` layout."""

    def __init__(self, layer: nn.Module, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal  # streaming model: the depthwise conv sees no future frame
        attn = layer.self_attn
        d, self.heads = attn.embed_dim, attn.num_heads
        self.head_dim = d // self.heads
        self.ffn1, self.ffn2 = _FeedForward(layer.ffn1), _FeedForward(layer.ffn2)
        self.attn_norm = copy.deepcopy(layer.self_attn_layer_norm)
        w, b = attn.in_proj_weight.detach().clone(), attn.in_proj_bias.detach().clone()
        w[:d] *= self.head_dim**-0.5
        b[:d] *= self.head_dim**-0.5
        self.qkv = _linear(w, b)
        self.attn_out = _linear(attn.out_proj.weight, attn.out_proj.bias)
        conv = layer.conv_module
        pointwise1, _, depthwise, channel_norm, _, pointwise2, _ = conv.sequential
        self.conv_norm = copy.deepcopy(conv.layer_norm)
        self.pointwise1 = _linear(pointwise1.weight, pointwise1.bias)
        self.depthwise = copy.deepcopy(depthwise)
        self.depthwise_norm = copy.deepcopy(channel_norm.norm)
        self.pointwise2 = _linear(pointwise2.weight, pointwise2.bias)
        self.final_norm = copy.deepcopy(layer.final_layer_norm)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, T, D)``; ``attn_bias``: ``(N, 1, 1, T)`` (a streaming model's
        ``(N, 1, T, T)``) 0 or -inf; ``keep``: ``(N, T, 1)``."""
        x = x + self.ffn1(x)
        x = x + self.attend(self.qkv_heads(x), attn_bias)
        y = F.glu(self.pointwise1(self.conv_norm(x)), dim=-1) * keep
        if self.causal:
            y = F.pad(y, (0, 0, self.depthwise.kernel_size[0] - 1, 0))
        return self.finish(x, self.depthwise(y.transpose(1, 2)).transpose(1, 2))

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values ``(N, H, T, d_head)`` of the layer input ``(N, T, D)``."""
        qkv = self.qkv(self.attn_norm(x)).unflatten(-1, (3, self.heads, self.head_dim))
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def attend(
        self, qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor], attn_bias: torch.Tensor
    ) -> torch.Tensor:
        """Attention output ``(N, T_q, D)`` (before the residual) of queries over keys/values."""
        q, k, v = qkv
        weights = torch.softmax(q @ k.transpose(-1, -2) + attn_bias, dim=-1)
        return self.attn_out((weights @ v).transpose(1, 2).flatten(2))

    def finish(self, x: torch.Tensor, depthwise_out: torch.Tensor) -> torch.Tensor:
        """The rest of the layer after the depthwise convolution's output ``(N, T, C)``."""
        x = x + self.pointwise2(F.silu(self.depthwise_norm(depthwise_out)))
        x = x + self.ffn2(x)
        return self.final_norm(x)


class DeployConformer(nn.Module):
    """Inference-only :class:`ConformerCTC` with the same ``forward(feats, lengths)`` contract.

    Built from a trained model (its weights are copied, the model is not changed)::

        deployable = DeployConformer(load_model("models/students/distilled.pt"))
    """

    def __init__(self, model: ConformerCTC) -> None:
        super().__init__()
        self.n_mels, self.vocab_size = model.n_mels, model.vocab_size
        std = model.cmvn_std.detach()
        self.register_buffer("cmvn_scale", 1.0 / std)
        self.register_buffer("cmvn_shift", -model.cmvn_mean.detach() / std)
        self.subsampling = copy.deepcopy(model.subsampling)
        self.chunk_frames, self.left_frames = model.cfg.chunk_frames, model.cfg.left_frames
        causal = model.cfg.streaming
        self.layers = nn.ModuleList(_Layer(layer, causal) for layer in model.encoder.conformer_layers)
        self.output = _linear(model.output.weight, model.output.bias)
        self.eval()

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw fbank ``(N, T, n_mels)`` and lengths ``(N,)`` -> logits ``(N, T', V)``, ``(N,)``."""
        x = self.subsampling(feats * self.cmvn_scale + self.cmvn_shift)  # (N, T', D)
        out_lengths = subsampled_lengths(lengths).clamp(min=1, max=x.shape[1])
        pad = torch.arange(x.shape[1], device=x.device)[None, :] >= out_lengths[:, None]
        if self.chunk_frames:
            blocked = attention_blocked(pad, self.chunk_frames, self.left_frames)[:, None]  # (N, 1, T, T)
        else:
            blocked = pad[:, None, None, :]  # (N, 1, 1, T)
        attn_bias = torch.zeros(blocked.shape, dtype=x.dtype, device=x.device).masked_fill(
            blocked, float("-inf")
        )
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        for layer in self.layers:
            x = layer(x, attn_bias, keep)
        return self.output(x), out_lengths
