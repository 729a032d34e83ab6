"""The transfer set and scarce labels: audio that only the teachers' soft targets label."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.config import DataConfig, default_params
from pipeline.io import read_jsonl
from pipeline.model.ctc import ctc_loss
from pipeline.prepare.corpus import prepare
from pipeline.prepare.rejects import TooManyRejects
from pipeline.prepare.synthetic import synthetic_sentences
from pipeline.train.kd import kd_loss, nonblank_frames
from pipeline.train.recipes import labelled_ids


def synthetic(transfer: int) -> DataConfig:
    synthetic = {
        "train_utterances": 4,
        "dev_utterances": 2,
        "test_utterances": 2,
        "transfer_utterances": transfer,
        "accents": ["en-US"],
        "train_variants": ["m1", "f2"],
        "eval_variants": ["m4"],
        "min_words": 3,
        "max_words": 6,
        "num_workers": 1,
    }
    return default_params({"data.synthetic": synthetic}).data


def test_adding_a_transfer_set_leaves_the_labelled_splits_unchanged():
    without, with_ = synthetic_sentences(synthetic(0)), synthetic_sentences(synthetic(5))
    assert {s: without[s] for s in ("train", "dev", "test")} == {
        s: with_[s] for s in ("train", "dev", "test")
    }
    assert len(with_["transfer"]) == 5 and not without["transfer"]
    labelled = {t for s in ("train", "dev", "test") for t in with_[s]}
    assert not set(with_["transfer"]) & labelled  # new sentences


def test_synthetic_transfer_rows_have_audio_and_training_voices_but_no_text(tmp_path):
    metrics = prepare(synthetic(3), tmp_path / "audio", tmp_path / "manifests")
    rows = read_jsonl(tmp_path / "manifests" / "transfer.jsonl")
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"id", "audio", "duration", "speaker"}  # the transcript is never written
        assert row["speaker"].split("+")[1] in {"m1", "f2"}
        assert row["duration"] > 0.5  # a few spoken words
        assert sf.info(row["audio"]).frames == pytest.approx(row["duration"] * 16000, abs=1)
    spoken = synthetic_sentences(synthetic(3))["transfer"]
    for path in (tmp_path / "manifests").iterdir():  # no transfer sentence anywhere on disk
        assert not any(s in path.read_text() for s in spoken), path
    assert metrics["corpus"]["transfer"]["utterances"] == 3
    assert "vocabulary" not in metrics["corpus"]["transfer"]


def test_manifest_rows_without_text_join_the_transfer_set(tmp_path):
    (tmp_path / "w").mkdir()
    for name in "abcd":
        sf.write(tmp_path / "w" / f"{name}.wav", 0.3 * np.sin(np.arange(16000) / 5.0), 16000)
    rows = [
        {"audio": "w/a.wav", "text": "hello there", "split": "train"},
        {"audio": "w/b.wav", "text": "a test", "split": "test"},
        {"audio": "w/c.wav", "text": "never read", "split": "transfer"},
        {"audio": "w/d.wav"},  # neither text nor split: audio only
        {"audio": "w/missing.wav", "split": "transfer"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    manifest = {
        "source": "manifest",
        "max_reject_fraction": 0.5,
        "manifest": {"path": str(tmp_path / "m.jsonl")},
    }
    cfg = default_params({"data": manifest}).data
    with pytest.raises(TooManyRejects, match=r"no usable utterances in split\(s\) dev"):  # not a silent run
        prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    rows.append({"audio": "w/a.wav", "text": "dev row", "split": "dev", "id": "dev1"})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    metrics = prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    transfer = read_jsonl(tmp_path / "manifests" / "transfer.jsonl")
    assert sorted(r["id"] for r in transfer) == ["c", "d"]
    assert all("text" not in r for r in transfer)
    rejects = read_jsonl(tmp_path / "manifests" / "rejects.jsonl")
    assert [(r["id"], r["split"], r["reason"]) for r in rejects] == [
        ("missing", "transfer", "missing file")
    ]  # the same checks as every other audio
    assert metrics["rejects"]["total"] == 1


def test_labelled_share_is_seeded_nested_and_the_same_for_every_student():
    ids = [f"u{i}" for i in range(200)]
    fifth, half = labelled_ids(ids, 0.2, seed=0), labelled_ids(ids, 0.5, seed=0)
    assert len(fifth) == 40 and len(half) == 100 and fifth <= half
    assert labelled_ids(list(reversed(ids)), 0.2, seed=0) == fifth  # order does not matter
    assert labelled_ids(ids, 0.2, seed=1) != fifth
    assert labelled_ids(ids, 1.0, seed=0) == set(ids)
    assert len(labelled_ids(ids[:3], 0.01, seed=0)) == 1  # never none


def test_ctc_counts_only_transcribed_utterances():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 20, 6).log_softmax(-1)
    lengths = torch.tensor([20, 15, 12])
    targets = torch.tensor([1, 2, 3, 4, 5], dtype=torch.int32)
    target_lengths = torch.tensor([2, 0, 3], dtype=torch.int32)  # the middle one has no text
    mask = torch.tensor([True, False, True])
    masked = ctc_loss(log_probs, lengths, targets, target_lengths, mask)
    keep = torch.tensor([0, 2])
    alone = ctc_loss(log_probs[keep], lengths[keep], targets, target_lengths[keep])
    torch.testing.assert_close(masked, alone)
    none = ctc_loss(log_probs, lengths, targets, target_lengths, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0


def test_nonblank_frames_keep_the_spikes_and_their_neighbours():
    top = torch.tensor([[0, 0, 0, 5, 0, 0, 0, 0, 7, 0], [3, 0, 0, 0, 0, 0, 0, 0, 0, 4]])
    lengths = torch.tensor([10, 6])  # the second one's spike at frame 9 is padding
    frames = nonblank_frames(top, lengths)
    assert frames[0].nonzero().flatten().tolist() == [2, 3, 4, 7, 8, 9]
    assert frames[1].nonzero().flatten().tolist() == [0, 1]


def test_kd_on_selected_frames_ignores_the_others():
    torch.manual_seed(0)
    logits = torch.randn(1, 6, 5)
    ids = torch.tensor([[[0, 1]] * 6])
    probs = torch.tensor([[[0.9, 0.05]] * 6])
    rest = torch.full((1, 6), 0.05)
    lengths = torch.tensor([6])
    frames = torch.tensor([[True, True, False, False, False, False]])
    selected = kd_loss(logits, lengths, ids, probs, rest, 2.0, frames)
    first_two = kd_loss(logits[:, :2], torch.tensor([2]), ids[:, :2], probs[:, :2], rest[:, :2], 2.0)
    torch.testing.assert_close(selected, first_two)
