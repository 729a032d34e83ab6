"""Training and inference throughput in audio hours per minute, and its share of the machine's
matrix-product peak; with ``--against REV``, this checkout against another revision, as ratios.

Prints figures; not a test. Measures, on the outputs of a finished ``dvc repro`` (features,
tokenizer, teachers, soft targets) in ``--workdir``:

1. teacher training: optimizer steps of a fresh ``teachers.guide.model`` (CTC, SpecAugment,
   gradient clipping, the training loader and optimizer of the code under test);
2. student training: the same for ``student_defaults.model`` with the KD + CTC loss on the
   stored soft targets;
3. soft-target inference: every teacher over train batches, softened, averaged, top-k
   (what the ``soft_targets`` stage does per frame).

Each phase runs in a fresh process per round, the revisions alternating round by round, so
two revisions see the same machine; medians over ``--rounds`` are reported. The share of
peak divides the model's counted FLOPs (forward and backward, ``torch.utils.flop_counter``)
per second by a 2048 x 2048 fp32 matrix product's FLOP rate on the same threads. Audio
time is counted from fbank frames (10 ms each); the first ``--warmup`` batches are not timed.

Usage::

    python benchmarks/throughput.py --workdir . [--against HEAD~1] [--steps 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("teacher", "student", "inference")


def library(*names: str):
    """The first of ``pipeline.<name>`` that the library under test has: a revision from before
    ``pipeline/`` became packages names the same module differently (``train.loop`` was ``train``)."""
    import importlib

    for name in names:
        try:
            return importlib.import_module(f"pipeline.{name}")
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(f"none of pipeline.{{{', '.join(names)}}} in this library")


def measure(tree: Path, workdir: Path, phase: str, steps: int, warmup: int, device_name: str) -> dict:
    """One phase with the library of ``tree`` (read with ``tree``'s own params.yaml)."""
    sys.path.insert(0, str(tree))
    import torch

    from pipeline.config import load_params
    from pipeline.loader import make_loader
    from pipeline.store import Store
    from pipeline.tokens import load_tokenizer

    train_mod = library("train.loop", "train")
    ctc_loss = library("model.ctc", "ctc").ctc_loss
    Context, pick_device = (
        getattr(library("train.distributed", "distributed"), n) for n in ("Context", "pick_device")
    )
    recipes = library("train.recipes", "recipes")
    build_model, soft_target_extras = recipes.build_model, recipes.soft_target_extras

    params = load_params(tree / "params.yaml")
    device = pick_device(device_name)
    ctx = Context(device=device)
    if device.type == "cpu":
        torch.set_num_threads(params.train.threads)
        getattr(train_mod, "keep_freed_memory", lambda: None)()
    sp = load_tokenizer(workdir / "data/tokenizer/spm.model")
    feats, mans = workdir / "data/features", workdir / "data/manifests"
    bf = params.train.batch_frames

    def optimizer(model):
        if hasattr(train_mod, "make_optimizer"):
            return train_mod.make_optimizer(model, params.train)
        cfg = params.train
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    if phase == "inference":
        load_model = library("model.conformer", "model").load_model
        combine_posteriors = library("model.ensemble", "ensemble").combine_posteriors
        top_k_with_rest = library("soft_targets.build", "soft_targets").top_k_with_rest

        loader = make_loader(feats, mans, "train", sp, bf)
        teachers = [load_model(workdir / f"models/teachers/{n}.pt", device) for n in params.teacher_names()]
        T, k = params.soft_targets.temperature, params.soft_targets.top_k

        @torch.no_grad()
        def step(batch):
            with train_mod.autocast(ctx, params.train):
                outs = [m(batch.feats, batch.lengths) for m in teachers]
            probs = combine_posteriors([o[0].float() for o in outs], T, params.ensemble.combine)
            for row, n in zip(probs, outs[0][1].tolist()):
                top_k_with_rest(row[:n].cpu(), k)

        batches, model = iter(loader), None
    else:
        extras, soft = None, None
        if phase == "student":
            soft = Store(workdir / "data/soft_targets/train")
            extras = soft_target_extras(soft)
        loader = make_loader(feats, mans, "train", sp, bf, extras, train=params.train)
        mcfg = params.teachers.guide.model if phase == "teacher" else params.student_defaults.model
        model = build_model(mcfg, feats, sp.get_piece_size(), 0).to(device).train()
        opt = optimizer(model)

        def loss_of(batch, logits, lengths):
            ctc = ctc_loss(logits.log_softmax(-1), lengths, batch.targets, batch.target_lengths)
            if soft is None:
                return ctc
            kd_module = library("train.kd", "kd")
            distillation_loss, kd_loss = kd_module.distillation_loss, kd_module.kd_loss
            temperature = float(soft.meta["temperature"])
            ex = batch.extras
            kd = kd_loss(logits, lengths, ex["ids"], ex["probs"], ex["rest"], temperature)
            return distillation_loss(ctc, kd, params.students["distilled"].alpha, temperature)

        def step(batch):
            with train_mod.autocast(ctx, params.train):
                feats_in = train_mod.spec_augment(batch, model, params.train)
                logits, lengths = model(feats_in, batch.lengths)
            loss = loss_of(batch, logits.float(), lengths)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), params.train.grad_clip)
            opt.step()

        batches = loader.iterate(0, 0)

    frames, t0 = 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        batch = batch.to(device)
        step(batch)
        if i >= warmup:
            frames += int(batch.lengths.sum())
        if i + 1 >= warmup + steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if t0 is None:
        raise SystemExit("not enough batches: lower --warmup or use a bigger corpus")
    seconds = time.perf_counter() - t0
    out = {"audio_hours_per_minute": frames / 100 / 60 / seconds, "frames_per_second": frames / seconds}
    if model is not None:
        out["flops_per_frame"] = flops_per_frame(model, batch, loss_of)
    return out


