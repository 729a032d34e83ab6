"""The ``tokenizer`` stage: a sentencepiece model over the train transcripts.

Id 0 is the CTC blank (``<blk>``, sentencepiece's pad piece, never emitted by
``encode``), id 1 is ``<unk>``; the rest are subword units. Every model's
output layer has ``vocab_size`` classes including the blank.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

from pipeline.config import TokenizerConfig
from pipeline.io import atomic_path, read_jsonl

BLANK = 0


def train_tokenizer(manifest: Path, out_dir: Path, cfg: TokenizerConfig) -> dict[str, int]:
    """Train on ``manifest``'s transcripts; writes ``spm.model`` and ``spm.vocab``."""
    texts = [r["text"] for r in read_jsonl(manifest)]
    if not texts:
        raise ValueError(f"{manifest}: no transcripts to train the tokenizer on")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=str(tmp / "spm"),
            vocab_size=cfg.vocab_size,
            model_type=cfg.model_type,
            character_coverage=cfg.character_coverage,
            pad_id=BLANK,
            pad_piece="<blk>",
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            minloglevel=2,
            num_threads=2,
        )
    return {"vocab_size": load_tokenizer(out_dir / "spm.model").get_piece_size(), "sentences": len(texts)}


def load_tokenizer(path: str | Path) -> spm.SentencePieceProcessor:
    """Load ``spm.model``; a missing file raises an error naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: tokenizer model not found (run the tokenizer stage)")
    return spm.SentencePieceProcessor(model_file=str(path))
