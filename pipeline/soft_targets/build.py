"""The ``soft_targets`` stage: average the teachers' softened posteriors, keep top-k + rest.

For every frame, each teacher's logits are softened with temperature T and
turned into probabilities; the ensemble distribution is their arithmetic mean
(``ensemble.combine: mean``) or normalized geometric mean (``geometric``).
We store, per utterance, the top-k token ids (uint16), their probabilities
(fp16) and the rest mass outside the top-k (fp16): ``4k + 2`` bytes per frame,
for train, dev and the transfer set (``<out>/<split>/``), and the ensemble's
transcripts of train and the transfer set (``<out>/<split>.hyps.json``) for
sequence-level KD: its T=1 average decoded greedily, or (``soft_targets.transcripts:
lexicon``) by beam search over the words of the train transcripts, which fixes most of the
misspellings greedy decoding makes; the report gives both decoders' WER on train and dev.

Store metadata: teachers, temperature, top_k, align, combine, transcripts, teacher file digests.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.config import Params
from pipeline.io import atomic_path, write_json
from pipeline.loader import BatchLoader
from pipeline.model.conformer import ConformerCTC
from pipeline.model.ctc import greedy_decode
from pipeline.model.decoding import LEXICON, Decoder, make_decoder, write_lexicon
from pipeline.model.ensemble import combine_posteriors
from pipeline.splits import LABELLED_SPLITS
from pipeline.store import Store, write_store
from pipeline.tokens import BLANK
from pipeline.wer import RATE_DECIMALS, corpus_wer

log = logging.getLogger(__name__)


def top_k_with_rest(probs: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T, V)`` probabilities -> ids uint16 ``(T, k)``, probs fp16 ``(T, k)``, rest fp16 ``(T,)``."""
    k = min(k, probs.shape[-1])
    top, ids = probs.topk(k, dim=-1)
    rest = (1.0 - top.sum(-1)).clamp(min=0.0)
    if k == probs.shape[-1]:
        rest = torch.zeros_like(rest)  # dense targets: the bucket is empty, not round-off
    return (ids.numpy().astype(np.uint16), top.numpy().astype(np.float16), rest.numpy().astype(np.float16))


def spike_agreement(a: np.ndarray, b: np.ndarray, tolerance: int = 1) -> tuple[int, int]:
    """How many of ``a``'s non-blank argmax frames have the same token in ``b`` within ±tolerance.

    Returns ``(matched, total)`` so callers can pool over utterances.
    """
    frames = np.flatnonzero(a != BLANK)
    matched = 0
    for t in frames:
        lo, hi = max(0, t - tolerance), min(len(b), t + tolerance + 1)
        matched += bool(np.any(b[lo:hi] == a[t]))
    return matched, len(frames)


@torch.no_grad()
def teacher_logits(
    models: Sequence[ConformerCTC], loader: BatchLoader, desc: str
) -> Iterator[tuple[str, str, list[torch.Tensor]]]:
    """Yield ``(id, text, [logits (T', V) per teacher])`` for every utterance."""
    for m in models:
        m.eval()
    for batch in tqdm(loader, desc=desc, unit="batch", mininterval=2.0):
        outs = [m(batch.feats, batch.lengths) for m in models]
        lengths = outs[0][1]
        for i, (u, text) in enumerate(zip(batch.ids, batch.texts)):
            n = int(lengths[i])
            yield u, text, [logits[i, :n] for logits, _ in outs]


class AgreementMeter:
    """Pooled spike agreement between every pair of teachers."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.counts = {pair: [0, 0] for pair in itertools.permutations(self.names, 2)}

    def update(self, argmaxes: Sequence[np.ndarray]) -> None:
        """Count one utterance: each teacher's argmax per frame, in ``names`` order."""
        for (i, a), (j, b) in itertools.permutations(enumerate(argmaxes), 2):
            m, t = spike_agreement(a, b)
            c = self.counts[(self.names[i], self.names[j])]
            c[0] += m
            c[1] += t

    def result(self) -> dict[str, Any]:
        """Agreement per ordered pair (``a->b``) and their mean, 4 decimals (None: no spikes)."""
        pairs = {f"{a}->{b}": round(m / t, 4) if t else None for (a, b), (m, t) in self.counts.items()}
        values = [v for v in pairs.values() if v is not None]
        return {"mean": round(float(np.mean(values)), 4) if values else None, "pairs": pairs}


