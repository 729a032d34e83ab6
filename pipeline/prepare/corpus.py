"""The ``prepare`` stage: corpus -> 16 kHz mono WAV files + JSONL manifests.

Manifest format (``data/manifests/{train,dev,test}.jsonl``), one utterance per line::

    {"id": "train-000001", "audio": "data/audio/train/train-000001.wav",
     "text": "normalized transcript", "duration": 2.31, "speaker": "en-US+m1"}

``data/manifests/transfer.jsonl`` (possibly empty) holds the transfer set: the same
rows without ``text``. Its audio gets the same checks and rejects as every other
split; whatever transcript a source has for it is never read or written, so only
the teachers' soft targets label it.

Audio is 16-bit PCM mono WAV at ``data.sample_rate`` under
``data/audio/<split>/<id>.wav``, whatever ``data.source`` is. Transcripts are
normalized by :func:`pipeline.prepare.text.normalize` with ``data.normalize``, the
same for every source.

Bad input is fixed or rejected, never dropped silently. Fixed: other sample
rates (resampled with torchaudio), several channels (downmixed), counted in
the metrics under ``fixes``. Rejected, one row each in
``data/manifests/rejects.jsonl`` (``{id, split, reason, audio}``) and counted
by reason in the metrics: missing, unreadable, truncated or empty files (or directories),
silent or non-finite audio, utterances shorter than ``data.min_duration`` or
longer than ``data.max_duration``, empty or non-text transcripts, duplicate
ids, audio without a transcript. When the rejects of any split (or of the
whole corpus) exceed ``data.max_reject_fraction``, prepare stops with a
message naming the worst files and writes the full list to
``<manifests>.rejects.jsonl`` beside the (unwritten) manifest folder.

Synthetic corpus (``data.source: synthetic``): sentences from
:mod:`pipeline.prepare.sentences` (or ``data.synthetic.text_file``), spoken by espeak-ng.
Each utterance draws, from a ``random.Random`` seeded by (seed, split, index),
an accent from ``accents``, a voice variant, a rate in ``rate_wpm``, a pitch in
``pitch`` and an SNR in ``snr_db`` for additive coloured noise. How dev and
test stay disjoint from train:

- sentences: one seeded pool of distinct sentences is cut into test, dev and
  train slices, so no sentence occurs in two splits;
- voices: train speaks with ``train_variants``, dev and test with
  ``eval_variants`` (the config rejects overlap), so every dev/test speaker
  (accent+variant) is unseen in training; accents are shared, as real
  dialects would be.

The same params give byte-identical manifests and audio: every random draw
comes from a seeded generator, and espeak-ng, which keeps hidden state from
one utterance to the next, speaks fixed batches of ``SYNTH_BATCH`` utterances
each in a fresh process (see :func:`pipeline.prepare.espeak.speak_batches`), so the
audio depends neither on ``num_workers`` nor on what ran before.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as T
from scipy.signal import lfilter
from tqdm import tqdm

from pipeline.audio.read import (
    SILENCE_PEAK as SILENCE_PEAK,  # re-exported: the silence threshold prepare applies
)
from pipeline.audio.read import AudioError, read_audio, sample_problem
from pipeline.config import DataConfig, SyntheticConfig
from pipeline.errors import InputError
from pipeline.io import atomic_path, write_jsonl
from pipeline.prepare.espeak import available_variants, speak_batches
from pipeline.prepare.importers import Candidate, list_candidates, reject
from pipeline.prepare.sentences import sentence_pool
from pipeline.prepare.text import normalize, transcript_problem
from pipeline.splits import EVAL_SPLITS, LABELLED_SPLITS, SPLITS, TRANSFER

log = logging.getLogger(__name__)

# Reject reasons, worst first: corrupt files before content problems before length limits.
SEVERITY = (
    "missing file",
    "not a file",
    "unreadable audio",
    "truncated audio",
    "empty audio",
    "non-finite samples",
    "silent audio",
    "non-text transcript",
    "empty transcript",
    "no transcript",
    "malformed manifest line",
    "unknown split",
    "duplicate id",
    "too long",
    "too short",
)


@dataclass
class Utterance:
    id: str
    text: str
    speaker: str
    audio: np.ndarray  # (samples,) float32 at the corpus sample rate


class TooManyRejects(InputError):
    """More than ``data.max_reject_fraction`` of a split was rejected: the user's data to fix,
    so the stage reports it in one line (``pipeline.stage.run``), without a traceback."""


def check_utterance(wav: np.ndarray, sample_rate: int, text: str | None, cfg: DataConfig) -> str | None:
    """Reason to reject an utterance, or ``None`` if it is usable (``text`` None: audio only)."""
    if text is not None and not text.strip():
        return "empty transcript"
    problem = sample_problem(wav)  # empty, non-finite or silent: the check transcribe applies too
    if problem:
        return problem
    duration = len(wav) / sample_rate
    if duration < cfg.min_duration:
        return f"too short ({duration:.2f}s < {cfg.min_duration}s)"
    if duration > cfg.max_duration:
        return f"too long ({duration:.2f}s > {cfg.max_duration}s)"
    return None


def reason_kind(reason: str) -> str:
    """'too short (0.10s < 0.3s)' -> 'too short': the key counted in the metrics."""
    return reason.split(" (")[0]


# ---------------------------------------------------------------------------
# Synthetic corpus.


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add coloured Gaussian noise at ``snr_db`` relative to the speech power."""
    white = rng.standard_normal(len(wav)).astype(np.float32)
    # A one-pole low-pass with a random tilt: from white to brown-ish noise.
    colored = lfilter([1.0], [1.0, -rng.uniform(0.0, 0.95)], white).astype(np.float32)
    noise = colored / (np.sqrt(np.mean(colored**2)) + 1e-9)
    speech_power = float(np.mean(wav**2)) + 1e-12
    noise *= np.sqrt(speech_power / (10 ** (snr_db / 10)))
    mixed = wav + noise
    peak = float(np.abs(mixed).max())
    return mixed / peak * 0.9 if peak > 0.99 else mixed


