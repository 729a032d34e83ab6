"""The ``features`` stage: Kaldi-compatible log-mel filterbanks in sharded fp16 stores.

Usage::

    python stages/features.py --manifests data/manifests --out data/features \\
        --work data/features.partial --report reports/features.json

Output layout (``data/features``, renamed into place only when complete)::

    train/, dev/, test/   one :mod:`pipeline.store` each (``asr-distill-store/1``), field
                          ``fbank`` (frames, n_mels) float16, utterances in manifest order;
                          ``meta`` holds ``sample_rate`` and the ``features`` params
    cmvn.json             {"mean": [...], "std": [...], "frames": N} from the train split

Features are stored un-normalized; models apply CMVN (see :class:`pipeline.model.Cmvn`).

Resumable extraction: the work directory (``data/features.partial``, a DVC out with
``persist: true`` so DVC does not delete it before a re-run) holds one folder per split::

    fbank-00000.npy       a finished shard: (frames, n_mels) float16, written to a
                          ``*.tmp`` file first and renamed into place when complete
    fbank-00000.json      its sidecar, written (atomically) after the shard:
                          {"format": "asr-distill-features-shard/1", "inputs": <sha256>,
                           "ids": [...], "frames": [...], "sum": [...], "sum_sq": [...]}
                          ``sum``/``sum_sq``: float64 per-bin sums of the fp16 values (CMVN)

Shard boundaries are a function of the manifest and the params alone: rows are taken in
manifest order and a shard is closed once the frame count estimated from the manifest's
``duration`` reaches ``features.shard_frames``. ``inputs`` hashes the shard's manifest rows
(id, audio path, duration, audio file size and mtime) with the feature params, so a shard is
reused only if its sidecar's hash matches and its ``.npy`` has the recorded frame count;
anything else (a changed manifest, new params, a ``*.tmp`` left by a killed run) is
recomputed. Extraction is deterministic (dither noise is seeded per batch), so a resumed run
writes the same bytes as an uninterrupted one. At the end the shards are hard-linked (copied
where links are unsupported) into the final stores, ``index.json`` and ``cmvn.json`` are
written, the result is renamed onto ``data/features`` and the work directory is emptied.

Workers (``features.num_workers`` processes, one torch thread each) take tasks of about
``TASK_SECONDS`` of audio in manifest order; the parent streams their results into the
current shard, so memory stays at a few tasks whatever the shard size. (Concatenating
utterances into one ``kaldi.fbank`` call was measured and gave no speed-up.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from tqdm import tqdm

from pipeline.audio import read_audio
from pipeline.config import FeaturesConfig
from pipeline.fbank import fbank, num_frames
from pipeline.io import atomic_path, read_jsonl, write_json
from pipeline.splits import SPLITS, TRANSFER
from pipeline.store import write_index

log = logging.getLogger(__name__)

SHARD_FORMAT = "asr-distill-features-shard/1"
FIELD = "fbank"
TASK_SECONDS = 30.0  # audio per worker task: scheduling only, the output does not depend on it

Row = dict[str, Any]


def estimated_frames(row: Row, sample_rate: int, cfg: FeaturesConfig) -> int:
    """Frames expected from the manifest's ``duration`` (used only to place boundaries)."""
    return num_frames(int(round(float(row["duration"]) * sample_rate)), sample_rate, cfg)


def plan_shards(rows: list[Row], sample_rate: int, cfg: FeaturesConfig) -> list[list[Row]]:
    """Split manifest rows, in order, into shards of about ``cfg.shard_frames`` frames."""
    return _split_by(rows, lambda r: estimated_frames(r, sample_rate, cfg), cfg.shard_frames)


def plan_tasks(rows: list[Row]) -> list[list[Row]]:
    """Split a shard's rows, in order, into worker tasks of about ``TASK_SECONDS`` of audio."""
    return _split_by(rows, lambda r: float(r["duration"]), TASK_SECONDS)


def _split_by(rows: list[Row], size: Any, limit: float) -> list[list[Row]]:
    groups: list[list[Row]] = []
    current: list[Row] = []
    total = 0.0
    for row in rows:
        current.append(row)
        total += size(row)
        if total >= limit:
            groups.append(current)
            current, total = [], 0.0
    if current:
        groups.append(current)
    return groups


