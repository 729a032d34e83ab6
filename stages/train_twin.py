"""Stage ``train_twin@<name>``: train one directly trained small model (``twins.<name>``).

Plain CTC on the transcripts alone: it reads no soft targets, so a change to the teachers or
to ``soft_targets.*`` leaves it as it is.

Usage: python stages/train_twin.py --name baseline --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --model models/students/baseline.pt --checkpoints checkpoints/students/baseline \
         --live dvclive/students/baseline --report reports/students/baseline.json
"""

from pipeline.distributed import relaunch_under_torchrun
from pipeline.io import write_json
from pipeline.recipes import train_twin
from pipeline.stage import parser, paths, run

PATHS = ("features", "manifests", "tokenizer", "model", "checkpoints", "live")


def main(args, params):
    relaunch_under_torchrun(params.train.nproc)
    metrics = train_twin(params, args.name, paths(args, PATHS))
    if metrics is not None:  # rank 0 (or the only process) writes
        write_json(args.report, metrics)


if __name__ == "__main__":
    run(main, parser(__doc__, "name", *PATHS, "report").parse_args())
