"""What ``prepare`` rejects and when it stops: the checks of one utterance, the reject reasons
(worst first) and the limit on rejects per split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from pipeline.audio.read import sample_problem
from pipeline.config import DataConfig
from pipeline.errors import InputError
from pipeline.prepare.text import transcript_problem
from pipeline.splits import LABELLED_SPLITS, SPLITS

# Reject reasons, worst first: corrupt files before content problems before length limits.
SEVERITY = (
    "missing file",
    "not a file",
    "unreadable audio",
    "truncated audio",
    "empty audio",
    "non-finite samples",
    "silent audio",
    "non-text transcript",
    "empty transcript",
    "no transcript",
    "malformed manifest line",
    "unknown split",
    "duplicate id",
    "too long",
    "too short",
)


class TooManyRejects(InputError):
    """More than ``data.max_reject_fraction`` of a split was rejected: the user's data to fix,
    so the stage reports it in one line (``pipeline.stage.run``), without a traceback."""


def check_utterance(wav: np.ndarray, sample_rate: int, text: str | None, cfg: DataConfig) -> str | None:
    """Reason to reject an utterance, or ``None`` if it is usable (``text`` None: audio only)."""
    if text is not None and not text.strip():
        return "empty transcript"
    problem = sample_problem(wav)  # empty, non-finite or silent: the check transcribe applies too
    if problem:
        return problem
    duration = len(wav) / sample_rate
    if duration < cfg.min_duration:
        return f"too short ({duration:.2f}s < {cfg.min_duration}s)"
    if duration > cfg.max_duration:
        return f"too long ({duration:.2f}s > {cfg.max_duration}s)"
    return None


def text_problem(raw: Any) -> str | None:
    """Why a raw transcript (possibly not even a string) is unusable, or ``None``."""
    if raw is None:
        return "empty transcript (missing)"
    if not isinstance(raw, str):
        return f"non-text transcript (a {type(raw).__name__})"
    return transcript_problem(raw)


def reason_kind(reason: str) -> str:
    """'too short (0.10s < 0.3s)' -> 'too short': the key counted in the metrics."""
    return reason.split(" (")[0]


def worst_first(rejects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rejects sorted by :data:`SEVERITY` (stable within a kind)."""
    rank = {kind: i for i, kind in enumerate(SEVERITY)}
    return sorted(rejects, key=lambda r: rank.get(reason_kind(r["reason"]), len(rank)))


def reject_summary(rejects: list[dict[str, Any]], limit: int = 5) -> str:
    """'3 unreadable audio, 1 too short; worst: a.flac: unreadable audio (...); ...'."""
    kinds = Counter(reason_kind(r["reason"]) for r in rejects)
    files = "; ".join(f"{r['audio'] or r['id']}: {r['reason']}" for r in worst_first(rejects)[:limit])
    return f"{', '.join(f'{n} {k}' for k, n in kinds.most_common())}; worst: {files}"


def check_rejects(
    rows: dict[str, list[dict[str, Any]]], rejects: list[dict[str, Any]], cfg: DataConfig
) -> None:
    """Raise :class:`TooManyRejects` if a split, or the corpus, is rejected beyond the limit."""
    groups = {split: [r for r in rejects if r["split"] == split] for split in SPLITS}
    groups["all splits"] = rejects
    for name, bad in groups.items():
        good = sum(map(len, rows.values())) if name == "all splits" else len(rows[name])
        total = good + len(bad)
        if total and len(bad) / total > cfg.max_reject_fraction:
            raise TooManyRejects(
                f"{name}: {len(bad)}/{total} utterances rejected ({len(bad) / total:.1%}), above "
                f"data.max_reject_fraction={cfg.max_reject_fraction}: {reject_summary(bad)}"
            )
    empty = [split for split in LABELLED_SPLITS if not rows[split]]
    if empty:
        detail = f" ({reject_summary(rejects)})" if rejects else ""
        raise TooManyRejects(f"no usable utterances in split(s) {', '.join(empty)}{detail}")