def store_fields(k: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The soft-target store's fields for top-``k``: ids, their probabilities and the rest mass."""
    return {"ids": ("uint16", (k,)), "probs": ("float16", (k,)), "rest": ("float16", ())}


def store_meta(params: Params, names: list[str], teacher_digests: dict[str, str] | None) -> dict[str, Any]:
    """The metadata of every split's store: what the soft targets were made from and how."""
    return {
        "teachers": names,
        "temperature": params.soft_targets.temperature,
        "top_k": params.soft_targets.top_k,
        "align": params.ensemble.align,
        "combine": params.ensemble.combine,
        "transcripts": params.soft_targets.transcripts,
        "teacher_digests": teacher_digests or {},
    }


def lexicon_beam(words: Sequence[str], sp: Any, beam_size: int) -> Decoder:
    """A beam-search decoder restricted to ``words`` (no LM), for the ensemble's transcripts."""
    with tempfile.TemporaryDirectory() as tmp_lexicon:
        write_lexicon(words, sp, Path(tmp_lexicon) / LEXICON)
        return make_decoder(
            "lexicon",
            sp,
            lexicon=Path(tmp_lexicon) / LEXICON,
            beam_size=beam_size,
            lm_weight=0.0,
            word_score=0.0,
        )


@dataclass
class SplitTally:
    """What one split's pass collects beside its stored targets: teacher agreement, the
    references and the ensemble's transcripts by both decoders, in loader order."""

    meter: AgreementMeter
    refs: list[str] = field(default_factory=list)
    utt_ids: list[str] = field(default_factory=list)
    hyps: dict[str, list[str]] = field(default_factory=lambda: {"greedy": [], "lexicon": []})

    def metrics(self, split: str) -> dict[str, Any]:
        """Utterances and spike agreement; the ensemble's WER by both decoders on a labelled split."""
        out: dict[str, Any] = {"utterances": len(self.utt_ids), "spike_agreement": self.meter.result()}
        if split in LABELLED_SPLITS:
            out["ensemble_wer"] = round(corpus_wer(self.refs, self.hyps["greedy"]), RATE_DECIMALS)
            out["ensemble_wer_lexicon"] = round(corpus_wer(self.refs, self.hyps["lexicon"]), RATE_DECIMALS)
        return out


def soft_target_items(
    params: Params,
    models: dict[str, ConformerCTC],
    loader: BatchLoader,
    split: str,
    sp: Any,
    beam: Decoder,
    tally: SplitTally,
    retained: list[np.ndarray],
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Yield ``(id, {ids, probs, rest})`` per utterance of ``loader``; records the retained
    mass in ``retained`` and the agreement and transcripts in ``tally`` as it goes."""
    temperature, k = params.soft_targets.temperature, params.soft_targets.top_k
    combine = params.ensemble.combine
    for u, text, logits in teacher_logits(list(models.values()), loader, f"soft targets {split}"):
        soft = combine_posteriors(logits, temperature, combine)
        ids, probs, rest = top_k_with_rest(soft, k)
        retained.append(1.0 - rest.astype(np.float32))
        tally.meter.update([z.argmax(-1).numpy() for z in logits])
        # The ensemble's own prediction is its T=1 average.
        hard = combine_posteriors(logits, 1.0, combine)
        length = torch.tensor([len(hard)])
        tally.hyps["greedy"].append(sp.decode(greedy_decode(hard[None], length)[0]))
        tally.hyps["lexicon"].append(beam(hard.clamp_min(1e-30).log()[None], length)[0])
        tally.refs.append(text)
        tally.utt_ids.append(u)
        yield u, {"ids": ids, "probs": probs, "rest": rest}


def build_soft_targets(
    params: Params,
    models: dict[str, ConformerCTC],
    loaders: dict[str, BatchLoader],
    sp: Any,
    out_dir: Path,
    words: Sequence[str],
    teacher_digests: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write one soft-target store per split in ``loaders``; returns the stage metrics.

    ``words``: the train transcripts' words, the lexicon of the ensemble's beam-search
    transcripts. ``teacher_digests`` (file hashes of the teachers) go into the store's
    metadata, so a student's checkpoint is never resumed on soft targets from other teachers.
    """
    t0 = time.time()
    names = list(models)
    fields = store_fields(params.soft_targets.top_k)
    meta = store_meta(params, names, teacher_digests)
    beam = lexicon_beam(words, sp, params.decoding.beam_size)
    metrics: dict[str, Any] = {
        "temperature": params.soft_targets.temperature,
        "top_k": params.soft_targets.top_k,
        "teachers": names,
        "transcripts": params.soft_targets.transcripts,
    }
    retained: list[np.ndarray] = []
    frames = 0
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for split, loader in loaders.items():
            tally = SplitTally(AgreementMeter(names))
            items = soft_target_items(params, models, loader, split, sp, beam, tally, retained)
            write_store(tmp / split, items, fields, params.features.shard_frames, meta)
            frames += sum(v[2] for v in Store(tmp / split).index.values())
            metrics[split] = tally.metrics(split)
            if split != "dev":  # sequence-level KD reads them (students.<name>.pseudo_labels)
                chosen = tally.hyps[params.soft_targets.transcripts]
                write_json(tmp / f"{split}.hyps.json", dict(zip(tally.utt_ids, chosen)))
        disk = sum(p.stat().st_size for p in tmp.rglob("*.npy"))
    kept = np.concatenate(retained) if retained else np.zeros(1)
    metrics.update(
        bytes_per_frame=round(disk / max(frames, 1), 2),
        retained_mass_mean=round(float(kept.mean()), 4),
        retained_mass_min=round(float(kept.min()), 4),
        frames=frames,
        seconds=round(time.time() - t0, 1),
    )
    log.info("soft targets: %s", {k: v for k, v in metrics.items() if k not in ("train", "dev")})
    return metrics
