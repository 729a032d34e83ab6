"""Stage ``train_student@<name>``: train one small student (alpha 0 = directly trained baseline).

Usage: python stages/train_student.py --name distilled --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --soft-targets data/soft_targets --model models/students/distilled.pt \
         --checkpoints checkpoints/students/distilled --live dvclive/students/distilled \
         --metrics reports/students/distilled.json
"""

from pathlib import Path

from pipeline.distributed import relaunch_under_torchrun
from pipeline.io import write_json
from pipeline.recipes import train_student
from pipeline.stage import parser, run


def main(args, params):
    relaunch_under_torchrun(params.train.nproc)
    paths = {
        k: Path(getattr(args, k))
        for k in ("features", "manifests", "tokenizer", "soft_targets", "model", "checkpoints", "live")
    }
    metrics = train_student(params, args.name, paths)
    if metrics is not None:  # rank 0 (or the only process) writes
        write_json(args.metrics, metrics)


if __name__ == "__main__":
    p = parser(__doc__)
    for flag in (
        "name",
        "features",
        "manifests",
        "tokenizer",
        "soft-targets",
        "model",
        "checkpoints",
        "live",
        "metrics",
    ):
        p.add_argument(f"--{flag}", required=True)
    run(main, p.parse_args())
