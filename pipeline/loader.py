"""Length-bucketed batches from a feature store, with optional per-frame extras.

Batches hold utterances of similar length up to a budget of padded input
frames (``train.batch_frames``); batch order is shuffled by ``seed + epoch``
so an epoch's order can be replayed exactly when resuming from a checkpoint.

Extras are per-utterance arrays at the model's output frame rate (guide
argmax tokens, soft targets); the collate step checks that their frame count
equals the model's and pads them with zeros (losses mask padded frames by length).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import sentencepiece as spm
import torch

from pipeline.model import subsampled_lengths
from pipeline.store import Store

Extra = Callable[[str], dict[str, np.ndarray]]


@dataclass
class Batch:
    ids: list[str]
    feats: torch.Tensor  # (N, T, F) float32
    lengths: torch.Tensor  # (N,)
    targets: torch.Tensor  # (sum of target lengths,) int32
    target_lengths: torch.Tensor  # (N,)
    texts: list[str]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # (N, T', ...)


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


class BatchLoader:
    """Iterates length-bucketed :class:`Batch` objects over a split."""

    def __init__(self, store: Store, texts: dict[str, str], sp: spm.SentencePieceProcessor,
                 batch_frames: int, extras: Optional[Extra] = None) -> None:
        missing = [u for u in texts if u not in store]
        if missing:
            raise KeyError(f"{len(missing)} manifest utterances have no features in "
                           f"{store.dir}, e.g. {missing[:3]}")
        self.store = store
        self.texts = texts
        self.sp = sp
        self.extras = extras
        self.buckets = make_buckets({u: store.frames(u) for u in texts}, batch_frames)

    def __len__(self) -> int:
        return len(self.buckets)

    def epoch_order(self, seed: int, epoch: int, shuffle: bool = True) -> list[list[str]]:
        order = list(self.buckets)
        if shuffle:
            random.Random(f"{seed}-{epoch}").shuffle(order)
        return order

    def collate(self, ids: list[str]) -> Batch:
        feats = [torch.from_numpy(np.asarray(self.store.get(u, "fbank"), dtype=np.float32))
                 for u in ids]
        lengths = torch.tensor([len(f) for f in feats])
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        tokens = [self.sp.encode(self.texts[u]) for u in ids]
        targets = torch.tensor([t for seq in tokens for t in seq], dtype=torch.int32)
        batch = Batch(ids, padded, lengths, targets,
                      torch.tensor([len(t) for t in tokens], dtype=torch.int32),
                      [self.texts[u] for u in ids])
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
                    raise ValueError(f"{u}: extra '{name}' has {len(a)} frames, the model "
                                     f"emits {n}; were they made with another front end?")
                arrays.append(a)
            out = torch.zeros((len(ids), t_max, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
            for i, a in enumerate(arrays):
                out[i, :len(a)] = a
            result[name] = out
        return result

    def __iter__(self):
        for ids in self.buckets:
            yield self.collate(ids)

    def iterate(self, seed: int, epoch: int, skip: int = 0):
        """Shuffled batches for ``epoch``, skipping the first ``skip`` (resume)."""
        for ids in self.epoch_order(seed, epoch)[skip:]:
            yield self.collate(ids)
