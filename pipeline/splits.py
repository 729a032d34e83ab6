"""The corpus splits, named once for every stage.

``train``, ``dev`` and ``test`` are transcribed (:data:`LABELLED_SPLITS`); the transfer set
(:data:`TRANSFER`) is audio without transcripts, labelled by the teachers' soft targets
alone. Manifests, feature stores and soft-target stores use these names as file and
folder names (``data/manifests/<split>.jsonl``, ``data/features/<split>/``).
"""

LABELLED_SPLITS = ("train", "dev", "test")
TRANSFER = "transfer"
SPLITS = (*LABELLED_SPLITS, TRANSFER)
# Held out from training: spoken by voices unseen in train (synthetic corpus), scored for OOV.
EVAL_SPLITS = ("dev", "test")
# What the teachers label in the soft_targets stage.
SOFT_TARGET_SPLITS = ("train", "dev", TRANSFER)
