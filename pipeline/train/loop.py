"""A short, direct training loop for CTC teachers and distilled students.

Usage::

    metrics = train(model, train_loader, dev_loader, sp, job, Path("models/teachers/guide.pt"))

A model trains in budget epochs of ``epoch_steps`` optimizer updates, its dev set scored
(greedy WER) after each, until its dev WER stops improving (the job's
:class:`~pipeline.config.ConvergenceConfig`) or its ``epochs`` cap is reached. The saved
model is the average of the last or best few epochs' weights that scores best on dev
(``train.average``). The learning rate warms up and then decays by step and epoch
(``train.schedule``), independent of the cap.

Resumable: every ``train.checkpoint_every_steps`` steps and at each budget epoch's end the
model, optimizer, RNG state, position in the loader and the curve history are written
atomically to ``<checkpoint_dir>/last.pt``, each epoch's weights to
``<checkpoint_dir>/epochs/<n>.pt`` (only those an average may still use are kept). A
restarted run with the same config (checked by hash) continues from there: batch order is
a function of ``seed + pass``, so the skipped batches are exactly those already trained
on, and the stopping rule's state is a function of the history, so it resumes exactly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch
import torchaudio.functional as AF

from pipeline.config import AverageConfig, ConvergenceConfig, ScheduleConfig, TrainConfig
from pipeline.io import atomic_path
from pipeline.loader import Batch, BatchLoader
from pipeline.model.conformer import ConformerCTC, save_model
from pipeline.model.ctc import greedy_decode
from pipeline.train.distributed import Context, all_reduce_sum, barrier, setup, teardown
from pipeline.wer import corpus_wer

log = logging.getLogger(__name__)

LossFn = Callable[[Batch, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
History = list[dict[str, float]]


@dataclass
class TrainJob:
    """Everything one training run needs besides the model."""

    name: str
    cfg: TrainConfig
    epochs: int  # the cap, in budget epochs of ``epoch_steps`` batches
    seed: int
    loss_fn: LossFn
    checkpoint_dir: Path
    live_dir: Path
    fingerprint: dict[str, Any]
    convergence: ConvergenceConfig
    # Batches of one budget epoch (one pass over the train split); default: one pass of the
    # training loader. A student that also reads the transfer set, or only part of train,
    # makes more or fewer passes over its own data in the same number of updates.
    epoch_steps: int | None = None


def config_hash(fingerprint: dict[str, Any]) -> str:
    """A short digest of what a run's checkpoints depend on (its job's ``fingerprint``)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def spec_augment(batch: Batch, model: ConformerCTC, cfg: TrainConfig) -> torch.Tensor:
    """torchaudio frequency and time masking on CMVN-normalized features (mask value 0)."""
    x = (batch.feats - model.cmvn_mean) / model.cmvn_std  # (N, T, F)
    x = x.transpose(1, 2)  # (N, F, T)
    if cfg.freq_mask:
        x = AF.mask_along_axis_iid(x.unsqueeze(1), cfg.freq_mask, 0.0, 2).squeeze(1)
    for _ in range(cfg.num_time_masks):
        if cfg.time_mask:
            x = AF.mask_along_axis_iid(x.unsqueeze(1), cfg.time_mask, 0.0, 3, p=0.2).squeeze(1)
    return x.transpose(1, 2) * model.cmvn_std + model.cmvn_mean


