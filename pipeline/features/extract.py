"""The ``features`` stage: Kaldi-compatible log-mel filterbanks in sharded fp16 stores.

Usage::

    python stages/features.py --manifests data/manifests --out data/features \\
        --work data/features.partial --report reports/features.json

Output layout (``data/features``, renamed into place only when complete)::

    train/, dev/, test/, transfer/
                          one :mod:`pipeline.store` each (``asr-distill-store/1``), field
                          ``fbank`` (frames, n_mels) float16, utterances in manifest order;
                          ``meta`` holds ``sample_rate`` and the ``features`` params
    cmvn.json             {"mean": [...], "std": [...], "frames": N} from the train split

Features (:func:`pipeline.audio.fbank.fbank` of :func:`pipeline.audio.read.read_audio`) are stored
un-normalized; models apply CMVN (see :class:`pipeline.model.conformer.Cmvn`).

Resumable extraction: finished shards are kept in the work directory
(``data/features.partial``) and reused by a re-run (:mod:`pipeline.features.shards`). Extraction is
deterministic (dither noise is seeded per utterance), so a resumed run writes the same bytes
as an uninterrupted one. At the end the shards are linked into the final stores,
``index.json`` and ``cmvn.json`` are written, the result is renamed onto ``data/features``
and the work directory is emptied.

Workers (``features.num_workers`` processes, one torch thread each) take tasks of about
``TASK_SECONDS`` of audio in manifest order; the parent streams their results into the
current shard, so memory stays at a few tasks whatever the shard size. (Concatenating
utterances into one ``kaldi.fbank`` call was measured and gave no speed-up.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing as mp
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.audio.fbank import fbank
from pipeline.audio.read import read_audio
from pipeline.config import FeaturesConfig
from pipeline.features.shards import (
    FIELD,
    Row,
    ShardPlan,
    ShardWriter,
    assemble_split,
    finished_sidecar,
    output_params,
    plan_split,
    split_by,
)
from pipeline.io import atomic_path, read_jsonl, write_json
from pipeline.splits import SPLITS, TRANSFER

log = logging.getLogger(__name__)

TASK_SECONDS = 30.0  # audio per worker task: scheduling only, the output does not depend on it


def plan_tasks(rows: list[Row]) -> list[list[Row]]:
    """Split a shard's rows, in order, into worker tasks of about ``TASK_SECONDS`` of audio."""
    return split_by(rows, lambda r: float(r["duration"]), TASK_SECONDS)


# ---- workers -------------------------------------------------------------------------


def _one_thread() -> None:
    """Each worker (or the parent, extracting alone) runs torch on one thread."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def extraction_pool(num_workers: int) -> Iterator[Any]:
    """A pool of ``num_workers`` forked workers on one torch thread each, for
    :func:`extract_split`; with one worker, None: extract in this process, on one thread like a
    worker, restored on exit."""
    pool = mp.get_context("fork").Pool(num_workers, initializer=_one_thread) if num_workers > 1 else None
    threads = torch.get_num_threads()
    if pool is None:
        _one_thread()
    try:
        yield pool
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.terminate()
            pool.join()


Result = list[tuple[str, np.ndarray]]  # (id, (frames, n_mels) float16) per utterance


def extract_task(rows: list[Row], cfg: FeaturesConfig, sample_rate: int) -> Result:
    """fp16 fbank of every row of one task, in order."""
    out: Result = []
    for row in rows:
        if cfg.dither > 0:  # dither noise depends on the utterance only, not on scheduling
            torch.manual_seed(zlib.crc32(row["id"].encode()))
        feats = fbank(read_audio(row["audio"], sample_rate).samples, sample_rate, cfg)
        if not len(feats):
            raise ValueError(f"{row['audio']}: '{row['id']}' is too short for one frame")
        out.append((row["id"], feats.astype(np.float16)))
    return out


# ---- one split -----------------------------------------------------------------------


@dataclass
class SplitResult:
    """One split's shards: their sidecars, how many were reused and computed, and the compute time."""

    sidecars: list[dict[str, Any]]
    reused: int
    computed: int
    computed_seconds: float


