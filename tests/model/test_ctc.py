import torch

from pipeline.model.ctc import ctc_loss, greedy_decode, guided_ctc_loss


def one_hot_logits(frames: list[int], vocab: int = 6) -> torch.Tensor:
    logits = torch.full((len(frames), vocab), -10.0)
    logits[torch.arange(len(frames)), torch.tensor(frames)] = 10.0
    return logits


def test_greedy_decode_merges_repeats_and_drops_blanks():
    a = one_hot_logits([0, 3, 3, 0, 3, 2, 2, 0])
    b = one_hot_logits([5, 5, 0, 4, 0, 0, 0, 0])
    batch = torch.stack([a, b])
    assert greedy_decode(batch, torch.tensor([8, 4])) == [[3, 3, 2], [5, 4]]


def test_greedy_decode_respects_lengths():
    a = one_hot_logits([1, 2, 3, 4])
    assert greedy_decode(a[None], torch.tensor([2])) == [[1, 2]]


def test_ctc_loss_is_per_frame_and_lower_for_the_right_labels():
    logits = one_hot_logits([0, 3, 0, 2, 0])[None].log_softmax(-1)
    lengths = torch.tensor([5])
    right = ctc_loss(logits, lengths, torch.tensor([3, 2], dtype=torch.int32), torch.tensor([2]))
    wrong = ctc_loss(logits, lengths, torch.tensor([4, 1], dtype=torch.int32), torch.tensor([2]))
    assert right < 0.01 < wrong


def test_guided_loss_rewards_spikes_on_the_guides_frames():
    guide = torch.tensor([[0, 3, 0, 2, 0]])
    aligned = one_hot_logits([0, 3, 0, 2, 0])[None].log_softmax(-1)
    shifted = one_hot_logits([3, 0, 2, 0, 0])[None].log_softmax(-1)
    lengths = torch.tensor([5])
    assert guided_ctc_loss(aligned, lengths, guide) < 0.01
    assert guided_ctc_loss(shifted, lengths, guide) > 5


def test_guided_loss_ignores_padding():
    guide = torch.tensor([[0, 3, 4, 4]])
    log_probs = one_hot_logits([0, 3, 0, 0])[None].log_softmax(-1)
    assert guided_ctc_loss(log_probs, torch.tensor([2]), guide) < 0.01
    assert guided_ctc_loss(log_probs, torch.tensor([4]), guide) > 5
