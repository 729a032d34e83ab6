"""The token inventory every model shares: a sentencepiece model whose id 0 is the CTC blank.

Id 0 is the CTC blank (``<blk>``, sentencepiece's pad piece, never emitted by
``encode``), id 1 is ``<unk>``; the rest are subword units. Every model's output layer
has ``vocab_size`` classes including the blank. The ``tokenizer`` stage
(:mod:`pipeline.tokenizer.spm`) trains the model.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

BLANK = 0


def load_tokenizer(path: str | Path) -> spm.SentencePieceProcessor:
    """Load ``spm.model``; a missing file raises an error naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: tokenizer model not found (run the tokenizer stage)")
    return spm.SentencePieceProcessor(model_file=str(path))
