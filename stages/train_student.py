"""Stage ``train_student@<name>``: train one distilled student (``students.<name>``, alpha > 0).

Usage: python stages/train_student.py --name distilled --features data/features \
         --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --soft-targets data/soft_targets --guide models/teachers/guide.pt \
         --model models/students/distilled.pt \
         --checkpoints checkpoints/students/distilled --live dvclive/students/distilled \
         --report reports/students/distilled.json
"""

from pipeline.train.recipes import run_training_stage, train_student

PATHS = ("features", "manifests", "tokenizer", "soft-targets", "model", "checkpoints", "live")

if __name__ == "__main__":
    run_training_stage(__doc__, train_student, PATHS, optional=["guide"])  # --guide: for a fork
