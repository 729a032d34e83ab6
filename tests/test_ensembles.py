"""experiments/ensembles.py: the independent teachers' params and the paired ensemble scores."""

from pathlib import Path

import yaml
from testkit import load_experiment

from pipeline.config import parse_params

ROOT = Path(__file__).resolve().parents[1]
ensembles = load_experiment("ensembles")
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_independent_teacher_trains_from_a_random_init_under_the_guides_cap():
    params = parse_params(RAW)
    assert params.teachers.others["t1"].fork is not None  # the default forks
    changed = ensembles.independent_params(RAW, params, "t1", threads=1)
    t1 = changed.teachers.others["t1"]
    assert t1.fork is None and t1.epochs == params.teachers.guide.epochs
    assert changed.teachers.others["t2"] == params.teachers.others["t2"]
    assert "member" not in changed.students  # its twin t1 is no longer a directly trained model
    assert "distilled" in changed.students and changed.train.threads == 1
    assert RAW["teachers"]["others"]["t1"]["fork"] is not None  # the raw params are untouched


def test_systems_pair_the_two_ensembles_around_the_guide(tmp_path):
    params = parse_params(RAW)
    files = ensembles.systems(tmp_path / "run", tmp_path / "out", params)
    guide = tmp_path / "run/models/teachers/guide.pt"
    assert files["ensemble (forked)"] == [
        guide,
        *(tmp_path / f"run/models/teachers/{n}.pt" for n in ("t1", "t2")),
    ]
    assert files["ensemble (independent)"] == [
        guide,
        *(tmp_path / f"out/models/{n}.pt" for n in ("t1", "t2")),
    ]
    assert files["t2 (independent)"] == [tmp_path / "out/models/t2.pt"]


def test_score_compares_the_ensembles_paired():
    params = parse_params(RAW)
    refs = ["the cat sat", "a dog ran far", "we go home now"] * 20
    good = list(refs)
    bad = ["the cat sad", "a dog ran", "we go home now"] * 20
    hyps = {
        "guide": bad,
        "t1 (forked)": bad,
        "t1 (independent)": good,
        "ensemble (forked)": bad,
        "ensemble (independent)": good,
    }
    out = ensembles.score(params, {"refs": refs, "hyps": hyps, "agreement": {}})
    d = out["independent_minus_forked"]
    assert d["diff"] < 0 and d["ci"][1] < 0  # every resample favours the independent ensemble
    assert out["wer"]["ensemble (independent)"]["wer"] == 0.0
    best = out["ensemble (forked) minus best member"]
    assert best["best"] in ("guide", "t1 (forked)") and best["diff"] == 0.0
    assert out["ensemble (independent) minus best member"]["best"] == "t1 (independent)"
