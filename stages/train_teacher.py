"""Stage ``train_guide`` / ``train_teacher@<name>``: train one Conformer-CTC teacher.

Usage: python stages/train_teacher.py --name t1 --features data/features --manifests data/manifests \
         --tokenizer data/tokenizer/spm.model --guide models/teachers/guide.pt \
         --model models/teachers/t1.pt --checkpoints checkpoints/teachers/t1 \
         --live dvclive/teachers/t1 --report reports/teachers/t1.json
"""

from pipeline.train.recipes import train_teacher
from pipeline.train.stage import run_training_stage

if __name__ == "__main__":
    run_training_stage(__doc__, train_teacher, guide=True)  # --guide: for a fork and ensemble.align: guide
