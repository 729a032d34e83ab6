"""Real-corpus importers and bad-input handling (pipeline/prepare/importers.py, pipeline/prepare/corpus.py).

Every corpus here is written on the fly with soundfile into tmp_path.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from pipeline.audio.read import AudioError, decode, read_audio, wav_truncation
from pipeline.config import (
    DEFAULT_PARAMS,
    DataConfig,
    ParamsError,
    default_params,
    override,
    parse_params,
    read_params,
)
from pipeline.io import read_json, read_jsonl
from pipeline.prepare.corpus import prepare
from pipeline.prepare.importers import assign_split
from pipeline.prepare.rejects import TooManyRejects
from pipeline.prepare.text import normalize

ROOT = Path(__file__).resolve().parents[2]


def tone(seconds: float, sr: int = 16000, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    """A harmonic tone with a little noise: audible, non-silent test audio."""
    t = np.arange(int(seconds * sr)) / sr
    x = amp * (np.sin(2 * np.pi * 200 * t) + 0.3 * np.sin(2 * np.pi * 1200 * t)) / 1.3
    x += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def cfg_for(source: str, **data) -> DataConfig:
    """params.yaml's data section for ``source``; ``data`` keys (mappings merge) override it."""
    base = {"source": source, "max_reject_fraction": 1.0, "min_duration": 0.3, "max_duration": 3.0}
    return default_params({"data": {**base, **data}}).data


def reasons(out: Path) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in read_jsonl(out / "manifests" / "rejects.jsonl")}


def run_prepare_stage(work: Path, **data) -> subprocess.CompletedProcess:
    """``python stages/prepare.py`` as a user runs it, in ``work``, with params.yaml's data
    section overridden as in :func:`cfg_for`; writes ``work/{audio,manifests,prepare.json}``."""
    base = {"max_reject_fraction": 1.0, "min_duration": 0.3, "max_duration": 3.0}
    params = override(read_params(DEFAULT_PARAMS), {"data": {**base, **data}})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    command = [sys.executable, str(ROOT / "stages" / "prepare.py"), "--params", "params.yaml"]
    command += ["--audio", "audio", "--manifests", "manifests", "--report", "prepare.json"]
    return subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------
# LibriSpeech: one tree with every kind of bad input.


