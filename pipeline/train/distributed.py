"""Single-process or PyTorch DDP training, chosen by ``train.nproc``.

A stage script calls :func:`relaunch_under_torchrun` first: with
``train.nproc > 1`` and no torchrun environment it re-executes itself under
``python -m torch.distributed.run --standalone --nproc-per-node N``, so
``dvc repro`` launches DDP without a different command line. Multi-machine
runs start the same script under ``torchrun`` by hand (see README); then the
environment already names the ranks and nothing is relaunched.

Semantics: every rank walks the same seeded bucket order; each global batch
is split across ranks (``ids[rank::world]``) and every rank scales its
per-frame loss by its share of the batch's frames, so the all-reduced
gradient equals the single-process gradient of the same global batch. Only
rank 0 writes checkpoints, curves and outputs.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pipeline.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where this process sits: rank, world size and the device it trains on."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates, checkpoints and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process trains."""
        return self.world > 1


def relaunch_under_torchrun(nproc: int, argv: list[str] | None = None) -> None:
    """Re-exec the current script under torchrun when ``nproc > 1`` (never returns then)."""
    if nproc <= 1 or "LOCAL_RANK" in os.environ:
        return
    argv = list(sys.argv if argv is None else argv)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *argv]
    log.info("relaunching under torchrun: %s", " ".join(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("train.device is 'cuda' but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device_name: str) -> Context:
    """Join the process group if torchrun started us; otherwise a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world == 1:
        return Context(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


def shard(ids: list[str], ctx: Context) -> list[str]:
    """This rank's part of a global batch."""
    return ids[ctx.rank :: ctx.world] if ctx.distributed else ids


def all_reduce_sum(value: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum of a tensor over ranks (identity in a single process)."""
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier(ctx: Context) -> None:
    """Wait for every rank (nothing in a single process)."""
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    """Leave the process group if this process joined one."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
