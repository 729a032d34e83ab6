"""End to end: the real ``dvc repro`` on the tiny profile, in a temporary copy of the repo."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from testkit import command_env

from pipeline.config import load_params

pytestmark = pytest.mark.e2e


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = Path(__file__).resolve().parents[1]
    dst = tmp_path_factory.mktemp("e2e") / "repo"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        text=True,
        capture_output=True,
        check=True,
    ).stdout.split()
    for rel in files:
        if (root / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dst / rel)
    # PYTHONPATH: stage scripts (and asr-distill) import the copy's own pipeline/, not the installed one.
    env = command_env(PYTHONPATH=str(dst))
    sh(["asr-distill", "profile", "tiny"], dst, env)  # as README, Profiles, says
    sh(["git", "init", "-q"], dst, env)
    sh(["git", "add", "-A"], dst, env)
    sh(["git", "commit", "-qm", "tiny profile"], dst, env)
    first = sh(["dvc", "repro"], dst, env)
    return dst, env, first


def test_every_stage_runs_and_writes_its_outputs(repo):
    dst, _, first = repo
    params = load_params(dst / "params.yaml")
    teachers = params.teacher_names()
    expected_stages = {
        "prepare",
        "features",
        "tokenizer",
        "lm",
        "train_guide",
        "soft_targets",
        "evaluate",
        "export",
        *(f"train_teacher@{t}" for t in params.teachers.others),
        *(f"train_twin@{s}" for s in params.twins),
        *(f"train_student@{s}" for s in params.students),
    }
    assert ran_stages(first) == expected_stages
    outputs = [
        "data/manifests/train.jsonl",
        "data/manifests/rejects.jsonl",
        "data/features/train/index.json",
        "data/features/cmvn.json",
        "data/tokenizer/spm.model",
        "data/soft_targets/train/index.json",
        "reports/metrics.json",
        "reports/evaluation.json",
        "reports/summary.md",
        "export/distilled/student.onnx",
        "export/member/student.int8.onnx",
        "data/lm/lm.arpa",
        "export/distilled/lexicon.txt",
        "export/distilled/lm.arpa",
        *(f"models/teachers/{t}.pt" for t in teachers),
        *(f"models/students/{s}.pt" for s in params.student_names()),
        *(f"dvclive/teachers/{t}/metrics.json" for t in teachers),
    ]
    missing = [p for p in outputs if not (dst / p).exists()]
    assert not missing


def test_metrics_have_the_documented_shape(repo):
    dst, _, _ = repo
    params = load_params(dst / "params.yaml")
    metrics = json.loads((dst / "reports" / "evaluation.json").read_text())
    systems = {
        *(f"teacher.{t}" for t in params.teacher_names()),
        "ensemble",
        *(f"student.{s}" for s in params.student_names()),
    }
    assert {"student.baseline", "student.distilled", "student.member"} <= systems
    assert set(metrics["wer"]["test"]) == systems
    assert set(metrics["cer"]["test"]) == systems
    assert set(metrics["params"]) == systems - {"ensemble"}
    assert all(0 <= v for v in metrics["wer"]["test"].values())
    assert set(metrics["gap_recovered"]) == {"student.distilled", "student.member"}
    assert metrics["soft_targets"]["bytes_per_frame"] > 0
    assert 0 < metrics["soft_targets"]["retained_mass_mean"] <= 1
    # The CPU benchmark, side by side in one run.
    # Every distilled student is exported and timed; a teacher twin (the member's) beside it.
    assert {
        "ensemble",
        "student.baseline.torch",
        "student.distilled.torch",
        "student.distilled.onnx",
        "student.distilled.int8",
        f"{params.twin_model('member')}.torch",
        "student.member.torch",
        "student.member.int8",
    } <= set(metrics["rtf"])
    assert all(0 < v < 1 for v in metrics["rtf"].values())  # tiny models: faster than real time
    assert set(metrics["sizes"]) == set(metrics["rtf"])
    assert metrics["goals"]["int8_speedup"] > 0
    # The export stage ran the benchmark; evaluate copied it and added each runtime's WER.
    export = json.loads((dst / "reports" / "export.json").read_text())
    assert metrics["rtf"] == export["rtf"] and metrics["sizes"] == export["sizes"]
    assert set(metrics["runtime_wer"]) == set(metrics["rtf"]) == set(metrics["runtime_wer_greedy"])
    assert metrics["runtime_wer"]["ensemble"] == metrics["wer"]["test"]["ensemble"]
    assert metrics["runtime_wer_greedy"]["ensemble"] == metrics["wer_greedy"]["test"]["ensemble"]
    assert all(v is not None for v in metrics["runtime_wer_greedy"].values())
    assert metrics["runtime_wer_greedy"]["student.distilled.int8"] == export["wer"]["student.distilled.int8"]
    # Every system with every decoder; the deployed runtimes with the default one, end to end.
    decoders = params.decoding.decoders
    assert set(metrics["wer_by_decoder"]["test"]) == set(decoders)
    assert metrics["wer_by_decoder"]["test"][params.decoding.default] == metrics["wer"]["test"]
    assert set(metrics["lm_effect"]) == systems
    grid = export["decoding"]["student.distilled"]["grid"]
    assert len(grid) == len(params.decoding.grid.lm_weight) * len(params.decoding.grid.word_score)
    assert export["decoding"]["student.distilled"]["wer"] == min(g["wer"] for g in grid)
    config = json.loads((dst / "export" / "distilled" / "config.json").read_text())
    assert config["decoding"]["lm_weight"] == export["decoding"]["student.distilled"]["lm_weight"]
    assert set(metrics["deployed"]) == {f"student.{s}.{f}" for s in params.students for f in ("onnx", "int8")}
    for d in metrics["deployed"].values():
        assert d["decoder"] == params.decoding.default and d["wer_ci"][0] <= d["wer"] <= d["wer_ci"][1]
        total = sum(d["seconds"].values())  # the RTF is the part timings over the audio
        assert d["rtf_end_to_end"] == pytest.approx(total / d["audio_seconds"], rel=1e-3, abs=1e-5)
        assert d["decode_share"] == pytest.approx(d["seconds"]["decode"] / total, abs=1e-4)
    summary = (dst / "reports" / "summary.md").read_text()
    assert "## Deployment" in summary and "student.distilled.int8" in summary
    assert "### Deployed: audio file to text" in summary and "## The language model's effect" in summary
    # Paired-bootstrap intervals, comparisons and the error breakdown (evaluate.*).
    for key in ("wer_ci", "cer_ci"):
        assert set(metrics[key]["test"]) == systems
        assert all(lo <= hi for lo, hi in metrics[key]["test"].values())
    compared = {f"student.{n}" for n in params.students}
    assert set(metrics["wer_diff"]) == set(metrics["wer_diff_ci"]) == compared
    assert metrics["twin"] == {
        "student.distilled": "student.baseline",
        "student.member": "teacher.t1",  # forked from the guide like it
    }
    assert metrics["distilled_beats_baseline"] == (metrics["wer_diff_ci"]["student.distilled"][1] < 0)
    ens = metrics["ensemble_vs_best_teacher"]
    assert ens["best"].startswith("teacher.") and ens["ci"][0] <= ens["ci"][1]
    assert metrics["ensemble_beats_best_teacher"] == (ens["ci"][1] < 0)
    assert set(metrics["gap_recovered_ci"]) == set(metrics["wer_diff"])
    assert set(metrics["gap_recovered_skipped"]) == set(metrics["wer_diff"])
    manifest = (dst / "data" / "manifests" / "test.jsonl").read_text()
    rows = [json.loads(line) for line in manifest.splitlines() if line.strip()]
    assert metrics["test_utterances"] == len(rows)
    assert metrics["test_words"] == sum(len(r["text"].split()) for r in rows)
    assert set(metrics["oov_rate"]) == {"dev", "test"}
    groups = metrics["wer_by_group"]
    assert groups["group_by"] == "accent"
    assert set(groups["ensemble"]) == {r["speaker"].split("+")[0] for r in rows}
    assert sum(groups["utterances"].values()) == len(rows)
    assert set(metrics["substitutions"]) == {"ensemble", *metrics["wer_diff"]}
    assert "WER 95 % interval" in summary and "## WER by accent" in summary
    assert "student.distilled vs student.baseline: WER difference" in summary
    assert "## Distillation: each student against its twin" in summary
    assert "| student.member |" in summary and "| transfer |" in summary
    # The transfer set: audio without transcripts, labelled by the soft targets alone.
    transfer = [
        json.loads(line) for line in (dst / "data" / "manifests" / "transfer.jsonl").read_text().splitlines()
    ]
    assert len(transfer) == params.data.synthetic.transfer_utterances
    assert all("text" not in r for r in transfer)
    distilled = json.loads((dst / "reports" / "students" / "distilled.json").read_text())
    baseline = json.loads((dst / "reports" / "students" / "baseline.json").read_text())
    assert distilled["steps"] == baseline["steps"]  # twins: the same number of updates
    assert distilled["unlabelled_utterances"] == len(transfer)
    assert baseline["unlabelled_utterances"] == 0
    assert (dst / "reports" / "plots" / "wer_by_group.png").exists()


def test_dvc_metrics_show_the_headline_only(repo):
    """`dvc metrics show` prints one narrow table: test WER per system, twin differences,
    gap_recovered and the int8 speed-up; the stage reports are plain outputs."""
    dst, env, _ = repo
    evaluation = json.loads((dst / "reports" / "evaluation.json").read_text())
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], dst, env))
    files = next(iter(shown.values()))["data"]  # the workspace
    assert list(files) == ["reports/metrics.json"]
    headline = files["reports/metrics.json"]["data"]
    assert headline["test_wer"] == evaluation["wer"]["test"]
    assert headline["wer_diff"] == evaluation["wer_diff"]

    def known(d):  # dvc leaves out null values (gap_recovered when the ensemble is not better)
        return {k: v for k, v in d.items() if v is not None}

    assert known(headline.get("gap_recovered", {})) == known(evaluation["gap_recovered"])
    columns = sum(len(v) if isinstance(v, dict) else 1 for v in headline.values())
    assert columns <= 20


def test_second_repro_runs_nothing(repo):
    dst, env, _ = repo
    again = sh(["dvc", "repro"], dst, env)
    assert ran_stages(again) == set()


def test_changing_alpha_reruns_only_that_student_and_downstream(repo):
    dst, env, _ = repo
    sh(["git", "add", "-A"], dst, env)
    sh(["git", "commit", "-qm", "first run"], dst, env)
    out = sh(["dvc", "exp", "run", "-S", "students.distilled.alpha=0.3"], dst, env)
    assert ran_stages(out) == {"train_student@distilled", "evaluate", "export"}


def test_new_soft_targets_retrain_the_student_from_scratch(repo):
    """A finished checkpoint must not be resumed on soft targets with another top-k; the
    twins read no soft targets and stay as they are."""
    dst, env, _ = repo
    out = sh(
        ["dvc", "exp", "run", "-S", "students.distilled.alpha=0.3", "-S", "soft_targets.top_k=4"], dst, env
    )
    assert ran_stages(out) == {
        "soft_targets",
        "train_student@distilled",
        "train_student@member",
        "evaluate",
        "export",
    }
    assert "student.distilled: resuming" not in out
    assert re.search(r"student\.distilled epoch 1 \(cap", out)


def test_kill_9_mid_training_then_repro_resumes(repo):
    """SIGKILL the whole `dvc repro` mid-epoch; the next `dvc repro` resumes from the checkpoint."""
    import signal
    import time

    import yaml

    dst, env, _ = repo
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["teachers"]["guide"]["epochs"] = 40
    params["train"]["checkpoint_every_steps"] = 1
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ckpt = dst / "checkpoints" / "teachers" / "guide" / "last.pt"
    if ckpt.exists():
        ckpt.unlink()
    proc = subprocess.Popen(
        ["dvc", "repro", "train_guide"],
        cwd=dst,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists()
    assert not (dst / "models" / "teachers" / "guide.pt").exists()  # nothing half-written to cache
    out = sh(["dvc", "repro", "train_guide"], dst, env)
    assert re.search(r"teacher\.guide: resuming at pass \d+, batch \d+", out), out[-3000:]
    assert (dst / "models" / "teachers" / "guide.pt").exists()