def inputs_hash(rows: list[Row], sample_rate: int, cfg: FeaturesConfig) -> str:
    """SHA-256 of what a shard's bytes depend on: its rows, their audio files, the params."""
    h = hashlib.sha256(
        json.dumps(
            {"format": SHARD_FORMAT, "sample_rate": sample_rate, "features": _output_params(cfg)},
            sort_keys=True,
        ).encode()
    )
    for row in rows:
        try:
            st = os.stat(row["audio"])
        except OSError as e:
            raise ValueError(f"{row['audio']}: cannot stat audio of '{row['id']}' ({e})") from None
        h.update(
            json.dumps([row["id"], str(row["audio"]), row["duration"], st.st_size, st.st_mtime_ns]).encode()
        )
    return h.hexdigest()


def _output_params(cfg: FeaturesConfig) -> dict[str, Any]:
    """Params that can change the shards' bytes (not ``num_workers``)."""
    return cfg.model_dump(exclude={"num_workers"})


# ---- workers -------------------------------------------------------------------------

_WORKER_CFG: tuple[FeaturesConfig, int] | None = None


def _init_worker(cfg: FeaturesConfig, sample_rate: int) -> None:
    global _WORKER_CFG
    torch.set_num_threads(1)
    _WORKER_CFG = (cfg, sample_rate)


Result = list[tuple[str, np.ndarray]]  # (id, (frames, n_mels) float16) per utterance


def _extract_task(rows: list[Row]) -> Result:
    assert _WORKER_CFG is not None, "worker not initialised"
    cfg, sr = _WORKER_CFG
    out: Result = []
    for row in rows:
        if cfg.dither > 0:  # dither noise depends on the utterance only, not on scheduling
            torch.manual_seed(zlib.crc32(row["id"].encode()))
        feats = fbank(read_audio(row["audio"], sr).samples, sr, cfg)
        if not len(feats):
            raise ValueError(f"{row['audio']}: '{row['id']}' is too short for one frame")
        out.append((row["id"], feats.astype(np.float16)))
    return out


# ---- shards in the work directory ----------------------------------------------------


@dataclass
class ShardPlan:
    """One shard of a split: where it goes, what it holds, and its inputs hash."""

    path: Path  # <work>/<split>/fbank-00000.npy
    rows: list[Row]
    inputs: str

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")


def finished_sidecar(plan: ShardPlan, n_mels: int) -> dict[str, Any] | None:
    """The shard's sidecar if the shard is complete and matches its inputs, else ``None``."""
    try:
        side = json.loads(plan.sidecar.read_text())
        shape = np.load(plan.path, mmap_mode="r").shape
    except (OSError, ValueError):
        return None
    ids = [r["id"] for r in plan.rows]
    if (
        side.get("format") != SHARD_FORMAT
        or side.get("inputs") != plan.inputs
        or side.get("ids") != ids
        or shape != (sum(side["frames"]), n_mels)
    ):
        return None
    return side


class ShardWriter:
    """Streams one shard's utterances to disk; ``finish`` makes it visible atomically.

    Frames go to a ``.npy.tmp`` file behind a header that is rewritten with the final
    shape on ``finish``, so memory stays at one batch whatever ``shard_frames`` is.
    """

    def __init__(self, plan: ShardPlan, n_mels: int) -> None:
        self.plan = plan
        self.n_mels = n_mels
        self.tmp = plan.path.with_name(plan.path.name + ".tmp")
        self.file: BinaryIO = self.tmp.open("wb")
        self._write_header(10**12)  # widest shape we may need: the header length is fixed
        self.data_start = self.file.tell()
        self.ids: list[str] = []
        self.frames: list[int] = []
        self.sum = np.zeros(n_mels, dtype=np.float64)
        self.sum_sq = np.zeros(n_mels, dtype=np.float64)

    def _write_header(self, rows: int) -> None:
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype("<f2")),
            "fortran_order": False,
            "shape": (rows, self.n_mels),
        }
        np.lib.format.write_array_header_1_0(self.file, header)

    def add(self, utt_id: str, feats: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(feats, dtype="<f2").tobytes())
        x = feats.astype(np.float64)  # CMVN from the stored fp16 values
        self.sum += x.sum(0)
        self.sum_sq += np.einsum("tf,tf->f", x, x)
        self.ids.append(utt_id)
        self.frames.append(len(feats))

    def finish(self) -> dict[str, Any]:
        """Rewrite the header, rename the shard into place, then write its sidecar."""
        expected = [r["id"] for r in self.plan.rows]
        if self.ids != expected:
            raise RuntimeError(
                f"{self.plan.path}: got utterances {self.ids[:3]}..., expected {expected[:3]}..."
            )
        self.file.seek(0)
        self._write_header(sum(self.frames))
        if self.file.tell() != self.data_start:
            raise RuntimeError(f"{self.tmp}: npy header changed length")
        self.file.close()
        os.replace(self.tmp, self.plan.path)
        side = {
            "format": SHARD_FORMAT,
            "inputs": self.plan.inputs,
            "ids": self.ids,
            "frames": self.frames,
            "sum": self.sum.tolist(),
            "sum_sq": self.sum_sq.tolist(),
        }
        write_json(self.plan.sidecar, side)
        return side


