"""Paired bootstrap intervals (pipeline/bootstrap.py) on cases with known answers."""

import numpy as np
import pytest

from pipeline.bootstrap import (
    gap_fraction,
    gap_interval,
    paired_bootstrap,
    percentile_interval,
    resample_counts,
)

WORDS = 10  # reference words of every synthetic utterance


def errors(n: int, seed: int = 0) -> np.ndarray:
    """``(n,)`` per-utterance word errors, 0 to 5 of ``WORDS``, varied across utterances."""
    return np.random.default_rng(seed).integers(0, 6, size=n)


def width(ci: tuple[float, float]) -> float:
    return ci[1] - ci[0]


def test_resample_counts_draw_n_items_per_resample():
    counts = resample_counts(7, samples=50, seed=0)
    assert counts.shape == (50, 7)
    assert (counts.sum(axis=1) == 7).all() and (counts >= 0).all()
    assert len({tuple(row) for row in counts}) > 1  # resamples differ


def test_percentile_interval_of_known_draws():
    assert percentile_interval(np.arange(101.0), 0.90) == pytest.approx((5.0, 95.0))


def test_identical_systems_differ_by_exactly_zero():
    e = errors(40)
    rates = paired_bootstrap({"a": e, "b": e.copy()}, np.full(40, WORDS), 500, 0)
    assert percentile_interval(rates["b"] - rates["a"], 0.95) == (0.0, 0.0)


def test_one_extra_error_per_utterance_is_a_constant_paired_difference():
    """B = A + 1 error on every utterance of WORDS words: every paired draw differs by
    exactly 1 / WORDS. Resampling each system on its own draws would spread it widely."""
    n, e = 40, errors(40)
    lengths = np.full(n, WORDS)
    rates = paired_bootstrap({"a": e, "b": e + 1}, lengths, 1000, 0)
    lo, hi = percentile_interval(rates["b"] - rates["a"], 0.95)
    assert lo == pytest.approx(1 / WORDS, abs=1e-12) and hi == pytest.approx(1 / WORDS, abs=1e-12)
    unpaired = (
        paired_bootstrap({"b": e + 1}, lengths, 1000, 1)["b"]
        - paired_bootstrap({"a": e}, lengths, 1000, 2)["a"]
    )
    assert width(percentile_interval(unpaired, 0.95)) > 0.05  # what the paired test rules out


def test_a_system_better_on_every_utterance_is_significantly_better():
    e = errors(30) + 1
    rates = paired_bootstrap({"worse": e, "better": e - 1}, np.full(30, WORDS), 1000, 0)
    assert percentile_interval(rates["better"] - rates["worse"], 0.95)[1] < 0


def test_single_system_interval_holds_its_wer_and_shrinks_with_more_utterances():
    e = errors(20)
    wer = e.sum() / (20 * WORDS)
    ci_small = percentile_interval(paired_bootstrap({"a": e}, np.full(20, WORDS), 1000, 0)["a"], 0.95)
    big = np.tile(e, 16)  # same corpus WER, 16 times the utterances
    ci_big = percentile_interval(paired_bootstrap({"a": big}, np.full(320, WORDS), 1000, 0)["a"], 0.95)
    assert ci_small[0] < wer < ci_small[1] and ci_big[0] < wer < ci_big[1]
    assert width(ci_big) < width(ci_small) / 2  # about 1/sqrt(16) = 1/4


def test_same_seed_same_interval_other_seed_another():
    e, lengths = errors(25), np.full(25, WORDS)

    def interval(seed):
        return percentile_interval(paired_bootstrap({"a": e}, lengths, 300, seed)["a"], 0.95)

    assert interval(3) == interval(3)
    assert interval(3) != interval(4)


def test_unequal_lengths_weight_utterances_by_their_words():
    """Corpus WER is sum(errors) / sum(words), not a mean of per-utterance WERs."""
    rates = paired_bootstrap({"a": np.array([1, 0])}, np.array([1, 99]), 2000, 0)["a"]
    # Two utterances: the short one twice (2/2), one of each (1/100, not a mean of 1 and 0),
    # or the long, error-free one twice.
    assert set(np.round(rates, 12)) == {1.0, 0.01, 0.0}


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="3 error counts but 2 reference lengths"):
        paired_bootstrap({"a": np.array([1, 0, 2])}, np.array([5, 5]), 10, 0)


def test_gap_fraction_is_nan_where_the_ensemble_is_not_better():
    values = gap_fraction(np.array([0.5, 0.4]), np.array([0.45, 0.4]), np.array([0.4, 0.45]))
    assert values[0] == pytest.approx(0.5) and np.isnan(values[1])


def test_gap_recovered_interval_contains_the_point_estimate():
    """Distilled recovers a varying part of the baseline-to-ensemble gap per utterance."""
    n, lengths, rng = 60, np.full(60, WORDS), np.random.default_rng(2)
    ensemble = errors(n, seed=1)
    baseline = ensemble + rng.integers(1, 4, size=n)
    distilled = ensemble + rng.integers(0, baseline - ensemble + 1)
    rates = paired_bootstrap({"b": baseline, "d": distilled, "e": ensemble}, lengths, 1000, 0)
    point = float(gap_fraction(baseline.sum(), distilled.sum(), ensemble.sum()))
    ci, skipped = gap_interval(rates["b"], rates["d"], rates["e"], 0.95)
    assert skipped == 0 and 0 < point < 1
    assert ci[0] < point < ci[1] and 0 < width(ci) < 0.5


def test_gap_interval_is_none_when_most_draws_have_no_gap():
    same = np.linspace(0.3, 0.4, 10)
    ci, skipped = gap_interval(same, same, same + 0.01, 0.95)  # ensemble always worse
    assert ci is None and skipped == 10
