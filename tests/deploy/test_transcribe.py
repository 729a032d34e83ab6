"""``asr-distill transcribe`` on synthesized speech: same text as eager PyTorch, clear errors, long
audio window by window."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from pipeline import cli
from pipeline.audio.fbank import fbank
from pipeline.audio.read import AudioError, read_audio
from pipeline.cli import main
from pipeline.config import default_params
from pipeline.deploy.runtime import ONNX_FP32, ONNX_INT8, as_batch
from pipeline.deploy.transcribe import (
    CONTEXT_SECONDS,
    WINDOW_SECONDS,
    ExportedModel,
    Window,
    end_to_end_rtf,
    fbank_in_blocks,
    plan_windows,
    stitched_logits,
)
from pipeline.io import read_json, read_jsonl, write_jsonl
from pipeline.model.conformer import subsampled_lengths
from pipeline.model.ctc import greedy_decode
from pipeline.model.decoding import DECODERS, export_settings, make_decoder
from pipeline.prepare.corpus import prepare
from pipeline.prepare.espeak import Espeak
from pipeline.wer import utterance_errors

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


def eager_text(model, sp, path: Path, decoder: str | None = None, out: Path | None = None) -> str:
    """The reference: training's audio loader and fbank, eager PyTorch, then greedy CTC, or the
    decoder ``decoder`` of export ``out`` (None: its default) built from its config.json."""
    feats = torch.from_numpy(fbank(read_audio(path, 16000).samples, 16000, FEATURES))[None]
    with torch.no_grad():
        logits, lengths = model(feats, torch.tensor([feats.shape[1]]))
    if out is None:
        return sp.decode(greedy_decode(logits, lengths)[0])
    return make_decoder(sp=sp, **export_settings(read_json(out / "config.json"), out, decoder))(
        logits, lengths
    )[0]


@pytest.mark.parametrize("decoder", [None, "greedy", "lexicon", "lexicon+lm"])
@pytest.mark.parametrize("name", ["speech.wav", "stereo.flac"])
def test_transcribe_matches_eager_pytorch(tiny_export, audio, name, decoder):
    out, model, sp = tiny_export
    expected = eager_text(model, sp, audio / name, decoder, out)
    assert expected.strip()  # a random model emits tokens; an empty match would prove nothing
    if decoder == "greedy":
        assert expected == eager_text(model, sp, audio / name)
    result = ExportedModel.load(out / ONNX_FP32, decoder=decoder).transcribe(audio / name)
    assert result.text == expected and result.decoder == (decoder or "lexicon+lm")
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


def transcribe_with_bad_files(out, model, sp, audio, files, capsys):
    """Run the CLI on ``files`` (speech.wav and stereo.flac among bad ones): exit status 1, and
    the two good files still transcribed, in order; returns what it printed."""
    code = main(["transcribe", "--model", str(out / ONNX_FP32), *map(str, files)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines() == [
        eager_text(model, sp, audio / "speech.wav", None, out),
        eager_text(model, sp, audio / "stereo.flac", None, out),
    ]
    return captured


def test_cli_reports_bad_files_and_still_transcribes_the_rest(tiny_export, audio, capsys):
    out, model, sp = tiny_export
    files = [
        audio / "speech.wav",
        audio / "missing.wav",
        audio / "corrupt.wav",
        audio / "empty.wav",
        audio / "stereo.flac",
    ]
    captured = transcribe_with_bad_files(out, model, sp, audio, files, capsys)
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
    assert set(row) == {"file", "text", "decoder", "audio_seconds", "compute_seconds", "rtf", "seconds"}
    assert row["file"] == str(audio / "speech.wav") and row["decoder"] == "lexicon+lm"
    assert row["compute_seconds"] > 0 and row["audio_seconds"] > 1.0
    parts = row["seconds"]  # the whole call: the file read, then what compute_seconds covers
    assert set(parts) == {"read", "fbank", "model", "decode"} and min(parts.values()) > 0
    assert parts["fbank"] + parts["model"] + parts["decode"] == pytest.approx(
        row["compute_seconds"], abs=2e-4
    )


def test_cli_decoder_overrides_the_models_default(tiny_export, audio, capsys):
    out, model, sp = tiny_export
    texts = {}
    for decoder in ("greedy", "lexicon", "lexicon+lm"):
        assert (
            main(
                [
                    "transcribe",
                    "--decoder",
                    decoder,
                    "--model",
                    str(out / ONNX_FP32),
                    str(audio / "speech.wav"),
                ]
            )
            == 0
        )
        texts[decoder] = capsys.readouterr().out.rstrip("\n")
        assert texts[decoder] == eager_text(model, sp, audio / "speech.wav", decoder, out)
    assert texts["greedy"] != texts["lexicon"]  # a random model misspells; the lexicon spells words
    lexicon = {line.split()[0] for line in (out / "lexicon.txt").read_text().splitlines()}
    assert set(texts["lexicon+lm"].split()) <= lexicon and set(texts["lexicon"].split()) <= lexicon


def test_cli_decoder_names_match_the_decoding_module():
    assert cli.DECODERS == DECODERS


def test_end_to_end_rtf_times_every_part_and_the_decoders_share(tiny_export, audio):
    out, _, _ = tiny_export
    model = ExportedModel.load(out / ONNX_INT8)
    files = [audio / "speech.wav", audio / "stereo.flac"]
    result = end_to_end_rtf(model, files, repeats=2)
    assert result["decoder"] == "lexicon+lm" and result["files"] == 2
    seconds = sum(sf.info(str(f)).duration for f in files)
    assert result["audio_seconds"] == pytest.approx(seconds, abs=2e-3)
    assert result["rtf_end_to_end"] == pytest.approx(sum(result["seconds"].values()) / seconds, rel=1e-2)
    assert 0 < result["decode_share"] < 1
    assert result["decode_share"] == pytest.approx(
        result["seconds"]["decode"] / sum(result["seconds"].values()), abs=1e-3
    )
    with pytest.raises(ValueError, match="at least one file"):
        end_to_end_rtf(model, [], repeats=1)


def test_cli_rejects_non_finite_silent_and_directory_input_and_transcribes_the_rest(
    tiny_export, audio, bad_audio, capsys
):
    out, model, sp = tiny_export
    bad = [bad_audio / name for name in BAD_AUDIO]
    files = [audio / "speech.wav", *bad, audio / "stereo.flac"]
    captured = transcribe_with_bad_files(out, model, sp, audio, files, capsys)
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


# Long audio: window by window (pipeline.deploy.transcribe module docstring).
SMALL_WINDOW, SMALL_CONTEXT = 40, 8  # output frames (1.6 s, 0.32 s): many windows on a few seconds


@pytest.fixture(scope="module")
def long_audio(audio, tmp_path_factory):
    """About 50 s of speech (the test sentence, repeated with pauses): longer than two default windows."""
    wav, sr = sf.read(str(audio / "speech.wav"), dtype="float32")
    pause = np.zeros(sr // 2, np.float32)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.tile(np.concatenate([wav, pause]), int(np.ceil(50 * sr / (len(wav) + len(pause))))), sr)
    return path


def small_windows(out: Path) -> ExportedModel:
    """The fp32 export with windows of :data:`SMALL_WINDOW` output frames."""
    frame = 4 * FEATURES.frame_shift_ms / 1000
    return ExportedModel.load(
        out / ONNX_FP32, window_seconds=SMALL_WINDOW * frame, context_seconds=SMALL_CONTEXT * frame
    )


@pytest.mark.parametrize(
    "frames, window, context",
    [(1000, 500, 100), (501, 500, 100), (97, 40, 8), (250, 40, 8), (41, 40, 0), (1234, 41, 20)],
)
def test_windows_tile_the_frames_and_keep_context_on_both_sides(frames, window, context):
    windows = plan_windows(frames, window, context)
    assert [w.keep_start for w in windows] == [0] + [w.keep_stop for w in windows[:-1]]
    assert windows[-1].keep_stop == frames and windows[-1].stop == frames
    for w in windows:
        assert w.stop - w.start == window and w.start >= 0
        assert w.keep_start < w.keep_stop
        assert w.keep_start == 0 or w.keep_start - w.start >= context
        assert w.keep_stop == frames or w.stop - w.keep_stop >= context
    hop = window - 2 * context
    assert len(windows) == 1 + -(-(frames - window) // hop)


def test_one_window_covers_short_input_whole():
    assert plan_windows(500, 500, 100) == [Window(0, 500, 0, 500)]


@pytest.mark.parametrize("window, context", [(10, 5), (10, 6), (10, -1)])
def test_a_window_without_a_central_part_is_rejected(window, context):
    with pytest.raises(ValueError, match="no central part"):
        plan_windows(100, window, context)


@pytest.mark.parametrize("block_seconds", [3.7, 10.0, 60.0])
def test_fbank_in_blocks_gives_the_frames_of_one_call(long_audio, block_seconds):
    wav = read_audio(long_audio, 16000).samples  # ~50 s: blocks with a shorter last one, or one call
    whole = fbank(wav, 16000, FEATURES)
    blocked = fbank_in_blocks(wav, 16000, FEATURES, block_seconds)
    assert blocked.shape == whole.shape
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("extra", [0, 3])
def test_input_up_to_one_window_is_run_whole_as_before(tiny_export, audio, extra):
    """Up to one window (here exactly one, 4 W + 3 and 4 W + 6 fbank frames) nothing changes:
    the same single model run, bit for bit, and the same text."""
    out, _, _ = tiny_export
    model = small_windows(out)
    feats = fbank(read_audio(audio / "speech.wav", 16000).samples, 16000, FEATURES)
    feats = feats[: 4 * SMALL_WINDOW + 3 + extra]
    assert subsampled_lengths(len(feats)) == SMALL_WINDOW
    before, lengths = model.runner(*as_batch(feats))  # what decode ran before windowing
    logits, got_lengths = model.logits(feats)
    np.testing.assert_array_equal(logits, before)
    np.testing.assert_array_equal(got_lengths, lengths)
    assert model.decode(feats) == model.decoder(torch.from_numpy(before), torch.from_numpy(lengths))[0]


def test_long_input_is_stitched_to_the_exact_frame_count_from_its_windows(tiny_export, long_audio):
    out, eager, _ = tiny_export
    model = small_windows(out)
    feats = fbank(read_audio(long_audio, 16000).samples, 16000, FEATURES)  # (T, 40), T ~ 5000
    seen: list[int] = []

    def recording(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(x.shape[1])
        return model.runner(x, lengths)

    windows = model.windows(len(feats))
    stitched = stitched_logits(recording, feats, windows)
    total = subsampled_lengths(len(feats))
    assert len(windows) > 10
    assert stitched.shape == (total, eager.vocab_size)
    assert max(seen) == 4 * SMALL_WINDOW + 3 and len(seen) == len(
        windows
    )  # the model sees one window at a time
    logits, lengths = model.logits(feats)
    np.testing.assert_array_equal(logits[0], stitched)
    assert lengths.tolist() == [total]
    for w in windows:
        start = 4 * w.start  # the window's own input, cut here independently of Window.feats_slice
        own = torch.from_numpy(feats[start : start + 4 * SMALL_WINDOW + 3])[None]
        with torch.no_grad():
            reference, _ = eager(own, torch.tensor([own.shape[1]]))  # (1, SMALL_WINDOW, V) eager PyTorch
        inner = slice(max(w.keep_start, w.start + SMALL_CONTEXT), min(w.keep_stop, w.stop - SMALL_CONTEXT))
        assert inner.stop - inner.start >= 1
        np.testing.assert_allclose(
            stitched[inner], reference[0, inner.start - w.start : inner.stop - w.start].numpy(), atol=1e-4
        )


def test_cli_transcribes_a_long_file_in_windows(tiny_export, long_audio, capsys):
    out, _, _ = tiny_export
    model = ExportedModel.load(out / ONNX_INT8)
    assert len(model.windows(len(model.features_of(long_audio, read_audio(long_audio, 16000).samples)))) > 2
    assert main(["transcribe", "--json", "--model", str(out / ONNX_INT8), str(long_audio)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["audio_seconds"] > 45
    assert row["text"].strip() and row["text"] == model.transcribe(long_audio).text


def test_cli_rejects_a_window_without_a_central_part(tiny_export, audio, capsys):
    out, _, _ = tiny_export
    args = [
        "transcribe",
        "--model",
        str(out / ONNX_FP32),
        "--window",
        "2",
        "--context",
        "1",
        str(audio / "speech.wav"),
    ]
    assert main(args) == 1
    assert "no central part" in capsys.readouterr().err


def test_cli_window_defaults_match_transcribe():
    assert (cli.WINDOW_SECONDS, cli.CONTEXT_SECONDS) == (WINDOW_SECONDS, CONTEXT_SECONDS)


def test_deployed_benchmark_prints_each_runtimes_figures(tiny_export, audio, tmp_path):
    out, model, sp = tiny_export
    rows = [
        {"audio": str(audio / "speech.wav"), "text": "hello world this is a small test"},
        {"audio": str(audio / "stereo.flac"), "text": "the export and the transcribe command"},
    ]
    write_jsonl(tmp_path / "m.jsonl", rows)
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "deployed.py"
    cmd = [sys.executable, str(script), str(out), "--manifest", str(tmp_path / "m.jsonl"), "--repeats", "1"]
    proc = subprocess.run([*cmd, "--decoder", "lexicon"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {"export.onnx", "export.int8"}
    fp32 = report["export.onnx"]
    expected = [eager_text(model, sp, Path(r["audio"]), "lexicon", out) for r in rows]
    words = sum(len(r["text"].split()) for r in rows)
    errors = sum(
        utterance_errors([r["text"]], [h]).words.sum() for r, h in zip(rows, expected)
    )  # the eager model's errors with the same decoder: fp32 ONNX matches its logits
    assert fp32["decoder"] == "lexicon" and fp32["wer"] == round(errors / words, 4)
    assert fp32["wer_ci"][0] <= fp32["wer"] <= fp32["wer_ci"][1]
    assert fp32["files"] == 2
    # The RTF and the decoding share are the reported part timings over the reported audio.
    total = sum(fp32["seconds"].values())
    assert fp32["rtf_end_to_end"] == pytest.approx(total / fp32["audio_seconds"], rel=1e-3, abs=1e-5)
    assert fp32["decode_share"] == pytest.approx(fp32["seconds"]["decode"] / total, abs=1e-4)
    assert fp32["audio_seconds"] == pytest.approx(sum(sf.info(r["audio"]).duration for r in rows), abs=1e-3)
