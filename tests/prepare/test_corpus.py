"""The prepare stage on the synthetic corpus (pipeline/prepare/corpus.py), with real espeak-ng."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio.read import SILENCE_PEAK
from pipeline.config import DataConfig, default_params, load_params
from pipeline.io import read_jsonl
from pipeline.prepare.corpus import prepare
from pipeline.prepare.espeak import available_variants, speak_batches
from pipeline.prepare.rejects import TooManyRejects, check_utterance
from pipeline.prepare.synthetic import add_noise, check_voices, synthetic_sentences


def small_config(**data) -> DataConfig:
    """A synthetic corpus of 6 + 2 + 2 short utterances (about a second to build)."""
    synthetic = {
        "train_utterances": 6,
        "dev_utterances": 2,
        "test_utterances": 2,
        "transfer_utterances": 0,
        "accents": ["en-US", "en-GB-scotland"],
        "train_variants": ["m1", "f2"],
        "eval_variants": ["m4", "f3"],
        "min_words": 3,
        "max_words": 6,
        "num_workers": 1,
    }
    return default_params({"data": {"synthetic": synthetic, **data}}).data


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepare")
    metrics = prepare(small_config(), out / "audio", out / "manifests")
    return out, metrics


def test_manifests_follow_the_schema_and_point_at_16k_mono_wavs(built):
    out, _ = built
    for split, n in (("train", 6), ("dev", 2), ("test", 2)):
        rows = read_jsonl(out / "manifests" / f"{split}.jsonl")
        assert len(rows) == n
        for row in rows:
            assert set(row) == {"id", "audio", "text", "duration", "speaker"}
            info = sf.info(row["audio"])
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert row["duration"] == pytest.approx(info.frames / 16000, abs=1e-3)
            assert 3 <= len(row["text"].split()) <= 6
    assert read_jsonl(out / "manifests" / "rejects.jsonl") == []


def test_dev_and_test_are_disjoint_from_train(built):
    out, metrics = built
    rows = {s: read_jsonl(out / "manifests" / f"{s}.jsonl") for s in ("train", "dev", "test")}
    train_text = {r["text"] for r in rows["train"]}
    train_variants = {r["speaker"].split("+")[1] for r in rows["train"]}
    assert train_variants <= {"m1", "f2"}
    for split in ("dev", "test"):
        assert not {r["text"] for r in rows[split]} & train_text
        assert {r["speaker"].split("+")[1] for r in rows[split]} <= {"m4", "f3"}
    assert metrics["eval_voices_in_train"] == 0


def test_metrics_report_corpus_statistics(built):
    out, metrics = built
    corpus = metrics["corpus"]
    assert corpus["train"]["utterances"] == 6
    train = read_jsonl(out / "manifests" / "train.jsonl")
    seconds = sum(sf.info(r["audio"]).frames for r in train) / 16000  # what the wavs hold
    assert corpus["train"]["hours"] == pytest.approx(seconds / 3600, abs=1e-4) and seconds > 6
    assert "oov_rate" not in corpus["train"]
    # the OOV rate is the share of test words absent from the train transcripts, recounted here
    vocab = {w for r in read_jsonl(out / "manifests" / "train.jsonl") for w in r["text"].split()}
    words = [w for r in read_jsonl(out / "manifests" / "test.jsonl") for w in r["text"].split()]
    expected = sum(w not in vocab for w in words) / len(words)
    assert corpus["test"]["oov_rate"] == pytest.approx(expected, abs=1e-4)
    speakers = {
        r["speaker"] for s in ("train", "dev", "test") for r in read_jsonl(out / "manifests" / f"{s}.jsonl")
    }
    assert metrics["voices"] == len(speakers) >= 3
    assert metrics["accents"] <= 2 and metrics["voice_variants"] <= 4
    assert metrics["rejects"] == {"total": 0}


def test_same_params_give_byte_identical_corpus(built):
    out, _ = built
    first = digest(out)
    prepare(small_config(), out / "audio", out / "manifests")  # rebuild in place
    assert digest(out) == first
    assert synthetic_sentences(small_config(seed=1)) != synthetic_sentences(small_config())


def test_a_batch_sounds_the_same_whatever_was_spoken_before():
    """espeak-ng keeps hidden state between calls; speak_batches isolates each batch."""
    a = ("the quick brown fox", "en-GB-scotland+f2", 150, 59, 7)
    b = ("something else entirely", "en-US+klatt2", 190, 30, 3)
    alone = [wavs for _, wavs in speak_batches([[a]])]
    after = [wavs for _, wavs in speak_batches([[b, b], [a]])]
    assert np.array_equal(alone[0][0], after[1][0])


def test_default_corpus_is_rich(root):
    """The default profile: >= 8 accents, >= 20 voice variants, a closed vocabulary of a
    few hundred words heard in training, test OOV at most 2 %."""
    cfg = load_params(root / "params.yaml").data
    s = cfg.synthetic
    assert len(set(s.accents)) >= 8
    assert len(set(s.train_variants) | set(s.eval_variants)) >= 20
    assert not set(s.train_variants) & set(s.eval_variants)
    assert s.rate_wpm[0] < s.rate_wpm[1] and s.pitch[0] < s.pitch[1] and s.snr_db[0] < s.snr_db[1]
    check_voices(s)  # every variant ships with espeak-ng
    sentences = synthetic_sentences(cfg)
    train_words = {w for line in sentences["train"] for w in line.split()}
    assert 300 <= len(train_words) <= 1000
    test_tokens = [w for line in sentences["test"] for w in line.split()]
    assert sum(w not in train_words for w in test_tokens) / len(test_tokens) <= 0.02
    assert not set(sentences["test"]) & set(sentences["train"])
    assert not set(sentences["dev"]) & set(sentences["train"])


def test_synthetic_text_uses_the_normalize_options():
    cfg = small_config(normalize={"lowercase": False})
    train = synthetic_sentences(cfg)["train"]
    assert any(any(c.isupper() for c in line) for line in train)


def test_unknown_voice_variant_is_named():
    s = small_config().synthetic.model_copy(update={"eval_variants": ["m4", "nosuchvoice"]})
    with pytest.raises(ValueError, match="eval_variants: espeak-ng has no variant nosuchvoice"):
        check_voices(s)
    assert "klatt2" in available_variants()


def test_user_text_file(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("\n".join(f"Sentence {i} is about the {i}th cat." for i in range(1, 20)))
    cfg = small_config()
    cfg.synthetic.text_file = str(text)
    cfg.synthetic.max_words = 10
    prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    rows = read_jsonl(tmp_path / "manifests" / "train.jsonl")
    assert all(r["text"].startswith("sentence ") and r["text"].endswith(" cat") for r in rows)


@pytest.mark.parametrize("snr_db", [5.0, 20.0])
def test_add_noise_hits_the_requested_snr(snr_db):
    t = np.arange(32000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noisy = add_noise(speech, snr_db, np.random.default_rng(0))
    noise = noisy - speech
    measured = 10 * np.log10(np.mean(speech**2) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=0.2)


@pytest.mark.parametrize(
    "wav, text, reason",
    [
        (np.full(16000, 0.1, np.float32), " ", "empty transcript"),
        (np.zeros(0, np.float32), "hi", "empty audio"),
        (np.full(160, 0.1, np.float32), "hi", "too short"),
        (np.full(16000 * 21, 0.1, np.float32), "hi", "too long"),
        (np.full(16000, SILENCE_PEAK / 2, np.float32), "hi", "silent audio"),
        (np.array([0.1, np.nan] * 8000, np.float32), "hi", "non-finite samples"),
        (np.full(16000, 0.1, np.float32), "hi", None),
    ],
)
def test_check_utterance(wav, text, reason):
    got = check_utterance(wav, 16000, text, default_params().data)
    assert (got if got is None else got.split(" (")[0]) == reason


def test_too_many_rejects_stops_with_the_worst_files(tmp_path):
    cfg = small_config(min_duration=0.1, max_duration=0.5)  # every sentence is longer
    with pytest.raises(TooManyRejects, match=r"6/6 utterances rejected .*too long"):
        prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    assert not (tmp_path / "manifests").exists() and not (tmp_path / "audio").exists()
    listed = [json.loads(line) for line in (tmp_path / "manifests.rejects.jsonl").read_text().splitlines()]
    assert len(listed) == 10 and all(r["reason"].startswith("too long") for r in listed)
