"""Corpus benchmarks: synthesis speed, import speed, default-profile text statistics.

Prints figures; not a timed test. Runs in well under two minutes on one core.

Usage: .venv/bin/python benchmarks/bench_corpus.py [--utterances 60] [--files 60]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.config import DataConfig, default_params
from pipeline.prepare.corpus import prepare
from pipeline.prepare.espeak import speak_batch
from pipeline.prepare.sentences import _TEMPLATES, lexicon
from pipeline.prepare.synthetic import plan_split, synthesize, synthetic_sentences


def bench_synthesis(n: int) -> None:
    """espeak-ng alone (in this process), then the full path (fresh process, resample, noise)."""
    cfg = default_params({"data.synthetic.num_workers": 1}).data
    s = cfg.synthetic
    sentences = synthetic_sentences(cfg)["train"][:n]
    plans = plan_split("train", sentences, s.train_variants, s, cfg.seed)
    requests = [(p.text, p.voice, p.rate, p.pitch, 0) for p in plans]
    speak_batch(requests[:2])  # load the library and voices
    t0 = time.perf_counter()
    rate, wavs = speak_batch(requests)
    espeak_s = time.perf_counter() - t0
    audio_s = sum(len(w) for w in wavs) / rate
    print(f"synthesis: {n} utterances, {audio_s:.1f} s of audio")
    print(f"  espeak-ng only, 1 core:            {audio_s / espeak_s:6.0f}x real time")
    t0 = time.perf_counter()
    total = sum(len(u.audio) for _, u in synthesize({"train": plans}, s, cfg.sample_rate))
    full_s = time.perf_counter() - t0
    print(
        f"  + fresh process, 16 kHz, noise:    {total / cfg.sample_rate / full_s:6.0f}x real time (1 worker)"
    )


def make_librispeech(root: Path, files: int) -> float:
    """A LibriSpeech-layout tree of ``files`` 3 s FLACs (a quarter 44.1 kHz stereo); returns seconds."""
    rng = np.random.default_rng(0)
    per_split = {
        "train-clean-100": files * 3 // 5,
        "dev-clean": files // 5,
        "test-clean": files - files * 3 // 5 - files // 5,
    }
    seconds = 0.0
    for speaker, (subset, count) in enumerate(per_split.items(), 100):
        folder = root / subset / str(speaker) / "200"
        folder.mkdir(parents=True)
        lines = []
        for i in range(count):
            sr, channels = (44100, 2) if i % 4 == 0 else (16000, 1)
            t = np.arange(3 * sr) / sr
            x = (
                0.2 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.standard_normal(len(t))
            ).astype(np.float32)
            utt = f"{speaker}-200-{i:04d}"
            sf.write(folder / f"{utt}.flac", np.stack([x] * channels, 1), sr)
            lines.append(f"{utt} THE {i} TH UTTERANCE OF {subset.upper()}")
            seconds += 3
        (folder / f"{speaker}-200.trans.txt").write_text("\n".join(lines) + "\n")
    return seconds


def bench_import(files: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "LibriSpeech"
        audio_s = make_librispeech(root, files)
        cfg = default_params({"data.source": "librispeech", "data.librispeech.root": str(root)}).data
        t0 = time.perf_counter()
        metrics = prepare(cfg, Path(tmp) / "audio", Path(tmp) / "manifests")
        wall = time.perf_counter() - t0
    print(
        f"import (librispeech layout): {files} FLAC files, {audio_s:.0f} s of audio, "
        f"{metrics['fixes']['resampled']} resampled + downmixed"
    )
    print(f"  {files / wall:6.1f} files/s, {audio_s / wall:6.0f}x real time (1 core)")


def text_stats(cfg: DataConfig, name: str) -> None:
    """Vocabulary and OOV of the split sentences, computed without synthesizing audio."""
    t0 = time.perf_counter()
    splits = synthetic_sentences(cfg)
    train = Counter(w for line in splits["train"] for w in line.split())
    print(f"text of {name} ({time.perf_counter() - t0:.1f} s to generate):")
    for split, lines in splits.items():
        words = [w for line in lines for w in line.split()]
        oov = sum(w not in train for w in words) / len(words)
        print(
            f"  {split:5s} {len(lines):5d} sentences, {len(words):6d} words, "
            f"{len(set(words)):5d} distinct, mean {len(words) / len(lines):.1f} words/sentence"
            + ("" if split == "train" else f", OOV vs train {oov:.1%}")
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--utterances", type=int, default=60, help="sentences to synthesize")
    p.add_argument("--files", type=int, default=60, help="FLAC files in the LibriSpeech tree")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = default_params().data
    s = data.synthetic
    print(
        f"default voices: {len(s.accents)} accents, {len(s.train_variants)} train + "
        f"{len(s.eval_variants)} dev/test variants; rate {s.rate_wpm} wpm, pitch {s.pitch}, "
        f"SNR {s.snr_db} dB"
    )
    print(f"generator: {len(_TEMPLATES)} templates, {sum(len(v) for v in lexicon().values())} slot fillers")
    text_stats(data, "params.yaml")
    bench_synthesis(args.utterances)
    bench_import(args.files)


if __name__ == "__main__":
    main()
