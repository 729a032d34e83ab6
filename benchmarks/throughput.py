"""Training and inference throughput in audio hours per minute, on whatever device runs it.

Prints figures; not a test. Measures, on the outputs of a finished ``dvc repro``
(features, tokenizer, teachers, soft targets) in ``--workdir``:

1. teacher training: optimizer steps of a fresh ``guide.model`` teacher (CTC);
2. soft-target inference: every teacher in the ensemble over train utterances,
   softened, averaged, top-k (what the ``soft_targets`` stage does per frame);
3. student training: steps of a fresh ``student`` with the KD + CTC loss on the stored
   soft targets.

Audio time is counted from fbank frames (10 ms each). The first ``--warmup`` batches
of each phase are not timed (allocator, cuDNN autotuning, torch.compile).

Usage::

    python benchmarks/throughput.py --workdir . [--steps 30] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_params  # noqa: E402
from pipeline.ctc import ctc_loss  # noqa: E402
from pipeline.distributed import Context, pick_device  # noqa: E402
from pipeline.ensemble import combine_posteriors  # noqa: E402
from pipeline.kd import distillation_loss, kd_loss  # noqa: E402
from pipeline.loader import make_loader  # noqa: E402
from pipeline.model import load_model  # noqa: E402
from pipeline.recipes import build_model, soft_target_extras  # noqa: E402
from pipeline.soft_targets import top_k_with_rest  # noqa: E402
from pipeline.store import Store  # noqa: E402
from pipeline.tokens import load_tokenizer  # noqa: E402
from pipeline.train import autocast  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(batches, step, device: torch.device, warmup: int, limit: int) -> tuple[float, float]:
    """Run ``step`` over batches; returns (audio hours, wall minutes) after warm-up."""
    frames, t0 = 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        batch = batch.to(device)
        step(batch)
        if i >= warmup:
            frames += int(batch.lengths.sum())
        if i + 1 >= warmup + limit:
            break
    sync(device)
    if t0 is None:
        raise SystemExit("not enough batches: lower --warmup or use a bigger corpus")
    return frames / 100 / 3600, (time.perf_counter() - t0) / 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=".", type=Path)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    w = args.workdir
    params = load_params(w / "params.yaml")
    device = pick_device(args.device)
    ctx = Context(device=device)
    if device.type == "cpu":
        torch.set_num_threads(params.train.threads)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    sp = load_tokenizer(w / "data/tokenizer/spm.model")
    feats, mans = w / "data/features", w / "data/manifests"
    bf = params.train.batch_frames
    print(f"device: {name}; batch_frames {bf}; amp {params.train.amp if device.type == 'cuda' else 'off'}")

    loader = make_loader(feats, mans, "train", sp, bf, train=params.train)
    teacher = build_model(params.teachers.guide.model, feats, sp.get_piece_size(), 0).to(device).train()
    opt = torch.optim.AdamW(teacher.parameters(), lr=1e-4)

    def teacher_step(batch):
        with autocast(ctx, params.train):
            logits, lengths = teacher(batch.feats, batch.lengths)
            loss = ctc_loss(logits.float().log_softmax(-1), lengths, batch.targets, batch.target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()

    hours, minutes = timed(loader.iterate(0, 0), teacher_step, device, args.warmup, args.steps)
    print(
        f"teacher training ({sum(p.numel() for p in teacher.parameters()):,} params): "
        f"{hours / minutes:.3f} audio hours per minute"
    )

    teachers = [load_model(w / f"models/teachers/{n}.pt", device) for n in params.teacher_names()]
    T, k = params.soft_targets.temperature, params.soft_targets.top_k

    @torch.no_grad()
    def soft_step(batch):
        with autocast(ctx, params.train):
            outs = [m(batch.feats, batch.lengths) for m in teachers]
        probs = combine_posteriors([o[0].float() for o in outs], T, params.ensemble.combine)
        lengths = outs[0][1].tolist()
        for row, n in zip(probs, lengths):
            top_k_with_rest(row[:n].cpu(), k)

    hours, minutes = timed(iter(loader), soft_step, device, args.warmup, args.steps)
    print(
        f"soft-target inference ({len(teachers)} teachers, T={T}, top-{k}): "
        f"{hours / minutes:.3f} audio hours per minute"
    )

    soft = Store(w / "data/soft_targets/train")
    kd_loader = make_loader(feats, mans, "train", sp, bf, soft_target_extras(soft), train=params.train)
    student = build_model(params.student_defaults.model, feats, sp.get_piece_size(), 0).to(device).train()
    opt_s = torch.optim.AdamW(student.parameters(), lr=1e-4)
    alpha = params.students["distilled"].alpha

    def student_step(batch):
        with autocast(ctx, params.train):
            logits, lengths = student(batch.feats, batch.lengths)
        logits = logits.float()
        ctc = ctc_loss(logits.log_softmax(-1), lengths, batch.targets, batch.target_lengths)
        kd = kd_loss(
            logits,
            lengths,
            batch.extras["ids"],
            batch.extras["probs"],
            batch.extras["rest"],
            float(soft.meta["temperature"]),
        )
        loss = distillation_loss(ctc, kd, alpha, float(soft.meta["temperature"]))
        opt_s.zero_grad()
        loss.backward()
        opt_s.step()

    hours, minutes = timed(kd_loader.iterate(0, 0), student_step, device, args.warmup, args.steps)
    print(
        f"student training, KD ({sum(p.numel() for p in student.parameters()):,} params): "
        f"{hours / minutes:.3f} audio hours per minute"
    )


if __name__ == "__main__":
    main()
