"""The teachers' ensemble: one distribution from several models' logits, frame by frame.

Every model emits one frame per 40 ms, so the teachers' frames correspond 1:1 and their
posteriors combine without resampling. The ``soft_targets`` stage combines softened
posteriors (temperature T) into soft targets; ``evaluate`` and the CPU benchmark decode
the ensemble from its T=1 combination.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def combine_posteriors(
    logits: Sequence[torch.Tensor], temperature: float, combine: str = "mean"
) -> torch.Tensor:
    """Ensemble distribution ``(..., V)`` from per-teacher logits ``(..., V)``.

    ``mean``: average of ``softmax(z_i / T)`` (Hinton et al.); ``geometric``:
    renormalized ``exp(mean_i log_softmax(z_i / T))``.
    """
    log_probs = torch.stack([torch.log_softmax(z.float() / temperature, -1) for z in logits])
    if combine == "mean":
        return log_probs.exp().mean(0)
    if combine == "geometric":
        return torch.softmax(log_probs.mean(0), -1)
    raise ValueError(f"unknown combine method '{combine}' (use mean or geometric)")
