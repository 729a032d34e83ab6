"""Figures for the feature store and the training loader (prints; not a timed test).

Usage::

    python benchmarks/bench_features.py [--minutes 3] [--params params.yaml]

1. Extraction speed, times real time per core: a naive per-file loop (soundfile +
   :func:`pipeline.audio.fbank.fbank`, one thread) against
   :func:`pipeline.features.extract.extract_features` with one worker,
   on the same espeak-ng audio (16 kHz, generated into a temp dir), in one run.
2. Bytes per frame on disk.
3. Loader throughput (frames/s, in-process and with ``train.loader_workers``) against the
   frames/s one training step of the guide teacher (``guide.model`` in params) consumes at
   ``train.batch_frames`` with ``train.threads`` threads.
4. Peak resident memory of a fresh process that indexes a fake 10-hour and a fake
   100-hour store (sparse shards: no disk used), builds its batches and loads 50 of them
   (``VmHWM``; ``resource.getrusage`` where /proc is missing: on Linux its ``ru_maxrss``
   survives exec, so a child would report its parent's peak).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sentencepiece as spm  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torchaudio.functional as AF  # noqa: E402

from pipeline.audio.fbank import fbank  # noqa: E402
from pipeline.config import FeaturesConfig, Params, TokenizerConfig, load_params  # noqa: E402
from pipeline.io import write_jsonl  # noqa: E402
from pipeline.loader import BatchLoader  # noqa: E402
from pipeline.store import Store, write_index  # noqa: E402
from pipeline.tokenizer.spm import train_tokenizer  # noqa: E402
from pipeline.tokens import load_tokenizer  # noqa: E402

SR = 16000
WORDS = (
    "the a red blue green old new warm cold big small tall long dark car sky tree house "
    "book tea rain dog cat man road night runs sees takes finds over under near after "
    "before quickly slowly today seven eight nine twenty morning evening station"
).split()


def make_corpus(work: Path, minutes: float) -> tuple[Path, list[str]]:
    """espeak-ng sentences (resampled to 16 kHz) and train/dev/test manifests; returns texts."""
    from pipeline.prepare.espeak import Espeak

    rng = np.random.default_rng(0)
    synth = Espeak()
    rows, texts, seconds = [], [], 0.0
    while seconds < minutes * 60:
        text = " ".join(rng.choice(WORDS, int(rng.integers(5, 14))))
        wav = synth.speak(text, voice=["en-US+m1", "en+f2", "en-GB-x-rp+m3"][len(rows) % 3])
        wav = AF.resample(torch.from_numpy(wav), synth.sample_rate, SR).numpy()
        path = work / "audio" / f"u{len(rows):05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wav, SR, subtype="PCM_16")
        rows.append(
            {
                "id": path.stem,
                "audio": str(path),
                "text": text,
                "duration": round(len(wav) / SR, 4),
                "speaker": "s",
            }
        )
        texts.append(text)
        seconds += len(wav) / SR
    for split, part in (("train", rows[:-4]), ("dev", rows[-4:-2]), ("test", rows[-2:])):
        write_jsonl(work / "manifests" / f"{split}.jsonl", part)
    return work / "manifests", texts


def naive_loop(manifest_dir: Path, cfg: FeaturesConfig) -> float:
    """Seconds for soundfile + fbank per file over every manifest row, one thread."""
    rows = [
        json.loads(line)
        for split in ("train", "dev", "test")
        for line in (manifest_dir / f"{split}.jsonl").read_text().splitlines()
    ]
    t0 = time.perf_counter()
    for row in rows:
        wav, sr = sf.read(row["audio"], dtype="float32")
        fbank(wav, sr, cfg).astype(np.float16)  # as the features stage stores it
    return time.perf_counter() - t0


def extraction(work: Path, manifest_dir: Path, params: Params) -> dict:
    from pipeline.features.extract import extract_features

    cfg = params.features.model_copy(update={"num_workers": 1})
    seconds = sum(
        json.loads(line)["duration"]
        for split in ("train", "dev", "test")
        for line in (manifest_dir / f"{split}.jsonl").read_text().splitlines()
    )
    torch.set_num_threads(1)
    naive_loop(manifest_dir, cfg)  # warm the page cache and torch for both contenders
    naive = naive_loop(manifest_dir, cfg)
    t0 = time.perf_counter()
    metrics = extract_features(manifest_dir, work / "features", cfg, SR)
    ours = time.perf_counter() - t0
    print(f"audio: {seconds / 60:.1f} min of espeak-ng speech at {SR} Hz")
    print(
        f"extraction, x real time per core: naive per-file loop {seconds / naive:7.0f}x | "
        f"features stage (1 worker, incl. shard writes, index, CMVN) {seconds / ours:7.0f}x"
    )
    print(
        f"bytes per frame on disk: {metrics['bytes_per_frame']} "
        f"({cfg.n_mels} mels x 2 bytes fp16 = {cfg.n_mels * 2} + npy headers)"
    )
    return metrics


def tokenizer(work: Path, texts: list[str]) -> spm.SentencePieceProcessor:
    """A 40-piece character sentencepiece model of ``texts``, trained as the tokenizer stage trains."""
    write_jsonl(work / "texts.jsonl", [{"text": t} for t in texts])
    cfg = TokenizerConfig(vocab_size=40, model_type="char", character_coverage=1.0)
    train_tokenizer(work / "texts.jsonl", work / "tokenizer", cfg)
    return load_tokenizer(work / "tokenizer" / "spm.model")


def loader_rate(loader: BatchLoader, epochs: int = 2) -> float:
    frames, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        for batch in loader.iterate(seed=0, epoch=epoch):
            frames += int(batch.lengths.sum())
    return frames / (time.perf_counter() - t0)


def training_rate(loader: BatchLoader, params: Params, vocab: int, steps: int = 3) -> float:
    """Input frames per second consumed by training steps of the guide teacher."""
    from pipeline.model.conformer import ConformerCTC
    from pipeline.model.ctc import ctc_loss

    torch.set_num_threads(params.train.threads)
    model = ConformerCTC(params.teachers.guide.model, params.features.n_mels, vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fullest = max(loader.buckets, key=lambda ids: sum(loader.store.frames(u) for u in ids))
    batch = loader.collate(fullest)
    frames, elapsed = 0, 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        logits, lengths = model(batch.feats, batch.lengths)
        loss = ctc_loss(logits.log_softmax(-1), lengths, batch.targets, batch.target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            elapsed += time.perf_counter() - t0
            frames += int(batch.lengths.sum())
    return frames / max(elapsed, 1e-9)


def loader_vs_training(work: Path, texts: list[str], params: Params) -> None:
    store = Store(work / "features" / "train")
    sp = tokenizer(work, texts)
    utt_texts = {
        r["id"]: r["text"]
        for r in map(json.loads, (work / "manifests" / "train.jsonl").read_text().splitlines())
    }
    bf, workers = params.train.batch_frames, params.train.loader_workers
    torch.set_num_threads(1)
    in_process = loader_rate(BatchLoader(store, utt_texts, sp, bf))
    with_workers = loader_rate(BatchLoader(store, utt_texts, sp, bf, workers=max(workers, 1)))
    speed = loader_rate(BatchLoader(store, utt_texts, sp, bf, speed_perturb=[0.9, 1.0, 1.1]))
    train = training_rate(BatchLoader(store, utt_texts, sp, bf), params, sp.get_piece_size())
    m = params.teachers.guide.model
    print(
        f"loader, frames/s at batch_frames={bf}: in-process {in_process:,.0f} | "
        f"{max(workers, 1)} worker(s) {with_workers:,.0f} | in-process with speed perturbation "
        f"{speed:,.0f}"
    )
    print(
        f"one training step of the guide teacher (d_model {m.d_model}, {m.num_layers} layers, "
        f"{params.train.threads} threads) consumes {train:,.0f} frames/s: the loader "
        f"(in-process) is {in_process / train:,.0f}x faster"
    )


INDEX_SCRIPT = """
import resource, sys, time
import numpy as np, sentencepiece as spm
from pipeline.loader import BatchLoader
from pipeline.store import Store

