"""Word and character error rates: the one scorer of the project (jiwer's alignments).

Every WER the pipeline reports comes from here: the dev WER logged while training, the
ensemble WER of the ``soft_targets`` stage, the parity WER of every exported format and
the test WER/CER of ``evaluate``.

Convention, the same everywhere:

- an empty hypothesis (or one of whitespace only) is all deletions: every word of its
  reference is an error;
- an empty reference adds no reference words, and every word of its hypothesis is an
  insertion;
- the corpus rate is the sum of the edits over the sum of the reference words (words or
  characters; at least 1 in the denominator), not an average of per-utterance rates.
  On non-empty references this is ``jiwer.wer`` / ``jiwer.cer``.

Usage::

    from pipeline.wer import corpus_wer, score
    corpus_wer(["a b c"], ["a c"])  # 0.333...
    score(refs, hyps)              # (WER, CER) rounded to RATE_DECIMALS
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer
import numpy as np

# Decimals of the rounded rates in the reports.
RATE_DECIMALS = 4


@dataclass(frozen=True)
class UtteranceErrors:
    """One system's edit counts per utterance, and its word substitutions."""

    words: np.ndarray  # (N,) word substitutions + deletions + insertions
    ref_words: np.ndarray  # (N,) reference words
    chars: np.ndarray  # (N,) character edits (spaces count, as in jiwer.cer)
    ref_chars: np.ndarray  # (N,) reference characters
    substitutions: Counter[tuple[str, str]]  # (ref word, hyp word) -> count

    @property
    def wer(self) -> float:
        """Corpus WER: all word edits over all reference words."""
        return rate(self.words, self.ref_words)

    @property
    def cer(self) -> float:
        """Corpus CER: all character edits over all reference characters."""
        return rate(self.chars, self.ref_chars)


def rate(edits: np.ndarray, lengths: np.ndarray) -> float:
    """Summed edits over summed reference lengths (at least 1)."""
    return float(edits.sum() / max(lengths.sum(), 1))


def chunk_edits(chunk: jiwer.AlignmentChunk) -> int:
    """Edits in one alignment chunk: inserted hypothesis tokens, or substituted/deleted
    reference tokens (0 for ``equal``)."""
    if chunk.type == "equal":
        return 0
    if chunk.type == "insert":
        return chunk.hyp_end_idx - chunk.hyp_start_idx
    return chunk.ref_end_idx - chunk.ref_start_idx


def edit_counts(output: jiwer.WordOutput | jiwer.CharacterOutput) -> tuple[np.ndarray, np.ndarray]:
    """``(edits, reference lengths)`` per utterance, each ``(N,)``, from jiwer's alignments."""
    edits = [sum(chunk_edits(c) for c in chunks) for chunks in output.alignments]
    lengths = [len(r) for r in output.references]
    return np.array(edits, dtype=np.int64), np.array(lengths, dtype=np.int64)


def substitution_pairs(output: jiwer.WordOutput) -> Counter[tuple[str, str]]:
    """``(ref word, hyp word)`` counts over the substitutions of jiwer's word alignments."""
    pairs: Counter[tuple[str, str]] = Counter()
    for ref, hyp, chunks in zip(output.references, output.hypotheses, output.alignments):
        for c in chunks:
            if c.type == "substitute":
                pairs.update(zip(ref[c.ref_start_idx : c.ref_end_idx], hyp[c.hyp_start_idx : c.hyp_end_idx]))
    return pairs


def _hypotheses(hyps: Sequence[str]) -> list[str]:
    """Hypotheses with whitespace-only ones made empty (all deletions)."""
    return [h if h.strip() else "" for h in hyps]


def utterance_errors(refs: Sequence[str], hyps: Sequence[str]) -> UtteranceErrors:
    """Word and character edit counts per utterance, and the word substitutions."""
    hyps = _hypotheses(hyps)
    words = jiwer.process_words(list(refs), hyps)
    chars = jiwer.process_characters(list(refs), hyps)
    return UtteranceErrors(*edit_counts(words), *edit_counts(chars), substitution_pairs(words))


def corpus_wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER, unrounded (words only: cheaper than :func:`utterance_errors`)."""
    return rate(*edit_counts(jiwer.process_words(list(refs), _hypotheses(hyps))))


def score(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float, float]:
    """Corpus (WER, CER), rounded to :data:`RATE_DECIMALS`."""
    errors = utterance_errors(refs, hyps)
    return round(errors.wer, RATE_DECIMALS), round(errors.cer, RATE_DECIMALS)
