"""experiments/sweep.py: parameter overrides, the sweep table and the size-ladder rows."""

from pathlib import Path

import pytest
import yaml
from testkit import load_experiment

from pipeline.config import ParamsError, override, parse_params

ROOT = Path(__file__).resolve().parents[1]
sweep = load_experiment("sweep")
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_every_variant_is_valid_params():
    for name, variants in sweep.SWEEPS.items():
        for variant, (student, changes, twin) in variants.items():
            params = parse_params(override(RAW, changes), f"{name}.{variant}")
            if student in sweep.TEACHERS:
                assert student in params.teacher_names() and not changes
            else:
                assert student in params.student_names()
                assert (twin is None) == (student in params.twins)  # a twin variant has no twin
            assert twin is None or twin in variants


def test_override_copies_and_sets_dotted_keys():
    out = override(RAW, {"students.distilled.alpha": 0.9, "train.lr": 0.001})
    assert out["students"]["distilled"]["alpha"] == 0.9 and out["train"]["lr"] == 0.001
    assert RAW["students"]["distilled"]["alpha"] == 0.5  # the original is untouched


def test_mismatched_twins_are_refused():
    with pytest.raises(ParamsError, match="labelled_fraction"):
        parse_params(override(RAW, {"students.distilled.labelled_fraction": 0.2}))


def result():
    test = {
        "baseline": {"wer": 0.5, "wer_ci": [0.49, 0.51]},
        "distilled": {
            "wer": 0.45,
            "wer_ci": [0.44, 0.46],
            "twin": "baseline",
            "wer_diff": -0.05,
            "wer_diff_ci": [-0.06, -0.04],
            "gap_recovered": 0.5,
            "gap_recovered_ci": [0.4, 0.6],
        },
        "ensemble": {"wer": 0.4, "wer_ci": [0.39, 0.41]},
    }
    return {
        "date": "2026-01-01",
        "test": test,
        "dev": test,
        "variants": {
            "baseline": {"params": 100, "changes": {}, "seconds": 10.0},
            "distilled": {"params": 100, "changes": {"students.distilled.alpha": 0.9}, "seconds": 12.0},
        },
    }


def test_markdown_rows_and_ladder():
    md = sweep.markdown(result())
    assert "| distilled | `students.distilled.alpha=0.9` | 100 | 0.4500 |" in md
    assert "[-0.0600, -0.0400]" in md and md.count("\n") == 5
    ladder = sweep.ladder_json(result())
    assert ladder["rows"] == [
        {"params": 100, "twin": [0.5, 0.49, 0.51], "distilled": [0.45, 0.44, 0.46], "name": "distilled"}
    ]
    assert ladder["ensemble"] == 0.4


def test_streaming_variants_are_valid_params():
    streaming = load_experiment("streaming")
    for name, (student, changes, twin) in streaming.variants(RAW, shift=3).items():
        params = parse_params(sweep.override(RAW, changes), name)
        model = params.student_model(student)
        assert model.streaming == name.startswith("stream"), name
        assert twin is None or twin in streaming.variants(RAW, shift=3)
    assert params.students["stream_distilled_shift"].kd_shift == 3
    assert params.twins["stream_baseline"].model.streaming


def test_score_only_keeps_the_trained_variants_and_their_twins(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    (run / "models/students").mkdir(parents=True)
    (out / "models").mkdir(parents=True)
    (run / "models/students/baseline.pt").write_bytes(b"x")
    (run / "models/students/distilled.pt").write_bytes(b"x")
    (out / "models/distilled_fifth.pt").write_bytes(b"x")  # its twin baseline_fifth is missing
    variants = {**sweep.SWEEPS["levers"], **sweep.SWEEPS["scarce"]}
    assert sorted(sweep.trained(run, out, variants)) == ["baseline", "distilled"]
    with pytest.raises(FileNotFoundError, match="no variant of this sweep is trained"):
        sweep.trained(run, out, sweep.SWEEPS["scarce"])


def test_transfer_sweep_keeps_the_runs_transfer_rows_as_its_prefix(tmp_path, monkeypatch):
    assert list(sweep.SWEEPS["transfer"]) == ["baseline", "distilled"]  # its sizes come at run time
    variants = sweep.transfer_variants([80])
    assert list(variants) == ["baseline", "distilled", "transfer80"]
    assert variants["transfer80"] == ("distilled", {sweep.TRANSFER_KEY: 80}, "baseline")
    run, folder = tmp_path / "run", tmp_path / "out/data/transfer4"
    (run / "data/manifests").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (run / f"data/manifests/{split}.jsonl").write_text('{"id": "x"}\n')
    old = [{"id": f"transfer-{i:06d}", "audio": f"data/audio/transfer/transfer-{i:06d}.wav"} for i in (0, 1)]
    sweep.write_jsonl(run / "data/manifests/transfer.jsonl", old)
    new = [{"id": f"transfer-{i:06d}", "audio": "a.wav"} for i in (2, 3)]
    monkeypatch.setattr(sweep, "new_transfer_rows", lambda cfg, start, audio: (new, []))
    sweep.derived_manifests(run, folder, None, 2)
    rows = sweep.read_jsonl(folder / "manifests/transfer.jsonl")
    assert rows == [{**r, "audio": str(run.resolve() / r["audio"])} for r in old] + new
    assert (folder / "manifests/train.jsonl").resolve() == (run / "data/manifests/train.jsonl").resolve()
    params = parse_params(RAW)
    with pytest.raises(ValueError, match="changes only"):
        sweep.variant_data(run, tmp_path, RAW, params, {"data.synthetic.train_utterances": 10})
