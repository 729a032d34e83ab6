"""Training loop: a run interrupted mid-epoch resumes from its checkpoint to the same weights."""

import json

import pytest
import torch
from tiny_corpus import TEXTS, make_corpus, tiny_model

from pipeline.config import default_params
from pipeline.errors import MissingError
from pipeline.loader import BatchLoader
from pipeline.model import load_model
from pipeline.recipes import _ctc_only, recipe_fingerprint, train_student, train_twin
from pipeline.store import Store
from pipeline.train import TrainJob, train


@pytest.fixture
def corpus(tmp_path):
    sp = make_corpus(tmp_path)
    return BatchLoader(Store(tmp_path / "feats"), TEXTS, sp, batch_frames=400), sp


class Crash(RuntimeError):
    pass


def run(tmp_path, loader, sp, tag, loss_fn=_ctc_only, ckpt="ckpt"):
    model = tiny_model(dropout=0.1)
    opts = dict(
        lr=1e-3,
        warmup_steps=2,
        batch_frames=400,
        threads=1,
        checkpoint_every_steps=2,
        time_mask=10,
        freq_mask=5,
    )
    cfg = default_params({"train": opts}).train
    job = TrainJob(
        name="t",
        cfg=cfg,
        epochs=2,
        seed=3,
        loss_fn=loss_fn,
        checkpoint_dir=tmp_path / ckpt,
        live_dir=tmp_path / f"live-{tag}",
        fingerprint={"tag": "same"},
    )
    metrics = train(model, loader, loader, sp, job, tmp_path / f"{tag}.pt")
    return load_model(tmp_path / f"{tag}.pt"), metrics


def test_interrupted_run_resumes_to_identical_weights(tmp_path, corpus):
    loader, sp = corpus
    assert len(loader) >= 4, "need several batches per epoch to interrupt mid-epoch"
    reference, ref_metrics = run(tmp_path, loader, sp, "reference", ckpt="ckpt-ref")

    calls = {"n": 0}

    def crashing(batch, logits, lengths):
        calls["n"] += 1
        if calls["n"] == len(loader) + 3:  # mid-way through the second epoch
            raise Crash
        return _ctc_only(batch, logits, lengths)

    with pytest.raises(Crash):
        run(tmp_path, loader, sp, "resumed", loss_fn=crashing)
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["batch"] > 0  # a mid-epoch checkpoint exists
    assert not (tmp_path / "resumed.pt").exists()  # no half-written output

    resumed, metrics = run(tmp_path, loader, sp, "resumed")
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert metrics["steps"] == ref_metrics["steps"] == 2 * len(loader)
    curve = tmp_path / "live-resumed" / "metrics.json"
    assert json.loads(curve.read_text())["step"] == 1  # two epochs logged (steps 0 and 1)


@pytest.mark.parametrize("same_config", [True, False])
def test_checkpoint_is_used_only_for_the_same_config(tmp_path, corpus, same_config):
    loader, sp = corpus
    run(tmp_path, loader, sp, "first")
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    state["model"] = {k: torch.zeros_like(v) for k, v in state["model"].items()}  # a marker
    if not same_config:
        state["digest"] = "written-for-another-config"
    torch.save(state, tmp_path / "ckpt" / "last.pt")
    model, _ = run(tmp_path, loader, sp, "second")
    weight = model.output.weight
    # A finished checkpoint of the same config is taken as is; another config's is ignored.
    assert bool((weight == 0).all()) is same_config


def test_update_budget_is_counted_in_train_epochs_not_in_passes(tmp_path, corpus):
    """A student reading more (or less) audio than train gets the same number of updates."""
    loader, sp = corpus
    model = tiny_model(dropout=0.1)
    cfg = default_params({"train": dict(lr=1e-3, warmup_steps=2, batch_frames=400, threads=1)}).train
    epoch_steps = len(loader) + 2  # e.g. train's batches, while this loader holds fewer
    job = TrainJob(
        name="s",
        cfg=cfg,
        epochs=2,
        seed=3,
        loss_fn=_ctc_only,
        checkpoint_dir=tmp_path / "ck",
        live_dir=tmp_path / "live",
        fingerprint={},
        epoch_steps=epoch_steps,
    )
    metrics = train(model, loader, loader, sp, job, tmp_path / "s.pt")
    assert metrics["steps"] == 2 * epoch_steps
    assert metrics["passes"] == round(2 * epoch_steps / len(loader), 2)
    history = json.loads(torch.load(tmp_path / "s.pt", weights_only=True)["extra"]["history"])
    assert [row["epoch"] for row in history] == [1, 2]  # dev scored once per budget epoch


def test_a_twin_keeps_the_fingerprint_of_a_student_with_alpha_0():
    """The recipe a twin's checkpoints are keyed by carries alpha 0.0, so a twin resumes from
    (and is the same model as) one trained as a student with alpha 0."""
    params = default_params()
    assert recipe_fingerprint(params.twins["baseline"]) == {
        "labelled_fraction": 1.0,
        "transfer": True,
        "kd_frames": "all",
        "pseudo_labels": False,
        "kd_shift": 0,
        "alpha": 0.0,
        "seed": 0,
    }
    assert recipe_fingerprint(params.students["distilled"])["alpha"] == 0.5


def test_twins_and_students_train_in_their_own_stage():
    params = default_params()
    with pytest.raises(
        MissingError, match="students.baseline: no such distilled student .a twin: train_twin"
    ):
        train_student(params, "baseline", {})
    with pytest.raises(MissingError, match="twins.distilled: no such twin"):
        train_twin(params, "distilled", {})
