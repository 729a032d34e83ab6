"""The export graph's inference rewrite reproduces the trained model."""

import onnx
import pytest
import torch
from testkit import tiny_conformer

from pipeline.deploy.inference import DeployConformer
from pipeline.export.formats import export_onnx
from pipeline.model.conformer import ConformerCTC

# Three heads of width 8 and two layers: a head split or a layer folded wrongly shows up.
SHAPE = {"d_model": 24, "num_layers": 2, "num_heads": 3, "ffn_dim": 40, "conv_kernel": 5, "dropout": 0.1}


def trained_looking_model(seed: int = 0) -> ConformerCTC:
    """A model whose every weight, norm gain and bias, and CMVN is off its init value,
    so that a weight copied or folded wrongly shows up in the outputs."""
    model = tiny_conformer(n_mels=40, vocab_size=17, seed=seed, cmvn=False, **SHAPE)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model.set_cmvn((8 + torch.randn(40)).tolist(), (2 + torch.rand(40)).tolist())
    return model.eval()


@pytest.mark.parametrize("lengths", [[97], [250, 97, 31, 180]])
def test_deploy_model_matches_trained_model_on_padded_batches(lengths):
    model = trained_looking_model()
    feats = 8 + 3 * torch.randn(len(lengths), max(lengths), 40)
    n = torch.tensor(lengths)
    with torch.no_grad():
        ref, ref_n = model(feats, n)
        got, got_n = DeployConformer(model)(feats, n)
    assert torch.equal(got_n, ref_n)
    for i, frames in enumerate(ref_n.tolist()):  # padded frames' logits are don't-care
        torch.testing.assert_close(got[i, :frames], ref[i, :frames], atol=1e-4, rtol=1e-4)


def test_building_the_deploy_model_leaves_the_trained_model_alone():
    model = trained_looking_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deploy = DeployConformer(model)
    with torch.no_grad():
        for p in deploy.parameters():
            p.mul_(0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not deploy.training


def test_deploy_graph_has_fewer_onnx_ops(tmp_path):
    model = trained_looking_model()
    export_onnx(model, tmp_path / "trained.onnx", opset=18)
    export_onnx(DeployConformer(model), tmp_path / "deploy.onnx", opset=18)
    count = {
        name: len(onnx.load(str(tmp_path / f"{name}.onnx")).graph.node) for name in ("trained", "deploy")
    }
    # The training model already runs its layers in (N, T, D) with linear pointwise convolutions;
    # the deploy graph still folds constants (macaron 0.5, 1/sqrt(d_head), CMVN) into weights.
    assert count["deploy"] < 0.9 * count["trained"], count
