"""Stage ``train_guide`` / ``train_teacher@<name>``: train one Conformer-CTC teacher.

Usage: python stages/train_teacher.py --name t1 --features data/features --manifests data/manifests \
         --tokenizer data/tokenizer/spm.model --guide models/teachers/guide.pt \
         --model models/teachers/t1.pt --checkpoints checkpoints/teachers/t1 \
         --live dvclive/teachers/t1 --report reports/teachers/t1.json
"""

from pathlib import Path

from pipeline.distributed import relaunch_under_torchrun
from pipeline.io import write_json
from pipeline.recipes import train_teacher
from pipeline.stage import parser, paths, run

PATHS = ("features", "manifests", "tokenizer", "model", "checkpoints", "live")


def main(args, params):
    relaunch_under_torchrun(params.train.nproc)
    files = paths(args, PATHS)
    if args.guide:
        files["guide"] = Path(args.guide)
    metrics = train_teacher(params, args.name, files)
    if metrics is not None:  # rank 0 (or the only process) writes
        write_json(args.report, metrics)


if __name__ == "__main__":
    p = parser(__doc__, "name", *PATHS, "report")
    p.add_argument("--guide", help="guide teacher model (for ensemble.align: guide)")
    run(main, p.parse_args())
