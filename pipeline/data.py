"""The ``prepare`` stage: corpus -> 16 kHz mono WAV files + JSONL manifests.

Manifest format (``data/manifests/{train,dev,test}.jsonl``), one utterance per line::

    {"id": "train-000001", "audio": "data/audio/train/train-000001.wav",
     "text": "normalized transcript", "duration": 2.31, "speaker": "en-US+m1"}

Rejected utterances go to ``data/manifests/rejects.jsonl`` with a reason;
counts go to the stage metrics. Nothing is dropped silently.

Synthetic corpus: sentences come from :mod:`pipeline.text` (or a user text
file), speech from espeak-ng. Dev and test use sentences that never occur in
train and voice variants (speakers) that never occur in train; accents are
shared, as real dialects would be.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from scipy.signal import lfilter
from tqdm import tqdm

from pipeline.config import DataConfig, SyntheticConfig
from pipeline.io import atomic_path, write_jsonl
from pipeline.synth import Espeak
from pipeline.text import sentence_pool

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")


@dataclass
class Utterance:
    id: str
    text: str
    speaker: str
    audio: np.ndarray  # (samples,) float32 at the corpus sample rate


class TooManyRejects(RuntimeError):
    """More than ``data.max_reject_fraction`` of a split was rejected."""


def check_utterance(wav: np.ndarray, sample_rate: int, text: str,
                    cfg: DataConfig) -> Optional[str]:
    """Reason to reject an utterance, or ``None`` if it is usable."""
    if not text.strip():
        return "empty transcript"
    duration = len(wav) / sample_rate
    if duration < cfg.min_duration:
        return f"too short ({duration:.2f}s < {cfg.min_duration}s)"
    if duration > cfg.max_duration:
        return f"too long ({duration:.2f}s > {cfg.max_duration}s)"
    if not np.all(np.isfinite(wav)):
        return "non-finite samples"
    if float(np.abs(wav).max()) < 1e-4:
        return "silent audio"
    return None


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add coloured Gaussian noise at ``snr_db`` relative to the speech power."""
    white = rng.standard_normal(len(wav)).astype(np.float32)
    # A one-pole low-pass with a random tilt: from white to brown-ish noise.
    colored = lfilter([1.0], [1.0, -rng.uniform(0.0, 0.95)], white).astype(np.float32)
    noise = colored / (np.sqrt(np.mean(colored ** 2)) + 1e-9)
    speech_power = float(np.mean(wav ** 2)) + 1e-12
    noise *= np.sqrt(speech_power / (10 ** (snr_db / 10)))
    mixed = wav + noise
    peak = float(np.abs(mixed).max())
    return mixed / peak * 0.9 if peak > 0.99 else mixed


def synthesize_split(split: str, sentences: list[str], variants: list[str],
                     cfg: SyntheticConfig, seed: int, sample_rate: int) -> list[Utterance]:
    """Speak every sentence with a seeded random voice, rate, pitch and SNR."""
    synth = Espeak()
    out = []
    for i, text in enumerate(tqdm(sentences, desc=f"synthesize {split}", unit="utt",
                                  mininterval=2.0)):
        rng = random.Random(f"{seed}-{split}-{i}")
        accent, variant = rng.choice(cfg.accents), rng.choice(variants)
        voice = f"{accent}+{variant}"
        wav = synth.speak(text, voice, rate=rng.randint(*cfg.rate_wpm),
                          pitch=rng.randint(*cfg.pitch))
        wav = AF.resample(torch.from_numpy(wav), synth.sample_rate, sample_rate).numpy()
        nrng = np.random.default_rng(rng.getrandbits(32))
        wav = add_noise(wav, rng.uniform(*cfg.snr_db), nrng).astype(np.float32)
        out.append(Utterance(f"{split}-{i:06d}", text, voice, wav))
    return out


