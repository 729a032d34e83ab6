"""The ``tokenizer`` stage: a sentencepiece model over the train transcripts.

Id 0 is the CTC blank and id 1 ``<unk>`` (see :mod:`pipeline.tokens`, which loads the model).
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

from pipeline.config import TokenizerConfig
from pipeline.io import atomic_path, read_jsonl
from pipeline.tokens import BLANK, load_tokenizer


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
