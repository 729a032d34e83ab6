"""The ``soft_targets`` stage, whole: load the teachers, the tokenizer and the loaders of every
soft-target split, build the soft targets (:func:`pipeline.soft_targets.build.build_soft_targets`)
into ``--out`` and write the report.

Usage: python stages/soft_targets.py --teachers models/teachers --features data/features \\
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \\
         --out data/soft_targets --report reports/soft_targets.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from pipeline.config import Params
from pipeline.io import file_digest, read_jsonl, write_json
from pipeline.loader import make_loader
from pipeline.model.conformer import load_model
from pipeline.soft_targets.build import build_soft_targets
from pipeline.splits import SOFT_TARGET_SPLITS
from pipeline.tokens import load_tokenizer


def soft_targets_stage(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    """The stage's options (``--teachers``, ``--features``, ``--manifests``, ``--tokenizer``,
    ``--out``, ``--report``) -> the soft-target stores in ``--out`` and the report, returned."""
    torch.set_num_threads(params.train.threads)
    sp = load_tokenizer(args.tokenizer)
    files = {n: Path(args.teachers) / f"{n}.pt" for n in params.teacher_names()}
    models = {n: load_model(f) for n, f in files.items()}
    digests = {n: file_digest(f) for n, f in files.items()}
    loaders = {
        s: make_loader(Path(args.features), Path(args.manifests), s, sp, params.train.batch_frames)
        for s in SOFT_TARGET_SPLITS
    }
    words = [w for r in read_jsonl(Path(args.manifests) / "train.jsonl") for w in r["text"].split()]
    report = build_soft_targets(params, models, loaders, sp, Path(args.out), words, digests)
    write_json(args.report, report)
    return report
