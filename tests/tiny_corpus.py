"""A twelve-utterance corpus of random features, a char tokenizer and a tiny model, for training tests."""

import shutil
from pathlib import Path

import numpy as np
import sentencepiece as spm
from testkit import WIDER, tiny_conformer

from pipeline.config import ConvergenceConfig, TokenizerConfig, default_params
from pipeline.io import write_jsonl
from pipeline.model.conformer import ConformerCTC
from pipeline.store import write_store
from pipeline.tokenizer.spm import train_tokenizer
from pipeline.train.loop import TrainJob
from pipeline.train.recipes import ctc_only

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


def make_corpus(root: Path, min_frames: int = 60, shard_frames: int = 10_000) -> spm.SentencePieceProcessor:
    """Write ``root/feats`` (a store of 80-dim fbank-like frames, ``min_frames`` to 159 per
    utterance) and ``root/spm.model``."""
    rng = np.random.default_rng(0)
    write_store(
        root / "feats",
        ((u, {"fbank": rng.standard_normal((int(rng.integers(min_frames, 160)), 80))}) for u in TEXTS),
        {"fbank": ("float16", (80,))},
        shard_frames,
    )
    write_jsonl(root / "texts.jsonl", [{"text": t} for t in TEXTS.values()])
    tokenizer = TokenizerConfig(vocab_size=24, model_type="char", character_coverage=1.0)
    train_tokenizer(root / "texts.jsonl", root / "tokenizer", tokenizer)
    shutil.copy(root / "tokenizer" / "spm.model", root / "spm.model")
    return spm.SentencePieceProcessor(model_file=str(root / "spm.model"))


def tiny_model(dropout: float) -> ConformerCTC:
    """A one-layer Conformer-CTC for the corpus (80 mels, 24 tokens), seeded with 0, in training mode."""
    return tiny_conformer(80, 24, cmvn=False, dropout=dropout, **WIDER).train()


def tiny_job(root: Path, tag: str, train: dict | None = None, **job) -> TrainJob:
    """A :class:`TrainJob` for the tiny corpus: two epochs (the cap), CTC only, checkpoints in
    ``root/ckpt-<tag>``; ``train`` overrides ``train.*`` keys, ``job`` the job's own fields.
    The stopping rule never stops a two-epoch run early unless a test asks it to."""
    opts = {"lr": 1e-3, "warmup_steps": 2, "batch_frames": 400, "threads": 1, **(train or {})}
    fields = dict(
        name=tag,
        cfg=default_params({"train": opts}).train,
        epochs=2,
        seed=3,
        loss_fn=ctc_only,
        checkpoint_dir=root / f"ckpt-{tag}",
        live_dir=root / f"live-{tag}",
        fingerprint={"tag": tag},
        convergence=ConvergenceConfig(patience=5, min_improvement=0.0),
    )
    return TrainJob(**{**fields, **job})
