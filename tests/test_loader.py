"""Length-bucketed batches (pipeline/loader.py): budget, determinism, workers, speed perturbation."""

import logging

import numpy as np
import pytest
import torch
from tiny_corpus import TEXTS, make_corpus

from pipeline.loader import BatchLoader, make_buckets, perturb_speed
from pipeline.model.conformer import subsampled_lengths
from pipeline.store import Store


@pytest.mark.parametrize("budget", [50, 200, 1000])
def test_buckets_respect_the_frame_budget(budget):
    rng = np.random.default_rng(0)
    frames = {f"u{i}": int(rng.integers(5, 120)) for i in range(300)}
    batches = make_buckets(frames, budget)
    assert sorted(u for b in batches for u in b) == sorted(frames)  # every utterance once
    for b in batches:
        longest = max(frames[u] for u in b)
        assert longest * len(b) <= budget or len(b) == 1


def test_overlong_utterance_gets_its_own_batch():
    batches = make_buckets({"a": 10, "b": 10, "huge": 500}, 100)
    assert ["huge"] in batches


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 12-utterance random-feature store and a character sentencepiece model."""
    tmp = tmp_path_factory.mktemp("loader")
    sp = make_corpus(tmp, min_frames=40, shard_frames=1000)
    return Store(tmp / "feats"), TEXTS, sp


def summary(batches):
    return [(b.ids, b.lengths.tolist(), b.feats.sum().item(), b.targets.tolist()) for b in batches]


def test_epoch_is_deterministic_for_a_seed_whatever_the_workers(corpus):
    store, texts, sp = corpus
    loaders = [BatchLoader(store, texts, sp, 400, workers=w, speed_perturb=[0.9, 1.0, 1.1]) for w in (0, 2)]
    in_process, workers = (summary(loader.iterate(seed=3, epoch=1)) for loader in loaders)
    assert len(in_process) == len(loaders[0]) >= 4
    assert workers == in_process
    assert summary(loaders[1].iterate(seed=3, epoch=1, skip=2)) == in_process[2:]
    assert summary(loaders[1].iterate(seed=4, epoch=1)) != in_process  # the seed matters
    assert [ids for ids, *_ in summary(loaders[1])] == loaders[1].buckets  # evaluation order


def test_speed_perturbation_scales_frame_counts(corpus):
    store, texts, sp = corpus
    loader = BatchLoader(store, texts, sp, 400, speed_perturb=[1.25])
    for batch in loader.iterate(seed=0, epoch=0):
        assert batch.lengths.tolist() == [round(store.frames(u) / 1.25) for u in batch.ids]


def test_speed_perturbation_is_off_with_extras(corpus, caplog):
    store, texts, sp = corpus

    def extras(u):
        frames = subsampled_lengths(torch.tensor(store.frames(u))).item()
        return {"guide": np.zeros(frames, dtype=np.int16)}

    with caplog.at_level(logging.INFO, logger="pipeline.loader"):
        loader = BatchLoader(store, texts, sp, 400, extras, speed_perturb=[0.9, 1.1])
    assert "speed perturbation [0.9, 1.1] is off" in caplog.text
    for batch in loader.iterate(seed=0, epoch=0):
        assert batch.lengths.tolist() == [store.frames(u) for u in batch.ids]


def test_faster_speech_moves_energy_to_higher_mel_bins():
    feats = torch.zeros(50, 80)
    feats[:, 30] = 10.0  # a steady tone in bin 30
    faster, slower = perturb_speed(feats, 1.2, 16000), perturb_speed(feats, 0.8, 16000)
    assert faster.shape == (42, 80) and slower.shape == (62, 80)
    assert faster.mean(0).argmax() > 30 > slower.mean(0).argmax()
    torch.testing.assert_close(perturb_speed(feats, 1.0, 16000), feats)
