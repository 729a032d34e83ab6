"""A Markdown report of what a change did to the results, for a pull request comment.

It compares a base revision (e.g. the target branch) with the workspace after ``dvc repro``:
the headline metrics (``dvc metrics diff --md``: test WER per system, each distilled
student's difference with its twin and ``gap_recovered``, the int8 speed-up) and the
parameters that changed (``dvc params diff --md``). The base's figures are the metrics
committed there, so commit each run's ``reports/metrics.json`` with its ``dvc.lock``.

Usage::

    asr-distill ci-report --base origin/main > report.md
"""

from __future__ import annotations

import subprocess
from pathlib import Path


class ReportError(RuntimeError):
    """``dvc`` could not compare the revisions (not a DVC repository, unknown revision)."""


def dvc(args: list[str], repo: Path) -> str:
    """``dvc <args>`` run in ``repo``: its stdout, or :class:`ReportError` with its stderr."""
    proc = subprocess.run(["dvc", *args], cwd=repo, text=True, capture_output=True)
    if proc.returncode != 0:
        raise ReportError(f"dvc {' '.join(args)} failed in {repo}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


def table_or(markdown: str, empty: str) -> str:
    """A ``dvc ... diff --md`` table, or ``empty`` when it has no rows (header and rule only)."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return markdown if len(rows) > 2 else empty


def ci_report(base: str, repo: Path = Path("."), title: str = "asr-distill results") -> str:
    """Markdown: changed metrics and params of the workspace against ``base``."""
    metrics = dvc(["metrics", "diff", base, "--md", "--precision", "4"], repo)
    params = dvc(["params", "diff", base, "--md"], repo)
    lines = [f"## {title}", "", f"Compared with `{base}` (the workspace after `dvc repro`).", ""]
    lines += ["### Metrics", "", table_or(metrics, "No metric changed."), ""]
    lines += ["### Parameters", "", table_or(params, "No parameter changed."), ""]
    lines += [
        "Negative `wer_diff` means a distilled student beat its twin; `gap_recovered` is the "
        "share of the twin-to-ensemble WER gap it closed. Intervals and the full tables are in "
        "`reports/summary.md`.",
        "",
    ]
    return "\n".join(lines)
