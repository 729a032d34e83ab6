"""The ``prepare`` stage, whole: the corpus named by ``data.source`` as 16 kHz WAV files and
JSONL manifests (:mod:`pipeline.prepare.corpus`), and its report.

Writes ``data/audio/<split>/<id>.wav``, ``data/manifests/{train,dev,test,transfer}.jsonl``,
``data/manifests/rejects.jsonl`` and ``reports/prepare.json`` (hours, utterances, speakers and
vocabulary per split, OOV rates, voices, rejects by reason, fixes, seconds).

Usage: python stages/prepare.py --audio data/audio --manifests data/manifests --report reports/prepare.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.io import write_json
from pipeline.prepare.corpus import prepare


def prepare_stage(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    """The stage's options (``--audio``, ``--manifests``, ``--report``) -> the corpus there and
    the report, returned."""
    report = prepare(params.data, Path(args.audio), Path(args.manifests))
    write_json(args.report, report)
    return report