def _extract_shards(
    todo: list[tuple[int, ShardPlan]], cfg: FeaturesConfig, sample_rate: int, pool: Any, bar: tqdm
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Compute the ``todo`` shards (in order) with ``pool``; yields (shard number, sidecar)."""
    jobs = [(k, task) for k, plan in todo for task in plan_tasks(plan.rows)]
    tasks = [task for _, task in jobs]
    work = functools.partial(extract_task, cfg=cfg, sample_rate=sample_rate)
    results: Iterable[Result] = pool.imap(work, tasks) if pool is not None else map(work, tasks)
    plans = dict(todo)
    writer: ShardWriter | None = None
    for (k, _), result in zip(jobs, results):
        if writer is None or writer.plan is not plans[k]:
            writer = ShardWriter(plans[k], cfg.n_mels)
        for utt_id, feats in result:
            writer.add(utt_id, feats)
        bar.update(len(result))
        if len(writer.ids) == len(plans[k].rows):
            yield k, writer.finish()
            writer = None


def extract_split(
    rows: list[Row], split_dir: Path, cfg: FeaturesConfig, sample_rate: int, desc: str, pool: Any = None
) -> SplitResult:
    """Bring ``split_dir`` up to date with ``rows``: reuse finished shards, compute the rest."""
    split_dir.mkdir(parents=True, exist_ok=True)
    for stale in split_dir.glob("*.tmp"):
        stale.unlink()
    plans = plan_split(rows, split_dir, sample_rate, cfg)
    sidecars: dict[int, dict[str, Any]] = {}
    for k, plan in enumerate(plans):
        side = finished_sidecar(plan, cfg.n_mels)
        if side is not None:
            sidecars[k] = side
    todo = [(k, p) for k, p in enumerate(plans) if k not in sidecars]
    reused_utts = sum(len(p.rows) for k, p in enumerate(plans) if k in sidecars)
    log.info(
        "%s: %d shards, %d finished earlier and reused, %d to compute",
        desc,
        len(plans),
        len(sidecars),
        len(todo),
    )
    with tqdm(total=len(rows), initial=reused_utts, desc=desc, unit="utt", mininterval=2.0) as bar:
        for k, side in _extract_shards(todo, cfg, sample_rate, pool, bar):
            sidecars[k] = side
    seconds = sum(float(r["duration"]) for _, p in todo for r in p.rows)
    return SplitResult([sidecars[k] for k in range(len(plans))], len(plans) - len(todo), len(todo), seconds)


# ---- the whole stage -----------------------------------------------------------------


def cmvn_stats(sidecars: list[dict[str, Any]], where: Path) -> dict[str, Any]:
    """Global mean and standard deviation per mel bin from the shards' float64 sums."""
    frames = sum(sum(s["frames"]) for s in sidecars)
    if not frames:
        raise ValueError(f"{where}: no frames to compute CMVN from")
    total = np.sum([s["sum"] for s in sidecars], axis=0, dtype=np.float64)
    total_sq = np.sum([s["sum_sq"] for s in sidecars], axis=0, dtype=np.float64)
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - mean**2, 1e-8))
    return {"mean": mean.tolist(), "std": std.tolist(), "frames": frames}


def _clear(work_dir: Path) -> None:
    """Empty the work directory but keep it (it is a DVC out)."""
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)


def extract_features(
    manifest_dir: Path, out_dir: Path, cfg: FeaturesConfig, sample_rate: int, work_dir: Path | None = None
) -> dict[str, Any]:
    """Run the whole stage; returns metrics (frames, speed, bytes per frame, shards reused).

    ``work_dir`` (default ``<out_dir>.partial``) keeps finished shards across interrupted
    runs; it is emptied once ``out_dir`` is complete.
    """
    t0 = time.time()
    work_dir = Path(work_dir) if work_dir is not None else out_dir.with_name(out_dir.name + ".partial")
    meta = {"sample_rate": sample_rate, **output_params(cfg)}
    results: dict[str, SplitResult] = {}
    with extraction_pool(cfg.num_workers) as pool:
        for split in SPLITS:
            manifest = manifest_dir / f"{split}.jsonl"
            # The transfer set is optional: no manifest is an empty split.
            rows = read_jsonl(manifest) if split != TRANSFER or manifest.exists() else []
            results[split] = extract_split(rows, work_dir / split, cfg, sample_rate, f"fbank {split}", pool)
    extract_seconds = time.time() - t0
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for split, res in results.items():
            assemble_split(work_dir / split, tmp / split, res.sidecars, meta, cfg.n_mels)
        write_json(tmp / "cmvn.json", cmvn_stats(results["train"].sidecars, manifest_dir / "train.jsonl"))
        disk = sum(p.stat().st_size for p in tmp.rglob(f"{FIELD}-*.npy"))
    _clear(work_dir)
    frames = sum(sum(s["frames"]) for r in results.values() for s in r.sidecars)
    computed_audio = sum(r.computed_seconds for r in results.values())
    metrics = {
        "frames": frames,
        "bytes_per_frame": round(disk / max(frames, 1), 2),
        "seconds": round(time.time() - t0, 1),
        "shards_computed": sum(r.computed for r in results.values()),
        "shards_reused": sum(r.reused for r in results.values()),
        "x_realtime_per_core": round(computed_audio / max(extract_seconds, 1e-9) / cfg.num_workers, 1),
    }
    log.info("features: %s", metrics)
    return metrics
