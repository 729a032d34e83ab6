"""Export round trip on a tiny random ConformerCTC: TorchScript, ONNX fp32, ONNX int8."""

import json

import numpy as np
import onnx
import pytest
import torch

from pipeline.config import default_params
from pipeline.export import ExportParityError, check_parity
from pipeline.model import ConformerCTC, subsampled_lengths
from pipeline.runtime import (
    CONFIG,
    ONNX_FP32,
    ONNX_INT8,
    TOKENIZER,
    TORCHSCRIPT,
    onnx_runner,
    torch_runner,
    torchscript_runner,
)


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
    torch.manual_seed(123)  # a different model: its logits cannot match the exported ones
    other = ConformerCTC(model.cfg, model.n_mels, model.vocab_size).eval()
    other.set_cmvn([8.0] * 40, [3.0] * 40)
    feats = [padded_batch([200])[0][0]]
    with pytest.raises(ExportParityError, match=r"student\.torchscript\.pt: parity failed"):
        check_parity(other, out, feats, ["hello"], sp, default_params().export)


def test_int8_wer_tolerance_is_enforced(tiny_export):
    out, model, sp = tiny_export
    feats = [padded_batch([n], seed=n)[0][0] for n in (150, 260, 90, 400)]
    hyps = check_parity(model, out, feats, ["x"] * 4, sp, default_params().export)["wer"]
    strict = default_params({"export.int8_wer_tolerance": 0.0}).export
    if hyps["student.distilled.int8"] == hyps["student.distilled.torch"]:
        check_parity(model, out, feats, ["x"] * 4, sp, strict)  # equal WER passes at 0 tolerance
    else:
        with pytest.raises(ExportParityError, match=r"student\.int8\.onnx: int8 test WER"):
            check_parity(model, out, feats, ["x"] * 4, sp, strict)