def flops_per_frame(model, batch, loss_of) -> float:
    """Counted FLOPs of one forward and backward pass per input (10 ms) frame of ``batch``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        logits, lengths = model(batch.feats, batch.lengths)
        loss_of(batch, logits.float(), lengths).backward()
    return counter.get_total_flops() / int(batch.lengths.sum())


def matmul_peak(threads: int) -> float:
    """GFLOP/s of a 2048 x 2048 fp32 matrix product on ``threads`` CPU threads (best of five)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):  # the best of five: a peak, not an average over a shared machine's noise
        t0, n = time.perf_counter(), 5
        for _ in range(n):
            a @ b
        best = max(best, 2 * 2048**3 * n / (time.perf_counter() - t0) / 1e9)
    return best


def worktree(rev: str, into: Path) -> Path:
    """A checkout of ``rev`` (its library and params.yaml) in ``into``."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev], check=True)
    return into


def run_phase(tree: Path, args: argparse.Namespace, phase: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--inner",
        str(tree),
        "--phase",
        phase,
        "--workdir",
        str(args.workdir.resolve()),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--device",
        args.device,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=".", type=Path)
    ap.add_argument("--against", help="a git revision to measure beside this checkout")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--inner", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        print(json.dumps(measure(args.inner, args.workdir, args.phase, args.steps, args.warmup, args.device)))
        return

    sys.path.insert(0, str(ROOT))
    from pipeline.config import load_params

    threads = load_params(ROOT / "params.yaml").train.threads
    peak = matmul_peak(threads)
    phases = args.phases.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this checkout": ROOT}
        if args.against:
            trees = {args.against: worktree(args.against, Path(tmp) / "against"), **trees}
        try:
            results = {name: {p: [] for p in phases} for name in trees}
            for r in range(args.rounds):
                for phase in phases:
                    for name, tree in trees.items():
                        results[name][phase].append(run_phase(tree, args, phase))
                        rate = results[name][phase][-1]["audio_hours_per_minute"]
                        print(f"round {r + 1}: {phase:9s} {name}: {rate:.3f} audio h/min", file=sys.stderr)
        finally:
            if args.against:
                remove = ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees[args.against])]
                subprocess.run(remove, check=False)
    print(f"CPU matrix-product peak ({threads} threads, 2048 x 2048 fp32): {peak:.1f} GFLOP/s")
    print(f"medians of {args.rounds} rounds of {args.steps} batches (each revision's own params.yaml)")
    head = "| phase | " + " | ".join(f"{n} (audio h/min)" for n in trees) + " | share of peak |"
    head += " ratio |" if args.against else ""
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for phase in phases:
        rates = {n: statistics.median(x["audio_hours_per_minute"] for x in results[n][phase]) for n in trees}
        mine = results["this checkout"][phase]
        share = "-"
        if "flops_per_frame" in mine[0]:
            gflops = statistics.median(x["flops_per_frame"] * x["frames_per_second"] for x in mine) / 1e9
            share = f"{gflops / peak:.0%} ({gflops:.1f} GFLOP/s)"
        row = f"| {phase} | " + " | ".join(f"{rates[n]:.3f}" for n in trees) + f" | {share} |"
        if args.against:
            row += f" {rates['this checkout'] / rates[args.against]:.2f}x |"
        print(row)


if __name__ == "__main__":
    main()
