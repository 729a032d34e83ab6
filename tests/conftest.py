"""Shared fixtures: the repository root and its profiles."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root() -> Path:
    return ROOT


def export_random_model(work, build_model):
    """Train a 30-piece tokenizer in ``work``, build ``build_model(vocab_size)`` (a model with
    40 mels) and export it to ``work/export`` with the tokenizer, the lexicon and trigram LM of
    its text and the default decoding settings (LM weight 1, word score 0). Returns
    ``(export_dir, model, sp)``."""
    from pipeline.config import default_params
    from pipeline.deploy.runtime import single_thread
    from pipeline.export.formats import decoding_entry, write_artifacts
    from pipeline.io import write_jsonl
    from pipeline.lm.ngram import estimate, write_arpa
    from pipeline.model.decoding import LEXICON, LM, write_lexicon
    from pipeline.tokenizer.spm import train_tokenizer
    from pipeline.tokens import load_tokenizer

    words = "hello world this is a small test of the export and the transcribe command".split()
    rows = [{"id": f"u{i}", "text": " ".join(words[i % 7 : i % 7 + 6])} for i in range(40)]
    write_jsonl(work / "train.jsonl", rows)
    tokenizer = default_params({"tokenizer.vocab_size": 30}).tokenizer
    train_tokenizer(work / "train.jsonl", work / "tok", tokenizer)
    sp = load_tokenizer(work / "tok" / "spm.model")
    model = build_model(sp.get_piece_size())
    (work / "lm").mkdir()
    write_lexicon(words, sp, work / "lm" / LEXICON)
    write_arpa(estimate([r["text"].split() for r in rows], order=3), work / "lm" / LM)
    decoding = decoding_entry(default_params().decoding, lm_weight=1.0, word_score=0.0)
    out = work / "export"
    out.mkdir()
    meta = {
        "sample_rate": 16000,
        "n_mels": 40,
        "frame_shift_ms": 10.0,
        "frame_length_ms": 25.0,
        "dither": 0.0,
    }
    with single_thread():
        write_artifacts(model, out, work / "tok" / "spm.model", meta, 18, decoding, work / "lm")
    return out, model, sp


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """A randomly initialised tiny ConformerCTC exported with its own tokenizer (40 mels).

    Returns ``(export_dir, eager_model, sentencepiece_processor)``; shared by the
    export and transcribe tests because the ONNX export takes a few seconds.
    """
    from testkit import tiny_conformer

    work = tmp_path_factory.mktemp("tiny_export")
    return export_random_model(work, lambda vocab_size: tiny_conformer(40, vocab_size))