def check_voices(cfg: SyntheticConfig) -> None:
    """Fail early, naming the key, if a voice variant is not shipped with espeak-ng."""
    known = set(available_variants())
    for key in ("train_variants", "eval_variants"):
        unknown = [v for v in getattr(cfg, key) if v not in known]
        if unknown:
            raise ValueError(
                f"data.synthetic.{key}: espeak-ng has no variant "
                f"{', '.join(unknown)}; available: {', '.join(sorted(known))}"
            )


SYNTH_BATCH = 50  # utterances per fresh espeak-ng process; fixed, so audio never depends on workers


@dataclass
class SpeechPlan:
    """Everything drawn for one synthetic utterance before it is spoken."""

    id: str
    text: str
    voice: str  # accent+variant, also the speaker label
    rate: int
    pitch: int
    snr_db: float
    noise_seed: int


def plan_split(
    split: str, sentences: list[str], variants: list[str], cfg: SyntheticConfig, seed: int
) -> list[SpeechPlan]:
    """Seeded voice, rate, pitch and SNR for every sentence of a split."""
    plans = []
    for i, text in enumerate(sentences):
        rng = random.Random(f"{seed}-{split}-{i}")
        voice = f"{rng.choice(cfg.accents)}+{rng.choice(variants)}"
        plans.append(
            SpeechPlan(
                f"{split}-{i:06d}",
                text,
                voice,
                rng.randint(*cfg.rate_wpm),
                rng.randint(*cfg.pitch),
                rng.uniform(*cfg.snr_db),
                rng.getrandbits(32),
            )
        )
    return plans


