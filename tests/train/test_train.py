"""Training loop: a run interrupted mid-epoch resumes from its checkpoint to the same weights."""

import json

import pytest
import torch
from tiny_corpus import TEXTS, make_corpus, tiny_job, tiny_model

from pipeline.config import AverageConfig, ConvergenceConfig, default_params
from pipeline.errors import MissingError
from pipeline.loader import BatchLoader
from pipeline.model.conformer import load_model
from pipeline.store import Store
from pipeline.train.loop import (
    Checkpointer,
    average_candidates,
    average_state,
    convergence_state,
    epochs_to_keep,
    lr_at,
    train,
)
from pipeline.train.paths import TrainPaths
from pipeline.train.recipes import ctc_only, recipe_fingerprint, train_student, train_twin


@pytest.fixture
def corpus(tmp_path):
    sp = make_corpus(tmp_path)
    return BatchLoader(Store(tmp_path / "feats"), TEXTS, sp, batch_frames=400), sp


class Crash(RuntimeError):
    pass


# Stops at epoch 2 of a cap of 4: epoch 2 cannot improve on epoch 1 by half.
STOPS_AT_2 = ConvergenceConfig(patience=1, min_improvement=0.5)


def run(tmp_path, loader, sp, tag, loss_fn=ctc_only, ckpt="ckpt", **job):
    model = tiny_model(dropout=0.1)
    opts = dict(checkpoint_every_steps=2, time_mask=10, freq_mask=5, average={"counts": [1, 2]})
    job = tiny_job(tmp_path, tag, opts, loss_fn=loss_fn, checkpoint_dir=tmp_path / ckpt, **job)
    job.fingerprint = {"tag": "same"}
    metrics = train(model, loader, loader, sp, job, tmp_path / f"{tag}.pt")
    return load_model(tmp_path / f"{tag}.pt"), metrics


def test_interrupted_run_resumes_to_identical_weights_and_stop(tmp_path, corpus):
    """Killed mid-epoch, a run resumes to the same weights, the same stopping epoch and the
    same average: the rule's state and the kept epoch weights survive the restart."""
    loader, sp = corpus
    assert len(loader) >= 4, "need several batches per epoch to interrupt mid-epoch"
    rule = dict(epochs=4, convergence=STOPS_AT_2)
    reference, ref_metrics = run(tmp_path, loader, sp, "reference", ckpt="ckpt-ref", **rule)
    assert ref_metrics["stopped_epoch"] == 2 and ref_metrics["converged"] is True

    calls = {"n": 0}

    def crashing(batch, logits, lengths):
        calls["n"] += 1
        if calls["n"] == len(loader) + 3:  # mid-way through the second epoch
            raise Crash
        return ctc_only(batch, logits, lengths)

    with pytest.raises(Crash):
        run(tmp_path, loader, sp, "resumed", loss_fn=crashing, **rule)
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["batch"] > 0  # a mid-epoch checkpoint exists
    assert not (tmp_path / "resumed.pt").exists()  # no half-written output

    resumed, metrics = run(tmp_path, loader, sp, "resumed", **rule)
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    for key in ("steps", "stopped_epoch", "best_epoch", "converged", "average", "dev_wer"):
        assert metrics[key] == ref_metrics[key], key
    assert metrics["steps"] == 2 * len(loader)
    curve = tmp_path / "live-resumed" / "metrics.json"
    assert json.loads(curve.read_text())["step"] == 1  # two epochs logged (steps 0 and 1)


@pytest.mark.parametrize("same_config", [True, False])
def test_checkpoint_is_used_only_for_the_same_config(tmp_path, corpus, same_config):
    loader, sp = corpus
    run(tmp_path, loader, sp, "first")
    path = tmp_path / "ckpt" / "last.pt"
    state = torch.load(path, weights_only=True)
    if not same_config:
        state["digest"] = "written-for-another-config"
    torch.save(state, path)
    calls = {"n": 0}

    def counting(batch, logits, lengths):
        calls["n"] += 1
        return ctc_only(batch, logits, lengths)

    run(tmp_path, loader, sp, "second", loss_fn=counting)
    # A finished checkpoint of the same config is taken as is; another config's is ignored.
    assert calls["n"] == (0 if same_config else 2 * len(loader))


def test_a_run_killed_after_it_stopped_finishes_without_training_more(tmp_path, corpus):
    loader, sp = corpus
    _, first = run(tmp_path, loader, sp, "first", epochs=4, convergence=STOPS_AT_2)
    (tmp_path / "first.pt").unlink()  # as if killed before the model was written
    _, again = run(tmp_path, loader, sp, "first", epochs=4, convergence=STOPS_AT_2)
    assert again["steps"] == first["steps"] and again["stopped_epoch"] == 2