def synthetic_corpus(cfg: DataConfig) -> dict[str, list[Utterance]]:
    """The embedded corpus: disjoint sentences and speakers between train and dev/test."""
    s = cfg.synthetic
    counts = {"train": s.train_utterances, "dev": s.dev_utterances, "test": s.test_utterances}
    pool = sentence_pool(sum(counts.values()), cfg.seed, s.min_words, s.max_words, s.text_file)
    # Test first, then dev, then train: pool order is seeded, so splits are disjoint.
    splits: dict[str, list[str]] = {}
    start = 0
    for split in ("test", "dev", "train"):
        splits[split] = pool[start:start + counts[split]]
        start += counts[split]
    return {split: synthesize_split(split, splits[split],
                                    s.train_variants if split == "train" else s.eval_variants,
                                    s, cfg.seed, cfg.sample_rate)
            for split in SPLITS}


def write_split(utts: list[Utterance], split: str, cfg: DataConfig, audio_tmp: Path,
                audio_final: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate and write one split's WAV files; returns (manifest rows, rejects)."""
    rows, rejects = [], []
    seen: set[str] = set()
    (audio_tmp / split).mkdir(parents=True, exist_ok=True)
    for u in utts:
        reason = "duplicate id" if u.id in seen else check_utterance(
            u.audio, cfg.sample_rate, u.text, cfg)
        seen.add(u.id)
        if reason:
            rejects.append({"id": u.id, "split": split, "reason": reason})
            continue
        sf.write(audio_tmp / split / f"{u.id}.wav", u.audio, cfg.sample_rate, subtype="PCM_16")
        rows.append({"id": u.id, "audio": str(audio_final / split / f"{u.id}.wav"),
                     "text": u.text, "duration": round(len(u.audio) / cfg.sample_rate, 4),
                     "speaker": u.speaker})
    total = len(rows) + len(rejects)
    if total and len(rejects) / total > cfg.max_reject_fraction:
        worst = "; ".join(f"{r['id']}: {r['reason']}" for r in rejects[:5])
        raise TooManyRejects(f"{split}: {len(rejects)}/{total} utterances rejected, above "
                             f"data.max_reject_fraction={cfg.max_reject_fraction}. First: {worst}")
    return rows, rejects


def corpus_stats(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Hours, utterances, speakers and vocabulary per split; test OOV rate against train."""
    stats: dict[str, Any] = {}
    train_vocab = {w for r in manifests["train"] for w in r["text"].split()}
    for split, rows in manifests.items():
        words = Counter(w for r in rows for w in r["text"].split())
        stats[split] = {
            "utterances": len(rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "speakers": len({r["speaker"] for r in rows}),
            "vocabulary": len(words),
        }
        if split != "train":
            total = sum(words.values())
            oov = sum(c for w, c in words.items() if w not in train_vocab)
            stats[split]["oov_rate"] = round(oov / total, 4) if total else 0.0
    return stats


def prepare(cfg: DataConfig, audio_dir: Path, manifest_dir: Path) -> dict[str, Any]:
    """Build the corpus named by ``cfg.source``; returns metrics for the stage."""
    t0 = time.time()
    corpus = synthetic_corpus(cfg)
    manifests: dict[str, list[dict[str, Any]]] = {}
    all_rejects: list[dict[str, Any]] = []
    with atomic_path(audio_dir) as audio_tmp, atomic_path(manifest_dir) as man_tmp:
        audio_tmp.mkdir()
        man_tmp.mkdir()
        for split in SPLITS:
            rows, rejects = write_split(corpus[split], split, cfg, audio_tmp, audio_dir)
            manifests[split] = rows
            all_rejects += rejects
            write_jsonl(man_tmp / f"{split}.jsonl", rows)
        write_jsonl(man_tmp / "rejects.jsonl", all_rejects)
    stats = corpus_stats(manifests)
    reasons = Counter(r["reason"].split(" (")[0] for r in all_rejects)
    log.info("prepared %s in %.1fs; rejects: %d", {k: v["hours"] for k, v in stats.items()},
             time.time() - t0, len(all_rejects))
    return {"corpus": stats, "rejects": {"total": len(all_rejects), **reasons},
            "seconds": round(time.time() - t0, 1)}