def synthesize(
    plans: dict[str, list[SpeechPlan]], cfg: SyntheticConfig, sample_rate: int
) -> Iterator[tuple[str, Utterance]]:
    """Speak every planned utterance, resample, add noise at its SNR; yields (split, utterance)."""
    batches = [
        (split, split_plans[i : i + SYNTH_BATCH])
        for split, split_plans in plans.items()
        for i in range(0, len(split_plans), SYNTH_BATCH)
    ]
    requests = [
        [(p.text, p.voice, p.rate, p.pitch, p.noise_seed & 0x7FFFFFFF) for p in batch] for _, batch in batches
    ]
    total = sum(map(len, plans.values()))
    resamplers: dict[int, T.Resample] = {}  # the sinc kernel is built once, not per utterance
    with tqdm(total=total, desc="synthesize", unit="utt", mininterval=2.0) as bar:
        for (split, batch), (synth_rate, wavs) in zip(batches, speak_batches(requests, cfg.num_workers)):
            resample = resamplers.setdefault(synth_rate, T.Resample(synth_rate, sample_rate))
            for plan, wav in zip(batch, wavs):
                with torch.no_grad():
                    wav = resample(torch.from_numpy(wav)).numpy()
                noisy = add_noise(wav, plan.snr_db, np.random.default_rng(plan.noise_seed))
                yield split, Utterance(plan.id, plan.text, plan.voice, noisy.astype(np.float32))
                bar.update()


def synthetic_sentences(cfg: DataConfig) -> dict[str, list[str]]:
    """Disjoint sentence lists per split, cut from one seeded pool (test, dev, train, transfer).

    The pool is prefix-stable, so adding transfer utterances leaves the other splits unchanged.
    """
    s = cfg.synthetic
    counts = {
        "test": s.test_utterances,
        "dev": s.dev_utterances,
        "train": s.train_utterances,
        TRANSFER: s.transfer_utterances,
    }
    pool = sentence_pool(
        sum(counts.values()),
        cfg.seed,
        s.min_words,
        s.max_words,
        s.text_file,
        normalizer=cfg.normalize,
        vocabulary=s.vocabulary,
    )
    splits: dict[str, list[str]] = {}
    start = 0
    for split, count in counts.items():
        splits[split] = pool[start : start + count]
        start += count
    return splits


def synthetic_corpus(cfg: DataConfig) -> Iterator[tuple[str, Utterance]]:
    """The embedded corpus as a lazy stream of (split, utterance)."""
    s = cfg.synthetic
    check_voices(s)
    sentences = synthetic_sentences(cfg)
    # The transfer set speaks with the training voices: more audio of the same speakers.
    plans = {
        split: plan_split(
            split,
            sentences[split],
            s.eval_variants if split in EVAL_SPLITS else s.train_variants,
            s,
            cfg.seed,
        )
        for split in SPLITS
    }
    return synthesize(plans, s, cfg.sample_rate)


# ---------------------------------------------------------------------------
# Writing: one accepted utterance -> one WAV file and one manifest row.


