"""The one scorer (pipeline.wer): jiwer's counts, and one convention for empty strings."""

from collections import Counter

import jiwer
import pytest

from pipeline.wer import corpus_wer, score, utterance_errors

REFS = ["the cat sat on the mat", "a dog ran", "their house is red"]
HYPS = ["the cat sat on a mat", "a dog ran away", "there house red"]


def test_utterance_errors_agree_with_jiwer():
    e = utterance_errors(REFS, HYPS)
    assert e.words.tolist() == [1, 1, 2] and e.ref_words.tolist() == [6, 3, 4]
    assert e.wer == jiwer.wer(REFS, HYPS) == corpus_wer(REFS, HYPS)
    assert e.cer == pytest.approx(jiwer.cer(REFS, HYPS))
    chars = jiwer.process_characters(REFS, HYPS)
    assert e.chars.sum() == chars.substitutions + chars.deletions + chars.insertions
    assert e.substitutions == Counter({("the", "a"): 1, ("their", "there"): 1})
    assert score(REFS, HYPS) == (round(jiwer.wer(REFS, HYPS), 4), round(jiwer.cer(REFS, HYPS), 4))


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_hypothesis_is_all_deletions(empty):
    refs, hyps = ["one two three", "four"], [empty, "four"]
    e = utterance_errors(refs, hyps)
    assert e.words.tolist() == [3, 0] and e.wer == 0.75 == corpus_wer(refs, hyps)
    assert e.chars.tolist() == [len("one two three"), 0]


def test_an_empty_reference_counts_the_hypothesis_as_insertions():
    e = utterance_errors(["", "a b"], ["x y", "a b"])
    assert e.words.tolist() == [2, 0] and e.ref_words.tolist() == [0, 2]
    assert e.wer == 1.0 == corpus_wer(["", "a b"], ["x y", "a b"])
    assert corpus_wer([""], [""]) == 0.0  # nothing to say and nothing said


def test_the_same_rate_as_a_placeholder_for_empty_hypotheses():
    # Scoring an empty hypothesis as a one-word placeholder gives the same edits on any
    # non-empty reference (one substitution and the rest deleted), so these agree exactly.
    refs, hyps = ["a b c", "d e", "f"], ["", "d", ""]
    assert corpus_wer(refs, hyps) == jiwer.wer(refs, [h or "<empty>" for h in hyps])