def lr_at(step: int, epoch_steps: int, cap_epochs: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``cfg.warmup_steps``, then ``cfg.schedule`` (see
    :class:`~pipeline.config.ScheduleConfig`); only ``cosine`` reads the cap."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * decay(step, epoch_steps, cap_epochs, cfg.warmup_steps, cfg.schedule)


def decay(step: int, epoch_steps: int, cap_epochs: int, warmup: int, schedule: ScheduleConfig) -> float:
    """The schedule's factor on the peak rate at ``step`` (after the warm-up)."""
    if schedule.kind == "cosine":
        total = epoch_steps * cap_epochs
        progress = min((step - warmup) / max(1, total - warmup), 1.0)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
    epoch = step / epoch_steps
    by_step = ((step**2 + schedule.lr_steps**2) / schedule.lr_steps**2) ** -0.25
    by_epoch = ((epoch**2 + schedule.lr_epochs**2) / schedule.lr_epochs**2) ** -0.25
    return by_step * by_epoch


@dataclass(frozen=True)
class Convergence:
    """The stopping rule's state after some epochs (a function of their dev WERs alone)."""

    best_epoch: int  # 1-based epoch of the lowest dev WER so far (0: none scored)
    since_improvement: int  # epochs since the last one that improved by min_improvement
    stop: bool  # the rule says stop: ``since_improvement >= patience``


def convergence_state(dev_wers: list[float], rule: ConvergenceConfig) -> Convergence:
    """Apply ``rule`` to the dev WERs of epochs 1, 2, ...: an epoch improves when its WER is
    below ``(1 - min_improvement)`` times the last improving epoch's."""
    reference, since = math.inf, 0
    for wer in dev_wers:
        if wer < reference * (1 - rule.min_improvement):
            reference, since = wer, 0
        else:
            since += 1
    best = min(range(len(dev_wers)), key=lambda i: (dev_wers[i], i)) + 1 if dev_wers else 0
    return Convergence(best, since, since >= rule.patience)


@torch.no_grad()
def evaluate_wer(
    model: ConformerCTC,
    loader: BatchLoader,
    sp: spm.SentencePieceProcessor,
    device: torch.device | None = None,
) -> float:
    """Greedy-decoding WER of ``model`` on every utterance of ``loader``."""
    model.eval()
    refs, hyps = [], []
    for batch in loader:
        batch = batch.to(device or torch.device("cpu"))
        logits, lengths = model(batch.feats, batch.lengths)
        hyps += [sp.decode(ids) for ids in greedy_decode(logits, lengths)]
        refs += batch.texts
    return corpus_wer(refs, hyps)


class Checkpointer:
    """Atomic save/restore of the full training state in ``<dir>/last.pt`` and of every
    epoch's weights an average may use in ``<dir>/epochs/<n>.pt``."""

    def __init__(self, directory: Path, digest: str) -> None:
        self.path = Path(directory) / "last.pt"
        self.epochs_dir = Path(directory) / "epochs"
        self.digest = digest

    def save(
        self,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        epoch: int,
        batch_in_epoch: int,
        step: int,
        history: History,
    ) -> None:
        """Write the full training state to ``last.pt`` (atomically); ``epoch`` and
        ``batch_in_epoch`` are the loader's pass and batch where training continues."""
        state = {
            "digest": self.digest,
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "epoch": epoch,
            "batch": batch_in_epoch,
            "step": step,
            "history": json.dumps(history),
            "rng": torch.get_rng_state(),
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def load(self) -> dict[str, Any] | None:
        """The state in ``last.pt``; None if there is none or it was written for another config."""
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("digest") != self.digest:
            log.warning("%s was written for another config; starting from scratch", self.path)
            return None
        return state

    def epoch_path(self, epoch: int) -> Path:
        """Where epoch ``epoch``'s weights are kept."""
        return self.epochs_dir / f"{epoch}.pt"

    def save_epoch(self, model: torch.nn.Module, epoch: int) -> None:
        """Keep the weights at the end of epoch ``epoch`` (atomically)."""
        with atomic_path(self.epoch_path(epoch)) as tmp:
            torch.save({"digest": self.digest, "model": model.state_dict()}, tmp)

    def load_epoch(self, epoch: int) -> dict[str, torch.Tensor]:
        """Epoch ``epoch``'s weights; a ``RuntimeError`` if they were written for another config."""
        state = torch.load(self.epoch_path(epoch), map_location="cpu", weights_only=True)
        if state.get("digest") != self.digest:
            raise RuntimeError(f"{self.epoch_path(epoch)} was written for another config")
        return state["model"]

    def prune(self, keep: set[int]) -> None:
        """Delete the epoch weights no average can use any more."""
        for path in self.epochs_dir.glob("*.pt"):
            if path.stem.isdigit() and int(path.stem) not in keep:
                path.unlink()


def _ranked(dev_wers: list[float]) -> list[int]:
    """Epochs (1-based) from the lowest dev WER up; the earlier of equals first."""
    return sorted(range(1, len(dev_wers) + 1), key=lambda e: (dev_wers[e - 1], e))


def average_candidates(dev_wers: list[float], counts: list[int]) -> list[tuple[str, int, list[int]]]:
    """``(kind, k, epochs)`` for the last ``k`` and the best ``k`` epochs, each ``k`` in ``counts``
    (as many as there are), without repeating an epoch set; the last epoch comes first."""
    n = len(dev_wers)
    ranked = _ranked(dev_wers)
    seen: set[tuple[int, ...]] = set()
    out = []
    for kind in ("last", "best"):
        for k in sorted(set(min(c, n) for c in counts)):
            epochs = list(range(n - k + 1, n + 1)) if kind == "last" else sorted(ranked[:k])
            if tuple(epochs) not in seen:
                seen.add(tuple(epochs))
                out.append((kind, k, epochs))
    return out


def epochs_to_keep(dev_wers: list[float], average: AverageConfig) -> set[int]:
    """Epochs whose weights a final average may still use: the last and the best
    ``max(counts)``."""
    k = max(average.counts)
    n = len(dev_wers)
    return set(range(max(1, n - k + 1), n + 1)) | set(_ranked(dev_wers)[:k])


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (others, e.g. counters, from the last)."""
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(last.dtype)
        else:
            out[key] = last
    return out


def keep_freed_memory() -> None:
    """Keep freed memory in the process heap (glibc ``mallopt``) instead of returning it to the
    system: activations of a few MB are freed and re-allocated every step, and with glibc's
    defaults each re-allocation page-faults its memory back in. A no-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 256 * 2**20)
        libc.mallopt(m_trim_threshold, 1024 * 2**20)
    except (OSError, AttributeError):
        log.debug("mallopt is not available; memory settings left as they are")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with PyTorch's fused kernel (one pass over all parameters, on CPU and CUDA)."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def autocast(ctx: Context, cfg: TrainConfig):
    """bf16 autocast on CUDA when ``train.amp: bf16``; a no-op context on the CPU."""
    enabled = ctx.device.type == "cuda" and cfg.amp == "bf16"
    return torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16, enabled=enabled)