class SplitWriter:
    """Validates utterances and writes accepted ones; collects manifest rows and rejects."""

    def __init__(self, cfg: DataConfig, audio_tmp: Path, audio_final: Path) -> None:
        self.cfg = cfg
        self.audio_tmp = audio_tmp
        self.audio_final = audio_final
        self.rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self.rejects: list[dict[str, Any]] = []
        self.fixes: Counter[str] = Counter()
        self.seen: dict[str, str] = {}  # accepted id -> its split
        for split in SPLITS:
            (audio_tmp / split).mkdir(parents=True, exist_ok=True)

    def add(
        self,
        uid: str,
        split: str,
        wav: np.ndarray,
        text: str | None,
        speaker: str,
        source: Path | None = None,
    ) -> bool:
        """Write ``wav`` and record it, or record why not; returns whether it was accepted.

        Transfer-set rows are written without a transcript, whatever ``text`` holds.
        """
        if split == TRANSFER:
            text = None
        reason = self.duplicate(uid) or check_utterance(wav, self.cfg.sample_rate, text, self.cfg)
        if reason:
            self.rejects.append(reject(uid, split, reason, source))
            return False
        sf.write(self.audio_tmp / split / f"{uid}.wav", wav, self.cfg.sample_rate, subtype="PCM_16")
        self.seen[uid] = split
        row = {
            "id": uid,
            "audio": str(self.audio_final / split / f"{uid}.wav"),
            "text": text,
            "duration": round(len(wav) / self.cfg.sample_rate, 4),
            "speaker": speaker,
        }
        if text is None:
            del row["text"]
        self.rows[split].append(row)
        return True

    def duplicate(self, uid: str) -> str | None:
        """'duplicate id' when ``uid`` was already accepted (in any split)."""
        if uid in self.seen:
            return f"duplicate id (already accepted in {self.seen[uid]})"
        return None

    def add_candidate(self, cand: Candidate) -> None:
        """Read, fix and check one imported utterance (transfer set: its audio only)."""
        reason = self.duplicate(cand.id) or (text_problem(cand.text) if cand.labelled else None)
        text = normalize(cand.text, self.cfg.normalize) if cand.labelled and not reason else ""
        if cand.labelled and not reason and not text:
            reason = f"empty transcript (nothing left after normalizing {cand.text[:30]!r})"
        if not reason:
            try:
                wav, fixes = read_audio(cand.audio, self.cfg.sample_rate)
            except AudioError as e:
                reason = e.reason
        if reason:
            self.rejects.append(reject(cand.id, cand.split, reason, cand.audio))
            return
        if self.add(cand.id, cand.split, wav, text, cand.speaker, cand.audio):
            self.fixes.update(fixes)


def text_problem(raw: Any) -> str | None:
    """Why a raw transcript (possibly not even a string) is unusable, or ``None``."""
    if raw is None:
        return "empty transcript (missing)"
    if not isinstance(raw, str):
        return f"non-text transcript (a {type(raw).__name__})"
    return transcript_problem(raw)


def write_synthetic(cfg: DataConfig, writer: SplitWriter) -> None:
    """Synthesize and write every split of the embedded corpus."""
    for split, u in synthetic_corpus(cfg):
        writer.add(u.id, split, u.audio, u.text, u.speaker)


def write_imported(cfg: DataConfig, writer: SplitWriter) -> None:
    """Import every candidate of the real corpus named by ``cfg.source``."""
    cands, listing_rejects = list_candidates(cfg)
    writer.rejects += listing_rejects
    log.info(
        "%s: %d candidate utterances, %d rejected while listing", cfg.source, len(cands), len(listing_rejects)
    )
    for cand in tqdm(cands, desc=f"import {cfg.source}", unit="utt", mininterval=2.0):
        writer.add_candidate(cand)


# ---------------------------------------------------------------------------
# Reject policy and statistics.


