import pytest
import torch
from testkit import WIDER, tiny_config

from pipeline.model.conformer import (
    ConformerCTC,
    conformer_layer,
    dropout,
    keep_mask,
    load_model,
    save_model,
    subsampled_lengths,
)
from pipeline.model.ctc import ctc_loss, greedy_decode

TINY = tiny_config(**WIDER)


def test_shapes_and_four_times_subsampling():
    model = ConformerCTC(TINY, n_mels=80, vocab_size=20).eval()
    feats = torch.randn(3, 101, 80)
    lengths = torch.tensor([101, 80, 40])
    logits, out_lengths = model(feats, lengths)
    assert logits.shape == (3, int(subsampled_lengths(torch.tensor(101))), 20)
    assert out_lengths.tolist() == subsampled_lengths(lengths).tolist() == [24, 19, 9]


def test_padding_does_not_change_outputs():
    model = ConformerCTC(TINY, n_mels=80, vocab_size=20).eval()
    x = torch.randn(1, 60, 80)
    alone, n = model(x, torch.tensor([60]))
    padded, _ = model(torch.cat([x, torch.randn(1, 40, 80)], 1), torch.tensor([60]))
    torch.testing.assert_close(alone[0, : n[0]], padded[0, : n[0]], atol=1e-4, rtol=1e-4)


def test_save_load_round_trip(tmp_path):
    model = ConformerCTC(TINY, n_mels=80, vocab_size=20).eval()
    model.set_cmvn([1.0] * 80, [2.0] * 80)
    save_model(model, tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    x, n = torch.randn(2, 50, 80), torch.tensor([50, 50])
    torch.testing.assert_close(model(x, n)[0], again(x, n)[0])


def test_tiny_model_overfits_a_few_utterances():
    torch.manual_seed(0)
    model = ConformerCTC(TINY, n_mels=80, vocab_size=12)
    feats = torch.randn(4, 120, 80)
    lengths = torch.tensor([120, 120, 100, 90])
    labels = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11]]
    targets = torch.tensor([t for seq in labels for t in seq], dtype=torch.int32)
    target_lengths = torch.tensor([len(s) for s in labels], dtype=torch.int32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(250):
        logits, out = model(feats, lengths)
        loss = ctc_loss(logits.log_softmax(-1), out, targets, target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    logits, out = model(feats, lengths)
    assert greedy_decode(logits, out) == labels


def test_layer_matches_torchaudio_when_nothing_is_padded():
    model = ConformerCTC(TINY, n_mels=80, vocab_size=20).eval()
    layer = model.encoder.conformer_layers[0]
    x = torch.randn(30, 2, TINY.d_model)  # (T, N, D), torchaudio's layout
    mask = torch.zeros(2, 30, dtype=torch.bool)
    bias = torch.zeros(2, 1, 1, 30)
    ours = conformer_layer(layer, x.transpose(0, 1), bias, torch.ones(2, 30, 1))  # (N, T, D)
    torch.testing.assert_close(ours.transpose(0, 1), layer(x, mask))


def test_keep_mask_keeps_one_minus_p_of_every_lane():
    torch.manual_seed(0)
    mask = torch.stack([keep_mask((1000, 257), 0.15) for _ in range(8)]).float()
    assert mask.mean().item() == pytest.approx(0.85, abs=0.002)
    for lane in mask.flatten().view(-1, 4).mean(0):  # the four 16-bit lanes of a draw
        assert lane.item() == pytest.approx(0.85, abs=0.004)


def test_dropout_scales_what_it_keeps_and_its_gradient_follows_the_mask():
    torch.manual_seed(0)
    x = torch.ones(200, 50, requires_grad=True)
    y = dropout(x, 0.2, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.8))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.8)
    assert dropout(x, 0.2, training=False) is x
