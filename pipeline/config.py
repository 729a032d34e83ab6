"""Typed, strict configuration loaded from ``params.yaml``.

Every section of ``params.yaml`` maps onto one pydantic model with
``extra="forbid"``, so a mistyped key fails at load time with a message that
names the key and lists the valid ones.

Usage::

    from pipeline.config import load_params
    params = load_params("params.yaml")
    params.distill.temperature
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import MissingError


class Strict(BaseModel):
    """Base model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticConfig(Strict):
    """The embedded espeak-ng corpus (``data.source: synthetic``)."""

    train_utterances: int = Field(1200, ge=1)
    dev_utterances: int = Field(100, ge=1)
    test_utterances: int = Field(150, ge=1)
    # The transfer set: extra utterances (new sentences, training voices) whose transcripts
    # are never written; only the teachers' soft targets label them.
    transfer_utterances: int = Field(0, ge=0)
    accents: list[str] = Field(
        default_factory=lambda: [
            "en-US",
            "en",
            "en-GB-x-rp",
            "en-GB-scotland",
            "en-029",
            "en-US-nyc",
            "en-GB-x-gbclan",
            "en-GB-x-gbcwmd",
        ]
    )
    train_variants: list[str] = Field(
        default_factory=lambda: [
            "m1",
            "m2",
            "m3",
            "m5",
            "m6",
            "m8",
            "f1",
            "f2",
            "f4",
            "f5",
            "klatt",
            "klatt3",
            "Alex",
            "Annie",
            "Michael",
            "david",
            "linda",
            "robert",
        ]
    )
    eval_variants: list[str] = Field(default_factory=lambda: ["m4", "m7", "f3", "klatt2", "Andy", "steph"])
    rate_wpm: tuple[int, int] = (140, 190)
    pitch: tuple[int, int] = (35, 65)
    snr_db: tuple[float, float] = (15.0, 40.0)
    min_words: int = Field(3, ge=1)
    max_words: int = Field(12, ge=1)
    text_file: str | None = None
    # closed: a few hundred everyday words (pipeline/closed_lexicon.py), test OOV near 0;
    # open: thousands of names, cities and words, many of them unseen in training.
    vocabulary: Literal["closed", "open"] = "closed"
    num_workers: int = Field(2, ge=1)  # espeak-ng processes; the audio does not depend on it

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticConfig:
        for name in ("rate_wpm", "pitch", "snr_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: lower bound {lo} exceeds upper bound {hi}")
        if self.min_words > self.max_words:
            raise ValueError("min_words exceeds max_words")
        if set(self.train_variants) & set(self.eval_variants):
            raise ValueError(
                "train_variants and eval_variants must be disjoint (test speakers are unseen in training)"
            )
        return self


class NormalizeConfig(Strict):
    """Transcript normalization, applied identically to every ``data.source``."""

    lowercase: bool = True
    strip_punctuation: bool = True
    spell_numbers: bool = True


class LibriSpeechConfig(Strict):
    """A local root in LibriSpeech layout (``data.source: librispeech``)."""

    root: str | None = None
    train_subsets: list[str] = Field(default_factory=lambda: ["train-clean-100"])
    dev_subsets: list[str] = Field(default_factory=lambda: ["dev-clean"])
    test_subsets: list[str] = Field(default_factory=lambda: ["test-clean"])
    # Read as audio only (transcripts ignored): the transfer set, e.g. [train-other-500].
    transfer_subsets: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> LibriSpeechConfig:
        subsets = [*self.train_subsets, *self.dev_subsets, *self.test_subsets, *self.transfer_subsets]
        if len(set(subsets)) != len(subsets):
            raise ValueError(f"a subset is listed twice across train/dev/test/transfer: {subsets}")
        return self


class CommonVoiceConfig(Strict):
    """A local Common Voice release: ``clips/`` plus one TSV per split (``data.source: commonvoice``)."""

    root: str | None = None
    train_tsv: str = "train.tsv"
    dev_tsv: str = "dev.tsv"
    test_tsv: str = "test.tsv"
    transfer_tsv: str | None = None  # read as audio only (its sentences are ignored)


class ManifestImportConfig(Strict):
    """A user JSONL or CSV manifest (``data.source: manifest``).

    Audio paths may be relative to the manifest's folder. Rows without a split
    are assigned to dev/test by a seeded hash of their speaker (or id), so a
    speaker never straddles splits. Rows with split ``transfer`` are read as
    audio only (any text is ignored): the transfer set.
    """

    path: str | None = None
    audio_field: str = "audio"
    text_field: str = "text"
    id_field: str = "id"
    speaker_field: str = "speaker"
    split_field: str = "split"
    dev_fraction: float = Field(0.05, ge=0, lt=1)
    test_fraction: float = Field(0.05, ge=0, lt=1)


