"""Readers for real corpora (``data.source``: librispeech, commonvoice, manifest).

Each reader turns a local corpus into :class:`Candidate` utterances (audio
path, raw transcript, speaker, split); :func:`pipeline.prepare.corpus.prepare` then
reads, downmixes, resamples, checks and writes every candidate the same way,
so imported corpora come out exactly like the synthetic one: 16-bit mono WAV
under the audio folder and manifests ``{id, audio, text, duration, speaker}``.

Layouts:

- ``librispeech``: ``<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``
  with lines ``<utt-id> <TRANSCRIPT>`` and audio ``<utt-id>.flac`` beside it;
  ``data.librispeech.{train,dev,test}_subsets`` pick the subsets of each split.
- ``commonvoice``: ``<root>/clips/*.mp3`` and ``<root>/{train,dev,test}.tsv``
  (columns ``client_id``, ``path``, ``sentence``).
- ``manifest``: a ``.jsonl`` or ``.csv``/``.tsv`` file whose rows name the audio
  (absolute, or relative to the manifest's folder) and the text, optionally an
  id, a speaker and a split; field names are set in ``data.manifest``. A row
  without the text field (or with a JSON ``null`` there) and without a split, or
  with split ``transfer``, is untranscribed audio for the transfer set; a text
  that is present but empty is a transcript, rejected as ``empty transcript``.

Problems found while listing (an audio file without a transcript, a malformed
line) become rejects with a reason, never silent drops.

Usage::

    from pipeline.prepare.importers import list_candidates
    candidates, rejects = list_candidates(params.data)

Their audio is read by :func:`pipeline.audio.read.read_audio` in the ``prepare`` stage.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import CommonVoiceConfig, DataConfig, LibriSpeechConfig, ManifestImportConfig
from pipeline.splits import SPLITS, TRANSFER

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Candidate:
    """One utterance of a real corpus before its audio is read."""

    id: str
    split: str
    audio: Path
    text: Any  # raw transcript as found (a manifest may hold a non-string), not yet normalized
    speaker: str

    @property
    def labelled(self) -> bool:
        """Whether the transcript is used: not for the transfer set (audio only)."""
        return self.split != TRANSFER


def safe_id(raw: str) -> str:
    """An utterance id usable as a file name: 'a/b c.wav' -> 'a_b_c.wav'."""
    return _SAFE_ID.sub("_", raw).strip("._") or "utt"


def reject(cand_id: str, split: str, reason: str, audio: Path | None = None) -> dict[str, Any]:
    """A row of ``rejects.jsonl``."""
    return {
        "id": cand_id,
        "split": split,
        "reason": reason,
        "audio": str(audio) if audio is not None else None,
    }


# ---------------------------------------------------------------------------
# LibriSpeech.


def _subset_dir(root: Path, subset: str) -> Path:
    path = root / subset
    if not path.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(
            f"data.librispeech: no subset folder {path}; found: {', '.join(found) or 'nothing'}"
        )
    return path


def librispeech_subset(root: Path, subset: str, split: str) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Candidates of one LibriSpeech subset; audio without a transcript line is rejected."""
    cands, rejects = [], []
    for trans in sorted(_subset_dir(root, subset).glob("*/*/*.trans.txt")):
        listed = set()
        for line in trans.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            listed.add(utt)
            speaker = utt.split("-")[0]
            cands.append(Candidate(safe_id(utt), split, trans.parent / f"{utt}.flac", text, speaker))
        for flac in sorted(trans.parent.glob("*.flac")):
            if flac.stem not in listed:
                rejects.append(
                    reject(safe_id(flac.stem), split, f"no transcript (not listed in {trans.name})", flac)
                )
    for flac in sorted(_subset_dir(root, subset).glob("*/*/*.flac")):
        if not list(flac.parent.glob("*.trans.txt")):
            rejects.append(reject(safe_id(flac.stem), split, "no transcript (no .trans.txt)", flac))
    return cands, rejects


def librispeech_audio_only(root: Path, subset: str) -> list[Candidate]:
    """Every FLAC of a subset as a transfer-set candidate; transcripts are not read."""
    return [
        Candidate(safe_id(flac.stem), TRANSFER, flac, None, flac.stem.split("-")[0])
        for flac in sorted(_subset_dir(root, subset).glob("*/*/*.flac"))
    ]


def corpus_root(root: str | None, key: str) -> Path:
    """``root`` as a folder that exists, or an error naming the params key."""
    path = Path(root or "")
    if not path.is_dir():
        raise FileNotFoundError(f"{key}: {path} does not exist or is not a folder")
    return path


def librispeech_candidates(cfg: LibriSpeechConfig) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """All candidates of the subsets chosen for train, dev, test and the transfer set."""
    root = corpus_root(cfg.root, "data.librispeech.root")
    cands: list[Candidate] = []
    rejects: list[dict[str, Any]] = []
    for split, subsets in (
        ("train", cfg.train_subsets),
        ("dev", cfg.dev_subsets),
        ("test", cfg.test_subsets),
    ):
        for subset in subsets:
            c, r = librispeech_subset(root, subset, split)
            cands += c
            rejects += r
    for subset in cfg.transfer_subsets:
        cands += librispeech_audio_only(root, subset)
    return cands, rejects


