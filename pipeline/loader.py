"""Length-bucketed batches from a feature store, with optional per-frame extras.

Batches hold utterances of similar length up to a budget of padded input
frames (``train.batch_frames``); batch order is shuffled by ``seed + epoch``
so an epoch's order can be replayed exactly when resuming from a checkpoint.

Extras are per-utterance arrays at the model's output frame rate (guide
argmax tokens, soft targets); the collate step checks that their frame count
equals the model's and pads them with zeros (losses mask padded frames by length).

Batches are built by a torch ``DataLoader`` whose sampler yields the epoch's buckets in
order (``workers`` processes; 0 builds them in the calling process). What a batch holds
depends only on ``seed``, ``epoch`` and its position, never on the worker count.

Optional speed perturbation (``speed_perturb`` factors, one drawn per batch from
``seed``, ``epoch`` and the batch's position) approximates sox ``speed`` in the feature
domain: the time axis is resampled to ``frames / factor`` and every mel bin takes the
energy of the frequency ``centre / factor``. It changes frame counts, so it is switched
off (with a log line) when per-frame extras are attached; a slowed-down batch may
exceed ``batch_frames`` by up to ``1 / min(factors)``.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import random
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch

from pipeline.config import TrainConfig
from pipeline.errors import MissingError
from pipeline.io import read_jsonl
from pipeline.model.conformer import subsampled_lengths
from pipeline.store import Store, StoreUnion

log = logging.getLogger(__name__)

Extra = Callable[[str], dict[str, np.ndarray]]
Item = tuple[list[str], float]  # (utterance ids, speed factor) of one batch


@dataclass
class Batch:
    """One padded batch: features ``(N, T, F)``, lengths, token targets and per-frame extras."""

    ids: list[str]
    feats: torch.Tensor  # (N, T, F) float32
    lengths: torch.Tensor  # (N,)
    targets: torch.Tensor  # (sum of target lengths,) int32
    target_lengths: torch.Tensor  # (N,)
    texts: list[str]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # (N, T', ...)
    # (N,) bool: which utterances have a transcript (the CTC term); None: all of them.
    labelled: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        """The same batch with every tensor on ``device``."""
        if device.type == "cpu":
            return self
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return Batch(
            self.ids,
            move(self.feats),
            move(self.lengths),
            move(self.targets),
            move(self.target_lengths),
            self.texts,
            {k: move(v) for k, v in self.extras.items()},
            None if self.labelled is None else move(self.labelled),
        )


def make_buckets(frames: dict[str, int], batch_frames: int) -> list[list[str]]:
    """Group ids sorted by length so that ``max_len * count <= batch_frames`` per batch.

    An utterance longer than the budget gets a batch of its own.
    """
    order = sorted(frames, key=lambda u: (frames[u], u))
    batches: list[list[str]] = []
    current: list[str] = []
    longest = 0
    for utt in order:
        n = frames[utt]
        if current and max(longest, n) * (len(current) + 1) > batch_frames:
            batches.append(current)
            current, longest = [], 0
        current.append(utt)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)  # Kaldi's mel scale


def mel_positions(hz: np.ndarray, n_mels: int, sample_rate: int, low_freq: float = 20.0) -> np.ndarray:
    """Fractional mel-bin index of frequencies ``hz`` in Kaldi's filterbank (bin k centred at k)."""
    lo, hi = _mel(low_freq), _mel(sample_rate / 2)
    return (_mel(hz) - lo) / ((hi - lo) / (n_mels + 1)) - 1.0


def bin_centres(n_mels: int, sample_rate: int, low_freq: float = 20.0) -> np.ndarray:
    """Centre frequency (Hz) of each of Kaldi's ``n_mels`` mel bins."""
    lo, hi = _mel(low_freq), _mel(sample_rate / 2)
    return 700.0 * np.expm1((lo + (np.arange(n_mels) + 1) * (hi - lo) / (n_mels + 1)) / 1127.0)