def chapter(root: Path, subset: str, speaker: str, chap: str, utts: dict[str, tuple[str, object]]) -> Path:
    """Write ``<subset>/<speaker>/<chapter>/`` with FLACs and a transcript.

    ``utts`` maps the utterance number to (transcript line text, audio), where
    audio is an array (16 kHz), a (array, sample_rate) pair, bytes, or None for no file.
    """
    folder = root / subset / speaker / chap
    folder.mkdir(parents=True)
    lines = []
    for num, (text, audio) in utts.items():
        utt = f"{speaker}-{chap}-{num}"
        if text is not None:
            lines.append(f"{utt} {text}")
        path = folder / f"{utt}.flac"
        if isinstance(audio, bytes):
            path.write_bytes(audio)
        elif isinstance(audio, tuple):
            sf.write(path, audio[0], audio[1])
        elif audio is not None:
            sf.write(path, audio, 16000)
    (folder / f"{speaker}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory):
    root = tmp_path_factory.mktemp("LibriSpeech")
    folder = chapter(
        root,
        "train-clean-100",
        "19",
        "198",
        {
            "0000": ("HELLO WORLD, IT'S 7:45", tone(1.0)),
            "0001": ("RESAMPLED AND DOWNMIXED", (tone(1.0, 44100, channels=2), 44100)),
            "0002": ("TRUNCATED FILE", tone(2.0)),
            "0003": ("SILENT FILE", np.zeros(16000, np.float32)),
            "0004": ("TOO SHORT", tone(0.1)),
            "0005": ("TOO LONG", tone(4.0)),
            "0006": ("", tone(1.0)),
            "0007": ("?!", tone(1.0)),
            "0008": ("MISSING AUDIO", None),
            "0009": (None, tone(1.0)),  # audio without a transcript line
            "0010": ("GARBAGE BYTES", b"this is not audio at all" * 20),
            "0011": ("ZERO LENGTH", np.zeros(0, np.float32)),
            "0012": ("EIGHT KILOHERTZ", (tone(1.0, 8000), 8000)),
        },
    )
    truncate(folder / "19-198-0002.flac")
    chapter(root, "dev-clean", "84", "121", {"0000": ("DEV ONE", tone(1.0)), "0001": ("DEV TWO", tone(1.2))})
    chapter(root, "test-clean", "61", "70", {"0000": ("TEST ONE", tone(0.8))})
    return root


@pytest.fixture(scope="module")
def imported(librispeech, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    cfg = cfg_for("librispeech", librispeech={"root": str(librispeech)})
    return out, prepare(cfg, out / "audio", out / "manifests")


@pytest.mark.parametrize(
    "utt, reason",
    [
        ("19-198-0002", "truncated audio"),
        ("19-198-0003", "silent audio"),
        ("19-198-0004", "too short"),
        ("19-198-0005", "too long"),
        ("19-198-0006", "empty transcript"),
        ("19-198-0007", "non-text transcript"),
        ("19-198-0008", "missing file"),
        ("19-198-0009", "no transcript"),
        ("19-198-0010", "unreadable audio"),
        ("19-198-0011", "empty audio"),
    ],
)
def test_bad_librispeech_input_is_rejected_with_a_reason(imported, utt, reason):
    out, _ = imported
    assert reasons(out)[utt].startswith(reason)


def test_good_and_fixable_librispeech_input_is_kept(imported):
    out, metrics = imported
    train = {r["id"]: r for r in read_jsonl(out / "manifests" / "train.jsonl")}
    assert set(train) == {"19-198-0000", "19-198-0001", "19-198-0012"}
    assert train["19-198-0000"]["text"] == "hello world it's seven forty five"
    assert train["19-198-0000"]["speaker"] == "19"
    for row in train.values():
        info = sf.info(row["audio"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert row["duration"] == pytest.approx(1.0, abs=0.01)
    assert metrics["fixes"] == {"resampled": 2, "downmixed": 1}
    assert [r["id"] for r in read_jsonl(out / "manifests" / "dev.jsonl")] == ["84-121-0000", "84-121-0001"]


def test_rejects_are_counted_in_metrics(imported):
    _, metrics = imported
    assert metrics["rejects"]["total"] == 10
    assert metrics["rejects"]["too short"] == 1 and metrics["rejects"]["missing file"] == 1
    assert metrics["corpus"]["train"]["utterances"] == 3
    assert metrics["corpus"]["test"]["oov_rate"] == 1.0  # "test one": neither word is in train


def test_too_many_rejects_names_the_worst_files(librispeech, tmp_path):
    cfg = cfg_for("librispeech", librispeech={"root": str(librispeech)}, max_reject_fraction=0.2)
    with pytest.raises(TooManyRejects) as err:
        prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    message = str(err.value)
    assert "train: 10/13 utterances rejected" in message
    assert "max_reject_fraction=0.2" in message
    worst = message.split("worst: ")[1]
    assert worst.startswith(str(librispeech / "train-clean-100/19/198/19-198-0008.flac") + ": missing file")
    assert "unreadable audio" in worst and "too short" not in worst
    assert not (tmp_path / "manifests").exists()
    assert len(read_jsonl(tmp_path / "manifests.rejects.jsonl")) == 10


def test_missing_librispeech_subset_is_a_clear_error(librispeech, tmp_path):
    cfg = cfg_for("librispeech", librispeech={"root": str(librispeech), "test_subsets": ["test-other"]})
    with pytest.raises(
        FileNotFoundError,
        match="no subset folder .*test-other; found: dev-clean, test-clean, train-clean-100",
    ):
        prepare(cfg, tmp_path / "audio", tmp_path / "manifests")


# ---------------------------------------------------------------------------
# Common Voice.


def test_commonvoice_reads_mp3_clips_and_tsvs(tmp_path):
    root = tmp_path / "cv"
    (root / "clips").mkdir(parents=True)
    header = "client_id\tpath\tsentence\tup_votes\n"
    rows = {
        "train": [
            ("alice", "a1.mp3", '"Quoted" words, 2 of them.'),
            ("bob", "b1.mp3", "Bob's clip"),
            ("bob", "gone.mp3", "No clip here"),
        ],
        "dev": [("carol", "c1.mp3", "Dev clip")],
        "test": [("dave", "d1.mp3", "Test clip")],
    }
    for split, items in rows.items():
        lines = [f"{who}\t{clip}\t{text}\t2\n" for who, clip, text in items]
        (root / f"{split}.tsv").write_text(header + "".join(lines))
        for _, clip, _ in items:
            if clip != "gone.mp3":
                sf.write(root / "clips" / clip, tone(1.0, 48000), 48000, format="MP3")
    cfg = cfg_for("commonvoice", commonvoice={"root": str(root)})
    metrics = prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    train = {r["id"]: r for r in read_jsonl(tmp_path / "manifests" / "train.jsonl")}
    assert train["a1"]["text"] == "quoted words two of them"
    assert train["a1"]["speaker"] == "alice"
    assert sf.info(train["b1"]["audio"]).samplerate == 16000
    assert reasons(tmp_path)["gone"] == "missing file"
    assert metrics["fixes"]["resampled"] == 4


def test_commonvoice_without_a_tsv_is_a_clear_error(tmp_path):
    (tmp_path / "clips").mkdir()
    cfg = cfg_for("commonvoice", commonvoice={"root": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="train.tsv does not exist"):
        prepare(cfg, tmp_path / "audio", tmp_path / "manifests")


# ---------------------------------------------------------------------------
# A user manifest.


def write_clips(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        sf.write(folder / name, tone(1.0), 16000)


def test_jsonl_manifest_with_bad_rows(tmp_path):
    write_clips(tmp_path / "wavs", ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav", "f.wav"])
    rows = [
        {"audio": "wavs/a.wav", "text": "Train A", "speaker": "s1", "split": "train", "id": "u1"},
        {"audio": "wavs/b.wav", "text": "Duplicate id", "split": "train", "id": "u1"},
        {"audio": str(tmp_path / "wavs/c.wav"), "text": "Absolute path", "split": "dev"},
        {"audio": "wavs/d.wav", "text": 123, "split": "train"},
        {"audio": "wavs/e.wav", "text": "Bad split", "split": "holdout"},
        {"audio": "wavs/f.wav", "text": "Test F", "split": "TEST"},
        {"text": "No audio given", "split": "train", "id": "noaudio"},
    ]
    lines = [json.dumps(r) for r in rows] + ["{not json"]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    cfg = cfg_for("manifest", manifest={"path": str(tmp_path / "m.jsonl")})
    metrics = prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    got = reasons(tmp_path)
    assert got["u1"].startswith("duplicate id")
    assert got["d"] == "non-text transcript (a int)"
    assert got["e"].startswith("unknown split 'holdout'")
    assert got["noaudio"].startswith("missing file")
    assert got["line-8"].startswith("malformed manifest line 8")
    assert [r["id"] for r in read_jsonl(tmp_path / "manifests" / "dev.jsonl")] == ["c"]
    assert [r["text"] for r in read_jsonl(tmp_path / "manifests" / "test.jsonl")] == ["test f"]
    assert read_jsonl(tmp_path / "manifests" / "train.jsonl")[0]["speaker"] == "s1"
    assert metrics["rejects"]["total"] == 5


def test_too_many_rejects_ends_the_stage_with_one_line_not_a_traceback(tmp_path):
    write_clips(tmp_path / "wavs", ["good.wav", "dev.wav", "test.wav"])
    rows = [{"audio": "wavs/good.wav", "text": "Good one", "split": "train", "id": "good"}]
    rows += [
        {"audio": f"wavs/gone{i}.wav", "text": "Lost", "split": "train", "id": f"gone{i}"} for i in range(3)
    ]
    rows += [{"audio": f"wavs/{s}.wav", "text": f"A {s} clip", "split": s, "id": s} for s in ("dev", "test")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_prepare_stage(
        tmp_path, source="manifest", manifest={"path": str(tmp_path / "m.jsonl")}, max_reject_fraction=0.2
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.stderr
    message = errors[0]
    assert "train: 3/4 utterances rejected (75.0%), above data.max_reject_fraction=0.2" in message
    assert f"worst: {tmp_path / 'wavs' / 'gone0.wav'}: missing file" in message
    assert "All 3 rejects: manifests.rejects.jsonl" in message
    assert len(read_jsonl(tmp_path / "manifests.rejects.jsonl")) == 3
    assert not (tmp_path / "manifests").exists() and not (tmp_path / "prepare.json").exists()


def test_present_but_empty_manifest_transcript_is_rejected_not_moved_to_transfer(tmp_path):
    names = ["train.wav", "dev.wav", "test.wav", "empty.wav", "blank.wav", "dash.wav", "bare.wav", "null.wav"]
    write_clips(tmp_path / "wavs", names)
    rows = [
        {"audio": f"wavs/{s}.wav", "text": f"A {s} clip", "split": s, "id": s}
        for s in ("train", "dev", "test")
    ]
    rows += [
        {"audio": "wavs/empty.wav", "text": "", "id": "empty"},  # no split: used to go to transfer
        {"audio": "wavs/blank.wav", "text": "  \t ", "id": "blank"},
        {"audio": "wavs/dash.wav", "text": "\u30fc", "id": "dash"},  # nothing left after normalizing
        {"audio": "wavs/bare.wav", "id": "bare"},  # no text field, no split: untranscribed audio
        {"audio": "wavs/null.wav", "text": None, "id": "null"},  # JSON null: no transcript either
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_prepare_stage(tmp_path, source="manifest", manifest={"path": str(tmp_path / "m.jsonl")})
    assert proc.returncode == 0, proc.stderr
    got = reasons(tmp_path)
    assert set(got) == {"empty", "blank", "dash"}
    assert all(got[i].startswith("empty transcript") for i in got), got
    assert "nothing left after normalizing" in got["dash"]
    assert [r["id"] for r in read_jsonl(tmp_path / "manifests" / "transfer.jsonl")] == ["bare", "null"]
    report = read_json(tmp_path / "prepare.json")
    assert report["rejects"] == {"total": 3, "empty transcript": 3}
    assert report["corpus"]["transfer"]["utterances"] == 2


def test_empty_csv_transcript_cell_is_an_empty_transcript(tmp_path):
    write_clips(tmp_path / "clips", ["a.wav", "b.wav", "c.wav", "e.wav"])
    lines = ["path,transcript,split", "clips/a.wav,Train A,train", "clips/b.wav,Dev B,dev"]
    lines += ["clips/c.wav,Test C,test", "clips/e.wav,,"]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    manifest = {"path": str(tmp_path / "m.csv"), "audio_field": "path", "text_field": "transcript"}
    metrics = prepare(cfg_for("manifest", manifest=manifest), tmp_path / "audio", tmp_path / "manifests")
    assert reasons(tmp_path) == {"e": "empty transcript"}
    assert metrics["rejects"] == {"total": 1, "empty transcript": 1}
    assert read_jsonl(tmp_path / "manifests" / "transfer.jsonl") == []


def test_csv_manifest_without_split_is_split_by_speaker(tmp_path):
    names = [f"{i}.wav" for i in range(40)]
    write_clips(tmp_path / "clips", names)
    lines = ["path,transcript,who"] + [
        f'clips/{n},"Hello, number {i}",spk{i % 10}' for i, n in enumerate(names)
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    manifest = {
        "path": str(tmp_path / "m.csv"),
        "audio_field": "path",
        "text_field": "transcript",
        "speaker_field": "who",
        "dev_fraction": 0.2,
        "test_fraction": 0.2,
    }
    cfg = cfg_for("manifest", manifest=manifest, seed=3)
    prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    by_split = {s: read_jsonl(tmp_path / "manifests" / f"{s}.jsonl") for s in ("train", "dev", "test")}
    speakers = {s: {r["speaker"] for r in rows} for s, rows in by_split.items()}
    assert all(speakers.values())
    assert not speakers["train"] & (speakers["dev"] | speakers["test"])
    assert sum(map(len, by_split.values())) == 40
    assert by_split["train"][0]["text"].startswith("hello number ")
    for split, rows in by_split.items():
        assert all(assign_split(r["speaker"], 3, 0.2, 0.2) == split for r in rows)


# ---------------------------------------------------------------------------
# Audio and text helpers, normalization shared by every source.


def test_read_audio_downmixes_and_resamples(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, tone(0.5, 8000, channels=3), 8000)
    wav, fixes = read_audio(path, 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) == 8000
    assert fixes == ["downmixed", "resampled"]
    sf.write(path, tone(0.5), 16000)
    assert read_audio(path, 16000)[1] == []


def test_truncated_wav_is_detected(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(1.0), 16000, subtype="PCM_16")
    assert wav_truncation(path) is None
    truncate(path, 0.6)
    assert "of 32000 bytes" in wav_truncation(path)
    with pytest.raises(AudioError, match="truncated audio"):
        decode(path)


def test_zero_byte_and_missing_files(tmp_path):
    (tmp_path / "empty.flac").write_bytes(b"")
    with pytest.raises(AudioError, match="empty audio"):
        decode(tmp_path / "empty.flac")
    with pytest.raises(AudioError, match="missing file"):
        decode(tmp_path / "nope.flac")


def test_normalization_options_apply_to_imported_text(librispeech, tmp_path):
    options = {"lowercase": False, "spell_numbers": False}
    cfg = cfg_for("librispeech", librispeech={"root": str(librispeech)}, normalize=options)
    prepare(cfg, tmp_path / "audio", tmp_path / "manifests")
    first = read_jsonl(tmp_path / "manifests" / "train.jsonl")[0]
    assert first["text"] == "HELLO WORLD IT'S 7 45" == normalize("HELLO WORLD, IT'S 7:45", cfg.normalize)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"source": "librispeech"}, "data.librispeech.root is required"),
        ({"source": "manifest"}, "data.manifest.path is required"),
        ({"librispeech": {"root": "x", "train_subsets": ["a"], "test_subsets": ["a"]}}, "listed twice"),
        ({"commonvoice": {"root": "x", "clips": "c"}}, "unknown key 'data.commonvoice.clips'"),
        ({"normalize": {"lower": True}}, "valid keys here: lowercase, spell_numbers"),
        ({"source": "kaldi"}, "data.source"),
    ],
)
def test_importer_params_are_validated(data, message):
    with pytest.raises(ParamsError, match=message):
        parse_params(override(read_params(DEFAULT_PARAMS), {"data": data}))


@pytest.mark.parametrize("source", ["librispeech", "commonvoice"])
def test_a_missing_corpus_root_names_its_key(tmp_path, source):
    from pipeline.prepare.importers import commonvoice_candidates, librispeech_candidates

    missing = str(tmp_path / "nowhere")
    read = {
        "librispeech": lambda: librispeech_candidates(
            cfg_for(source, librispeech={"root": missing}).librispeech
        ),
        "commonvoice": lambda: commonvoice_candidates(
            cfg_for(source, commonvoice={"root": missing}).commonvoice
        ),
    }[source]
    with pytest.raises(FileNotFoundError, match=rf"data\.{source}\.root: .*nowhere does not exist"):
        read()
