"""CTC decoding for evaluation: greedy best path, or beam search constrained to a lexicon.

``evaluate.decoder: lexicon`` runs torchaudio's CTC beam-search decoder
(flashlight-text) with a lexicon of every word in the train transcripts, each
spelled by the sentencepiece model, and no language model: a hypothesis can
only consist of words the training set contains, as in a closed-vocabulary
read-speech task (WSJ 5k). It fixes the misspellings of greedy decoding
(``book -> bok``) without any knowledge of word order. ``greedy`` is the
best path with repeats merged and blanks dropped.

Usage::

    decode = make_decoder(params.evaluate, sp, train_words)
    texts = decode(logits, lengths)   # logits (N, T, V), lengths (N,)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import sentencepiece as spm
import torch

from pipeline.config import EvaluateConfig
from pipeline.ctc import greedy_decode

Decoder = Callable[[torch.Tensor, torch.Tensor], list[str]]
SILENCE = "|"  # an extra token the decoder needs as word separator; the models never emit it


def greedy_decoder(sp: spm.SentencePieceProcessor) -> Decoder:
    """Best-path decoding, then sentencepiece detokenization."""
    return lambda logits, lengths: [sp.decode(ids) for ids in greedy_decode(logits, lengths)]


def write_lexicon(words: Iterable[str], sp: spm.SentencePieceProcessor, path: Path) -> int:
    """One ``word piece piece ...`` line per distinct word the tokenizer can spell (a word
    with a character outside its pieces cannot be emitted anyway); returns the word count."""
    lines = []
    for word in sorted(set(words)):
        ids = sp.encode(word)
        if ids and sp.unk_id() not in ids:
            lines.append(f"{word} {' '.join(sp.id_to_piece(i) for i in ids)}\n")
    path.write_text("".join(lines))
    return len(lines)


def lexicon_decoder(sp: spm.SentencePieceProcessor, words: Iterable[str], beam_size: int) -> Decoder:
    """Beam search over ``words`` only (no language model), with torchaudio's ``ctc_decoder``."""
    from torchaudio.models.decoder import ctc_decoder

    tokens = [sp.id_to_piece(i) for i in range(sp.get_piece_size())] + [SILENCE]
    with tempfile.TemporaryDirectory() as tmp:
        lexicon = Path(tmp) / "lexicon.txt"
        if write_lexicon(words, sp, lexicon) == 0:
            raise ValueError("lexicon decoding needs at least one word in the train transcripts")
        beam = ctc_decoder(
            lexicon=str(lexicon),
            tokens=tokens,
            lm=None,
            beam_size=beam_size,
            blank_token=sp.id_to_piece(0),
            sil_token=SILENCE,
            unk_word=sp.id_to_piece(sp.unk_id()),
            word_score=0.0,
            sil_score=0.0,
        )

    def decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        log_probs = torch.log_softmax(logits.detach().float().cpu(), dim=-1)  # (N, T, V)
        never = torch.full((*log_probs.shape[:2], 1), -1e4)  # the silence token: never emitted
        results = beam(torch.cat([log_probs, never], dim=-1).contiguous(), lengths.cpu().to(torch.int32))
        return [" ".join(r[0].words) if r else "" for r in results]

    return decode


def make_decoder(cfg: EvaluateConfig, sp: spm.SentencePieceProcessor, train_words: Iterable[str]) -> Decoder:
    """The decoder ``evaluate.decoder`` names."""
    if cfg.decoder == "lexicon":
        return lexicon_decoder(sp, train_words, cfg.beam_size)
    return greedy_decoder(sp)
