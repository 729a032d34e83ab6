"""CTC losses and decoding: per-frame normalized CTC, guided CTC, greedy decoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.tokens import BLANK


def ctc_loss(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    labelled: torch.Tensor | None = None,
) -> torch.Tensor:
    """CTC summed over the batch and divided by the number of valid frames.

    Per-frame normalization puts CTC on the same scale as the per-frame KD
    term, so ``alpha`` means what it says. ``log_probs``: ``(N, T, V)``.
    ``labelled``: ``(N,)`` bool; only those utterances count (sum and frames), and a
    batch without any gives 0.
    """

    def ctc(reduction: str) -> torch.Tensor:
        return F.ctc_loss(
            log_probs.transpose(0, 1).float(),
            targets,
            lengths,
            target_lengths,
            blank=BLANK,
            reduction=reduction,
            zero_infinity=True,
        )

    if labelled is None:
        return ctc("sum") / lengths.sum().clamp(min=1)
    if not labelled.any():
        return log_probs.sum() * 0.0
    return (ctc("none") * labelled).sum() / (lengths * labelled).sum().clamp(min=1)


def guided_ctc_loss(
    log_probs: torch.Tensor, lengths: torch.Tensor, guide_tokens: torch.Tensor
) -> torch.Tensor:
    """``-mean log p(guide's argmax token)`` over the guide's non-blank frames.

    Kurata & Audhkhasi (2019): rewards spikes on the frames where the guide
    model spikes, so independently trained CTC models emit aligned posteriors.
    ``guide_tokens``: ``(N, T)`` argmax ids of the guide; frames past ``lengths`` are ignored.
    """
    valid = torch.arange(log_probs.shape[1], device=lengths.device)[None, :] < lengths[:, None]
    mask = (guide_tokens != BLANK) & valid
    if not mask.any():
        return log_probs.sum() * 0.0
    picked = log_probs.gather(-1, guide_tokens.unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()


def greedy_decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks."""
    best = logits.argmax(-1).cpu()  # (N, T)
    out = []
    for row, n in zip(best, lengths.cpu().tolist()):
        ids = torch.unique_consecutive(row[:n]).tolist()
        out.append([i for i in ids if i != BLANK])
    return out
