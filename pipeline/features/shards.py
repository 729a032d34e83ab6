"""Resumable shards of the ``features`` stage: planning, input hashes, writing, reuse.

The work directory (``data/features.partial``, a DVC out with ``persist: true`` so DVC
does not delete it before a re-run) holds one folder per split::

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
recomputed. Finished shards are hard-linked (copied where links are unsupported) into the
final :mod:`pipeline.store` of their split (:func:`assemble_split`).

:class:`ShardWriter` streams one planned shard to disk, so memory stays at a few utterances
whatever the shard size. (:class:`pipeline.store.StoreWriter`, which writes the soft targets,
holds a shard in memory and closes it once the frames it received reach ``shard_frames``;
a resumable shard's rows must be known before any audio is read.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline.audio.fbank import num_frames
from pipeline.config import FeaturesConfig
from pipeline.io import write_json
from pipeline.store import write_index

SHARD_FORMAT = "asr-distill-features-shard/1"
FIELD = "fbank"
Row = dict[str, Any]


def estimated_frames(row: Row, sample_rate: int, cfg: FeaturesConfig) -> int:
    """Frames expected from the manifest's ``duration`` (used only to place boundaries)."""
    return num_frames(int(round(float(row["duration"]) * sample_rate)), sample_rate, cfg)


def plan_shards(rows: list[Row], sample_rate: int, cfg: FeaturesConfig) -> list[list[Row]]:
    """Split manifest rows, in order, into shards of about ``cfg.shard_frames`` frames."""
    return split_by(rows, lambda r: estimated_frames(r, sample_rate, cfg), cfg.shard_frames)


def split_by(rows: list[Row], size: Callable[[Row], float], limit: float) -> list[list[Row]]:
    """Consecutive groups of ``rows``, each closed once its summed ``size`` reaches ``limit``."""
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
            {"format": SHARD_FORMAT, "sample_rate": sample_rate, "features": output_params(cfg)},
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


def output_params(cfg: FeaturesConfig) -> dict[str, Any]:
    """Params that can change the shards' bytes (not ``num_workers``)."""
    return cfg.model_dump(exclude={"num_workers"})


@dataclass
class ShardPlan:
    """One shard of a split: where it goes, what it holds, and its inputs hash."""

    path: Path  # <work>/<split>/fbank-00000.npy
    rows: list[Row]
    inputs: str

    @property
    def sidecar(self) -> Path:
        """The shard's JSON sidecar beside its ``.npy``."""
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
        """Append one utterance's frames (stored as fp16) and count them into the CMVN sums."""
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


def plan_split(rows: list[Row], split_dir: Path, sample_rate: int, cfg: FeaturesConfig) -> list[ShardPlan]:
    """Shard plans for a split's manifest rows."""
    return [
        ShardPlan(split_dir / f"{FIELD}-{k:05d}.npy", shard, inputs_hash(shard, sample_rate, cfg))
        for k, shard in enumerate(plan_shards(rows, sample_rate, cfg))
    ]


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``, or copy it where a link is not possible."""
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
        link_or_copy(split_dir / name, out_dir / name)
        offset = 0
        for utt_id, n in zip(side["ids"], side["frames"]):
            if utt_id in utterances:
                raise ValueError(f"duplicate utterance id '{utt_id}' in the {split_dir.name} manifest")
            utterances[utt_id] = [k, offset, n]
            offset += n
    write_index(out_dir, {FIELD: ("float16", (n_mels,))}, len(sidecars), utterances, meta)
