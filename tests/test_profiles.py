"""Profiles: overlays of params.yaml, applied in place or run with the real dvc exp run."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from testkit import command_env

from pipeline.config import ParamsError, load_params
from pipeline.errors import InputError
from pipeline.profiles import Profile, ProfileError, applied, available

ROOT = Path(__file__).resolve().parents[1]
PROFILES = available(ROOT)


@pytest.fixture
def repo(tmp_path):
    """params.yaml and profiles/ of this checkout in a folder of their own."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    return tmp_path


def test_the_shipped_profiles_are_short_overlays():
    assert {"tiny", "small", "gpu-librispeech100"} <= set(PROFILES)
    full = len((ROOT / "params.yaml").read_text().splitlines())
    for name in PROFILES:
        assert len((ROOT / "profiles" / f"{name}.yaml").read_text().splitlines()) < full / 2, name


def leaves(tree: dict, prefix: str = ""):
    """``(dotted key, value)`` of every non-mapping value in ``tree``."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("name", PROFILES)
def test_applying_a_profile_rewrites_params_yaml_with_its_values(repo, name):
    profile = Profile(name, repo / "params.yaml", repo)
    overlay = yaml.safe_load((repo / "profiles" / f"{name}.yaml").read_text())
    profile.write()
    text = (repo / "params.yaml").read_text()
    assert applied(text) == name
    params = load_params(repo / "params.yaml")
    assert params == profile.result
    dumped = json.loads(json.dumps(params.model_dump()))  # tuples as lists, as YAML reads them
    for key, value in leaves(overlay):  # every value the profile sets, and every model it removes
        node = dumped
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        assert node == value, key
    assert "# CUDA only; CPU stays fp32" in text  # params.yaml's own comments stay
    Profile(name, repo / "params.yaml", repo).write()  # applying it again changes nothing
    assert (repo / "params.yaml").read_text() == text


def test_a_profile_is_not_stacked_on_another(repo):
    Profile("tiny", repo / "params.yaml", repo).write()
    with pytest.raises(ProfileError, match="already has profile 'tiny' applied.*git checkout"):
        Profile("small", repo / "params.yaml", repo)


@pytest.mark.parametrize("name", PROFILES)
def test_the_switch_and_dvc_set_params_give_the_same_params(repo, name):
    """`asr-distill profile` and `dvc exp run -S` (DVC's own override code) agree."""
    from dvc.utils.hydra import apply_overrides

    profile = Profile(name, repo / "params.yaml", repo)
    shutil.copy(repo / "params.yaml", repo / "via_dvc.yaml")
    apply_overrides(repo / "via_dvc.yaml", profile.overrides())
    profile.write()
    assert yaml.safe_load((repo / "via_dvc.yaml").read_text()) == yaml.safe_load(
        (repo / "params.yaml").read_text()
    )


@pytest.mark.parametrize(
    "overlay, message",
    [
        ({"train": {"lrr": 0.1}}, r"bad\.yaml \(applied to .*params\.yaml\): unknown key 'train\.lrr'"),
        ({"soft_targets": {"top_k": 0}}, r"bad\.yaml .*'soft_targets\.top_k'"),
        ({"students": {"nobody": None}}, r"bad\.yaml: 'students\.nobody: null' removes an entry"),
        ({"twins": {"nobody": None}}, r"bad\.yaml: 'twins\.nobody: null' removes an entry"),
        ({"twins": {"extra": {"seed": 0}}}, r"(?s)bad\.yaml .*missing key 'twins\.extra\.epochs'"),
        (
            {"students": {"extra": {"alpha": 0.0}}},
            r"bad\.yaml .*alpha 0 are directly trained twins: move them under twins",
        ),
    ],
)
def test_a_bad_key_in_a_profile_names_the_key_and_the_file(repo, overlay, message):
    (repo / "bad.yaml").write_text(yaml.safe_dump(overlay))
    with pytest.raises((ProfileError, ParamsError), match=message):
        Profile(str(repo / "bad.yaml"), repo / "params.yaml", repo)
    with pytest.raises(InputError, match="no such profile .*tiny"):
        Profile("tinny", repo / "params.yaml", repo)


def test_a_profile_runs_as_a_dvc_experiment_without_touching_the_workspace(repo):
    """`asr-distill profile small --exp-run --temp`: the experiment records the overlay's params."""
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  show:\n"
        "    cmd: python -c \"import yaml, json; print(json.dumps(yaml.safe_load(open('params.yaml'))))\""
        " > shown.json\n"
        "    params: [train, teachers, twins, students]\n"
        "    outs: [shown.json]\n"
    )
    env = command_env()

    def sh(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=repo, env=env, text=True, capture_output=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "defaults")
    before = (repo / "params.yaml").read_text()
    sh("asr-distill", "profile", "small", "--exp-run", "--temp", "-n", "small")
    assert (repo / "params.yaml").read_text() == before
    exps = json.loads(sh("dvc", "exp", "show", "--json"))
    runs = [e for baseline in exps for e in baseline.get("experiments") or []]
    [run] = [e for e in runs if e["name"] == "small"]
    recorded = run["revs"][0]["data"]["params"]["params.yaml"]["data"]
    expected = Profile("small", repo / "params.yaml", repo).result
    assert recorded["train"]["lr"] == expected.train.lr != load_params(repo / "params.yaml").train.lr
    assert set(recorded["teachers"]["others"]) == set(expected.teachers.others) == {"t1"}
    assert recorded["students"]["distilled"]["pseudo_labels"] is False
    assert recorded["twins"]["baseline"]["epochs"] == expected.twins["baseline"].epochs
