"""`asr-distill ci-report`: two commits with different params give a diff table that shows
the changed metric and the changed parameter (real git and dvc)."""

import json
import subprocess
from pathlib import Path

import pytest
from testkit import command_env

from pipeline.ci_report import ReportError, ci_report

DVC_YAML = """stages:
  score:
    cmd: python score.py
    params: [students.distilled.alpha]
    metrics:
      - reports/metrics.json:
          cache: false
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=command_env(), check=True, capture_output=True)


def write_run(repo: Path, alpha: float, gap: float) -> None:
    (repo / "params.yaml").write_text(f"students:\n  distilled:\n    alpha: {alpha}\n")
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports" / "metrics.json").write_text(
        json.dumps(
            {
                "test_wer": {"student.distilled": 0.4, "ensemble": 0.2},
                "gap_recovered": {"student.distilled": gap},
            }
        )
    )


@pytest.fixture
def repo(tmp_path, monkeypatch):
    # the dvc of this interpreter's environment, for this test only (ci_report runs it too)
    monkeypatch.setenv("PATH", command_env()["PATH"])
    git(tmp_path, "init", "-q")
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    write_run(tmp_path, alpha=0.5, gap=0.3)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base run")
    return tmp_path


def test_report_shows_changed_metric_and_param(repo):
    write_run(repo, alpha=0.9, gap=0.55)
    report = ci_report("HEAD", repo)
    assert "### Metrics" in report and "### Parameters" in report
    row = next(line for line in report.splitlines() if "gap_recovered" in line)
    assert "0.3" in row and "0.55" in row  # base and workspace values side by side
    assert "test_wer" not in report.split("### Parameters")[0].split("### Metrics")[1]  # unchanged
    param = next(line for line in report.splitlines() if "students.distilled.alpha" in line)
    assert "0.5" in param and "0.9" in param


def test_no_change_says_so(repo):
    report = ci_report("HEAD", repo)
    assert "No metric changed." in report and "No parameter changed." in report


def test_unknown_revision_is_a_clear_error(repo):
    with pytest.raises(ReportError, match="no-such-branch"):
        ci_report("no-such-branch", repo)
