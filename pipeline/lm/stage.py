"""The ``lm`` stage, whole: the decoding resources of the train transcripts: the lexicon (every
word, spelled by the sentencepiece model) and the word n-gram LM (interpolated Kneser-Ney of
``decoding.lm.order``, an ARPA file; :mod:`pipeline.lm.ngram`).

Writes ``data/lm/lexicon.txt``, ``data/lm/lm.arpa`` and ``reports/lm.json`` (words in the
lexicon, n-grams per order).

Usage: python stages/lm.py --manifests data/manifests --tokenizer data/tokenizer/spm.model \\
         --out data/lm --report reports/lm.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.io import atomic_path, read_jsonl, write_json
from pipeline.lm.ngram import estimate, write_arpa
from pipeline.model.decoding import LEXICON, LM, write_lexicon
from pipeline.tokens import load_tokenizer


def lm_stage(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    """The stage's options (``--manifests``, ``--tokenizer``, ``--out``, ``--report``) -> the
    lexicon and the ARPA LM in ``--out`` and the report, returned."""
    sentences = [r["text"].split() for r in read_jsonl(Path(args.manifests) / "train.jsonl")]
    sp = load_tokenizer(args.tokenizer)
    with atomic_path(args.out) as out:
        out.mkdir()
        words = write_lexicon((w for s in sentences for w in s), sp, out / LEXICON)
        if words == 0:
            raise ValueError("the lexicon is empty: no word of the train transcripts can be spelled")
        ngrams = write_arpa(estimate(sentences, params.decoding.lm.order), out / LM)
    report = {"lexicon_words": words, "order": params.decoding.lm.order, "ngrams": ngrams}
    write_json(args.report, report)
    return report