def wrap(model: ConformerCTC, ctx: Context, cfg: TrainConfig) -> torch.nn.Module:
    """DDP across ranks when distributed; ``torch.compile`` on CUDA when asked."""
    net: torch.nn.Module = model
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile and ctx.device.type == "cuda":
        net = torch.compile(net)
    return net


class Curves:
    """The dvclive log of a run's per-epoch curves (rank 0 only): every key of a history row
    but ``epoch`` and ``lr``, one step per epoch."""

    def __init__(self, live_dir: Path, history: History) -> None:
        """Start a fresh log in ``live_dir`` and replay ``history`` (the curves of an
        interrupted run) into it."""
        from dvclive import Live

        self.live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
        for row in history:
            self.log(row)

    def log(self, row: dict[str, float]) -> None:
        """Log one epoch's row and move to the next step."""
        for key, value in row.items():
            if key not in ("epoch", "lr"):
                self.live.log_metric(key, value)
        self.live.next_step()

    def end(self) -> None:
        """Finish the log."""
        self.live.end()


@dataclass
class _Run:
    """The state of one training run that its steps share."""

    job: TrainJob
    ctx: Context
    model: ConformerCTC
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    ckpt: Checkpointer
    epoch_steps: int
    batches_per_pass: int
    pass_: int = 0  # the loader's pass and the batch in it where the next batch is
    skip: int = 0
    step: int = 0
    history: History = field(default_factory=list)
    curves: Curves | None = None  # rank 0 only
    # Running sums since the last epoch's end (train loss, loss parts, steps, time).
    loss_sum: float = 0.0
    parts_sum: dict[str, float] = field(default_factory=dict)
    n: int = 0
    t_round: float = field(default_factory=time.time)

    @property
    def cap_steps(self) -> int:
        return self.epoch_steps * self.job.epochs

    def dev_wers(self) -> list[float]:
        """Dev WER of every epoch so far."""
        return [row["dev_wer"] for row in self.history]

    def converged(self) -> Convergence:
        """The stopping rule's state after the epochs so far."""
        return convergence_state(self.dev_wers(), self.job.convergence)


def _resume(run: _Run) -> None:
    """Continue from ``last.pt`` if it was written for this config; start the curve log
    (rank 0), the interrupted run's curves replayed into it."""
    state = run.ckpt.load()
    if state is not None:
        run.model.load_state_dict(state["model"])
        run.opt.load_state_dict(state["opt"])
        if run.ctx.is_main:
            torch.set_rng_state(state["rng"])
        run.pass_, run.skip, run.step = state["epoch"], state["batch"], state["step"]
        run.history = json.loads(state["history"])
        log.info(
            "%s: resuming at pass %d, batch %d (step %d, epoch %d of at most %d)",
            run.job.name,
            run.pass_ + 1,
            run.skip,
            run.step,
            len(run.history),
            run.job.epochs,
        )
    if run.ctx.is_main:
        run.curves = Curves(run.job.live_dir, run.history)


