"""The ``features`` stage, whole: 80-dim log-mel filterbanks of every split into sharded fp16
stores + CMVN (:func:`pipeline.features.extract.extract_features`), and the report.

An interrupted run resumes from the finished shards in ``--work``; see :mod:`pipeline.features.extract`.

Usage: python stages/features.py --manifests data/manifests --out data/features \\
         --work data/features.partial --report reports/features.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.features.extract import extract_features
from pipeline.io import write_json


def features_stage(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    """The stage's options (``--manifests``, ``--out``, ``--report``, optional ``--work``) ->
    the feature stores in ``--out`` and the report, returned."""
    metrics = extract_features(
        Path(args.manifests),
        Path(args.out),
        params.features,
        params.data.sample_rate,
        work_dir=Path(args.work) if args.work else None,
    )
    write_json(args.report, metrics)
    return metrics