def test_the_rule_stops_before_the_cap_and_a_run_at_its_cap_is_not_converged(tmp_path, corpus):
    loader, sp = corpus
    _, stopped = run(tmp_path, loader, sp, "stopped", ckpt="a", epochs=4, convergence=STOPS_AT_2)
    _, capped = run(tmp_path, loader, sp, "capped", ckpt="b", epochs=2)
    assert (stopped["stopped_epoch"], stopped["converged"], stopped["steps"]) == (2, True, 2 * len(loader))
    assert (capped["stopped_epoch"], capped["converged"]) == (2, False)
    history = json.loads(torch.load(tmp_path / "stopped.pt", weights_only=True)["extra"]["history"])
    assert [row["epoch"] for row in history] == [1, 2]


def test_the_saved_model_is_the_average_that_scores_best_on_dev(tmp_path, corpus):
    loader, sp = corpus
    model, metrics = run(tmp_path, loader, sp, "avg", epochs=3)
    candidates = metrics["average_candidates"]
    history = json.loads(torch.load(tmp_path / "avg.pt", weights_only=True)["extra"]["history"])
    expected = average_candidates([row["dev_wer"] for row in history], [1, 2])
    assert [(c["kind"], c["count"], c["epochs"]) for c in candidates] == expected
    assert len(expected) >= 3  # the last epoch, the last two, and the best two at least
    chosen = min(candidates, key=lambda c: c["dev_wer"])
    assert metrics["dev_wer"] == chosen["dev_wer"]
    assert metrics["average"]["epochs"] == chosen["epochs"]
    ckpt = Checkpointer(tmp_path / "ckpt", "unused")
    epochs = [torch.load(ckpt.epoch_path(e), weights_only=True)["model"] for e in chosen["epochs"]]
    weight = model.state_dict()["output.weight"]
    torch.testing.assert_close(weight, torch.stack([e["output.weight"] for e in epochs]).mean(0))


def test_averaging_two_states_gives_their_mean_and_keeps_integer_buffers():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(4)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(7)}
    out = average_state([a, b])
    assert out["w"].tolist() == [2.0, 4.0] and int(out["n"]) == 7


@pytest.mark.parametrize(
    "wers, patience, gain, expected",
    [
        ([0.9, 0.8, 0.7], 2, 0.01, (3, 0, False)),
        ([0.9, 0.8, 0.799, 0.801], 2, 0.01, (3, 2, True)),  # 0.799 is no 1 % gain on 0.8
        ([0.9, 0.8, 0.799, 0.801], 3, 0.01, (3, 2, False)),
        ([0.9, 0.8, 0.85, 0.7], 2, 0.01, (4, 0, False)),  # a gain resets the count
        ([], 2, 0.01, (0, 0, False)),
    ],
)
def test_convergence_rule(wers, patience, gain, expected):
    state = convergence_state(wers, ConvergenceConfig(patience=patience, min_improvement=gain))
    assert (state.best_epoch, state.since_improvement, state.stop) == expected


def test_average_candidates_and_the_epochs_kept_for_them():
    wers = [0.9, 0.5, 0.6, 0.55, 0.7]
    cands = average_candidates(wers, [1, 3])
    assert cands == [("last", 1, [5]), ("last", 3, [3, 4, 5]), ("best", 1, [2]), ("best", 3, [2, 3, 4])]
    assert epochs_to_keep(wers, AverageConfig(counts=[1, 3])) == {2, 3, 4, 5}
    assert average_candidates([0.5], [1, 3]) == [("last", 1, [1])]  # one epoch: one candidate


def test_eden_does_not_depend_on_the_cap_and_cosine_does():
    eden = default_params({"train.warmup_steps": 10}).train
    cosine = default_params({"train.warmup_steps": 10, "train.schedule.kind": "cosine"}).train
    for step in (0, 5, 50, 500):
        assert lr_at(step, 100, 10, eden) == lr_at(step, 100, 60, eden)
    assert lr_at(500, 100, 10, cosine) != lr_at(500, 100, 60, cosine)
    assert lr_at(9, 100, 10, eden) == eden.lr  # the warm-up ends at the peak
    rates = [lr_at(s, 100, 10, eden) for s in range(10, 5000, 100)]
    assert all(a > b for a, b in zip(rates, rates[1:]))  # then it only decays


