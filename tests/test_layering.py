"""The code is layered: stage modules never import each other.

Three layers, each importing only from the layers below it:

1. Stage scripts (``stages/*.py``) and the command line (``pipeline/cli.py``): parse
   arguments, load params, call their stage's module(s), write the outputs.
2. Stage modules, the work of one stage each (:data:`STAGE_MODULES`): ``data`` (prepare),
   ``features``, ``tokenizer``, ``lm``, ``recipes`` (train_guide, train_teacher, train_twin, train_student),
   ``soft_targets``, ``export`` and ``benchmark`` (export), ``evaluate`` and ``summary``
   (evaluate).
3. Everything else in ``pipeline/``: shared code (config, audio, fbank, store, loader,
   model, ctc, kd, ensemble, wer, runtime, splits, ...), which imports no stage module.

What two stages share lives in layer 3, so a change to one stage's module never re-runs
another stage (``dvc.yaml`` lists every module a stage imports) and a stage's module can
be read without the others.
"""

import pytest
from import_graph import ROOT, pipeline_imports

# Stage script -> the stage modules it is built around.
STAGE_SCRIPTS = {
    "stages/prepare.py": {"data"},
    "stages/features.py": {"features"},
    "stages/tokenizer.py": {"tokenizer"},
    "stages/lm.py": {"lm"},
    "stages/train_teacher.py": {"recipes"},
    "stages/train_twin.py": {"recipes"},
    "stages/train_student.py": {"recipes"},
    "stages/soft_targets.py": {"soft_targets"},
    "stages/export.py": {"export", "benchmark"},
    "stages/evaluate.py": {"evaluate", "summary"},
}
STAGE_MODULES = set().union(*STAGE_SCRIPTS.values())
ENTRY_POINTS = {"cli"}  # layer 1, like the stage scripts


def module(path: str) -> str:
    """``pipeline/evaluate.py`` -> ``evaluate``."""
    return path.removeprefix("pipeline/").removesuffix(".py")


def stage_imports(path: str) -> set[str]:
    """The stage modules that the file at ``path`` imports."""
    return {module(m) for m in pipeline_imports(ROOT / path)} & STAGE_MODULES


def test_every_stage_script_is_classified():
    scripts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "stages").glob("*.py")}
    assert scripts == set(STAGE_SCRIPTS), "add the new stage script and its stage modules to STAGE_SCRIPTS"
    assert all((ROOT / "pipeline" / f"{m}.py").exists() for m in STAGE_MODULES)


@pytest.mark.parametrize("name", sorted(STAGE_MODULES))
def test_stage_modules_do_not_import_each_other(name):
    others = stage_imports(f"pipeline/{name}.py") - {name}
    assert not others, f"pipeline/{name}.py imports stage module(s) {sorted(others)}: share through layer 3"


def test_shared_modules_import_no_stage_module():
    shared = [
        p for p in sorted((ROOT / "pipeline").glob("*.py")) if p.stem not in STAGE_MODULES | ENTRY_POINTS
    ]
    offenders = {p.name: sorted(stage_imports(p.relative_to(ROOT).as_posix())) for p in shared}
    assert not {k: v for k, v in offenders.items() if v}, "shared modules must not import stage modules"


@pytest.mark.parametrize("script", sorted(STAGE_SCRIPTS))
def test_stage_scripts_import_only_their_own_stage_modules(script):
    others = stage_imports(script) - STAGE_SCRIPTS[script]
    assert not others, f"{script} imports the stage module(s) {sorted(others)} of another stage"


def test_the_check_sees_an_import_between_stage_modules(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pipeline.soft_targets import build_soft_targets\n")
    assert {module(m) for m in pipeline_imports(bad)} & STAGE_MODULES == {"soft_targets"}
