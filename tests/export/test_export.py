"""Export round trip on a tiny random ConformerCTC: TorchScript, ONNX fp32, ONNX int8."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from testkit import mixture_logits, tiny_conformer

from pipeline.config import default_params
from pipeline.deploy.inference import DeployConformer
from pipeline.deploy.runtime import (
    CONFIG,
    ONNX_FP32,
    ONNX_INT8,
    TOKENIZER,
    TORCHSCRIPT,
    onnx_runner,
    torch_runner,
    torchscript_runner,
)
from pipeline.export.formats import (
    ExportParityError,
    check_parity,
    choose_lm_weights,
    decoding_entry,
    deployed_wer,
    export_onnx,
    transcripts,
)
from pipeline.model.conformer import subsampled_lengths
from pipeline.model.decoding import LEXICON, LM, Greedy
from pipeline.wer import score


def padded_batch(lengths: list[int], n_mels: int = 40, seed: int = 1):
    """Random fbank-scale features ``(N, max T, n_mels)``, zero padded, and their lengths."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.zeros(len(lengths), max(lengths), n_mels)
    for i, n in enumerate(lengths):
        feats[i, :n] = 8.0 + 3.0 * torch.randn(n, n_mels, generator=g)
    return feats.numpy(), np.array(lengths, dtype=np.int64)


# Shapes the exporters never saw (they trace at batch 2 x 400 and batch 3 x 123 frames).
SHAPES = [[97], [250, 97, 180], [1000, 40, 333, 17, 600]]


@pytest.mark.parametrize("lengths", SHAPES)
@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_exported_logits_match_eager_at_unseen_batch_and_time(tiny_export, kind, lengths):
    out, model, _ = tiny_export
    runner = torchscript_runner(out / TORCHSCRIPT) if kind == "torchscript" else onnx_runner(out / ONNX_FP32)
    feats, n = padded_batch(lengths)
    ref, ref_n = torch_runner(model)(feats, n)
    got, got_n = runner(feats, n)
    assert got.shape == ref.shape
    assert got_n.tolist() == ref_n.tolist()
    assert np.abs(got - ref).max() < 1e-4


def test_int8_model_is_quantized_and_gives_finite_logits(tiny_export):
    out, model, _ = tiny_export
    nodes = [node.op_type for node in onnx.load(str(out / ONNX_INT8)).graph.node]
    ops = set(nodes)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops, sorted(ops)
    # Convolutions stay float: ConvInteger is slower than Conv in onnxruntime on the CPU.
    assert "Conv" in ops and "ConvInteger" not in ops, sorted(ops)
    # Every weight matrix is int8: per layer two per feed-forward module, attention's
    # input and output projections, the convolution module's two pointwise layers
    # (linear in the deploy graph); plus the subsampling projection and the output layer.
    layers = model.cfg.num_layers
    assert nodes.count("MatMulInteger") == 8 * layers + 2
    assert nodes.count("Conv") == 2 + layers  # subsampling, one depthwise per layer
    feats, n = padded_batch([300, 120])
    logits, got_n = onnx_runner(out / ONNX_INT8)(feats, n)
    ref, _ = torch_runner(model)(feats, n)
    assert logits.shape == ref.shape
    assert np.isfinite(logits).all()
    assert got_n.tolist() == subsampled_lengths(torch.from_numpy(n)).tolist() == [74, 29]


def test_export_directory_is_self_describing(tiny_export):
    out, model, sp = tiny_export
    config = json.loads((out / CONFIG).read_text())
    assert config["sample_rate"] == 16000
    assert config["features"] == {
        "n_mels": 40,
        "frame_shift_ms": 10.0,
        "frame_length_ms": 25.0,
        "dither": 0.0,
    }
    assert config["vocab_size"] == model.vocab_size == sp.get_piece_size()
    assert (out / TOKENIZER).read_bytes() == sp.serialized_model_proto()
    assert not list(out.glob("*.data"))  # one self-contained ONNX file


def test_check_parity_reports_differences_and_wer(tiny_export):
    out, model, sp = tiny_export
    feats = [padded_batch([n], seed=n)[0][0] for n in (150, 260, 90)]
    refs = ["hello world", "a small test", "the export"]
    result = check_parity(model, out, feats, refs, sp, default_params().export)
    parity = result["parity"]
    assert parity["torchscript_max_abs_diff"] < 1e-4
    assert parity["onnx_max_abs_diff"] < 1e-4
    assert parity["utterances"] == 3
    assert set(result["wer"]) == {f"student.distilled.{k}" for k in ("torch", "torchscript", "onnx", "int8")}
    assert result["wer"]["student.distilled.torch"] == result["wer"]["student.distilled.onnx"]


def test_parity_failure_names_the_file(tiny_export):
    out, model, sp = tiny_export
    # a different model: its logits cannot match the exported ones
    other = tiny_conformer(model.n_mels, model.vocab_size, seed=123, **model.cfg.model_dump())
    feats = [padded_batch([200])[0][0]]
    with pytest.raises(ExportParityError, match=r"student\.torchscript\.pt: parity failed"):
        check_parity(other, out, feats, ["hello"], sp, default_params().export)


