"""The ``features`` stage: Kaldi-compatible log-mel filterbanks in sharded fp16 stores.

Output layout (``data/features``)::

    train/, dev/, test/   one :mod:`pipeline.store` each, field ``fbank`` (frames, n_mels) fp16
    cmvn.json             {"mean": [...], "std": [...], "frames": N} from the train split

Features are stored un-normalized; models apply CMVN (see :class:`pipeline.model.Cmvn`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF
from tqdm import tqdm

from pipeline.config import FeaturesConfig
from pipeline.io import atomic_path, read_jsonl, write_json
from pipeline.store import Store, write_store

log = logging.getLogger(__name__)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a file as mono float32 at ``sample_rate`` (downmix and resample if needed)."""
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; name the file either way
        raise ValueError(f"{path}: cannot read audio ({e})") from None
    wav = wav.mean(axis=1)
    if sr != sample_rate:
        wav = AF.resample(torch.from_numpy(wav), sr, sample_rate).numpy()
    return wav


def fbank(wav: np.ndarray, sample_rate: int, cfg: FeaturesConfig) -> np.ndarray:
    """``(frames, n_mels)`` float32 log-mel filterbank of a float waveform in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(wav)).unsqueeze(0) * 32768.0  # Kaldi scale
    feats = kaldi.fbank(x, num_mel_bins=cfg.n_mels, frame_shift=cfg.frame_shift_ms,
                        frame_length=cfg.frame_length_ms, dither=cfg.dither,
                        sample_frequency=sample_rate, energy_floor=0.0)
    return feats.numpy()


_WORKER_CFG: tuple[FeaturesConfig, int] | None = None


def _init_worker(cfg: FeaturesConfig, sample_rate: int) -> None:
    global _WORKER_CFG
    torch.set_num_threads(1)
    _WORKER_CFG = (cfg, sample_rate)


def _extract(row: dict[str, Any]) -> tuple[str, np.ndarray]:
    assert _WORKER_CFG is not None
    cfg, sr = _WORKER_CFG
    return row["id"], fbank(load_audio(row["audio"], sr), sr, cfg).astype(np.float16)


def extract_split(rows: list[dict[str, Any]], out_dir: Path, cfg: FeaturesConfig,
                  sample_rate: int, desc: str) -> int:
    """Extract features for a manifest's rows into a store at ``out_dir``."""
    fields = {"fbank": ("float16", (cfg.n_mels,))}
    ctx = mp.get_context("fork")
    with ctx.Pool(cfg.num_workers, initializer=_init_worker, initargs=(cfg, sample_rate)) as pool:
        it: Iterator[tuple[str, np.ndarray]] = pool.imap(_extract, rows, chunksize=8)
        items = ((utt, {"fbank": f}) for utt, f in
                 tqdm(it, total=len(rows), desc=desc, unit="utt", mininterval=2.0))
        return write_store(out_dir, items, fields, cfg.shard_frames,
                           meta={"sample_rate": sample_rate, **cfg.model_dump()})


def cmvn_stats(store: Store) -> dict[str, Any]:
    """Global mean and standard deviation per mel bin, accumulated in float64."""
    total = None
    total_sq = None
    frames = 0
    for _, f in store.items("fbank"):
        x = np.asarray(f, dtype=np.float64)
        total = x.sum(0) if total is None else total + x.sum(0)
        total_sq = (x ** 2).sum(0) if total_sq is None else total_sq + (x ** 2).sum(0)
        frames += len(x)
    if not frames:
        raise ValueError(f"{store.dir}: no frames to compute CMVN from")
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - mean ** 2, 1e-8))
    return {"mean": mean.tolist(), "std": std.tolist(), "frames": frames}


def extract_features(manifest_dir: Path, out_dir: Path, cfg: FeaturesConfig,
                     sample_rate: int) -> dict[str, Any]:
    """Run the whole stage; returns metrics (frames, speed, bytes per frame)."""
    t0 = time.time()
    audio_seconds = 0.0
    metrics: dict[str, Any] = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for split in ("train", "dev", "test"):
            rows = read_jsonl(manifest_dir / f"{split}.jsonl")
            audio_seconds += sum(r["duration"] for r in rows)
            extract_split(rows, tmp / split, cfg, sample_rate, f"fbank {split}")
        write_json(tmp / "cmvn.json", cmvn_stats(Store(tmp / "train")))
        disk = sum(p.stat().st_size for p in tmp.rglob("fbank-*.npy"))
        frames = sum(v[2] for s in ("train", "dev", "test")
                     for v in Store(tmp / s).index.values())
    elapsed = time.time() - t0
    metrics.update(frames=frames, bytes_per_frame=round(disk / max(frames, 1), 2),
                   seconds=round(elapsed, 1),
                   x_realtime_per_core=round(audio_seconds / elapsed / cfg.num_workers, 1))
    log.info("features: %s", metrics)
    return metrics
