"""The embedded synthetic corpus: seeded sentences per split, a seeded voice, rate, pitch and
SNR per utterance, spoken by espeak-ng in fixed batches, resampled, with coloured noise."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.transforms as T
from scipy.signal import lfilter
from tqdm import tqdm

from pipeline.config import DataConfig, SyntheticConfig
from pipeline.prepare.espeak import available_variants, speak_batches
from pipeline.prepare.sentences import sentence_pool
from pipeline.splits import EVAL_SPLITS, SPLITS, TRANSFER


@dataclass
class Utterance:
    """One synthesized utterance before it is checked and written."""

    id: str
    text: str
    speaker: str
    audio: np.ndarray  # (samples,) float32 at the corpus sample rate


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