class DataConfig(Strict):
    source: Literal["synthetic", "librispeech", "commonvoice", "manifest"] = "synthetic"
    seed: int = 0
    sample_rate: int = Field(16000, ge=8000)
    min_duration: float = Field(0.3, gt=0)
    max_duration: float = Field(20.0, gt=0)
    max_reject_fraction: float = Field(0.05, ge=0, le=1)
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    librispeech: LibriSpeechConfig = Field(default_factory=LibriSpeechConfig)
    commonvoice: CommonVoiceConfig = Field(default_factory=CommonVoiceConfig)
    manifest: ManifestImportConfig = Field(default_factory=ManifestImportConfig)

    @model_validator(mode="after")
    def _source(self) -> DataConfig:
        if self.min_duration >= self.max_duration:
            raise ValueError(
                f"min_duration {self.min_duration} must be below max_duration {self.max_duration}"
            )
        section = {
            "librispeech": self.librispeech.root,
            "commonvoice": self.commonvoice.root,
            "manifest": self.manifest.path,
        }
        if self.source in section and not section[self.source]:
            key = "path" if self.source == "manifest" else "root"
            raise ValueError(f"data.{self.source}.{key} is required when data.source is {self.source}")
        return self


class FeaturesConfig(Strict):
    n_mels: int = Field(80, ge=8)
    frame_shift_ms: float = Field(10.0, gt=0)
    frame_length_ms: float = Field(25.0, gt=0)
    dither: float = Field(0.0, ge=0)
    shard_frames: int = Field(2_000_000, ge=1000)
    num_workers: int = Field(2, ge=1)


class TokenizerConfig(Strict):
    vocab_size: int = Field(128, ge=8, le=65535)
    model_type: Literal["unigram", "bpe", "char"] = "unigram"
    character_coverage: float = Field(1.0, gt=0, le=1)


