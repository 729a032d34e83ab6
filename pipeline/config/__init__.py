"""Typed, strict configuration loaded from ``params.yaml``.

``params.yaml`` is the one place that sets parameters. Every section maps onto one pydantic
model with ``extra="forbid"`` and no defaults of its own: a missing section or key fails
naming it, a mistyped key fails naming it and listing the valid ones. The only keys a
file may leave out are a twin's or a student's: each takes what it does not set from
``student_defaults`` (in ``params.yaml`` too).

Usage::

    from pipeline.config import load_params
    params = load_params("params.yaml")
    params.soft_targets.temperature

Code and tests that need a complete config start from this checkout's ``params.yaml``::

    train_cfg = default_params({"train.lr": 1e-3}).train

Layout: :mod:`~pipeline.config.schema` (the sections), :mod:`~pipeline.config.params` (the
whole file and its resolution), :mod:`~pipeline.config.messages` (one line per bad key),
:mod:`~pipeline.config.load` (reading, overrides, defaults).
"""

from pipeline.config.load import (
    DEFAULT_PARAMS,
    default_params,
    load_params,
    merge,
    override,
    parse_params,
    read_params,
)
from pipeline.config.messages import KEY_NOTES, MOVED_KEYS, ParamsError, format_errors
from pipeline.config.params import Params
from pipeline.config.schema import (
    AverageConfig,
    CommonVoiceConfig,
    ConvergenceConfig,
    DataConfig,
    DecodingConfig,
    EnsembleConfig,
    EvaluateConfig,
    ExportConfig,
    FbankConfig,
    FeaturesConfig,
    ForkConfig,
    GoalsConfig,
    GridConfig,
    LibriSpeechConfig,
    LMConfig,
    ManifestImportConfig,
    ModelConfig,
    NormalizeConfig,
    ScheduleConfig,
    Share,
    SoftTargetsConfig,
    Strict,
    StudentConfig,
    StudentDefaults,
    SyntheticConfig,
    TeacherConfig,
    TeachersConfig,
    TokenizerConfig,
    TrainConfig,
    TwinConfig,
)

__all__ = [
    "AverageConfig",
    "CommonVoiceConfig",
    "ConvergenceConfig",
    "DEFAULT_PARAMS",
    "DataConfig",
    "DecodingConfig",
    "EnsembleConfig",
    "EvaluateConfig",
    "ExportConfig",
    "FbankConfig",
    "FeaturesConfig",
    "ForkConfig",
    "GoalsConfig",
    "GridConfig",
    "KEY_NOTES",
    "LMConfig",
    "LibriSpeechConfig",
    "MOVED_KEYS",
    "ManifestImportConfig",
    "ModelConfig",
    "NormalizeConfig",
    "Params",
    "ParamsError",
    "ScheduleConfig",
    "Share",
    "SoftTargetsConfig",
    "Strict",
    "StudentConfig",
    "StudentDefaults",
    "SyntheticConfig",
    "TeacherConfig",
    "TeachersConfig",
    "TokenizerConfig",
    "TrainConfig",
    "TwinConfig",
    "default_params",
    "format_errors",
    "load_params",
    "merge",
    "override",
    "parse_params",
    "read_params",
]
