"""The code is layered: a stage package imports no other stage package.

Three layers, each importing only from the layers below it:

1. Stage scripts (``stages/*.py``) and the command line (``pipeline/cli.py``): parse
   arguments and call one function of their stage's package.
2. Stage packages, named after the ``dvc.yaml`` stages they do (:data:`STAGE_PACKAGES`):
   ``prepare``, ``features``, ``tokenizer``, ``lm``, ``train`` (``train_guide``,
   ``train_teacher``, ``train_twin``, ``train_student``), ``soft_targets``, ``export`` and
   ``evaluate``.
3. Everything else in ``pipeline/``: the shared packages (``audio``, ``model``, ``deploy``,
   ``config``) and modules (``io``, ``store``, ``loader``, ``tokens``, ``wer``, ...), which
   import no stage package.

What two stages share lives in layer 3, so a change to one stage's package never re-runs
another stage (``dvc.yaml`` lists every file a stage imports) and a stage's package can be
read without the others.
"""

import pytest
from import_graph import ROOT, pipeline_imports

# Stage script -> the stage package it calls.
STAGE_SCRIPTS = {
    "stages/prepare.py": "prepare",
    "stages/features.py": "features",
    "stages/tokenizer.py": "tokenizer",
    "stages/lm.py": "lm",
    "stages/train_teacher.py": "train",
    "stages/train_twin.py": "train",
    "stages/train_student.py": "train",
    "stages/soft_targets.py": "soft_targets",
    "stages/export.py": "export",
    "stages/evaluate.py": "evaluate",
}
STAGE_PACKAGES = set(STAGE_SCRIPTS.values())
ENTRY_POINTS = {"pipeline/cli.py"}  # layer 1, like the stage scripts


def package(path: str) -> str | None:
    """``pipeline/evaluate/score.py`` -> ``evaluate``; a top-level module -> None."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else None


def stage_imports(path: str) -> set[str]:
    """The stage packages that the file at ``path`` imports."""
    return {package(m) for m in pipeline_imports(ROOT / path)} & STAGE_PACKAGES


def files(where: str) -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / where).rglob("*.py"))


def test_every_stage_script_is_classified():
    assert set(files("stages")) == set(STAGE_SCRIPTS), "add the new stage script and its package"
    assert all((ROOT / "pipeline" / p / "__init__.py").exists() for p in STAGE_PACKAGES)


def test_every_dvc_stage_names_its_package():
    """A ``dvc.yaml`` stage's name leads to its package: the package is the stage's name or,
    for the training stages, its first word."""
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in stages:
        pkg = name if name in STAGE_PACKAGES else name.split("_")[0]
        assert pkg in STAGE_PACKAGES, f"dvc.yaml stage {name} has no package pipeline/{pkg}/"


@pytest.mark.parametrize("name", sorted(STAGE_PACKAGES))
def test_stage_packages_do_not_import_each_other(name):
    for path in files(f"pipeline/{name}"):
        others = stage_imports(path) - {name}
        assert not others, f"{path} imports stage package(s) {sorted(others)}: share through layer 3"


def test_shared_code_imports_no_stage_package():
    shared = [p for p in files("pipeline") if package(p) not in STAGE_PACKAGES and p not in ENTRY_POINTS]
    offenders = {p: sorted(stage_imports(p)) for p in shared}
    assert not {k: v for k, v in offenders.items() if v}, "shared modules must not import stage packages"


@pytest.mark.parametrize("script", sorted(STAGE_SCRIPTS))
def test_stage_scripts_import_only_their_own_stage_package(script):
    others = stage_imports(script) - {STAGE_SCRIPTS[script]}
    assert not others, f"{script} imports the stage package(s) {sorted(others)} of another stage"


def test_the_check_sees_an_import_between_stage_packages(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pipeline.soft_targets.build import build_soft_targets\n")
    assert {package(m) for m in pipeline_imports(bad)} & STAGE_PACKAGES == {"soft_targets"}