# ---------------------------------------------------------------------------
# Common Voice.


def read_table(path: Path, delimiter: str) -> list[dict[str, str]]:
    """Rows of a CSV/TSV with a header line; quotes are literal text in TSVs (as in Common Voice)."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter, quoting=quoting))


def _require_columns(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    header = list(rows[0]) if rows else []
    missing = [c for c in columns if c not in header]
    if rows and missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; header has {', '.join(h for h in header if h)}"
        )


def commonvoice_candidates(cfg: CommonVoiceConfig) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Candidates from ``clips/`` and the split TSVs (``transfer_tsv``: audio only)."""
    root = corpus_root(cfg.root, "data.commonvoice.root")
    cands: list[Candidate] = []
    tables = [("train", cfg.train_tsv), ("dev", cfg.dev_tsv), ("test", cfg.test_tsv)]
    if cfg.transfer_tsv:
        tables.append((TRANSFER, cfg.transfer_tsv))
    for split, name in tables:
        tsv = root / name
        if not tsv.is_file():
            raise FileNotFoundError(f"data.commonvoice: {tsv} does not exist")
        rows = read_table(tsv, "\t")
        _require_columns(tsv, rows, ["path", "sentence"])
        for row in rows:
            clip = row.get("path") or ""
            cands.append(
                Candidate(
                    safe_id(Path(clip).stem),
                    split,
                    root / "clips" / clip,
                    row.get("sentence") or "",
                    row.get("client_id") or "unknown",
                )
            )
    return cands, []


# ---------------------------------------------------------------------------
# A user manifest (JSONL or CSV/TSV).


def _manifest_rows(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of the user manifest, and rejects for lines that are not JSON objects."""
    if path.suffix == ".jsonl":
        rows, rejects = [], []
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                rejects.append(
                    reject(f"line-{lineno}", "unknown", f"malformed manifest line {lineno} ({e.msg})")
                )
                continue
            if not isinstance(row, dict):
                rejects.append(
                    reject(f"line-{lineno}", "unknown", f"malformed manifest line {lineno} (not an object)")
                )
                continue
            rows.append(row)
        return rows, rejects
    if path.suffix in (".csv", ".tsv"):
        return read_table(path, "\t" if path.suffix == ".tsv" else ","), []
    raise ValueError(f"data.manifest.path: {path} must end in .jsonl, .csv or .tsv")


def assign_split(key: str, seed: int, dev_fraction: float, test_fraction: float) -> str:
    """A seeded, stable split for ``key`` (a speaker or id): same key, same split."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if u < test_fraction else "dev" if u < test_fraction + dev_fraction else "train"


def manifest_candidates(cfg: ManifestImportConfig, seed: int) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Candidates from a user manifest; rows lacking audio or with an unknown split are rejected.

    A row with split ``transfer``, or with neither a split nor a text field, joins the
    transfer set (audio only). A text field that is present but empty (``""``, blank, or
    nothing left after normalizing) is a transcript like any other, so ``prepare`` rejects
    the row as an ``empty transcript`` instead of moving it to the transfer set."""
    path = Path(cfg.path or "")
    if not path.is_file():
        raise FileNotFoundError(f"data.manifest.path: {path} does not exist")
    rows, rejects = _manifest_rows(path)
    cands = []
    for i, row in enumerate(rows, 1):
        audio = str(row.get(cfg.audio_field) or "").strip()
        cand_id = safe_id(str(row.get(cfg.id_field) or Path(audio).stem or f"row-{i}"))
        speaker = str(row.get(cfg.speaker_field) or "").strip()
        split = str(row.get(cfg.split_field) or "").strip().lower()
        text = row.get(cfg.text_field)  # None: no text field (or JSON null); "" is an empty transcript
        if not split and text is None:
            split = TRANSFER  # no transcript and no split: audio for the transfer set
        if not split:
            split = assign_split(speaker or cand_id, seed, cfg.dev_fraction, cfg.test_fraction)
        if split not in SPLITS:
            rejects.append(reject(cand_id, split, f"unknown split '{split}' (row {i})"))
            continue
        if not audio:
            rejects.append(reject(cand_id, split, f"missing file (row {i} has no '{cfg.audio_field}')"))
            continue
        audio_path = Path(audio) if Path(audio).is_absolute() else path.parent / audio
        cands.append(Candidate(cand_id, split, audio_path, text, speaker or cand_id))
    return cands, rejects


def list_candidates(cfg: DataConfig) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Candidates of the real corpus named by ``cfg.source``, and listing-time rejects."""
    if cfg.source == "librispeech":
        return librispeech_candidates(cfg.librispeech)
    if cfg.source == "commonvoice":
        return commonvoice_candidates(cfg.commonvoice)
    if cfg.source == "manifest":
        return manifest_candidates(cfg.manifest, cfg.seed)
    raise ValueError(f"data.source '{cfg.source}' is not an importer")