@dataclass
class SplitResult:
    sidecars: list[dict[str, Any]]
    reused: int
    computed: int
    computed_seconds: float


def plan_split(rows: list[Row], split_dir: Path, sample_rate: int, cfg: FeaturesConfig) -> list[ShardPlan]:
    """Shard plans for a split's manifest rows."""
    return [
        ShardPlan(split_dir / f"{FIELD}-{k:05d}.npy", shard, inputs_hash(shard, sample_rate, cfg))
        for k, shard in enumerate(plan_shards(rows, sample_rate, cfg))
    ]


def _extract_shards(
    todo: list[tuple[int, ShardPlan]], cfg: FeaturesConfig, pool: Any, bar: tqdm
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Compute the ``todo`` shards (in order) with ``pool``; yields (shard number, sidecar)."""
    jobs = [(k, task) for k, plan in todo for task in plan_tasks(plan.rows)]
    tasks = [task for _, task in jobs]
    results: Iterable[Result] = (
        pool.imap(_extract_task, tasks) if pool is not None else map(_extract_task, tasks)
    )
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
        for k, side in _extract_shards(todo, cfg, pool, bar):
            sidecars[k] = side
    seconds = sum(float(r["duration"]) for _, p in todo for r in p.rows)
    return SplitResult([sidecars[k] for k in range(len(plans))], len(plans) - len(todo), len(todo), seconds)


# ---- assembly ------------------------------------------------------------------------


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def assemble_split(
    split_dir: Path, out_dir: Path, sidecars: list[dict[str, Any]], meta: dict[str, Any], n_mels: int
) -> None:
    """Link a split's finished shards into a store at ``out_dir`` and write its index."""
    out_dir.mkdir()
    utterances: dict[str, list[int]] = {}
    for k, side in enumerate(sidecars):
        name = f"{FIELD}-{k:05d}.npy"
        _link_or_copy(split_dir / name, out_dir / name)
        offset = 0
        for utt_id, n in zip(side["ids"], side["frames"]):
            if utt_id in utterances:
                raise ValueError(f"duplicate utterance id '{utt_id}' in the {split_dir.name} manifest")
            utterances[utt_id] = [k, offset, n]
            offset += n
    write_index(out_dir, {FIELD: ("float16", (n_mels,))}, len(sidecars), utterances, meta)


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
    meta = {"sample_rate": sample_rate, **_output_params(cfg)}
    results: dict[str, SplitResult] = {}
    pool = (
        mp.get_context("fork").Pool(cfg.num_workers, initializer=_init_worker, initargs=(cfg, sample_rate))
        if cfg.num_workers > 1
        else None
    )
    threads = torch.get_num_threads()
    if pool is None:  # one worker: extract in this process, on one thread like a worker
        _init_worker(cfg, sample_rate)
    try:
        for split in SPLITS:
            manifest = manifest_dir / f"{split}.jsonl"
            # The transfer set is optional: no manifest is an empty split.
            rows = read_jsonl(manifest) if split != TRANSFER or manifest.exists() else []
            results[split] = extract_split(rows, work_dir / split, cfg, sample_rate, f"fbank {split}", pool)
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.terminate()
            pool.join()
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
