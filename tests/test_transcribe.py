"""``asr-distill transcribe`` on synthesized speech: same text as eager PyTorch, clear errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from pipeline.audio import AudioError, read_audio
from pipeline.cli import main
from pipeline.config import default_params
from pipeline.ctc import greedy_decode
from pipeline.data import prepare
from pipeline.fbank import fbank
from pipeline.io import read_jsonl, write_jsonl
from pipeline.runtime import ONNX_FP32, ONNX_INT8
from pipeline.synth import Espeak
from pipeline.transcribe import ExportedModel

FEATURES = default_params({"features.n_mels": 40}).features  # what the tiny_export fixture's config.json says


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Espeak speech as a 22.05 kHz mono WAV and a 44.1 kHz stereo FLAC, plus bad files."""
    d = tmp_path_factory.mktemp("audio")
    synth = Espeak()
    wav = synth.speak("hello world this is a small test", voice="en-US+m3", rate=170)
    sf.write(d / "speech.wav", wav, synth.sample_rate)
    other = synth.speak("the export and the transcribe command", voice="en+f2", rate=150)
    up = AF.resample(torch.from_numpy(other), synth.sample_rate, 44100).numpy()
    sf.write(d / "stereo.flac", np.stack([up, 0.5 * up], axis=1), 44100)
    (d / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    sf.write(d / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    return d


# Files prepare rejects for their audio, and the reason it records (transcribe must say the same).
BAD_AUDIO = {
    "nan.wav": "non-finite samples",
    "inf.wav": "non-finite samples",
    "silent.wav": "silent audio",
    "folder.wav": "not a file (a directory)",
}


@pytest.fixture(scope="module")
def bad_audio(tmp_path_factory):
    """A good 1 s tone, float WAVs holding NaN and inf, digital silence, and a directory."""
    d = tmp_path_factory.mktemp("bad_audio")
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    sf.write(d / "tone.wav", tone, 16000)
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        broken = tone.copy()
        broken[::400] = value
        sf.write(d / name, broken, 16000, subtype="FLOAT")  # float WAV: NaN and inf survive the file
    sf.write(d / "silent.wav", np.zeros(16000, np.float32), 16000)
    (d / "folder.wav").mkdir()
    return d


def eager_text(model, sp, path: Path) -> str:
    """The reference: training's audio loader and fbank, eager PyTorch, greedy CTC."""
    feats = torch.from_numpy(fbank(read_audio(path, 16000).samples, 16000, FEATURES))[None]
    with torch.no_grad():
        logits, lengths = model(feats, torch.tensor([feats.shape[1]]))
    return sp.decode(greedy_decode(logits, lengths)[0])


@pytest.mark.parametrize("name", ["speech.wav", "stereo.flac"])
def test_transcribe_matches_eager_pytorch(tiny_export, audio, name):
    out, model, sp = tiny_export
    expected = eager_text(model, sp, audio / name)
    assert expected.strip()  # a random model emits tokens; an empty match would prove nothing
    result = ExportedModel.load(out / ONNX_FP32).transcribe(audio / name)
    assert result.text == expected
    assert result.audio_seconds == pytest.approx(sf.info(str(audio / name)).duration, abs=1e-3)
    assert result.rtf == pytest.approx(result.compute_seconds / result.audio_seconds, rel=0.05)


def test_audio_is_downmixed_and_resampled_to_the_model_rate(audio):
    wav, fixes = read_audio(audio / "stereo.flac", 16000)
    assert fixes == ["downmixed", "resampled"]
    data, sr = sf.read(str(audio / "stereo.flac"), dtype="float32")
    assert sr == 44100 and data.ndim == 2
    assert len(wav) == pytest.approx(len(data) * 16000 / 44100, abs=1)


@pytest.mark.parametrize(
    "name, reason",
    [("missing.wav", "missing file"), ("corrupt.wav", "unreadable audio"), ("empty.wav", "empty audio")],
)
def test_bad_file_error_names_the_file(audio, name, reason):
    with pytest.raises(AudioError, match=f"{name}: {reason}"):
        read_audio(audio / name, 16000)


def test_cli_reports_bad_files_and_still_transcribes_the_rest(tiny_export, audio, capsys):
    out, model, sp = tiny_export
    files = [
        audio / "speech.wav",
        audio / "missing.wav",
        audio / "corrupt.wav",
        audio / "empty.wav",
        audio / "stereo.flac",
    ]
    code = main(["transcribe", "--model", str(out / ONNX_FP32), *map(str, files)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines() == [
        eager_text(model, sp, audio / "speech.wav"),
        eager_text(model, sp, audio / "stereo.flac"),
    ]
    errors = captured.err.splitlines()
    for name in ("missing.wav", "corrupt.wav", "empty.wav"):
        assert any(str(audio / name) in line for line in errors), (name, errors)
    assert "3 of 5 files failed" in captured.err


def test_cli_exit_code_is_zero_when_all_files_succeed(tiny_export, audio, capsys):
    out, _, _ = tiny_export
    assert main(["transcribe", "--model", str(out / ONNX_INT8), str(audio / "speech.wav")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_cli_missing_model_is_a_clear_error(tmp_path, audio, capsys):
    assert main(["transcribe", "--model", str(tmp_path / "student.onnx"), str(audio / "speech.wav")]) == 1
    assert f"{tmp_path / 'student.onnx'}: exported model not found" in capsys.readouterr().err


def test_console_script_prints_json_lines(tiny_export, audio):
    out, model, sp = tiny_export
    script = Path(sys.executable).parent / "asr-distill"
    proc = subprocess.run(
        [str(script), "transcribe", "--json", "--model", str(out / ONNX_INT8), str(audio / "speech.wav")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert set(row) == {"file", "text", "audio_seconds", "compute_seconds", "rtf"}
    assert row["file"] == str(audio / "speech.wav")
    assert row["compute_seconds"] > 0 and row["audio_seconds"] > 1.0


def test_cli_rejects_non_finite_silent_and_directory_input_and_transcribes_the_rest(
    tiny_export, audio, bad_audio, capsys
):
    out, model, sp = tiny_export
    bad = [bad_audio / name for name in BAD_AUDIO]
    files = [audio / "speech.wav", *bad, audio / "stereo.flac"]
    code = main(["transcribe", "--model", str(out / ONNX_FP32), *map(str, files)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines() == [
        eager_text(model, sp, audio / "speech.wav"),
        eager_text(model, sp, audio / "stereo.flac"),
    ]
    errors = [line for line in captured.err.splitlines() if line.startswith("asr-distill: error: ")]
    expected = [f"{path}: {reason}" for path, reason in zip(bad, BAD_AUDIO.values())]
    assert errors == [f"asr-distill: error: {line}" for line in expected] + [
        f"asr-distill: error: {len(bad)} of {len(files)} files failed"
    ]


def test_transcribe_gives_a_bad_file_the_reason_prepare_rejects_it_for(
    tiny_export, bad_audio, tmp_path, capsys
):
    rows = [
        {"audio": str(bad_audio / "tone.wav"), "text": f"good {split}", "split": split, "id": split}
        for split in ("train", "dev", "test")
    ]
    rows += [
        {"audio": str(bad_audio / name), "text": "some words", "split": "train", "id": Path(name).stem}
        for name in BAD_AUDIO
    ]
    write_jsonl(tmp_path / "m.jsonl", rows)
    data = {"source": "manifest", "max_reject_fraction": 1.0, "manifest": {"path": str(tmp_path / "m.jsonl")}}
    prepare(default_params({"data": data}).data, tmp_path / "audio", tmp_path / "manifests")
    prepared = {r["audio"]: r["reason"] for r in read_jsonl(tmp_path / "manifests" / "rejects.jsonl")}
    assert prepared == {str(bad_audio / name): reason for name, reason in BAD_AUDIO.items()}

    out, _, _ = tiny_export
    for path, reason in prepared.items():
        assert main(["transcribe", "--model", str(out / ONNX_FP32), path]) == 1
        assert f"asr-distill: error: {path}: {reason}" in capsys.readouterr().err.splitlines()
