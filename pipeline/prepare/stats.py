"""Corpus statistics for the ``prepare`` report: hours, utterances, speakers, vocabulary, OOV
rate, voices."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.splits import EVAL_SPLITS, TRANSFER


def corpus_stats(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Hours, utterances, speakers and vocabulary per split; test OOV rate against train."""
    stats: dict[str, Any] = {}
    train_vocab = {w for r in manifests["train"] for w in r["text"].split()}
    for split, rows in manifests.items():
        stats[split] = {
            "utterances": len(rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "speakers": len({r["speaker"] for r in rows}),
        }
        if split == TRANSFER:  # no transcripts: no vocabulary, no OOV
            continue
        words = Counter(w for r in rows for w in r["text"].split())
        stats[split]["vocabulary"] = len(words)
        if split != "train":
            total = sum(words.values())
            oov = sum(c for w, c in words.items() if w not in train_vocab)
            stats[split]["oov_rate"] = round(oov / total, 4) if total else 0.0
    return stats


def voice_stats(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Distinct voices (speaker labels) overall, and dev/test voices also heard in train.

    Synthetic speakers are ``accent+variant``, so accents and variants are
    counted too when the labels have that form.
    """
    speakers = {r["speaker"] for rows in manifests.values() for r in rows}
    train = {r["speaker"] for r in manifests["train"]}
    held_out = {r["speaker"] for s in EVAL_SPLITS for r in manifests[s]}
    stats = {"voices": len(speakers), "eval_voices_in_train": len(held_out & train)}
    if speakers and all("+" in s for s in speakers):
        stats["accents"] = len({s.split("+")[0] for s in speakers})
        stats["voice_variants"] = len({s.split("+", 1)[1] for s in speakers})
    return stats
