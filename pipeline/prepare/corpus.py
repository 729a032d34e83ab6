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
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.config import DataConfig
from pipeline.io import atomic_path, write_jsonl
from pipeline.prepare.rejects import TooManyRejects, check_rejects, reason_kind, worst_first
from pipeline.prepare.stats import corpus_stats, voice_stats
from pipeline.prepare.writer import SplitWriter, write_imported, write_synthetic
from pipeline.splits import SPLITS

log = logging.getLogger(__name__)


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
