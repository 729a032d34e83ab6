"""Streaming students: chunked attention and causal convolutions, the one-chunk ONNX step with
explicit caches, ``transcribe --stream``, delayed soft targets and spike delays."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import export_random_model
from testkit import tiny_config, tiny_conformer

from pipeline.audio.fbank import fbank
from pipeline.cli import main
from pipeline.config import FbankConfig, default_params
from pipeline.deploy.inference import DeployConformer
from pipeline.deploy.runtime import ONNX_FP32, STREAMING
from pipeline.deploy.streaming import (
    StreamingFbank,
    StreamingModel,
    StreamingStep,
    algorithmic_latency_ms,
    window_frames,
)
from pipeline.export.formats import check_parity
from pipeline.io import read_json
from pipeline.model.conformer import ConformerCTC, chunk_mask
from pipeline.model.spikes import measure_delays, spikes, token_delays
from pipeline.prepare.espeak import Espeak
from pipeline.train.kd import delay_targets

STREAM = {"chunk_frames": 4, "left_frames": 8}


def streaming_model(n_mels: int = 40, vocab: int = 30, seed: int = 0, **cfg) -> ConformerCTC:
    """A two-layer tiny model with a kernel-5 convolution, chunked as :data:`STREAM` unless ``cfg`` says."""
    return tiny_conformer(n_mels, vocab, seed, num_layers=2, conv_kernel=5, **{**STREAM, **cfg})


def test_chunk_mask_sees_own_chunk_and_left_context_only():
    m = chunk_mask(8, chunk=2, left=2)
    allowed = ~m
    assert allowed[0].tolist() == [True, True] + [False] * 6
    assert allowed[5].tolist() == [False, False, True, True, True, True, False, False]


@torch.no_grad()
def test_later_audio_never_changes_earlier_chunks():
    model = streaming_model()
    x = torch.randn(1, 203, 40) * 3 + 8
    later = x.clone()
    later[:, 120:] = torch.randn(1, 83, 40) * 3 + 8
    a, _ = model(x, torch.tensor([203]))
    b, _ = model(later, torch.tensor([203]))
    # Output frame t reads input frames 4t..4t+6: frames 0..27 (chunks 0-6) read no changed input.
    assert torch.equal(a[0, :28], b[0, :28])
    assert not torch.allclose(a[0, 28:], b[0, 28:])


@torch.no_grad()
def test_full_context_model_does_see_the_future():
    model = streaming_model(chunk_frames=0, left_frames=0)
    x = torch.randn(1, 203, 40) * 3 + 8
    later = x.clone()
    later[:, 120:] += 1.0
    assert not torch.allclose(
        model(x, torch.tensor([203]))[0][0, :20], model(later, torch.tensor([203]))[0][0, :20]
    )


@torch.no_grad()
def test_batch_padding_does_not_change_a_streaming_utterance():
    model = streaming_model()
    x = torch.randn(1, 150, 40) * 3 + 8
    alone, n = model(x, torch.tensor([150]))
    batch = torch.cat([torch.cat([x, torch.randn(1, 90, 40)], 1), torch.randn(1, 240, 40)])
    padded, _ = model(batch, torch.tensor([150, 240]))
    torch.testing.assert_close(padded[0, : n[0]], alone[0], atol=1e-5, rtol=0)
    deploy, _ = DeployConformer(model)(batch, torch.tensor([150, 240]))
    torch.testing.assert_close(deploy, padded, atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames", [19, 20, 23, 150, 203, 211])
@torch.no_grad()
def test_chunk_by_chunk_step_equals_the_full_utterance(frames):
    model = streaming_model()
    feats = torch.randn(frames, 40) * 3 + 8
    offline, n = model(feats[None], torch.tensor([frames]))
    step, state = StreamingStep(model), StreamingStep(model).initial_state()
    window, shift = window_frames(4), 16
    outs, pos = [], 0
    while frames - pos >= window:
        logits, a, c, k = step(feats[None, pos : pos + window], torch.tensor([4]), *state.values())
        state = {"att_cache": a, "conv_cache": c, "cached": k}
        outs.append(logits[0])
        pos += shift
    rest = frames - pos
    valid = ((rest - 1) // 2 - 1) // 2
    if valid > 0:
        last = torch.zeros(window, 40)
        last[:rest] = feats[pos:]
        outs.append(step(last[None], torch.tensor([valid]), *state.values())[0][0, :valid])
    streamed = torch.cat(outs)
    assert streamed.shape == offline[0, : n[0]].shape
    torch.testing.assert_close(streamed, offline[0], atol=1e-5, rtol=0)


def test_streaming_fbank_equals_fbank_of_the_whole_signal():
    cfg = FbankConfig(n_mels=40, frame_shift_ms=10.0, frame_length_ms=25.0, dither=0.0)
    wav = np.random.default_rng(0).normal(0, 0.1, 16000 * 2 + 123).astype(np.float32)
    stream = StreamingFbank(16000, cfg)
    got = np.concatenate([stream.accept(wav[i : i + 1234]) for i in range(0, len(wav), 1234)])
    np.testing.assert_allclose(got, fbank(wav, 16000, cfg), atol=1e-4)


def test_algorithmic_latency_is_chunk_plus_fbank_lookahead():
    # 6 frames x 40 ms + 2 frame shifts + one 25 ms window
    cfg = FbankConfig(n_mels=80, frame_shift_ms=10.0, frame_length_ms=25.0, dither=0.0)
    assert algorithmic_latency_ms(6, cfg) == 240 + 20 + 25


def test_streaming_needs_left_context_and_full_context_needs_none():
    with pytest.raises(ValueError, match="needs left_frames > 0"):
        tiny_config(chunk_frames=4, left_frames=0)
    with pytest.raises(ValueError, match="left_frames needs chunk_frames > 0"):
        tiny_config(left_frames=4)
    assert not tiny_config(chunk_frames=0, left_frames=0).streaming
    with pytest.raises(ValueError, match="full-context model cannot stream"):
        StreamingStep(streaming_model(chunk_frames=0, left_frames=0))


@pytest.fixture(scope="module")
def stream_export(tmp_path_factory):
    """A random tiny streaming student exported with its tokenizer, and speech to feed it."""
    work = tmp_path_factory.mktemp("stream_export")
    out, model, sp = export_random_model(work, lambda vocab_size: streaming_model(vocab=vocab_size))
    synth = Espeak()
    wav = synth.speak("hello world this is a small test of streaming", voice="en-US+m3", rate=170)
    sf.write(work / "speech.wav", wav, synth.sample_rate)
    return out, model, sp, work / "speech.wav"


def test_export_writes_the_streaming_step_and_its_cache_shapes(stream_export):
    out, model, _, _ = stream_export
    config = read_json(out / "config.json")
    stream = config["streaming"]
    assert (out / STREAMING).is_file() and stream["file"] == STREAMING
    assert stream["chunk_frames"] == 4 and stream["window_frames"] == 19
    assert stream["state_shapes"]["att_cache"] == [2, 2, 2, 8, 8]  # layers, k/v, heads, left, d_head
    assert stream["state_shapes"]["conv_cache"] == [2, 4, 16]  # layers, kernel - 1, channels


def test_parity_check_streams_every_example(stream_export):
    out, model, sp, _ = stream_export
    feats = [
        np.random.default_rng(i).normal(8, 3, (n, 40)).astype(np.float32) for i, n in enumerate((40, 97, 160))
    ]
    parity = check_parity(model, out, feats, ["x"] * 3, sp, default_params().export)["parity"]["streaming"]
    assert parity["utterances"] == 3 and parity["transcripts_differ"] == 0
    assert parity["max_abs_logit_diff"] < 1e-3


@pytest.mark.parametrize("decoder", [None, "greedy", "lexicon+lm"])
def test_stream_transcript_equals_the_offline_decode(stream_export, capsys, decoder):
    """The same decoder offline and streaming (None: the export's default, lexicon+lm), on
    espeak speech; the beam decoders search incrementally (decode_begin/step/end)."""
    out, _, sp, speech = stream_export
    chosen = ["--decoder", decoder] if decoder else []
    assert main(["transcribe", *chosen, "--model", str(out / ONNX_FP32), str(speech)]) == 0
    offline = capsys.readouterr().out.rstrip("\n")
    assert (
        main(["transcribe", "--stream", "--json", *chosen, "--model", str(out / ONNX_FP32), str(speech)]) == 0
    )
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["text"] == offline and offline.strip()  # a random model still emits tokens
    assert result["decoder"] == (decoder or "lexicon+lm")
    assert result["chunks"] >= 2 and result["algorithmic_latency_ms"] == 160 + 45
    if decoder == "greedy":  # the random model's greedy text grows chunk by chunk; its beam text settles late
        partials = captured.err.strip().splitlines()
        assert len(partials) >= 2 and partials[-1].endswith(offline.split()[-1])


def test_stream_of_greedy_and_beam_texts_differ_on_the_same_audio(stream_export):
    out, _, _, speech = stream_export
    texts = {
        d: StreamingModel.load(out / STREAMING, decoder=d).transcribe(speech)["text"]
        for d in ("greedy", "lexicon+lm")
    }
    lexicon = {line.split()[0] for line in (out / "lexicon.txt").read_text().splitlines()}
    assert texts["greedy"] != texts["lexicon+lm"] and set(texts["lexicon+lm"].split()) <= lexicon


def test_stream_of_a_full_context_export_is_a_clear_error(tiny_export, capsys):
    out, _, _ = tiny_export
    assert main(["transcribe", "--stream", "--model", str(out / ONNX_FP32), "x.wav"]) == 1
    assert "streaming.onnx" in capsys.readouterr().err


def test_streaming_model_loads_only_a_streaming_export(stream_export):
    out, *_ = stream_export
    assert StreamingModel.load(out / STREAMING).chunk_frames == 4


def test_delayed_targets_start_with_certain_blank_and_keep_length():
    ids = np.array([[3, 0], [0, 3], [5, 0], [0, 5]], np.int64)
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]], np.float16)
    rest = np.array([0.0, 0.0, 0.0, 0.1], np.float16)
    i, p, r = delay_targets(ids, probs, rest, 2)
    assert i.shape == ids.shape and p.shape == probs.shape and r.shape == rest.shape
    assert i[:2, 0].tolist() == [0, 0] and p[:2, 0].tolist() == [1.0, 1.0]
    assert i[2:].tolist() == ids[:2].tolist() and p[2:].tolist() == probs[:2].tolist()
    assert r.tolist() == [0, 0, 0, 0]
    assert np.array_equal(delay_targets(ids, probs, rest, 0)[0], ids)


def test_spikes_are_the_first_frames_of_non_blank_runs():
    frames, tokens = spikes(np.array([0, 3, 3, 0, 3, 5, 5, 0]))
    assert frames.tolist() == [1, 4, 5] and tokens.tolist() == [3, 3, 5]


def test_token_delays_pair_tokens_along_matching_blocks():
    ref = np.array([0, 3, 0, 4, 0, 5, 0, 0, 0, 0])
    late = np.array([0, 0, 0, 3, 0, 7, 4, 0, 5, 0])  # each token 2 frames late, one insertion (7)
    assert token_delays(ref, late).tolist() == [2, 3, 3]
    result = measure_delays([ref, ref], [late, ref])
    assert result["paired_tokens"] == 6 and result["reference_tokens"] == 6
    assert result["median_frames"] == 1.0  # delays 2, 3, 3, 0, 0, 0
