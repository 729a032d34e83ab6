"""Stage ``soft_targets``: averaged temperature-softened teacher posteriors, top-k + rest.

Usage: python stages/soft_targets.py --teachers models/teachers --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --out data/soft_targets --report reports/soft_targets.json
"""

from pathlib import Path

import torch

from pipeline.io import file_digest, read_jsonl, write_json
from pipeline.loader import make_loader
from pipeline.model.conformer import load_model
from pipeline.soft_targets.build import build_soft_targets
from pipeline.splits import SOFT_TARGET_SPLITS
from pipeline.stage import parser, run
from pipeline.tokens import load_tokenizer


def main(args, params):
    torch.set_num_threads(params.train.threads)
    sp = load_tokenizer(args.tokenizer)
    files = {n: Path(args.teachers) / f"{n}.pt" for n in params.teacher_names()}
    models = {n: load_model(f) for n, f in files.items()}
    digests = {n: file_digest(f) for n, f in files.items()}
    loaders = {
        s: make_loader(Path(args.features), Path(args.manifests), s, sp, params.train.batch_frames)
        for s in SOFT_TARGET_SPLITS
    }
    words = [w for r in read_jsonl(Path(args.manifests) / "train.jsonl") for w in r["text"].split()]
    write_json(args.report, build_soft_targets(params, models, loaders, sp, Path(args.out), words, digests))


if __name__ == "__main__":
    run(main, parser(__doc__, "teachers", "features", "manifests", "tokenizer", "out", "report").parse_args())
