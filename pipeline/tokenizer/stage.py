"""The ``tokenizer`` stage, whole: sentencepiece over the train transcripts
(:func:`pipeline.tokenizer.spm.train_tokenizer`) into ``--out``, and the report.

Usage: python stages/tokenizer.py --manifests data/manifests --out data/tokenizer \\
         --report reports/tokenizer.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import Params
from pipeline.io import write_json
from pipeline.tokenizer.spm import train_tokenizer


def tokenizer_stage(args: argparse.Namespace, params: Params) -> dict[str, int]:
    """The stage's options (``--manifests``, ``--out``, ``--report``) -> the sentencepiece model
    in ``--out`` and the report, returned."""
    metrics = train_tokenizer(Path(args.manifests) / "train.jsonl", Path(args.out), params.tokenizer)
    write_json(args.report, metrics)
    return metrics
