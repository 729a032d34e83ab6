"""Writing the corpus: one accepted utterance -> one WAV file and one manifest row; a rejected
one -> one row of ``rejects.jsonl``."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from pipeline.audio.read import AudioError, read_audio
from pipeline.config import DataConfig
from pipeline.prepare.importers import Candidate, list_candidates, reject
from pipeline.prepare.rejects import check_utterance, text_problem
from pipeline.prepare.synthetic import synthetic_corpus
from pipeline.prepare.text import normalize
from pipeline.splits import SPLITS, TRANSFER

log = logging.getLogger(__name__)


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