def worst_first(rejects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rejects sorted by :data:`SEVERITY` (stable within a kind)."""
    rank = {kind: i for i, kind in enumerate(SEVERITY)}
    return sorted(rejects, key=lambda r: rank.get(reason_kind(r["reason"]), len(rank)))


def reject_summary(rejects: list[dict[str, Any]], limit: int = 5) -> str:
    """'3 unreadable audio, 1 too short; worst: a.flac: unreadable audio (...); ...'."""
    kinds = Counter(reason_kind(r["reason"]) for r in rejects)
    files = "; ".join(f"{r['audio'] or r['id']}: {r['reason']}" for r in worst_first(rejects)[:limit])
    return f"{', '.join(f'{n} {k}' for k, n in kinds.most_common())}; worst: {files}"


def check_rejects(
    rows: dict[str, list[dict[str, Any]]], rejects: list[dict[str, Any]], cfg: DataConfig
) -> None:
    """Raise :class:`TooManyRejects` if a split, or the corpus, is rejected beyond the limit."""
    groups = {split: [r for r in rejects if r["split"] == split] for split in SPLITS}
    groups["all splits"] = rejects
    for name, bad in groups.items():
        good = sum(map(len, rows.values())) if name == "all splits" else len(rows[name])
        total = good + len(bad)
        if total and len(bad) / total > cfg.max_reject_fraction:
            raise TooManyRejects(
                f"{name}: {len(bad)}/{total} utterances rejected ({len(bad) / total:.1%}), above "
                f"data.max_reject_fraction={cfg.max_reject_fraction}: {reject_summary(bad)}"
            )
    empty = [split for split in LABELLED_SPLITS if not rows[split]]
    if empty:
        detail = f" ({reject_summary(rejects)})" if rejects else ""
        raise TooManyRejects(f"no usable utterances in split(s) {', '.join(empty)}{detail}")


def corpus_stats(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Hours, utterances, speakers and vocabulary per split; test OOV rate against train."""
    stats: dict[str, Any] = {}
    train_vocab = {w for r in manifests["train"] for w in r["text"].split()}
    for split, rows in manifests.items():
        stats[split] = {
            "utterances": len(rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "speakers": len({r["speaker"] for r in rows}),
        }
        if split == TRANSFER:  # no transcripts: no vocabulary, no OOV
            continue
        words = Counter(w for r in rows for w in r["text"].split())
        stats[split]["vocabulary"] = len(words)
        if split != "train":
            total = sum(words.values())
            oov = sum(c for w, c in words.items() if w not in train_vocab)
            stats[split]["oov_rate"] = round(oov / total, 4) if total else 0.0
    return stats


def voice_stats(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Distinct voices (speaker labels) overall, and dev/test voices also heard in train.

    Synthetic speakers are ``accent+variant``, so accents and variants are
    counted too when the labels have that form.
    """
    speakers = {r["speaker"] for rows in manifests.values() for r in rows}
    train = {r["speaker"] for r in manifests["train"]}
    held_out = {r["speaker"] for s in EVAL_SPLITS for r in manifests[s]}
    stats = {"voices": len(speakers), "eval_voices_in_train": len(held_out & train)}
    if speakers and all("+" in s for s in speakers):
        stats["accents"] = len({s.split("+")[0] for s in speakers})
        stats["voice_variants"] = len({s.split("+", 1)[1] for s in speakers})
    return stats


def prepare(cfg: DataConfig, audio_dir: Path, manifest_dir: Path) -> dict[str, Any]:
    """Build the corpus named by ``cfg.source``; returns metrics for the stage."""
    t0 = time.time()
    with atomic_path(audio_dir) as audio_tmp, atomic_path(manifest_dir) as man_tmp:
        audio_tmp.mkdir()
        man_tmp.mkdir()
        writer = SplitWriter(cfg, audio_tmp, audio_dir)
        if cfg.source == "synthetic":
            write_synthetic(cfg, writer)
        else:
            write_imported(cfg, writer)
        try:
            check_rejects(writer.rows, writer.rejects, cfg)
        except TooManyRejects as e:
            failed = manifest_dir.parent / f"{manifest_dir.name}.rejects.jsonl"
            write_jsonl(failed, worst_first(writer.rejects))
            raise TooManyRejects(f"{e}. All {len(writer.rejects)} rejects: {failed}") from None
        for split in SPLITS:
            write_jsonl(man_tmp / f"{split}.jsonl", writer.rows[split])
        write_jsonl(man_tmp / "rejects.jsonl", writer.rejects)
    stats = corpus_stats(writer.rows)
    reasons = Counter(reason_kind(r["reason"]) for r in writer.rejects)
    log.info(
        "prepared %s in %.1fs; rejects: %d; fixes: %s",
        {k: v["hours"] for k, v in stats.items()},
        time.time() - t0,
        len(writer.rejects),
        dict(writer.fixes),
    )
    return {
        "corpus": stats,
        **voice_stats(writer.rows),
        "rejects": {"total": len(writer.rejects), **reasons},
        "fixes": {"resampled": writer.fixes["resampled"], "downmixed": writer.fixes["downmixed"]},
        "seconds": round(time.time() - t0, 1),
    }