def _train_step(run: _Run, batch: Batch) -> None:
    """One optimizer update on ``batch``, its loss added to the running sums."""
    job, ctx = run.job, run.ctx
    batch = batch.to(ctx.device)
    for group in run.opt.param_groups:
        group["lr"] = lr_at(run.step, run.epoch_steps, job.epochs, job.cfg)
    with autocast(ctx, job.cfg):
        feats = spec_augment(batch, run.model, job.cfg) if job.cfg.spec_augment else batch.feats
        logits, lengths = run.net(feats, batch.lengths)
        loss, parts = job.loss_fn(batch, logits.float(), lengths)
    # Each rank's loss is a mean over its own frames; weight it by its share of
    # the global batch so DDP's gradient average is the global per-frame mean.
    frames = lengths.sum().float()
    total = all_reduce_sum(frames.detach(), ctx)
    scaled = loss * frames * ctx.world / total
    run.opt.zero_grad(set_to_none=True)
    scaled.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), job.cfg.grad_clip)
    run.opt.step()
    run.step += 1
    run.n += 1
    run.loss_sum += float(all_reduce_sum(loss.detach() * frames, ctx) / total)
    for k, v in parts.items():
        run.parts_sum[k] = run.parts_sum.get(k, 0.0) + v


def _log_progress(run: _Run) -> None:
    rate = run.n / max(time.time() - run.t_round, 1e-9)
    epoch = -(-run.step // run.epoch_steps)
    left = epoch * run.epoch_steps - run.step
    log.info(
        "%s epoch %d (cap %d) step %d loss %.3f lr %.2e | %.2f batch/s, epoch ETA %.0fs",
        run.job.name,
        epoch,
        run.job.epochs,
        run.step,
        run.loss_sum / max(run.n, 1),
        run.opt.param_groups[0]["lr"],
        rate,
        left / max(rate, 1e-9),
    )


def _end_of_epoch(run: _Run, dev_loader: BatchLoader, sp: spm.SentencePieceProcessor, position) -> bool:
    """Score dev, log, checkpoint (rank 0); returns whether the stopping rule says stop
    (the same answer on every rank)."""
    ctx = run.ctx
    epoch = run.step // run.epoch_steps
    row = {
        "epoch": epoch,
        "train_loss": run.loss_sum / max(run.n, 1),
        **{f"train_{k}": v / max(run.n, 1) for k, v in run.parts_sum.items()},
        "lr": run.opt.param_groups[0]["lr"],
    }
    stop = 0.0
    if ctx.is_main:
        row["dev_wer"] = evaluate_wer(run.model, dev_loader, sp, ctx.device)
        run.history.append(row)
        run.curves.log(row)
        state = run.converged()
        log.info(
            "%s epoch %d: train loss %.3f, dev WER %.4f (best %.4f at epoch %d; %d of %d epochs "
            "without a %.1f %% gain) %.0fs",
            run.job.name,
            epoch,
            row["train_loss"],
            row["dev_wer"],
            min(run.dev_wers()),
            state.best_epoch,
            state.since_improvement,
            run.job.convergence.patience,
            100 * run.job.convergence.min_improvement,
            time.time() - run.t_round,
        )
        run.ckpt.save_epoch(run.model, epoch)
        run.ckpt.save(run.model, run.opt, *position, run.step, run.history)
        run.ckpt.prune(epochs_to_keep(run.dev_wers(), run.job.cfg.average))
        stop = float(state.stop)
    barrier(ctx)
    run.net.train()
    run.t_round, run.loss_sum, run.parts_sum, run.n = time.time(), 0.0, {}, 0
    return bool(all_reduce_sum(torch.tensor(stop, device=ctx.device), ctx) > 0)


def _choose_average(run: _Run, dev_loader: BatchLoader, sp: spm.SentencePieceProcessor) -> dict[str, Any]:
    """Load into the model the average of epoch weights that scores best on dev; returns
    the choice and every candidate's dev WER."""
    wers = run.dev_wers()
    rows, best, best_state = [], None, None
    for kind, k, epochs in average_candidates(wers, run.job.cfg.average.counts):
        state = average_state([run.ckpt.load_epoch(e) for e in epochs])
        if k == 1:
            wer = wers[epochs[0] - 1]  # scored at the end of that epoch
        else:
            run.model.load_state_dict(state)
            wer = evaluate_wer(run.model, dev_loader, sp, run.ctx.device)
        rows.append({"kind": kind, "count": k, "epochs": epochs, "dev_wer": wer})
        log.info("%s: average of the %s %d epochs %s: dev WER %.4f", run.job.name, kind, k, epochs, wer)
        if best is None or wer < best["dev_wer"]:  # the first of equals: the last epoch alone wins ties
            best, best_state = rows[-1], state
    run.model.load_state_dict(best_state)
    return {**best, "candidates": rows}


def train(
    model: ConformerCTC,
    train_loader: BatchLoader,
    dev_loader: BatchLoader,
    sp: spm.SentencePieceProcessor,
    job: TrainJob,
    out_path: Path,
) -> dict[str, Any] | None:
    """Train ``model`` until it converges or reaches its cap and write the chosen average
    of its epochs' weights to ``out_path``; returns final metrics (None off rank 0).

    Under torchrun each rank trains on its slice of every global batch and
    scales its per-frame loss by its share of the batch's frames, so the
    averaged gradient equals the single-process one; rank 0 alone evaluates,
    checkpoints, logs curves and writes the model.
    """
    ctx = setup(job.cfg.device)
    torch.manual_seed(job.seed + ctx.rank)
    if ctx.device.type == "cpu":
        torch.set_num_threads(job.cfg.threads)
        keep_freed_memory()
    model.to(ctx.device)
    run = _Run(
        job=job,
        ctx=ctx,
        model=model,
        net=model,
        opt=make_optimizer(model, job.cfg),
        ckpt=Checkpointer(job.checkpoint_dir, config_hash(job.fingerprint)),
        epoch_steps=job.epoch_steps or len(train_loader),
        batches_per_pass=len(train_loader),
    )
    _resume(run)
    run.net = wrap(model, ctx, job.cfg)
    t_start = run.t_round = time.time()
    done = run.converged().stop or run.step >= run.cap_steps
    while not done:
        run.net.train()
        batches = train_loader.iterate(job.seed, run.pass_, run.skip, ctx.rank, ctx.world)
        for i, batch in enumerate(batches, start=run.skip):
            _train_step(run, batch)
            position = (run.pass_, i + 1) if i + 1 < run.batches_per_pass else (run.pass_ + 1, 0)
            if ctx.is_main and (run.step % 20 == 0 or run.step % run.epoch_steps == 0):
                _log_progress(run)
            if run.step % run.epoch_steps == 0:
                done = _end_of_epoch(run, dev_loader, sp, position) or run.step >= run.cap_steps
                if done:
                    break
            elif ctx.is_main and run.step % job.cfg.checkpoint_every_steps == 0:
                run.ckpt.save(model, run.opt, *position, run.step, run.history)
        run.pass_, run.skip = run.pass_ + 1, 0
    teardown(ctx)
    if not ctx.is_main:
        return None
    return _finish(run, dev_loader, sp, out_path, time.time() - t_start)


def _finish(
    run: _Run, dev_loader: BatchLoader, sp: spm.SentencePieceProcessor, out_path: Path, seconds: float
) -> dict[str, Any]:
    """Average, save the model atomically, and return the training report."""
    run.curves.end()
    state = run.converged()
    average = _choose_average(run, dev_loader, sp)
    run.model.cpu()
    with atomic_path(out_path) as tmp:
        save_model(run.model, tmp, extra={"history": json.dumps(run.history), "average": json.dumps(average)})
    final = run.history[-1] if run.history else {}
    stopped = len(run.history)
    return {
        "dev_wer": average["dev_wer"],
        "last_epoch_dev_wer": final.get("dev_wer"),
        "best_epoch_dev_wer": min(run.dev_wers()) if run.history else None,
        "train_loss": final.get("train_loss"),
        "epochs": run.job.epochs,
        "best_epoch": state.best_epoch,
        "stopped_epoch": stopped,
        "converged": bool(state.stop),
        "average": {k: average[k] for k in ("kind", "count", "epochs")},
        "average_candidates": average["candidates"],
        "steps": run.step,
        "passes": round(run.step / run.batches_per_pass, 2),
        "world_size": run.ctx.world,
        "device": str(run.ctx.device),
        "seconds": round(seconds, 1),
    }