def test_int8_wer_tolerance_is_enforced(tiny_export, tmp_path):
    """The int8 file swapped for another random model's graph: the references are eager's own
    transcripts (eager WER 0), so the int8 WER is the delta, and the tolerance alone decides."""
    out, model, sp = tiny_export
    swapped = tmp_path / "export"
    shutil.copytree(out, swapped)
    other = tiny_conformer(model.n_mels, model.vocab_size, seed=7, **model.cfg.model_dump())
    export_onnx(DeployConformer(other), swapped / ONNX_INT8, opset=18)
    feats = [padded_batch([n], seed=n)[0][0] for n in (150, 260, 90, 400)]
    refs = transcripts(torch_runner(model), feats, Greedy(sp))
    int8_wer = score(refs, transcripts(onnx_runner(swapped / ONNX_INT8), feats, Greedy(sp)))[0]
    assert all(refs) and int8_wer >= 0.1  # the swap really changes the transcripts
    at_limit = default_params({"export.int8_wer_tolerance": int8_wer}).export
    result = check_parity(model, swapped, feats, refs, sp, at_limit)
    assert result["wer"]["student.distilled.torch"] == 0.0
    assert result["wer"]["student.distilled.int8"] == result["parity"]["int8_wer_delta"] == int8_wer
    below = default_params({"export.int8_wer_tolerance": int8_wer - 0.01}).export
    message = rf"student\.int8\.onnx: int8 test WER {int8_wer:.4f} differs from eager 0\.0000 by more than"
    with pytest.raises(ExportParityError, match=message):
        check_parity(model, swapped, feats, refs, sp, below)


def test_export_carries_its_decoding_resources(tiny_export):
    out, _, sp = tiny_export
    decoding = json.loads((out / CONFIG).read_text())["decoding"]
    assert decoding == {
        "decoders": ["greedy", "lexicon", "lexicon+lm"],
        "default": "lexicon+lm",
        "beam_size": 20,
        "lexicon": LEXICON,
        "lm": LM,
        "lm_weight": 1.0,
        "word_score": 0.0,
    }
    source = out.parent / "lm"  # what the fixture built, as the lm stage does
    assert (out / LEXICON).read_text() == (source / LEXICON).read_text()
    assert (out / LM).read_text() == (source / LM).read_text()
    spelled = f"hello {' '.join(sp.id_to_piece(i) for i in sp.encode('hello'))}"
    assert spelled in (out / LEXICON).read_text().splitlines()


def test_a_greedy_only_export_names_no_lexicon_or_lm():
    cfg = default_params({"decoding.decoders": ["greedy"], "decoding.default": "greedy"}).decoding
    entry = decoding_entry(cfg, lm_weight=0.0, word_score=0.0)
    assert entry["lexicon"] is None and entry["lm"] is None and entry["default"] == "greedy"
    assert decoding_entry(default_params().decoding, 1.0, 0.0)["lm"] == LM


def test_the_dev_grid_keeps_the_lm_weight_with_the_lowest_wer(tiny_export):
    """Utterances where acoustics lean to a word the LM rules out in that context: the grid's
    LM weight 0 decodes them wrong, 2 right, and 2 is kept."""
    out, _, sp = tiny_export
    length = 2 * (max(len(sp.encode(t)) for t in ("a small export", "hello world")) + 2)
    wrong = mixture_logits(sp, [("a small export", 0.55), ("a small test", 0.45)], length)[0]
    clean = mixture_logits(sp, [("hello world", 1.0)], length)[0]
    cfg = default_params({"decoding.grid": {"lm_weight": [0.0, 2.0], "word_score": [0.0]}}).decoding
    chosen = choose_lm_weights(
        [wrong, clean, wrong], ["a small test", "hello world", "a small test"], sp, out, cfg
    )
    assert [g["lm_weight"] for g in chosen["grid"]] == [0.0, 2.0]
    assert chosen["grid"][0]["wer"] == pytest.approx(2 / 8)  # "test" -> "export" twice, 8 words
    assert chosen["grid"][1]["wer"] == 0.0
    assert (chosen["lm_weight"], chosen["word_score"], chosen["wer"]) == (2.0, 0.0, 0.0)


def test_deployed_wer_carries_evaluates_bootstrap_interval():
    refs = ["a b c d", "e f", "g h i", "j k l m n"] * 10
    hyps = ["a b x d", "e f", "g i", "j k l m n"] * 10
    cfg = default_params().evaluate
    result = deployed_wer(hyps, refs, "lexicon+lm", cfg)
    assert result["decoder"] == "lexicon+lm" and result["wer"] == round(2 / 14, 4)
    lo, hi = result["wer_ci"]
    assert lo < 2 / 14 < hi and hi - lo < 0.2
    assert deployed_wer(hyps, refs, "x", cfg)["wer_ci"] == result["wer_ci"]  # seeded resamples
