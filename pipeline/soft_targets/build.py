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
from pipeline.model.decoding import LEXICON, make_decoder, write_lexicon
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
        for (i, a), (j, b) in itertools.permutations(enumerate(argmaxes), 2):
            m, t = spike_agreement(a, b)
            c = self.counts[(self.names[i], self.names[j])]
            c[0] += m
            c[1] += t

    def result(self) -> dict[str, Any]:
        pairs = {f"{a}->{b}": round(m / t, 4) if t else None for (a, b), (m, t) in self.counts.items()}
        values = [v for v in pairs.values() if v is not None]
        return {"mean": round(float(np.mean(values)), 4) if values else None, "pairs": pairs}


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
    temperature, k = params.soft_targets.temperature, params.soft_targets.top_k
    combine = params.ensemble.combine
    names = list(models)
    fields = {"ids": ("uint16", (k,)), "probs": ("float16", (k,)), "rest": ("float16", ())}
    meta = {
        "teachers": names,
        "temperature": temperature,
        "top_k": k,
        "align": params.ensemble.align,
        "combine": combine,
        "transcripts": params.soft_targets.transcripts,
        "teacher_digests": teacher_digests or {},
    }
    with tempfile.TemporaryDirectory() as tmp_lexicon:
        write_lexicon(words, sp, Path(tmp_lexicon) / LEXICON)
        beam = make_decoder(
            "lexicon",
            sp,
            lexicon=Path(tmp_lexicon) / LEXICON,
            beam_size=params.decoding.beam_size,
            lm_weight=0.0,
            word_score=0.0,
        )
    metrics: dict[str, Any] = {
        "temperature": temperature,
        "top_k": k,
        "teachers": names,
        "transcripts": params.soft_targets.transcripts,
    }
    retained: list[np.ndarray] = []
    frames = 0
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for split, loader in loaders.items():
            meter = AgreementMeter(names)
            refs, utt_ids = [], []
            hyps: dict[str, list[str]] = {"greedy": [], "lexicon": []}

            def items() -> Iterator[tuple[str, dict[str, np.ndarray]]]:
                for u, text, logits in teacher_logits(list(models.values()), loader, f"soft targets {split}"):
                    soft = combine_posteriors(logits, temperature, combine)
                    ids, probs, rest = top_k_with_rest(soft, k)
                    retained.append(1.0 - rest.astype(np.float32))
                    meter.update([z.argmax(-1).numpy() for z in logits])
                    # The ensemble's own prediction is its T=1 average.
                    hard = combine_posteriors(logits, 1.0, combine)
                    length = torch.tensor([len(hard)])
                    hyps["greedy"].append(sp.decode(greedy_decode(hard[None], length)[0]))
                    hyps["lexicon"].append(beam(hard.clamp_min(1e-30).log()[None], length)[0])
                    refs.append(text)
                    utt_ids.append(u)
                    yield u, {"ids": ids, "probs": probs, "rest": rest}

            write_store(tmp / split, items(), fields, params.features.shard_frames, meta)
            frames += sum(v[2] for v in Store(tmp / split).index.values())
            metrics[split] = {"utterances": len(utt_ids), "spike_agreement": meter.result()}
            if split in LABELLED_SPLITS:
                metrics[split]["ensemble_wer"] = round(corpus_wer(refs, hyps["greedy"]), RATE_DECIMALS)
                metrics[split]["ensemble_wer_lexicon"] = round(
                    corpus_wer(refs, hyps["lexicon"]), RATE_DECIMALS
                )
            if split != "dev":  # sequence-level KD reads them (students.<name>.pseudo_labels)
                chosen = hyps[params.soft_targets.transcripts]
                write_json(tmp / f"{split}.hyps.json", dict(zip(utt_ids, chosen)))
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
