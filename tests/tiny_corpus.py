"""A twelve-utterance corpus of random features and a char tokenizer, for training tests."""

from pathlib import Path

import numpy as np
import sentencepiece as spm

from pipeline.store import write_store

TEXTS = {
    f"u{i:02d}": t
    for i, t in enumerate(
        [
            "red car",
            "blue sky",
            "green tree",
            "old house",
            "new book",
            "warm tea",
            "cold rain",
            "big dog",
            "small cat",
            "tall man",
            "long road",
            "dark night",
        ]
    )
}


def make_corpus(root: Path) -> spm.SentencePieceProcessor:
    """Write ``root/feats`` (a store of 80-dim fbank-like frames) and ``root/spm.model``."""
    rng = np.random.default_rng(0)
    write_store(
        root / "feats",
        ((u, {"fbank": rng.standard_normal((int(rng.integers(60, 160)), 80))}) for u in TEXTS),
        {"fbank": ("float16", (80,))},
        10_000,
    )
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS.values()),
        model_prefix=str(root / "spm"),
        vocab_size=24,
        model_type="char",
        pad_id=0,
        pad_piece="<blk>",
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=str(root / "spm.model"))
