"""Greedy and lexicon-constrained CTC decoding (pipeline/decoding.py)."""

import torch

from pipeline.config import default_params
from pipeline.decoding import make_decoder
from pipeline.tokens import BLANK

# The words the conftest tokenizer was trained on.
WORDS = "hello world this is a small test of the export and the".split()


def evaluate_config(**changes):
    return default_params({"evaluate": changes}).evaluate


def spelled_logits(sp, text: str, confuse: tuple[int, int] | None = None) -> torch.Tensor:
    """(1, T, V) logits whose best path spells ``text``, each piece on one frame between blanks.

    ``confuse=(k, wrong_id)``: on piece ``k`` the wrong piece wins narrowly over the right one.
    """
    ids = sp.encode(text)
    frames = []
    for k, i in enumerate(ids):
        row = torch.full((sp.get_piece_size(),), -8.0)
        row[i] = 0.0
        if confuse and confuse[0] == k:
            row[confuse[1]] = 0.3
        blank = torch.full((sp.get_piece_size(),), -8.0)
        blank[BLANK] = 0.0
        frames += [row, blank]
    return torch.stack(frames)[None]


def test_lexicon_decoding_only_emits_lexicon_words(tiny_export):
    _, _, sp = tiny_export
    ids = sp.encode("hello world")
    wrong = next(i for i in range(2, sp.get_piece_size()) if i not in ids)
    logits = spelled_logits(sp, "hello world", confuse=(len(ids) - 1, wrong))
    lengths = torch.tensor([logits.shape[1]])
    greedy = make_decoder(evaluate_config(decoder="greedy"), sp, WORDS)(logits, lengths)
    lexicon = make_decoder(evaluate_config(decoder="lexicon", beam_size=8), sp, WORDS)(logits, lengths)
    assert greedy[0] != "hello world"  # the confused piece misspells the last word
    assert lexicon == ["hello world"]


def test_greedy_and_lexicon_agree_on_a_clean_path(tiny_export):
    _, _, sp = tiny_export
    logits = spelled_logits(sp, "a small test of the export")
    lengths = torch.tensor([logits.shape[1]])
    for name in ("greedy", "lexicon"):
        assert make_decoder(evaluate_config(decoder=name), sp, WORDS)(logits, lengths) == [
            "a small test of the export"
        ]
