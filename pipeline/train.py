"""A short, direct training loop for CTC teachers and distilled students.

The budget is ``epochs`` times ``epoch_steps`` optimizer updates; the dev set is
scored after every ``epoch_steps`` updates. Resumable: every
``train.checkpoint_every_steps`` steps and at each budget epoch's end the model,
optimizer, RNG state, position in the loader and the curve history are written
atomically to ``<checkpoint_dir>/last.pt``. A restarted run with the same config
(checked by hash) continues from there; batch order is a function of
``seed + pass`` so the skipped batches are exactly those already trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch
import torchaudio.functional as AF

from pipeline.config import TrainConfig
from pipeline.ctc import greedy_decode
from pipeline.distributed import Context, all_reduce_sum, barrier, setup, teardown
from pipeline.io import atomic_path
from pipeline.loader import Batch, BatchLoader
from pipeline.model import ConformerCTC, save_model
from pipeline.wer import corpus_wer

log = logging.getLogger(__name__)

LossFn = Callable[[Batch, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainJob:
    """Everything one training run needs besides the model."""

    name: str
    cfg: TrainConfig
    epochs: int  # the update budget, in epochs of ``epoch_steps`` batches
    seed: int
    loss_fn: LossFn
    checkpoint_dir: Path
    live_dir: Path
    fingerprint: dict[str, Any]
    # Batches of one budget epoch (one pass over the train split); default: one pass of the
    # training loader. A student that also reads the transfer set, or only part of train,
    # makes more or fewer passes over its own data in the same number of updates.
    epoch_steps: int | None = None


def config_hash(fingerprint: dict[str, Any]) -> str:
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


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


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
    """Atomic save/restore of the full training state in ``<dir>/last.pt``."""

    def __init__(self, directory: Path, digest: str) -> None:
        self.path = Path(directory) / "last.pt"
        self.digest = digest

    def save(
        self,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        epoch: int,
        batch_in_epoch: int,
        step: int,
        history: list[dict[str, float]],
    ) -> None:
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
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("digest") != self.digest:
            log.warning("%s was written for another config; starting from scratch", self.path)
            return None
        return state


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


def train(
    model: ConformerCTC,
    train_loader: BatchLoader,
    dev_loader: BatchLoader,
    sp: spm.SentencePieceProcessor,
    job: TrainJob,
    out_path: Path,
) -> dict[str, Any] | None:
    """Train ``model`` and write it to ``out_path``; returns final metrics (None off rank 0).

    Under torchrun each rank trains on its slice of every global batch and
    scales its per-frame loss by its share of the batch's frames, so the
    averaged gradient equals the single-process one; rank 0 alone evaluates,
    checkpoints, logs curves and writes the model.
    """
    ctx = setup(job.cfg.device)
    torch.manual_seed(job.seed + ctx.rank)
    if ctx.device.type == "cpu":
        torch.set_num_threads(job.cfg.threads)
    model.to(ctx.device)
    opt = torch.optim.AdamW(model.parameters(), lr=job.cfg.lr, weight_decay=job.cfg.weight_decay)
    batches_per_pass = len(train_loader)
    epoch_steps = job.epoch_steps or batches_per_pass
    total_steps = epoch_steps * job.epochs
    ckpt = Checkpointer(job.checkpoint_dir, config_hash(job.fingerprint))
    # (pass_, skip): where the next batch is in the loader's own passes over its data.
    pass_, skip, step, history = 0, 0, 0, []
    state = ckpt.load()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if ctx.is_main:
            torch.set_rng_state(state["rng"])
        pass_, skip, step = state["epoch"], state["batch"], state["step"]
        history = json.loads(state["history"])
        log.info(
            "%s: resuming at pass %d, batch %d (step %d of %d)", job.name, pass_ + 1, skip, step, total_steps
        )
    net = wrap(model, ctx, job.cfg)

    live = None
    if ctx.is_main:
        from dvclive import Live

        live = Live(dir=str(job.live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
        for row in history:  # replay curves of the interrupted run into the fresh log
            for key, value in row.items():
                if key != "epoch":
                    live.log_metric(key, value)
            live.next_step()

    t_start = t_round = time.time()
    loss_sum, parts_sum, n = 0.0, {}, 0
    while step < total_steps:
        net.train()
        batches = train_loader.iterate(job.seed, pass_, skip, ctx.rank, ctx.world)
        for i, batch in enumerate(batches, start=skip):
            batch = batch.to(ctx.device)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, job.cfg)
            with autocast(ctx, job.cfg):
                feats = spec_augment(batch, model, job.cfg) if job.cfg.spec_augment else batch.feats
                logits, lengths = net(feats, batch.lengths)
                loss, parts = job.loss_fn(batch, logits.float(), lengths)
            # Each rank's loss is a mean over its own frames; weight it by its share of
            # the global batch so DDP's gradient average is the global per-frame mean.
            frames = lengths.sum().float()
            total = all_reduce_sum(frames.detach(), ctx)
            scaled = loss * frames * ctx.world / total
            opt.zero_grad(set_to_none=True)
            scaled.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), job.cfg.grad_clip)
            opt.step()
            step += 1
            n += 1
            loss_sum += float(all_reduce_sum(loss.detach() * frames, ctx) / total)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            epoch = -(-step // epoch_steps)  # the budget epoch this step belongs to
            position = (pass_, i + 1) if i + 1 < batches_per_pass else (pass_ + 1, 0)
            if ctx.is_main and (step % 20 == 0 or step % epoch_steps == 0):
                rate = n / (time.time() - t_round)
                eta = (total_steps - step) / max(rate, 1e-9)
                log.info(
                    "%s epoch %d/%d step %d/%d loss %.3f lr %.2e | %.2f batch/s, ETA %.0fs",
                    job.name,
                    epoch,
                    job.epochs,
                    step,
                    total_steps,
                    loss_sum / n,
                    opt.param_groups[0]["lr"],
                    rate,
                    eta,
                )
            if step % epoch_steps == 0:
                row = {
                    "epoch": epoch,
                    "train_loss": loss_sum / max(n, 1),
                    **{f"train_{k}": v / max(n, 1) for k, v in parts_sum.items()},
                }
                if ctx.is_main:
                    row["dev_wer"] = evaluate_wer(model, dev_loader, sp, ctx.device)
                    history.append(row)
                    for key, value in row.items():
                        if key != "epoch":
                            live.log_metric(key, value)
                    live.next_step()
                    log.info(
                        "%s epoch %d: train loss %.3f, dev WER %.3f (%.0fs)",
                        job.name,
                        epoch,
                        row["train_loss"],
                        row["dev_wer"],
                        time.time() - t_round,
                    )
                    ckpt.save(model, opt, *position, step, history)
                barrier(ctx)
                net.train()
                t_round, loss_sum, parts_sum, n = time.time(), 0.0, {}, 0
            elif ctx.is_main and step % job.cfg.checkpoint_every_steps == 0:
                ckpt.save(model, opt, *position, step, history)
            if step == total_steps:
                break
        pass_, skip = pass_ + 1, 0
    teardown(ctx)
    if not ctx.is_main:
        return None
    live.end()
    model.cpu()
    with atomic_path(out_path) as tmp:
        save_model(model, tmp, extra={"history": json.dumps(history)})
    final = history[-1] if history else {}
    return {
        "dev_wer": final.get("dev_wer"),
        "train_loss": final.get("train_loss"),
        "epochs": job.epochs,
        "steps": step,
        "passes": round(step / batches_per_pass, 2),
        "world_size": ctx.world,
        "device": str(ctx.device),
        "seconds": round(time.time() - t_start, 1),
    }