def peak_kib():
    # Linux keeps ru_maxrss across exec (it would report the parent's peak); VmHWM is this
    # image's own high-water mark. Elsewhere fall back to getrusage.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

before = peak_kib()
t0 = time.perf_counter()
store = Store(sys.argv[1])
sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
loader = BatchLoader(store, {u: "red car" for u in store.ids()}, sp, int(sys.argv[3]))
for i, batch in zip(range(50), loader.iterate(seed=0, epoch=0)):
    pass
after = peak_kib()
print(before, after, len(store), sum(v[2] for v in store.index.values()), len(loader),
      round(time.perf_counter() - t0, 2))
"""


def fake_store(directory: Path, hours: float, shard_frames: int, seed: int = 0) -> None:
    """A store of ``hours`` of 80-dim fp16 frames in sparse shards (zeros, no disk used)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    total = int(hours * 3600 * 100)
    lengths = rng.integers(200, 1000, size=int(total / 600) + 10)  # 2-10 s utterances
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), total)]
    utterances, shard, offset = {}, 0, 0
    for i, n in enumerate(lengths.tolist()):
        utterances[f"fake-{i:07d}"] = [shard, offset, n]
        offset += n
        if offset >= shard_frames:
            np.lib.format.open_memmap(
                directory / f"fbank-{shard:05d}.npy", "w+", np.float16, (offset, 80)
            ).flush()
            shard, offset = shard + 1, 0
    if offset:
        np.lib.format.open_memmap(
            directory / f"fbank-{shard:05d}.npy", "w+", np.float16, (offset, 80)
        ).flush()
        shard += 1
    write_index(directory, {"fbank": ("float16", (80,))}, shard, utterances, {"sample_rate": SR})


def index_memory(work: Path, params: Params) -> None:
    root = Path(__file__).resolve().parents[1]
    for hours in (10, 100):
        directory = work / f"fake-{hours}h"
        fake_store(directory, hours, params.features.shard_frames)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                INDEX_SCRIPT,
                str(directory),
                str(work / "spm.model"),
                str(params.train.batch_frames),
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        before, after, utts, frames, batches, secs = out
        print(
            f"indexing a {hours}-hour store ({int(utts):,} utterances, {int(frames):,} frames, "
            f"{batches} batches) + 50 batches: peak RSS {int(after) / 1024:.0f} MiB "
            f"({int(before) / 1024:.0f} MiB after imports; {secs} s)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="audio to generate (default 3)")
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args()
    params = load_params(args.params)
    print(
        f"CPU cores: {len(__import__('os').sched_getaffinity(0))}; "
        f"load average {__import__('os').getloadavg()[0]:.1f} at start"
    )
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        work = Path(tmp)
        manifest_dir, texts = make_corpus(work, args.minutes)
        extraction(work, manifest_dir, params)
        loader_vs_training(work, texts, params)
        index_memory(work, params)
    print(f"this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