def test_update_budget_is_counted_in_train_epochs_not_in_passes(tmp_path, corpus):
    """A student reading more (or less) audio than train gets the same number of updates."""
    loader, sp = corpus
    model = tiny_model(dropout=0.1)
    epoch_steps = len(loader) + 2  # e.g. train's batches, while this loader holds fewer
    job = tiny_job(tmp_path, "s", epoch_steps=epoch_steps)
    metrics = train(model, loader, loader, sp, job, tmp_path / "s.pt")
    assert metrics["steps"] == 2 * epoch_steps
    assert metrics["passes"] == round(2 * epoch_steps / len(loader), 2)
    history = json.loads(torch.load(tmp_path / "s.pt", weights_only=True)["extra"]["history"])
    assert [row["epoch"] for row in history] == [1, 2]  # dev scored once per budget epoch


def test_a_twin_keeps_the_fingerfpof_a_student_with_alpha_0():
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


def train_paths(root, **optional):
    """Paths of a training run under ``root`` (none of them need exist)."""
    names = ("features", "manifests", "tokenizer", "model", "checkpoints", "live")
    return TrainPaths(**{n: root / n for n in names}, **optional)


def test_twins_and_students_train_in_their_own_stage(tmp_path):
    params = default_params()
    with pytest.raises(
        MissingError, match="students.baseline: no such distilled student .a twin: train_twin"
    ):
        train_student(params, "baseline", train_paths(tmp_path))
    with pytest.raises(MissingError, match="twins.distilled: no such twin"):
        train_twin(params, "distilled", train_paths(tmp_path))


def test_a_missing_optional_path_is_none_and_named_when_needed(tmp_path):
    from pipeline.train.recipes import student_data

    paths = train_paths(tmp_path, guide=str(tmp_path / "guide.pt"))
    assert paths.guide == tmp_path / "guide.pt" and paths.soft_targets is None
    assert paths.require("guide") == tmp_path / "guide.pt"
    with pytest.raises(MissingError, match="soft_targets path, which was not given: pass --soft-targets"):
        paths.require("soft_targets")
    (tmp_path / "manifests").mkdir()
    rows = [json.dumps({"id": u, "text": t}) + "\n" for u, t in TEXTS.items()]
    (tmp_path / "manifests" / "train.jsonl").write_text("".join(rows))
    with pytest.raises(MissingError, match="pass --soft-targets"):  # a distilled student reads them
        student_data(default_params(), "distilled", paths)


def test_a_fork_starts_from_the_guides_weights_on_its_own_cycle(tmp_path):
    from pipeline.config import ForkConfig
    from pipeline.model.conformer import save_model
    from pipeline.train.recipes import fork_fingerprint, fork_from

    guide = tiny_model(dropout=0.1)
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.5)  # weights no seeded init has
    save_model(guide, tmp_path / "guide.pt")
    cfg = default_params({"train": {"lr": 1e-3, "warmup_steps": 2}}).train
    fresh = tiny_model(dropout=0.15)
    assert cfg is fork_from(fresh, None, cfg, None)  # no fork: a random init, the run's own schedule
    assert not torch.equal(fresh.state_dict()["output.weight"], guide.state_dict()["output.weight"])
    fork = ForkConfig(init="guide", lr=3e-4)
    forked = fork_from(fresh, fork, cfg, tmp_path / "guide.pt")
    for key, value in guide.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert forked.lr == 3e-4 and forked.schedule.kind == "cosine" and cfg.schedule.kind == "eden"
    assert lr_at(2, 10, 4, forked) == pytest.approx(3e-4)  # the peak after its warm-up
    assert lr_at(40, 10, 4, forked) == pytest.approx(0.05 * 3e-4)  # 5 % at the cap
    fp = fork_fingerprint(fork, tmp_path / "guide.pt")
    assert fp["lr"] == 3e-4 and len(fp["from"]) > 8
    with pytest.raises(MissingError, match="a fork from the guide needs its model: pass --guide"):
        fork_from(tiny_model(dropout=0.1), fork, cfg, None)


def test_a_training_stage_parses_its_paths_and_leaves_an_absent_guide_none():
    from pipeline.train.stage import train_paths, training_parser

    common = "--name x --features f --manifests m --tokenizer t.model --model o.pt --checkpoints c --live l"
    student = training_parser("doc", soft_targets=True, guide=True)
    args = student.parse_args([*common.split(), "--soft-targets", "s", "--report", "r.json"])
    paths = train_paths(args)
    assert paths.soft_targets.name == "s" and paths.guide is None and paths.model.name == "o.pt"
    twin = training_parser("doc", soft_targets=False, guide=False)
    paths = train_paths(twin.parse_args([*common.split(), "--report", "r.json"]))
    assert paths.soft_targets is None and paths.guide is None
    with pytest.raises(SystemExit):  # a twin takes no --guide
        twin.parse_args([*common.split(), "--report", "r.json", "--guide", "g.pt"])
