"""Stage ``train_student@<name>``: train one distilled student (``students.<name>``, alpha > 0).

Usage: python stages/train_student.py --name distilled --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --soft-targets data/soft_targets --model models/students/distilled.pt \
         --checkpoints checkpoints/students/distilled --live dvclive/students/distilled \
         --report reports/students/distilled.json
"""

from pipeline.distributed import relaunch_under_torchrun
from pipeline.io import write_json
from pipeline.recipes import train_student
from pipeline.stage import parser, paths, run

PATHS = ("features", "manifests", "tokenizer", "soft-targets", "model", "checkpoints", "live")


def main(args, params):
    relaunch_under_torchrun(params.train.nproc)
    metrics = train_student(params, args.name, paths(args, PATHS))
    if metrics is not None:  # rank 0 (or the only process) writes
        write_json(args.report, metrics)


if __name__ == "__main__":
    run(main, parser(__doc__, "name", *PATHS, "report").parse_args())
