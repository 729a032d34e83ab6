"""The ``lm`` stage: a word n-gram language model of the train transcripts, as an ARPA file.

The model is nltk's interpolated Kneser-Ney (``nltk.lm.KneserNeyInterpolated``, its
default discount), estimated on the train transcripts padded as nltk pads them
(``order - 1`` ``<s>`` and ``</s>``). nltk scores a word recursively,
``P(w | h) = alpha(h, w) + gamma(h) P(w | h')`` with ``h'`` the history without its first
word, ``alpha = 0`` for a pair never seen and ``gamma = 1`` for a history never seen. A
backoff ARPA file holds exactly that model, as SRILM writes interpolated models: every seen
n-gram with ``log10`` of its full interpolated probability, every seen history with
``log10 gamma(h)`` as its backoff weight. A probability of 0 (``<s>`` as a word, the
unknown word ``<unk>``, which no transcript contains) is written as -99.

nltk's ``_continuation_counts`` scans every n-gram of the next order on each call, which makes
scoring every n-gram of even a small corpus quadratic; :class:`IndexedKneserNey` answers
the same question from an index built once (equal counts, tested against nltk's).

Usage::

    lm = estimate(sentences, order=3)        # sentences: lists of words
    write_arpa(lm, Path("data/lm/lm.arpa"))
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from nltk.lm import KneserNeyInterpolated
from nltk.lm.preprocessing import padded_everygram_pipeline
from nltk.lm.smoothing import KneserNey

from pipeline.io import atomic_path

UNK = "<unk>"  # the ARPA spelling of nltk's "<UNK>"
NEVER = -99.0  # log10 of a zero probability, as ARPA files write it


class IndexedKneserNey(KneserNey):
    """nltk's Kneser-Ney estimator with its continuation counts read from an index."""

    def __init__(self, vocabulary, counter, order, discount=0.1, **kwargs):
        super().__init__(vocabulary, counter, order, discount, **kwargs)
        self._index: dict[int, tuple[dict, Counter]] = {}

    def _continuation_counts(self, word, context=tuple()):
        per_word, totals = self._built(len(context))
        return per_word.get(context, {}).get(word, 0), totals[context]

    def _built(self, size: int) -> tuple[dict, Counter]:
        """For contexts of ``size`` words: ``context -> word -> distinct left extensions`` and
        ``context -> distinct (left extension, word) types``, from the counts of order ``size + 2``."""
        if size not in self._index:
            per_word: dict = defaultdict(Counter)
            totals: Counter = Counter()
            for prefix, counts in self.counts[size + 2].items():
                seen = [w for w, c in counts.items() if c > 0]
                per_word[prefix[1:]].update(seen)
                totals[prefix[1:]] += len(seen)
            self._index[size] = (dict(per_word), totals)
        return self._index[size]


def estimate(sentences: Iterable[Sequence[str]], order: int) -> KneserNeyInterpolated:
    """Interpolated Kneser-Ney of ``order`` over ``sentences`` (lists of words)."""
    if order < 2:
        raise ValueError(f"an n-gram LM needs order >= 2, got {order}")
    lm = KneserNeyInterpolated(order)
    lm.estimator = IndexedKneserNey(lm.vocab, lm.counts, order=order, discount=lm.estimator.discount)
    ngrams, words = padded_everygram_pipeline(order, [list(s) for s in sentences])
    lm.fit(ngrams, words)
    if lm.counts[1].N() == 0:
        raise ValueError("an n-gram LM needs at least one word of text")
    return lm


def arpa_word(word: str, lm: KneserNeyInterpolated) -> str:
    """``word`` as the ARPA file spells it: the LM's unknown label becomes :data:`UNK`."""
    return UNK if word == lm.vocab.unk_label else word


def log10(p: float) -> float:
    """log10 of ``p``; :data:`NEVER` for a zero probability."""
    return math.log10(p) if p > 0 else NEVER


def seen_ngrams(lm: KneserNeyInterpolated, n: int) -> list[tuple[str, ...]]:
    """Every n-gram of order ``n`` in the counts, sorted (unigrams: the whole vocabulary)."""
    if n == 1:
        return sorted((w,) for w in lm.vocab)
    return sorted((*ctx, w) for ctx, counts in lm.counts[n].items() for w, c in counts.items() if c > 0)


def backoff(lm: KneserNeyInterpolated, history: tuple[str, ...]) -> float | None:
    """``gamma(history)``, the weight of the lower order after ``history``; None when nothing
    follows it (the weight is then 1) or it is as long as the longest history."""
    if len(history) >= lm.order or not lm.counts[history]:
        return None
    return lm.estimator.alpha_gamma(next(iter(lm.counts[history])), history)[1]


def write_arpa(lm: KneserNeyInterpolated, path: Path) -> dict[str, int]:
    """Write ``lm`` as a backoff ARPA file (module docstring); returns n-grams per order."""
    sections, sizes = [], {}
    for n in range(1, lm.order + 1):
        grams = seen_ngrams(lm, n)
        sizes[str(n)] = len(grams)
        lines = [f"\\{n}-grams:"]
        for gram in grams:
            p = log10(lm.unmasked_score(gram[-1], gram[:-1]))
            text = " ".join(arpa_word(w, lm) for w in gram)
            bow = backoff(lm, gram) if n < lm.order else None
            lines.append(f"{p:.7f}\t{text}" + (f"\t{log10(bow):.7f}" if bow is not None else ""))
        sections.append("\n".join(lines))
    header = ["\\data\\", *(f"ngram {n}={k}" for n, k in sizes.items())]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n\n\\end\\\n")
    return sizes
