"""Stage ``train_twin@<name>``: train one directly trained small model (``twins.<name>``).

Plain CTC on the transcripts alone: it reads no soft targets, so a change to the teachers or
to ``soft_targets.*`` leaves it as it is.

Usage: python stages/train_twin.py --name baseline --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --model models/students/baseline.pt --checkpoints checkpoints/students/baseline \
         --live dvclive/students/baseline --report reports/students/baseline.json
"""

from pipeline.train.recipes import train_twin
from pipeline.train.stage import run_training_stage

if __name__ == "__main__":
    run_training_stage(__doc__, train_twin)
