"""The features stage (pipeline/features/extract.py) on real espeak-ng audio: accuracy, index, resume."""

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio.fbank import fbank
from pipeline.audio.read import read_audio
from pipeline.config import default_params
from pipeline.features.extract import extract_features
from pipeline.features.shards import ShardWriter
from pipeline.io import write_jsonl
from pipeline.splits import SPLITS
from pipeline.store import Store

ROOT = Path(__file__).resolve().parents[2]
SR = 16000
SENTENCES = [
    "the red car stops at the corner",
    "seven small birds sing in the morning",
    "please open the window",
    "a cold wind blows over the hills tonight",
    "my brother reads old books",
    "we walk to the station at noon",
    "the kettle is boiling",
    "green apples fall from the tall tree",
]
# shard_frames at its minimum (10 s of audio) so the train split has several shards.
CFG = default_params({"features.shard_frames": 1000, "features.num_workers": 1}).features


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """Manifests for train (12 utterances) and dev/test (2 each) of espeak-ng speech at 22.05 kHz."""
    from pipeline.prepare.espeak import Espeak

    work = tmp_path_factory.mktemp("corpus")
    synth = Espeak()
    rows = []
    for i, text in enumerate(SENTENCES * 2):
        wav = synth.speak(text, voice=("en-US+m1", "en+f2", "en-GB-x-rp+m3")[i % 3], rate=170)
        path = work / f"u{i:02d}.wav"
        sf.write(path, wav, synth.sample_rate, subtype="PCM_16")  # not 16 kHz: resampled on read
        rows.append(
            {
                "id": f"u{i:02d}",
                "audio": str(path),
                "text": text,
                "duration": round(len(wav) / synth.sample_rate, 4),
                "speaker": "s",
            }
        )
    for split, part in zip(SPLITS, (rows[:12], rows[12:14], rows[14:])):
        write_jsonl(work / "manifests" / f"{split}.jsonl", part)
    return work / "manifests", {r["id"]: r for r in rows}


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_fp16_store_matches_float32_fbank_and_index_is_whole(manifests, tmp_path):
    manifest_dir, rows = manifests
    extract_features(manifest_dir, tmp_path / "features", CFG, SR)
    train = Store(tmp_path / "features" / "train")
    train.check()
    assert train.shards >= 2  # really sharded
    assert train.ids() == [f"u{i:02d}" for i in range(12)]  # manifest order
    all_frames = []
    for split in SPLITS:
        store = Store(tmp_path / "features" / split)
        store.check()
        for utt in store.ids():
            expected = fbank(read_audio(rows[utt]["audio"], SR).samples, SR, CFG)  # float32, per file
            got = store.get(utt, "fbank")
            assert got.dtype == np.float16 and got.shape == expected.shape == (store.frames(utt), 80)
            np.testing.assert_allclose(got.astype(np.float32), expected, rtol=2e-3, atol=2e-3)
            if split == "train":
                all_frames.append(expected)
    cmvn = json.loads((tmp_path / "features" / "cmvn.json").read_text())
    x = np.concatenate(all_frames)
    assert cmvn["frames"] == len(x)
    np.testing.assert_allclose(cmvn["mean"], x.mean(0), atol=1e-2)
    np.testing.assert_allclose(cmvn["std"], x.std(0), rtol=1e-2)
    assert not any((tmp_path / "features.partial").iterdir())  # work directory emptied


def test_output_does_not_depend_on_worker_count(manifests, tmp_path):
    manifest_dir, _ = manifests
    extract_features(manifest_dir, tmp_path / "one", CFG, SR)
    extract_features(manifest_dir, tmp_path / "two", CFG.model_copy(update={"num_workers": 2}), SR)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import pipeline.features.extract as F
from pipeline.features.shards import ShardWriter
from pipeline.config import FeaturesConfig

finished = []
finish, add = ShardWriter.finish, ShardWriter.add

def finish_and_count(self):
    finished.append(self.plan.path)
    return finish(self)

def add_or_die(self, utt_id, feats):
    add(self, utt_id, feats)
    if finished:  # one utterance into the second shard: die without any clean-up
        os.kill(os.getpid(), signal.SIGKILL)

ShardWriter.finish, ShardWriter.add = finish_and_count, add_or_die
cfg = FeaturesConfig.model_validate_json(sys.argv[3])
F.extract_features(Path(sys.argv[1]), Path(sys.argv[2]), cfg, 16000)
"""


def killed_run(manifest_dir: Path, out: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED_RUN),
            str(manifest_dir),
            str(out),
            CFG.model_dump_json(),
        ],
        cwd=ROOT,
        capture_output=True,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def test_resume_after_kill_reuses_finished_shard_and_gives_identical_bytes(manifests, tmp_path, caplog):
    manifest_dir, _ = manifests
    extract_features(manifest_dir, tmp_path / "reference", CFG, SR)

    killed_run(manifest_dir, tmp_path / "features")
    work = tmp_path / "features.partial" / "train"
    assert not (tmp_path / "features").exists()
    assert sorted(p.name for p in work.iterdir()) == [
        "fbank-00000.json",
        "fbank-00000.npy",
        "fbank-00001.npy.tmp",
    ]
    first = (work / "fbank-00000.npy").stat()

    with caplog.at_level(logging.INFO, logger="pipeline.features.extract"):
        metrics = extract_features(manifest_dir, tmp_path / "features", CFG, SR)
    assert "fbank train: 2 shards, 1 finished earlier and reused, 1 to compute" in caplog.text
    assert metrics["shards_reused"] == 1
    final = (tmp_path / "features" / "train" / "fbank-00000.npy").stat()
    assert (final.st_ino, final.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not rewritten
    assert tree_bytes(tmp_path / "features") == tree_bytes(tmp_path / "reference")


class Interrupted(Exception):
    pass


def interrupted_run(monkeypatch, manifest_dir: Path, out: Path) -> None:
    """An in-process run stopped right after its first finished shard (cheaper than a kill)."""
    finish = ShardWriter.finish

    def finish_then_stop(self):
        finish(self)
        raise Interrupted

    with monkeypatch.context() as m:
        m.setattr(ShardWriter, "finish", finish_then_stop)
        with pytest.raises(Interrupted):
            extract_features(manifest_dir, out, CFG, SR)
    assert (out.parent / f"{out.name}.partial" / "train" / "fbank-00000.json").exists()


@pytest.mark.parametrize("change", ["nothing", "params", "audio"])
def test_finished_shards_of_other_params_or_audio_are_recomputed(
    manifests, tmp_path, caplog, monkeypatch, change
):
    manifest_dir, rows = manifests
    interrupted_run(monkeypatch, manifest_dir, tmp_path / "features")
    cfg = CFG
    if change == "params":
        cfg = CFG.model_copy(update={"n_mels": 40})
    elif change == "audio":
        os.utime(rows["u00"]["audio"])  # the audio of shard 0 may have been rewritten
    with caplog.at_level(logging.INFO, logger="pipeline.features.extract"):
        extract_features(manifest_dir, tmp_path / "features", cfg, SR)
    reused = 1 if change == "nothing" else 0
    assert f"fbank train: 2 shards, {reused} finished earlier and reused" in caplog.text
