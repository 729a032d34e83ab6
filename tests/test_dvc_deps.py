"""dvc.yaml lists, for every stage, exactly the pipeline modules its script imports.

A stage's code is its script plus every ``pipeline`` module the script imports, directly or
through other modules (at module level or inside a function). A module missing from the
stage's ``deps`` would let a change there leave ``dvc status`` clean and the results stale;
a module listed but never imported re-runs the stage for nothing.
"""

import re

import pytest
import yaml
from import_graph import ROOT, closure

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_definition(stage: dict) -> dict:
    return stage["do"] if "foreach" in stage else stage


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_its_imports(name):
    stage = stage_definition(STAGES[name])
    script = re.search(r"python (stages/\w+\.py)", stage["cmd"]).group(1)
    code = {d for d in stage["deps"] if d.startswith(("stages/", "pipeline/"))}
    expected = closure(script)
    missing, extra = sorted(expected - code), sorted(code - expected)
    assert not missing, f"dvc.yaml stage {name}: deps miss {missing} (imported by {script})"
    assert not extra, f"dvc.yaml stage {name}: deps list {extra}, which {script} never imports"


def test_closure_follows_imports_through_modules():
    # stages/train_student.py imports pipeline.train.recipes, which imports pipeline.train.kd
    assert {"pipeline/train/recipes.py", "pipeline/train/kd.py", "pipeline/config/schema.py"} <= closure(
        "stages/train_student.py"
    )


def test_only_distilled_students_depend_on_the_soft_targets():
    """A twin never reads the soft targets: a change of the teachers or of soft_targets.*
    re-runs the distilled students (train_student), never a twin (train_twin)."""
    twin, student = (stage_definition(STAGES[n]) for n in ("train_twin", "train_student"))
    assert STAGES["train_twin"]["foreach"] == "${twins}"
    assert STAGES["train_student"]["foreach"] == "${students}"
    assert not [d for d in twin["deps"] if d.startswith("data/soft_targets")]
    assert "--soft-targets" not in twin["cmd"]
    assert not [p for p in twin["params"] if str(p).startswith(("soft_targets", "teachers", "students"))]
    assert "data/soft_targets" in student["deps"] and "--soft-targets data/soft_targets" in student["cmd"]
    for stage in (twin, student):  # both write where every reader of a student looks
        assert "models/students/${key}.pt" in stage["outs"]