class ModelConfig(Strict):
    """A Conformer-CTC acoustic model: 4x conv subsampling + Conformer + linear."""

    d_model: int = Field(144, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    ffn_dim: int = Field(576, ge=8)
    conv_kernel: int = Field(15, ge=3)
    subsampling_channels: int = Field(64, ge=4)
    dropout: float = Field(0.1, ge=0, lt=1)
    # Streaming: output frames (40 ms each) per attention chunk; 0 = full context. A streaming
    # model's frames attend to their own chunk and ``left_frames`` frames before it, and its
    # depthwise convolutions are causal, so a chunk's outputs never change when later audio
    # arrives (pipeline/streaming.py runs it chunk by chunk).
    chunk_frames: int = Field(0, ge=0)
    left_frames: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _heads(self) -> ModelConfig:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if self.left_frames and not self.chunk_frames:
            raise ValueError("left_frames needs chunk_frames > 0 (full-context models see everything)")
        if self.chunk_frames and not self.left_frames:
            raise ValueError("a streaming model (chunk_frames > 0) needs left_frames > 0")
        return self

    @property
    def streaming(self) -> bool:
        return self.chunk_frames > 0


class TrainConfig(Strict):
    """Optimisation settings shared by teachers and students."""

    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    warmup_steps: int = Field(200, ge=0)
    batch_frames: int = Field(20000, ge=100)
    grad_clip: float = Field(5.0, gt=0)
    spec_augment: bool = True
    freq_mask: int = Field(15, ge=0)
    time_mask: int = Field(40, ge=0)
    num_time_masks: int = Field(2, ge=0)
    threads: int = Field(2, ge=1)
    checkpoint_every_steps: int = Field(100, ge=1)
    # Speed factors drawn per batch (e.g. [0.9, 1.0, 1.1]); empty = off. Ignored, with a
    # log line, when per-frame extras (guide tokens, soft targets) are attached.
    speed_perturb: list[float] = Field(default_factory=list)
    # DataLoader worker processes building batches; 0 builds them in the training process.
    loader_workers: int = Field(1, ge=0)
    # Processes per machine: >1 relaunches the stage under torchrun (PyTorch DDP).
    nproc: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # bf16 autocast and torch.compile apply on CUDA only; the CPU path stays fp32 eager.
    amp: Literal["none", "bf16"] = "bf16"
    compile: bool = False

    @model_validator(mode="after")
    def _speeds(self) -> TrainConfig:
        bad = [f for f in self.speed_perturb if not 0.5 <= f <= 2.0]
        if bad:
            raise ValueError(f"speed_perturb factors must lie in [0.5, 2.0], got {bad}")
        return self


class TeacherConfig(Strict):
    """One ensemble member: its own seed, epochs (required) and architecture."""

    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    epochs: int = Field(ge=1)


class GuideConfig(TeacherConfig):
    """The guide teacher: trained first with plain CTC, always an ensemble member."""


class EnsembleConfig(Strict):
    align: Literal["none", "guide"] = "guide"
    guide_weight: float = Field(1.0, ge=0)
    combine: Literal["mean", "geometric"] = "mean"


class DistillConfig(Strict):
    temperature: float = Field(2.0, gt=0)
    top_k: int = Field(32, ge=1)


class StudentConfig(Strict):
    """One student: ``(1 - alpha) * CTC + alpha * T^2 * KD``; ``alpha: 0`` is a directly trained twin.

    Update budget: ``epochs`` (required) times the batches of one pass over
    the whole train split, whatever data the student sees; a teacher's budget is defined
    the same way, so twins compare at equal optimizer updates.
    """

    alpha: float = Field(0.0, ge=0, le=1)
    seed: int = 0
    model: ModelConfig | None = None  # default: the shared ``student:`` block
    epochs: int = Field(ge=1)
    # The directly trained model this one is compared with (required when alpha > 0): a
    # student with alpha 0, or ``guide`` (a teacher trained with plain CTC). Same
    # architecture, seed, budget and labelled share are checked.
    twin: str | None = None
    # Share of train whose transcripts this student may use (seeded, the same utterances
    # for every student at the same share); the rest of train joins the transfer set.
    labelled_fraction: float = Field(1.0, gt=0, le=1)
    # alpha > 0 only: also learn from the transfer set (KD term only, no transcripts).
    transfer: bool = True
    # KD frames: all, or nonblank (frames where the ensemble's top token is not blank, and
    # their neighbours; blank frames otherwise dominate the KD term).
    kd_frames: Literal["all", "nonblank"] = "all"
    # alpha > 0 only: CTC also on the ensemble's greedy transcripts of untranscribed audio
    # (sequence-level KD) instead of the KD term alone.
    pseudo_labels: bool = False
    # alpha > 0 only: delay the soft targets by this many 40 ms frames, so a streaming student,
    # which emits its spikes later than the full-context teachers, is taught where it can
    # emit them (experiments/streaming.py measures the delay of a streaming twin on dev).
    kd_shift: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _distilled_only(self) -> StudentConfig:
        if self.alpha == 0 and self.pseudo_labels:
            raise ValueError("pseudo_labels needs alpha > 0 (a twin learns from transcripts only)")
        if self.alpha == 0 and self.kd_shift:
            raise ValueError("kd_shift needs alpha > 0 (it shifts the soft targets)")
        return self


class ExportConfig(Strict):
    """Export and CPU benchmark of the distilled student."""

    opset: int = Field(18, ge=13)
    parity_atol: float = Field(1e-3, gt=0)
    # Largest |WER(int8 ONNX) - WER(eager)| on test accepted (0.005 = 0.5 points).
    int8_wer_tolerance: float = Field(0.005, ge=0, le=1)
    # CPU benchmark: the first rtf_utterances test utterances, timed rtf_repeats times;
    # the fastest pass per model is reported.
    rtf_utterances: int = Field(50, ge=1)
    rtf_repeats: int = Field(5, ge=1)


class EvaluateConfig(Strict):
    """Test-set scoring: decoding, paired-bootstrap intervals and the error breakdown."""

    # Paired bootstrap over utterances (Bisani & Ney 2004): resamples, seed, interval level.
    bootstrap_samples: int = Field(1000, ge=100)
    bootstrap_seed: int = 0
    confidence: float = Field(0.95, gt=0.5, lt=1)
    # greedy: best path; lexicon: beam search restricted to the words of the train transcripts
    # (torchaudio's ctc_decoder, no language model). The export stage's runtime WER stays greedy.
    decoder: Literal["greedy", "lexicon"] = "lexicon"
    beam_size: int = Field(20, ge=1)
    # Most frequent word substitutions listed per system in the summary.
    top_substitutions: int = Field(10, ge=1)


class Params(Strict):
    """The whole ``params.yaml``."""

    data: DataConfig = Field(default_factory=DataConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    guide: GuideConfig  # required: it sets its own epochs
    teachers: dict[str, TeacherConfig]
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    student: ModelConfig = Field(default_factory=ModelConfig)
    students: dict[str, StudentConfig]
    export: ExportConfig = Field(default_factory=ExportConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    @model_validator(mode="after")
    def _names(self) -> Params:
        if len(self.teachers) < 1:
            raise ValueError("teachers: at least one teacher besides the guide is required")
        if "guide" in self.teachers:
            raise ValueError("teachers: 'guide' is reserved for the guide teacher section")
        for required in ("baseline", "distilled"):
            if required not in self.students:
                raise ValueError(f"students: a '{required}' student is required")
        if self.students["baseline"].alpha != 0.0:
            raise ValueError("students.baseline.alpha must be 0 (the directly trained twin)")
        if self.students["distilled"].alpha == 0.0:
            raise ValueError("students.distilled.alpha must be above 0 (it learns from the teachers)")
        clash = set(self.students) & {"guide", *self.teachers}
        if clash:
            raise ValueError(f"students: {', '.join(sorted(clash))} is also a teacher's name")
        for name, s in self.students.items():
            if s.alpha > 0:
                self._check_twin(name, s)
        return self

    def _check_twin(self, name: str, s: StudentConfig) -> None:
        """A distilled student's twin exists, trains without a teacher, and matches its recipe."""
        where = f"students.{name}.twin"
        if s.twin is None:
            raise ValueError(
                f"{where} is required when alpha > 0: name the directly trained "
                f"model it is compared with (a student with alpha 0, or guide)"
            )
        if s.twin == "guide":
            recipe = (self.guide.model, self.guide.epochs, self.guide.seed, 1.0)
        elif s.twin in self.students and self.students[s.twin].alpha == 0:
            recipe = self.student_recipe(s.twin)
        else:
            raise ValueError(f"{where}: '{s.twin}' is neither guide nor a student with alpha 0")
        mine = self.student_recipe(name)
        for label, a, b in zip(("model", "epochs", "seed", "labelled_fraction"), mine, recipe):
            if a != b:
                raise ValueError(
                    f"{where}: '{s.twin}' differs in {label} ({b} vs {a}); twins "
                    f"share architecture, update budget, seed and labels"
                )

    def distilled_students(self) -> list[str]:
        """Students that learn from the teachers (alpha > 0): each is exported and compared."""
        return [n for n, s in self.students.items() if s.alpha > 0]

    def student_model(self, name: str) -> ModelConfig:
        """Student ``name``'s architecture: its own ``model`` or the shared ``student:`` block."""
        return self.students[name].model or self.student

    def student_epochs(self, name: str) -> int:
        """Student ``name``'s update budget in passes over the train split."""
        return self.students[name].epochs

    def student_recipe(self, name: str) -> tuple[ModelConfig, int, int, float]:
        s = self.students[name]
        return self.student_model(name), self.student_epochs(name), s.seed, s.labelled_fraction

    def twin_model(self, name: str) -> str:
        """The evaluation name of the model student ``name`` is compared with."""
        twin = self.students[name].twin or "baseline"
        return "teacher.guide" if twin == "guide" else f"student.{twin}"

    def teacher(self, name: str) -> TeacherConfig:
        """The config of teacher ``name`` (``guide`` or a key of ``teachers``)."""
        if name == "guide":
            return self.guide
        if name not in self.teachers:
            raise MissingError(f"unknown teacher '{name}'; known: guide, {', '.join(self.teachers)}")
        return self.teachers[name]

    def teacher_names(self) -> list[str]:
        """All ensemble members, the guide first."""
        return ["guide", *self.teachers]


class ParamsError(ValueError):
    """``params.yaml`` is malformed; the message names every bad key."""


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Valid field names of the sub-model reached by ``loc`` (minus its last part)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return None
        if part in fields:
            annotation = fields[part].annotation
        else:
            # dict[str, Model]: the key is a user-chosen name, descend into the value type.
            annotation = current
        args = getattr(annotation, "__args__", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current = annotation
        elif args:
            candidates = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if not candidates:
                return None
            current = candidates[0]
        else:
            return None
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else None


# Keys that moved, as the error names them -> where they went: an old params.yaml is told.
MOVED_KEYS = {
    "evaluate.rtf_utterances": "export.rtf_utterances",
    "train.epochs": "students.<name>.epochs (every student sets its own, as teachers do)",
}


def format_errors(err: ValidationError, source: str) -> str:
    """Human-readable summary of a pydantic error, naming each offending key."""
    lines = [f"{source}: invalid parameters"]
    for e in err.errors():
        dotted = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            valid = _valid_keys(Params, e["loc"])
            hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
            if dotted in MOVED_KEYS:
                hint = f"; it moved to {MOVED_KEYS[dotted]}{hint}"
            lines.append(f"  unknown key '{dotted}'{hint}")
        elif e["type"] == "missing":
            lines.append(f"  missing key '{dotted}'")
        elif not e["loc"]:  # a whole-file check: its message names the keys
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  '{dotted}': {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate an already-loaded params mapping."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(format_errors(err, source)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml``; raises :class:`ParamsError` naming bad keys."""
    path = Path(path)
    with path.open() as f:
        raw = yaml.safe_load(f) or {}
    return parse_params(raw, str(path))
