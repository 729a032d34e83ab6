"""Where a training run reads and writes: :class:`TrainPaths`.

Usage::

    paths = TrainPaths(features=Path("data/features"), manifests=Path("data/manifests"),
                       tokenizer=Path("data/tokenizer/spm.model"), model=Path("models/students/x.pt"),
                       checkpoints=Path("checkpoints/students/x"), live=Path("dvclive/students/x"),
                       soft_targets=Path("data/soft_targets"))
    soft_dir = paths.require("soft_targets")  # MissingError naming --soft-targets when absent
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from pipeline.errors import MissingError


@dataclass(frozen=True)
class TrainPaths:
    """The inputs and outputs of one training run (a teacher, twin or distilled student).

    ``guide`` (the guide teacher's model: guided CTC and forks) and ``soft_targets`` (a
    distilled student's) are None when the run was not given them; :meth:`require` names
    the missing one.
    """

    features: Path
    manifests: Path
    tokenizer: Path
    model: Path  # the trained model, written at the end
    checkpoints: Path
    live: Path  # the dvclive curves
    guide: Path | None = None
    soft_targets: Path | None = None

    def __post_init__(self) -> None:
        for f in fields(self):  # accept strings too (argparse values, callers' own paths)
            value = getattr(self, f.name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, f.name, Path(value))

    def require(self, name: str) -> Path:
        """The path ``name`` (``"guide"``, ``"soft_targets"``, ...); a :class:`MissingError`
        naming its command-line option if the run was not given it."""
        value = getattr(self, name)
        if value is None:
            flag = "--" + name.replace("_", "-")
            raise MissingError(f"training needs the {name} path, which was not given: pass {flag}")
        return value
