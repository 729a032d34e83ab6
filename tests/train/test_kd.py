import itertools

import pytest
import torch

from pipeline.model.ensemble import combine_posteriors
from pipeline.soft_targets.build import top_k_with_rest
from pipeline.train.kd import distillation_loss, kd_loss


def dense_kl(teacher_probs: torch.Tensor, student_logits: torch.Tensor, T: float) -> float:
    """Brute force: sum_v q_v (log q_v - log p_v) per frame, by explicit loops."""
    p = torch.softmax(student_logits.double() / T, -1)
    total, frames = 0.0, 0
    for frame_q, frame_p in zip(teacher_probs.double(), p):
        total += sum(float(q * (torch.log(q) - torch.log(pp))) for q, pp in zip(frame_q, frame_p) if q > 0)
        frames += 1
    return total / frames


def coarsened_kl(ids, probs, rest, student_logits, T):
    """Brute force on the (k+1)-way distribution: stored ids plus one bucket for the rest."""
    p = torch.softmax(student_logits.double() / T, -1)
    total = 0.0
    for t in range(p.shape[0]):
        chosen = set(ids[t].tolist())
        p_rest = sum(float(p[t, v]) for v in range(p.shape[1]) if v not in chosen)
        for i, q in zip(ids[t].tolist(), probs[t].double().tolist()):
            total += q * (torch.log(torch.tensor(q)) - torch.log(p[t, i])).item()
        r = float(rest[t])
        if r > 0:
            total += r * (torch.log(torch.tensor(r)) - torch.log(torch.tensor(p_rest))).item()
    return total / p.shape[0]


@pytest.fixture
def frames():
    g = torch.Generator().manual_seed(0)
    teachers = [torch.randn(7, 12, generator=g) * 3 for _ in range(3)]
    student = torch.randn(7, 12, generator=g) * 2
    return teachers, student


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_with_full_k_equals_dense_kl(frames, T):
    teachers, student = frames
    q = combine_posteriors(teachers, T)
    ids, probs, rest = q.topk(12, -1)[1], q.topk(12, -1)[0], torch.zeros(7)
    got = kd_loss(student[None], torch.tensor([7]), ids[None], probs[None], rest[None], T)
    assert got.item() == pytest.approx(dense_kl(q, student, T), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("k,T", [(1, 1.0), (3, 2.0), (8, 4.0)])
def test_kd_top_k_equals_brute_force_coarsened_kl(frames, k, T):
    teachers, student = frames
    q = combine_posteriors(teachers, T)
    ids, probs, rest = (torch.from_numpy(a.astype("float32")) for a in top_k_with_rest(q, k))
    ids = ids.long()
    got = kd_loss(student[None], torch.tensor([7]), ids[None], probs[None], rest[None], T)
    assert got.item() == pytest.approx(coarsened_kl(ids, probs, rest, student, T), rel=2e-3, abs=1e-5)


def test_dense_targets_ignore_round_off_in_the_rest_bucket(frames):
    teachers, student = frames
    q = combine_posteriors(teachers, 2.0)
    ids, probs = q.topk(12, -1)[1], q.topk(12, -1)[0]
    round_off = torch.full((7,), 1e-4)  # what fp16 storage of 1 - sum(probs) can leave behind
    got = kd_loss(student[None], torch.tensor([7]), ids[None], probs[None], round_off[None], 2.0)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(dense_kl(q, student, 2.0), rel=1e-4, abs=1e-6)
    assert top_k_with_rest(q, 12)[2].max() == 0


def test_kd_masks_padded_frames(frames):
    teachers, student = frames
    q = combine_posteriors(teachers, 2.0)
    ids, probs = q.topk(4, -1)[1], q.topk(4, -1)[0]
    rest = 1 - probs.sum(-1)
    full = kd_loss(student[None, :4], torch.tensor([4]), ids[None, :4], probs[None, :4], rest[None, :4], 2.0)
    padded_student = student.clone()
    padded_student[4:] = 100.0  # garbage beyond the length must not matter
    masked = kd_loss(padded_student[None], torch.tensor([4]), ids[None], probs[None], rest[None], 2.0)
    assert masked.item() == pytest.approx(full.item(), rel=1e-6)


def test_kd_is_zero_when_student_matches_teacher(frames):
    teachers, _ = frames
    T = 3.0
    q = combine_posteriors(teachers[:1], T)
    ids, probs = q.topk(12, -1)[1], q.topk(12, -1)[0]
    loss = kd_loss(teachers[0][None], torch.tensor([7]), ids[None], probs[None], torch.zeros(1, 7), T)
    assert abs(loss.item()) < 1e-5


def grad_norm(T: float, scale_by_t2: bool) -> float:
    g = torch.Generator().manual_seed(1)
    teacher = torch.randn(50, 20, generator=g)
    student = torch.randn(50, 20, generator=g).requires_grad_(True)
    q = torch.softmax(teacher / T, -1)
    ids, probs = q.topk(20, -1)[1], q.topk(20, -1)[0]
    kd = kd_loss(student[None], torch.tensor([50]), ids[None], probs[None], torch.zeros(1, 50), T)
    loss = distillation_loss(torch.tensor(0.0), kd, 1.0, T) if scale_by_t2 else kd
    loss.backward()
    return float(student.grad.norm())


def test_t_squared_keeps_gradient_scale_across_temperatures():
    # Hinton et al.: soft-target gradients scale as 1/T^2; multiplying by T^2 undoes it.
    ratio_scaled = grad_norm(5.0, True) / grad_norm(10.0, True)
    ratio_plain = grad_norm(5.0, False) / grad_norm(10.0, False)
    assert ratio_scaled == pytest.approx(1.0, abs=0.15)
    assert ratio_plain == pytest.approx(4.0, rel=0.15)


def test_distillation_loss_mix():
    ctc, kd = torch.tensor(2.0), torch.tensor(0.5)
    assert distillation_loss(ctc, kd, 0.0, 4.0).item() == 2.0
    assert distillation_loss(ctc, kd, 1.0, 4.0).item() == 8.0
    assert distillation_loss(ctc, kd, 0.25, 2.0).item() == pytest.approx(0.75 * 2 + 0.25 * 4 * 0.5)


def test_top_k_with_rest_accounts_for_all_mass(frames):
    teachers, _ = frames
    q = combine_posteriors(teachers, 2.0)
    ids, probs, rest = top_k_with_rest(q, 4)
    assert ids.dtype.name == "uint16" and probs.dtype.name == "float16"
    total = probs.astype("float32").sum(-1) + rest.astype("float32")
    assert abs(total - 1).max() < 2e-3
    for t, row in itertools.product(range(7), range(4)):
        assert q[t, ids[t, row]].item() == pytest.approx(float(probs[t, row]), rel=2e-3)
