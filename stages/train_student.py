"""Stage ``train_student@<name>``: train one distilled student (``students.<name>``, alpha > 0).

Usage: python stages/train_student.py --name distilled --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --soft-targets data/soft_targets --guide models/teachers/guide.pt \
         --model models/students/distilled.pt \
         --checkpoints checkpoints/students/distilled --live dvclive/students/distilled \
         --report reports/students/distilled.json
"""

from pipeline.train.recipes import train_student
from pipeline.train.stage import run_training_stage

if __name__ == "__main__":
    run_training_stage(__doc__, train_student, soft_targets=True, guide=True)  # --guide: for a fork
