"""The streaming step: one chunk of fbank frames and the caches in, the chunk's logits and
the next caches out; the window arithmetic and the algorithmic latency."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import FbankConfig
from pipeline.deploy.inference import DeployConformer
from pipeline.model.conformer import ConformerCTC

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
