"""Stage ``lm``: the decoding resources of the train transcripts: the lexicon (every word,
spelled by the sentencepiece model) and the word n-gram LM (interpolated Kneser-Ney of
``decoding.lm.order``, an ARPA file; :mod:`pipeline.lm.ngram`).

Writes ``data/lm/lexicon.txt``, ``data/lm/lm.arpa`` and ``reports/lm.json`` (words in the
lexicon, n-grams per order).

Usage: python stages/lm.py --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --out data/lm --report reports/lm.json
"""

from pathlib import Path

from pipeline.io import atomic_path, read_jsonl, write_json
from pipeline.lm.ngram import estimate, write_arpa
from pipeline.model.decoding import LEXICON, LM, write_lexicon
from pipeline.stage import parser, run
from pipeline.tokens import load_tokenizer


def main(args, params):
    sentences = [r["text"].split() for r in read_jsonl(Path(args.manifests) / "train.jsonl")]
    sp = load_tokenizer(args.tokenizer)
    with atomic_path(args.out) as out:
        out.mkdir()
        words = write_lexicon((w for s in sentences for w in s), sp, out / LEXICON)
        if words == 0:
            raise ValueError("the lexicon is empty: no word of the train transcripts can be spelled")
        ngrams = write_arpa(estimate(sentences, params.decoding.lm.order), out / LM)
    write_json(args.report, {"lexicon_words": words, "order": params.decoding.lm.order, "ngrams": ngrams})


if __name__ == "__main__":
    run(main, parser(__doc__, "manifests", "tokenizer", "out", "report").parse_args())
