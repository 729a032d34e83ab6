"""The entry point of the training stage scripts (``stages/train_teacher.py``, ``train_twin.py``,
``train_student.py``): arguments, the relaunch under torchrun, training and rank 0's report.

Usage::

    run_training_stage(__doc__, train_student, soft_targets=True, guide=True)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from pipeline.config import Params
from pipeline.io import write_json
from pipeline.stage import parser, run
from pipeline.train.distributed import relaunch_under_torchrun
from pipeline.train.paths import TrainPaths

TrainFn = Callable[[Params, str, TrainPaths], dict[str, Any] | None]


def stage_flags(soft_targets: bool) -> list[str]:
    """The required options of a training stage, ``--name`` and ``--report`` aside, in the
    order ``--help`` lists them."""
    soft = ["soft-targets"] if soft_targets else []
    return ["features", "manifests", "tokenizer", *soft, "model", "checkpoints", "live"]


def training_parser(doc: str, soft_targets: bool, guide: bool) -> argparse.ArgumentParser:
    """``--params``, ``--name``, the paths (``--soft-targets`` if ``soft_targets``), ``--report``
    and, if ``guide``, an optional ``--guide``."""
    p = parser(doc, "name", *stage_flags(soft_targets), "report")
    if guide:
        p.add_argument("--guide")
    return p


def train_paths(args: argparse.Namespace) -> TrainPaths:
    """The parsed options as :class:`TrainPaths` (which makes them paths); an option not given
    (or empty) is None."""
    names = [f.name for f in fields(TrainPaths)]
    return TrainPaths(**{n: getattr(args, n, None) or None for n in names})


def run_training_stage(
    doc: str, train_fn: TrainFn, *, soft_targets: bool = False, guide: bool = False
) -> None:
    """The whole of a training stage script: parse its options (``--soft-targets`` required if
    ``soft_targets``, ``--guide`` accepted if ``guide``), relaunch under torchrun when
    ``train.nproc > 1``, train with ``train_fn(params, name, paths)`` and write the report
    (rank 0 only)."""

    def main(args: argparse.Namespace, params: Params) -> None:
        relaunch_under_torchrun(params.train.nproc)
        metrics = train_fn(params, args.name, train_paths(args))
        if metrics is not None:  # rank 0 (or the only process) writes
            write_json(args.report, metrics)

    run(main, training_parser(doc, soft_targets, guide).parse_args())
