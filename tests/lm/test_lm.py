"""The word n-gram LM (pipeline/lm/ngram.py): nltk's interpolated Kneser-Ney written as a backoff ARPA
file that KenLM (inside flashlight, torchaudio's beam decoder) reads back to the same numbers."""

import itertools
import math
import random

import pytest
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary
from nltk.lm import KneserNeyInterpolated
from nltk.lm.preprocessing import padded_everygram_pipeline
from nltk.lm.smoothing import KneserNey

from pipeline.lm.ngram import UNK, estimate, write_arpa

WORDS = "the cat sat on a mat dog ran to park big red".split()


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(0)
    return [[rng.choice(WORDS) for _ in range(rng.randint(1, 7))] for _ in range(40)]


def nltk_reference(corpus, order):
    """nltk's own model, fitted as nltk documents it (no index, no ARPA)."""
    lm = KneserNeyInterpolated(order)
    lm.fit(*padded_everygram_pipeline(order, corpus))
    return lm


def kenlm(path, words):
    vocab = Dictionary()
    for w in [UNK, "<s>", "</s>", *words]:
        vocab.add_entry(w)
    return KenLM(str(path), vocab), vocab


def arpa_log10(model, vocab, history, word):
    """log10 P(word | history) as KenLM computes it from the ARPA file."""
    state = model.start(False) if history[:1] == ("<s>",) else model.start(True)
    for w in history[1:] if history[:1] == ("<s>",) else history:
        state, _ = model.score(state, vocab.get_index(w))
    if word == "</s>":
        return model.finish(state)[1]
    return model.score(state, vocab.get_index(word))[1]


@pytest.mark.parametrize("order", [2, 3])
def test_arpa_gives_nltk_probabilities_for_seen_and_unseen_ngrams(corpus, order, tmp_path):
    write_arpa(estimate(corpus, order), tmp_path / "lm.arpa")
    reference = nltk_reference(corpus, order)
    model, vocab = kenlm(tmp_path / "lm.arpa", [*WORDS, "zebra"])
    seen = unseen = 0
    histories = [h for h in itertools.product(["<s>", *WORDS[:7]], repeat=order - 1) if "<s>" not in h[1:]]
    for history, word in itertools.product(histories, [*WORDS[:8], "</s>"]):
        expected = reference.score(word, list(history))
        in_counts = reference.counts[list(history)][word] > 0
        seen, unseen = seen + in_counts, unseen + (not in_counts)
        assert arpa_log10(model, vocab, history, word) == pytest.approx(math.log10(expected), abs=1e-5), (
            history,
            word,
        )
    assert seen > 10 and unseen > 10  # both kinds were compared
    # A word no transcript holds has probability 0 in nltk, -99 (10 ** -99) in the file.
    assert reference.score("zebra", ["the"]) == 0.0
    assert arpa_log10(model, vocab, ("the",), "zebra") < -90


def test_arpa_holds_every_seen_ngram_with_nltk_backoff_weights(corpus, tmp_path):
    lm = estimate(corpus, 3)
    sizes = write_arpa(lm, tmp_path / "lm.arpa")
    lines = (tmp_path / "lm.arpa").read_text().splitlines()
    assert lines[0] == "\\data\\" and lines[-1] == "\\end\\"
    assert sizes["1"] == len(WORDS) + 3  # the words, <s>, </s>, <unk>
    entries = [line.split("\t") for line in lines if "\t" in line]
    bigrams = {tuple(e[1].split()): e for e in entries if e[1].count(" ") == 1}
    assert len(bigrams) == sizes["2"]
    reference = nltk_reference(corpus, 3)
    followed = [h for h in bigrams if reference.counts[list(h)]]
    assert len(followed) > 20
    for history in followed:  # the weight of what follows the bigram
        gamma = reference.estimator.alpha_gamma("cat", history)[1]
        assert float(bigrams[history][2]) == pytest.approx(math.log10(gamma), abs=1e-6)


def test_the_indexed_continuation_counts_are_nltks(corpus):
    lm = estimate(corpus, 3)
    plain = KneserNey(lm.vocab, lm.counts, order=3, discount=0.1)
    for context in [(), ("the",), ("<s>",), ("cat",), ("zebra",)]:
        for word in [*WORDS, "</s>", "<s>"]:
            indexed = lm.estimator._continuation_counts(word, context)
            assert indexed == plain._continuation_counts(word, context), (word, context)


def test_torchaudio_beam_decoder_loads_the_arpa_file(corpus, tmp_path):
    from torchaudio.models.decoder import ctc_decoder

    write_arpa(estimate(corpus, 3), tmp_path / "lm.arpa")
    (tmp_path / "lexicon.txt").write_text("".join(f"{w} {' '.join(w)} |\n" for w in WORDS))
    letters = sorted(set("".join(WORDS)))
    decoder = ctc_decoder(
        lexicon=str(tmp_path / "lexicon.txt"), tokens=["-", "|", *letters], lm=str(tmp_path / "lm.arpa")
    )
    assert decoder.lm is not None


def test_an_lm_needs_text_and_order_two(corpus):
    with pytest.raises(ValueError, match="order >= 2"):
        estimate(corpus, 1)
    with pytest.raises(ValueError, match="at least one word"):
        estimate([], 3)