@functools.lru_cache(maxsize=64)
def _warp(factor: float, n_mels: int, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source bins and weights: bin ``j`` of the output reads frequency ``centre_j / factor``."""
    pos = mel_positions(bin_centres(n_mels, sample_rate) / factor, n_mels, sample_rate)
    pos = np.clip(pos, 0, n_mels - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_mels - 1)
    return torch.from_numpy(lo), torch.from_numpy(hi), torch.from_numpy(pos - lo).float()


def perturb_speed(feats: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """``(T, F) -> (round(T / factor), F)`` log-mel features of the audio played ``factor`` x faster."""
    n_frames, n_mels = feats.shape
    out_frames = max(1, round(n_frames / factor))
    x = torch.nn.functional.interpolate(feats.T[None], size=out_frames, mode="linear", align_corners=False)[
        0
    ].T  # (T', F)
    lo, hi, w = _warp(float(factor), n_mels, sample_rate)
    return x[:, lo] * (1 - w) + x[:, hi] * w


class _Batches(torch.utils.data.Dataset):
    """Map-style dataset whose keys are :data:`Item` s: one collated batch per key."""

    def __init__(self, loader: BatchLoader) -> None:
        self.loader = loader

    def __getitem__(self, item: Item) -> Batch:
        ids, speed = item
        return self.loader.collate(ids, speed)


def _as_is(batch: Any) -> Any:
    return batch


def _init_worker(_: int) -> None:
    torch.set_num_threads(1)  # the trainer owns the cores; batch building is light


class BatchLoader:
    """Iterates length-bucketed :class:`Batch` objects over a split."""

    def __init__(
        self,
        store: Store | StoreUnion,
        texts: dict[str, str],
        sp: spm.SentencePieceProcessor,
        batch_frames: int,
        extras: Extra | None = None,
        *,
        workers: int = 0,
        speed_perturb: Sequence[float] = (),
        unlabelled: Collection[str] = (),
    ) -> None:
        """``workers``: DataLoader processes (0: in-process).

        ``speed_perturb``: speed factors (``train.speed_perturb``), see the module doc.
        ``unlabelled``: ids of ``texts`` without a transcript (their text is ignored);
        batches then carry a ``labelled`` mask.
        """
        missing = [u for u in texts if u not in store]
        if missing:
            raise MissingError(
                f"{len(missing)} manifest utterances have no features in {store.dir}, e.g. {missing[:3]}"
            )
        self.store = store
        self.unlabelled = frozenset(unlabelled)
        self.texts = {u: "" if u in self.unlabelled else t for u, t in texts.items()}
        self.sp = sp
        self.extras = extras
        self.workers = workers
        self.speed_perturb = tuple(speed_perturb)
        if self.speed_perturb and extras is not None:
            log.info(
                "%s: speed perturbation %s is off: per-frame extras are attached and "
                "must match the model's frame count",
                store.dir,
                list(self.speed_perturb),
            )
            self.speed_perturb = ()
        self.buckets = make_buckets({u: store.frames(u) for u in texts}, batch_frames)

    def __len__(self) -> int:
        return len(self.buckets)

    def epoch_order(self, seed: int, epoch: int, shuffle: bool = True) -> list[list[str]]:
        order = list(self.buckets)
        if shuffle:
            random.Random(f"{seed}-{epoch}").shuffle(order)
        return order

    def speed_of(self, seed: int, epoch: int, position: int) -> float:
        """The speed factor of batch ``position`` of ``epoch`` (1.0 when perturbation is off)."""
        if not self.speed_perturb:
            return 1.0
        return random.Random(f"{seed}-{epoch}-{position}-speed").choice(self.speed_perturb)

    def collate(self, ids: list[str], speed: float = 1.0) -> Batch:
        feats = [
            torch.from_numpy(np.asarray(self.store.get(u, "fbank"), dtype=np.float32)) for u in ids
        ]  # (T, F) each
        if speed != 1.0:
            sr = int(self.store.meta.get("sample_rate", 16000))
            feats = [perturb_speed(f, speed, sr) for f in feats]
        lengths = torch.tensor([len(f) for f in feats])
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        tokens = [self.sp.encode(self.texts[u]) for u in ids]
        targets = torch.tensor([t for seq in tokens for t in seq], dtype=torch.int32)
        batch = Batch(
            ids,
            padded,
            lengths,
            targets,
            torch.tensor([len(t) for t in tokens], dtype=torch.int32),
            [self.texts[u] for u in ids],
        )
        if self.unlabelled:
            batch.labelled = torch.tensor([u not in self.unlabelled for u in ids])
        if self.extras is not None:
            batch.extras = self._collate_extras(ids, subsampled_lengths(lengths))
        return batch

    def _collate_extras(self, ids: list[str], out_lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        per_utt = [self.extras(u) for u in ids]  # type: ignore[misc]
        t_max = int(out_lengths.max())
        result: dict[str, torch.Tensor] = {}
        for name in per_utt[0]:
            arrays = []
            for u, n, ex in zip(ids, out_lengths.tolist(), per_utt):
                a = torch.from_numpy(np.array(ex[name]))  # copy: store views are read-only
                if len(a) != n:
                    raise ValueError(
                        f"{u}: extra '{name}' has {len(a)} frames, the model "
                        f"emits {n}; were they made with another front end?"
                    )
                arrays.append(a)
            out = torch.zeros((len(ids), t_max, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
            for i, a in enumerate(arrays):
                out[i, : len(a)] = a
            result[name] = out
        return result

    def batches(self, items: Sequence[Item]) -> Iterator[Batch]:
        """Collate ``items`` in order, in ``self.workers`` DataLoader processes."""
        if self.workers == 0:
            for ids, speed in items:
                yield self.collate(ids, speed)
            return
        context = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        yield from torch.utils.data.DataLoader(
            _Batches(self),
            batch_size=None,
            sampler=items,
            collate_fn=_as_is,
            num_workers=self.workers,
            worker_init_fn=_init_worker,
            multiprocessing_context=context,
        )

    def __iter__(self) -> Iterator[Batch]:
        """Every batch once, shortest first, unperturbed (evaluation)."""
        return self.batches([(ids, 1.0) for ids in self.buckets])

    def iterate(self, seed: int, epoch: int, skip: int = 0, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """Shuffled batches for ``epoch``, skipping the first ``skip`` (resume).

        Under DDP every rank walks the same order and takes its slice
        ``ids[rank::world]`` of each global batch; a batch with fewer utterances
        than ranks lends its first ones again so no rank ever idles.
        """
        order = self.epoch_order(seed, epoch)
        return self.batches(
            [
                (ids[rank::world] or [ids[rank % len(ids)]], self.speed_of(seed, epoch, i))
                for i, ids in enumerate(order)
                if i >= skip
            ]
        )


def split_texts(manifest_dir: Path, split: str) -> dict[str, str]:
    """``id -> transcript`` of a split ("" for the transfer set's untranscribed rows)."""
    return {r["id"]: r.get("text", "") for r in read_jsonl(Path(manifest_dir) / f"{split}.jsonl")}


def make_loader(
    features_dir: Path,
    manifest_dir: Path,
    split: str,
    sp: spm.SentencePieceProcessor,
    batch_frames: int,
    extras: Extra | None = None,
    train: TrainConfig | None = None,
) -> BatchLoader:
    """A loader over ``split``; pass ``train`` for training loaders (workers, speed perturbation)."""
    options = {} if train is None else {"workers": train.loader_workers, "speed_perturb": train.speed_perturb}
    return BatchLoader(
        Store(Path(features_dir) / split),
        split_texts(manifest_dir, split),
        sp,
        batch_frames,
        extras,
        **options,
    )
