"""The training stages (``train_guide``, ``train_teacher``, ``train_twin``, ``train_student``):
recipes, the training loop, the KD loss and DDP."""
