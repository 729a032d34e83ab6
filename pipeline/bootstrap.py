"""Paired bootstrap confidence intervals for corpus error rates (Bisani & Ney 2004).

The test utterances are resampled with replacement ``B`` times. Each resample is
a row of a ``(B, N)`` count matrix (how often each of the ``N`` utterances was
drawn; every row sums to ``N``), so the corpus error rate of a system on every
resample is one matrix product: ``counts @ errors / counts @ lengths``. Every
system is scored on the *same* resamples, which makes the comparison of two
systems paired: utterance difficulty, shared by both, cancels out of their
difference, and only their disagreement is left to vary.

The count matrix takes ``8 * B * N`` bytes (1000 resamples of LibriSpeech
test-clean: 21 MB).

Usage::

    rates = paired_bootstrap({"a": errors_a, "b": errors_b}, ref_words, samples=1000, seed=0)
    lo, hi = percentile_interval(rates["b"] - rates["a"], confidence=0.95)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# (lo, hi) bounds of a percentile interval
Interval = tuple[float, float]


def resample_counts(num_items: int, samples: int, seed: int) -> np.ndarray:
    """``(samples, num_items)`` draw counts: row ``b`` says how often each item is in resample ``b``.

    Drawing ``num_items`` indices with replacement is a multinomial with equal
    probabilities, so each row sums to ``num_items``.
    """
    if num_items < 1:
        raise ValueError("bootstrap needs at least one utterance")
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_items, np.full(num_items, 1.0 / num_items), size=samples)


def paired_bootstrap(
    errors: Mapping[str, np.ndarray], lengths: np.ndarray, samples: int, seed: int
) -> dict[str, np.ndarray]:
    """Corpus error rate of every system on the same ``samples`` resamples of the utterances.

    ``errors``: per system, ``(N,)`` edit counts per utterance (substitutions +
    deletions + insertions); ``lengths``: ``(N,)`` reference length per
    utterance (words for WER, characters for CER), shared by all systems.
    Returns ``(samples,)`` rates per system.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    names = list(errors)
    table = np.stack([np.asarray(errors[n], dtype=np.float64) for n in names], axis=1)  # (N, S)
    if table.shape[0] != lengths.shape[0]:
        raise ValueError(f"{table.shape[0]} error counts but {lengths.shape[0]} reference lengths")
    counts = resample_counts(len(lengths), samples, seed).astype(np.float64)  # (B, N)
    rates = (counts @ table) / (counts @ lengths)[:, None]  # (B, S)
    return {n: rates[:, i] for i, n in enumerate(names)}


def percentile_interval(draws: np.ndarray, confidence: float) -> Interval:
    """The central ``confidence`` percentile interval of bootstrap ``draws`` (NaNs ignored)."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.nanpercentile(draws, [tail, 100.0 - tail])
    return float(lo), float(hi)


def gap_fraction(
    baseline: np.ndarray | float, distilled: np.ndarray | float, ensemble: np.ndarray | float
) -> np.ndarray:
    """``(baseline - distilled) / (baseline - ensemble)`` elementwise; NaN where the
    denominator is not positive (the ensemble is no better than the baseline)."""
    b, d, e = (np.asarray(x, dtype=np.float64) for x in (baseline, distilled, ensemble))
    denominator = b - e
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, (b - d) / safe, np.nan)


def gap_interval(
    baseline: np.ndarray, distilled: np.ndarray, ensemble: np.ndarray, confidence: float
) -> tuple[Interval | None, int]:
    """Percentile interval of the gap fraction over paired draws, and the draws skipped.

    Draws whose denominator is not positive are skipped; with more than half
    skipped the interval is ``None`` (the ratio is not meaningful on this test set).
    """
    values = gap_fraction(baseline, distilled, ensemble)
    skipped = int(np.isnan(values).sum())
    if skipped > values.size / 2:
        return None, skipped
    return percentile_interval(values, confidence), skipped
