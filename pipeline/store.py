"""A sharded, memory-mappable store of per-utterance frame arrays.

Used for filterbank features and for soft targets: never one file per
utterance, always a few large ``.npy`` shards plus an index.

On-disk format (``asr-distill-store/1``), in one directory::

    index.json                 {"format": "asr-distill-store/1",
                                "fields": {"fbank": {"dtype": "float16", "shape": [80]}},
                                "shards": 2, "meta": {...},
                                "utterances": {"<id>": [shard, offset, frames], ...}}
    <field>-00000.npy          (frames_in_shard, *shape) arrays, one per field and shard

Rows ``offset:offset+frames`` of every field's shard belong to the utterance.
Shards are opened with ``np.load(mmap_mode="r")`` on first use, so reading a
store costs memory proportional to the index, not to the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import MissingError

FORMAT = "asr-distill-store/1"


class StoreWriter:
    """Append utterances; flushes a shard when it reaches ``shard_frames`` frames."""

    def __init__(
        self,
        directory: Path,
        fields: dict[str, tuple[str, tuple[int, ...]]],
        shard_frames: int,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fields = fields
        self.shard_frames = shard_frames
        self.meta = meta or {}
        self.index: dict[str, list[int]] = {}
        self._buf: dict[str, list[np.ndarray]] = {k: [] for k in fields}
        self._buf_frames = 0
        self._shard = 0

    def add(self, utt_id: str, arrays: dict[str, np.ndarray]) -> None:
        if utt_id in self.index:
            raise ValueError(f"duplicate utterance id '{utt_id}' in store {self.dir}")
        frames = {len(a) for a in arrays.values()}
        if len(frames) != 1 or set(arrays) != set(self.fields):
            raise ValueError(
                f"{utt_id}: fields {sorted(arrays)} with frame counts {frames}; "
                f"expected {sorted(self.fields)} with one frame count"
            )
        n = frames.pop()
        self.index[utt_id] = [self._shard, self._buf_frames, n]
        for name, (dtype, shape) in self.fields.items():
            a = np.asarray(arrays[name], dtype=dtype)
            if a.shape[1:] != tuple(shape):
                raise ValueError(f"{utt_id}: field {name} has shape {a.shape}, expected (*, {shape})")
            self._buf[name].append(a)
        self._buf_frames += n
        if self._buf_frames >= self.shard_frames:
            self._flush()

    def _flush(self) -> None:
        if self._buf_frames == 0:
            return
        for name in self.fields:
            np.save(self.dir / f"{name}-{self._shard:05d}.npy", np.concatenate(self._buf[name]))
            self._buf[name] = []
        self._shard += 1
        self._buf_frames = 0

    def close(self) -> None:
        """Write the last shard and the index."""
        self._flush()
        write_index(self.dir, self.fields, self._shard, self.index, self.meta)


def write_index(
    directory: Path,
    fields: dict[str, tuple[str, tuple[int, ...]]],
    shards: int,
    utterances: dict[str, list[int]],
    meta: dict[str, Any],
) -> None:
    """Write ``index.json`` for shards already in ``directory``
    (``utterances``: id -> [shard, offset, frames])."""
    index = {
        "format": FORMAT,
        "fields": {k: {"dtype": d, "shape": list(s)} for k, (d, s) in fields.items()},
        "shards": shards,
        "meta": meta,
        "utterances": utterances,
    }
    (Path(directory) / "index.json").write_text(json.dumps(index))


class Store:
    """Read-only view of a store directory; shards are memory-mapped lazily."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        path = self.dir / "index.json"
        if not path.exists():
            raise FileNotFoundError(f"{self.dir}: not a store (no index.json)")
        index = json.loads(path.read_text())
        if index.get("format") != FORMAT:
            raise ValueError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}")
        self.fields: dict[str, Any] = index["fields"]
        self.meta: dict[str, Any] = index["meta"]
        self.index: dict[str, list[int]] = index["utterances"]
        self.shards: int = index["shards"]
        self._shards: dict[tuple[str, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.index

    def ids(self) -> list[str]:
        return list(self.index)

    def frames(self, utt_id: str) -> int:
        return self.index[utt_id][2]

    def _shard(self, name: str, shard: int) -> np.ndarray:
        key = (name, shard)
        if key not in self._shards:
            self._shards[key] = np.load(self.dir / f"{name}-{shard:05d}.npy", mmap_mode="r")
        return self._shards[key]

    def get(self, utt_id: str, name: str) -> np.ndarray:
        """The ``(frames, *shape)`` array of field ``name`` (a read-only memory-map view)."""
        try:
            shard, offset, n = self.index[utt_id]
        except KeyError:
            raise MissingError(f"utterance '{utt_id}' is not in store {self.dir}") from None
        return self._shard(name, shard)[offset : offset + n]

    def check(self) -> None:
        """Verify the index against the shards; raises ``ValueError`` naming the bad file.

        Every field's shard must exist with the declared dtype and shape, and the
        utterances of each shard must tile its rows exactly (no gap, no overlap).
        Only ``.npy`` headers are read.
        """
        spans: dict[int, list[tuple[int, int, str]]] = {s: [] for s in range(self.shards)}
        for utt_id, (shard, offset, n) in self.index.items():
            if shard not in spans or offset < 0 or n < 0:
                raise ValueError(
                    f"{self.dir / 'index.json'}: utterance '{utt_id}' points at "
                    f"shard {shard} offset {offset} frames {n}; the store has "
                    f"{self.shards} shards"
                )
            spans[shard].append((offset, n, utt_id))
        for shard, utts in spans.items():
            utts.sort()
            end = 0
            for offset, n, utt_id in utts:
                if offset != end:
                    raise ValueError(
                        f"{self.dir / 'index.json'}: utterance '{utt_id}' starts at "
                        f"row {offset} of shard {shard}, expected {end}"
                    )
                end += n
            for name, spec in self.fields.items():
                self._check_shard(name, shard, spec, end)

    def _check_shard(self, name: str, shard: int, spec: dict[str, Any], rows: int) -> None:
        path = self.dir / f"{name}-{shard:05d}.npy"
        try:
            a = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot open shard ({e})") from None
        expected = (rows, *spec["shape"])
        if a.shape != expected or a.dtype != np.dtype(spec["dtype"]):
            raise ValueError(
                f"{path}: shard is {a.dtype} {a.shape}, the index expects {spec['dtype']} {expected}"
            )

    def items(self, name: str) -> Iterator[tuple[str, np.ndarray]]:
        for utt_id in self.index:
            yield utt_id, self.get(utt_id, name)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open their own maps
        state = self.__dict__.copy()
        state["_shards"] = {}
        return state


class StoreUnion:
    """Several stores read as one (train plus the transfer set); ids must be distinct."""

    def __init__(self, stores: Iterable[Store]) -> None:
        self.stores = list(stores)
        if not self.stores:
            raise ValueError("StoreUnion needs at least one store")
        self.dir = self.stores[0].dir
        self.meta = self.stores[0].meta
        self._where: dict[str, Store] = {}
        for store in self.stores:
            for utt_id in store.index:
                if utt_id in self._where:
                    raise ValueError(
                        f"utterance '{utt_id}' is in both {self._where[utt_id].dir} and {store.dir}"
                    )
                self._where[utt_id] = store

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self._where

    def frames(self, utt_id: str) -> int:
        return self._where[utt_id].frames(utt_id)

    def get(self, utt_id: str, name: str) -> np.ndarray:
        store = self._where.get(utt_id)
        if store is None:
            raise MissingError(f"utterance '{utt_id}' is in none of {[str(s.dir) for s in self.stores]}")
        return store.get(utt_id, name)


def write_store(
    directory: Path,
    items: Iterable[tuple[str, dict[str, np.ndarray]]],
    fields: dict[str, tuple[str, tuple[int, ...]]],
    shard_frames: int,
    meta: dict[str, Any] | None = None,
) -> int:
    """Write all ``items`` into a store at ``directory``; returns the utterance count."""
    writer = StoreWriter(directory, fields, shard_frames, meta)
    for utt_id, arrays in items:
        writer.add(utt_id, arrays)
    writer.close()
    return len(writer.index)
