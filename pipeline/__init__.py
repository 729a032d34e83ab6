"""asr-distill: distil an ensemble of CTC acoustic models into one small model, driven by DVC.

One package per ``dvc.yaml`` stage and the shared code they use; README.md's Layout maps them."""
