"""Test-split WER/CER of any saved models, and of the teachers' averaged posteriors.

Prints figures; not a test. Useful in sweeps where only one stage re-ran
(``dvc exp run train_student@distilled -S ...``) and the full ``evaluate`` stage
would retrain the baseline for nothing.

Usage::

    python benchmarks/score.py --workdir . --teachers guide t1 t2 --students distilled
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_params  # noqa: E402
from pipeline.loader import make_loader  # noqa: E402
from pipeline.model.conformer import load_model  # noqa: E402
from pipeline.model.ctc import greedy_decode  # noqa: E402
from pipeline.model.ensemble import combine_posteriors  # noqa: E402
from pipeline.soft_targets.build import AgreementMeter  # noqa: E402
from pipeline.tokens import load_tokenizer  # noqa: E402
from pipeline.wer import score  # noqa: E402


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=".", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--teachers", nargs="*", default=[])
    ap.add_argument("--students", nargs="*", default=[])
    args = ap.parse_args()
    w = args.workdir
    params = load_params(w / "params.yaml")
    torch.set_num_threads(params.train.threads)
    sp = load_tokenizer(w / "data/tokenizer/spm.model")
    loader = make_loader(w / "data/features", w / "data/manifests", args.split, sp, params.train.batch_frames)
    models = {f"teacher.{n}": load_model(w / f"models/teachers/{n}.pt") for n in args.teachers}
    models.update({f"student.{n}": load_model(w / f"models/students/{n}.pt") for n in args.students})
    hyps = {name: [] for name in models}
    if len(args.teachers) > 1:
        hyps["ensemble"] = []
    meter = AgreementMeter(args.teachers)
    refs = []
    for batch in loader:
        outs = {name: m(batch.feats, batch.lengths) for name, m in models.items()}
        refs += batch.texts
        for name, (logits, lengths) in outs.items():
            hyps[name] += [sp.decode(ids) for ids in greedy_decode(logits, lengths)]
        if "ensemble" in hyps:
            teacher_logits = [outs[f"teacher.{n}"][0] for n in args.teachers]
            ens = combine_posteriors(teacher_logits, 1.0, params.ensemble.combine)
            lengths = outs[f"teacher.{args.teachers[0]}"][1]
            hyps["ensemble"] += [sp.decode(ids) for ids in greedy_decode(ens, lengths)]
            for i, n in enumerate(lengths.tolist()):
                meter.update([z[i, :n].argmax(-1).numpy() for z in teacher_logits])
    result = {name: dict(zip(("wer", "cer"), score(refs, h))) for name, h in hyps.items()}
    if len(args.teachers) > 1:
        result["spike_agreement"] = meter.result()["mean"]
    print(
        json.dumps(
            {
                "split": args.split,
                "align": params.ensemble.align,
                "temperature": params.soft_targets.temperature,
                "top_k": params.soft_targets.top_k,
                "alpha": params.students["distilled"].alpha,
                **result,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
