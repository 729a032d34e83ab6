"""The training stages (``train_guide``, ``train_teacher``, ``train_twin``, ``train_student``):
the stage entry point (``stage``), a run's paths (``paths``), recipes, the training loop,
the KD loss and DDP."""
