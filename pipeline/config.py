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
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from pipeline.errors import InputError, MissingError

# The checkout's own params.yaml: the defaults every other config starts from.
DEFAULT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


# A share of a whole, 0 to 1.
Share = Annotated[float, Field(ge=0, le=1)]


class Strict(BaseModel):
    """Base model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticConfig(Strict):
    """The embedded espeak-ng corpus (``data.source: synthetic``)."""

    train_utterances: PositiveInt
    dev_utterances: PositiveInt
    test_utterances: PositiveInt
    # The transfer set: extra utterances (new sentences, training voices) whose transcripts
    # are never written; only the teachers' soft targets label them.
    transfer_utterances: NonNegativeInt
    accents: list[str]
    train_variants: list[str]
    eval_variants: list[str]
    rate_wpm: tuple[int, int]
    pitch: tuple[int, int]
    snr_db: tuple[float, float]
    min_words: PositiveInt
    max_words: PositiveInt
    text_file: str | None
    # closed: a few hundred everyday words (pipeline/closed_lexicon.py), test OOV near 0;
    # open: thousands of names, cities and words, many of them unseen in training.
    vocabulary: Literal["closed", "open"]
    num_workers: PositiveInt  # espeak-ng processes; the audio does not depend on it

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

    lowercase: bool
    strip_punctuation: bool
    spell_numbers: bool


class LibriSpeechConfig(Strict):
    """A local root in LibriSpeech layout (``data.source: librispeech``)."""

    root: str | None
    train_subsets: list[str]
    dev_subsets: list[str]
    test_subsets: list[str]
    # Read as audio only (transcripts ignored): the transfer set, e.g. [train-other-500].
    transfer_subsets: list[str]

    @model_validator(mode="after")
    def _disjoint(self) -> LibriSpeechConfig:
        subsets = [*self.train_subsets, *self.dev_subsets, *self.test_subsets, *self.transfer_subsets]
        if len(set(subsets)) != len(subsets):
            raise ValueError(f"a subset is listed twice across train/dev/test/transfer: {subsets}")
        return self


class CommonVoiceConfig(Strict):
    """A local Common Voice release: ``clips/`` plus one TSV per split (``data.source: commonvoice``)."""

    root: str | None
    train_tsv: str
    dev_tsv: str
    test_tsv: str
    transfer_tsv: str | None  # read as audio only (its sentences are ignored)


class ManifestImportConfig(Strict):
    """A user JSONL or CSV manifest (``data.source: manifest``).

    Audio paths may be relative to the manifest's folder. Rows without a split
    are assigned to dev/test by a seeded hash of their speaker (or id), so a
    speaker never straddles splits. Rows with split ``transfer`` are read as
    audio only (any text is ignored): the transfer set.
    """

    path: str | None
    audio_field: str
    text_field: str
    id_field: str
    speaker_field: str
    split_field: str
    dev_fraction: float = Field(ge=0, lt=1)
    test_fraction: float = Field(ge=0, lt=1)


class DataConfig(Strict):
    source: Literal["synthetic", "librispeech", "commonvoice", "manifest"]
    seed: int
    sample_rate: int = Field(ge=8000)
    min_duration: PositiveFloat
    max_duration: PositiveFloat
    max_reject_fraction: Share
    normalize: NormalizeConfig
    synthetic: SyntheticConfig
    librispeech: LibriSpeechConfig
    commonvoice: CommonVoiceConfig
    manifest: ManifestImportConfig

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


class FbankConfig(Strict):
    """The front end: what an exported model needs to turn audio into its input."""

    n_mels: int = Field(ge=8)
    frame_shift_ms: PositiveFloat
    frame_length_ms: PositiveFloat
    dither: NonNegativeFloat


class FeaturesConfig(FbankConfig):
    """``features``: the front end plus how the features stage stores and computes it."""

    shard_frames: int = Field(ge=1000)
    num_workers: PositiveInt


class TokenizerConfig(Strict):
    vocab_size: int = Field(ge=8, le=65535)
    model_type: Literal["unigram", "bpe", "char"]
    character_coverage: float = Field(gt=0, le=1)


class ModelConfig(Strict):
    """A Conformer-CTC acoustic model: 4x conv subsampling + Conformer + linear."""

    d_model: int = Field(ge=8)
    num_layers: PositiveInt
    num_heads: PositiveInt
    ffn_dim: int = Field(ge=8)
    conv_kernel: int = Field(ge=3)
    subsampling_channels: int = Field(ge=4)
    dropout: float = Field(ge=0, lt=1)
    # Streaming, the one optional part of a model block (left out: full context, as every
    # model saved without it): output frames (40 ms each) per attention chunk. A streaming
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


class ScheduleConfig(Strict):
    """The learning-rate schedule after ``train.warmup_steps`` of linear warm-up.

    ``eden`` (icefall's Eden, without its ScaledAdam): ``lr * ((step^2 + lr_steps^2) /
    lr_steps^2)^-0.25 * ((epoch^2 + lr_epochs^2) / lr_epochs^2)^-0.25``, ``epoch`` counted in
    budget epochs (fractional): it decays by step and epoch and never needs to know where
    training ends, so a model can train until it converges. ``cosine``: decay to 5 % of the
    peak at the epoch cap (it must know the end; kept for comparison).
    """

    kind: Literal["eden", "cosine"]
    lr_steps: PositiveInt
    lr_epochs: PositiveFloat


class AverageConfig(Strict):
    """The saved model: the average of the weights of the last ``k`` epochs or of the ``k``
    epochs with the best dev WER, for the ``k`` in ``counts`` and the kind (last or best)
    whose average scores best on dev (1 = that one epoch's weights)."""

    counts: list[PositiveInt] = Field(min_length=1)


class ConvergenceConfig(Strict):
    """When a model has converged: its dev WER (greedy, scored after every epoch) has not
    improved on its best by at least ``min_improvement`` (relative, 0.01 = 1 %) for
    ``patience`` epochs. The model's ``epochs`` is the cap; a model the rule stops before its
    cap is ``converged`` in its report."""

    patience: PositiveInt
    min_improvement: float = Field(ge=0, lt=1)


class TrainConfig(Strict):
    """Optimisation settings shared by teachers and students."""

    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    warmup_steps: NonNegativeInt
    schedule: ScheduleConfig
    average: AverageConfig
    batch_frames: int = Field(ge=100)
    grad_clip: PositiveFloat
    spec_augment: bool
    freq_mask: NonNegativeInt
    time_mask: NonNegativeInt
    num_time_masks: NonNegativeInt
    threads: PositiveInt
    checkpoint_every_steps: PositiveInt
    # Speed factors drawn per batch (e.g. [0.9, 1.0, 1.1]); empty = off. Ignored, with a
    # log line, when per-frame extras (guide tokens, soft targets) are attached.
    speed_perturb: list[float]
    # DataLoader worker processes building batches; 0 builds them in the training process.
    loader_workers: NonNegativeInt
    # Processes per machine: >1 relaunches the stage under torchrun (PyTorch DDP).
    nproc: PositiveInt
    device: Literal["auto", "cpu", "cuda"]
    # bf16 autocast and torch.compile apply on CUDA only; the CPU path stays fp32 eager.
    amp: Literal["none", "bf16"]
    compile: bool

    @model_validator(mode="after")
    def _speeds(self) -> TrainConfig:
        bad = [f for f in self.speed_perturb if not 0.5 <= f <= 2.0]
        if bad:
            raise ValueError(f"speed_perturb factors must lie in [0.5, 2.0], got {bad}")
        return self


class ForkConfig(Strict):
    """A warm start (fast geometric ensembling, Garipov et al. 2018): training begins from
    teacher ``init``'s saved model (same architecture; dropout may differ) instead of a
    random one, and runs its own learning-rate cycle: linear warm-up to ``lr``, then cosine to
    5 % of it at the epoch cap. A teacher forked from the guide starts with the guide's spikes, so it needs no
    guided-CTC term; a fork costs a few epochs where a teacher from scratch costs thirty."""

    init: Literal["guide"]
    lr: PositiveFloat


class TeacherConfig(Strict):
    """One ensemble member: its own seed, epoch cap and architecture, and optionally a fork."""

    seed: int
    model: ModelConfig
    epochs: PositiveInt  # the cap: it trains until ``teachers.convergence`` stops it, at most this
    fork: ForkConfig | None  # null: from a random init


class TeachersConfig(Strict):
    """``teachers``: the ensemble. The guide trains first, with plain CTC; every other
    teacher (``others``, one ``train_teacher@<name>`` stage each) trains after it and, with
    ``ensemble.align: guide``, pulls its CTC spikes onto the guide's frames."""

    convergence: ConvergenceConfig  # every teacher's stopping rule
    guide: TeacherConfig
    others: dict[str, TeacherConfig]

    @model_validator(mode="after")
    def _others(self) -> TeachersConfig:
        if not self.others:
            raise ValueError("teachers.others: at least one teacher besides the guide is required")
        if "guide" in self.others:
            raise ValueError("teachers.others: 'guide' is the name of teachers.guide")
        if self.guide.fork is not None:
            raise ValueError(
                "teachers.guide.fork: the guide trains from a random init (the others fork from it)"
            )
        for name, t in self.others.items():
            same = t.model.model_copy(update={"dropout": self.guide.model.dropout}) == self.guide.model
            if t.fork is not None and not same:
                raise ValueError(
                    f"teachers.others.{name}.fork: it starts from the guide's weights, so its model "
                    f"must be teachers.guide.model (dropout aside)"
                )
        return self


class EnsembleConfig(Strict):
    align: Literal["none", "guide"]
    guide_weight: NonNegativeFloat
    combine: Literal["mean", "geometric"]


class SoftTargetsConfig(Strict):
    """``soft_targets``: the ensemble's softened posteriors, kept as top-k per frame."""

    temperature: PositiveFloat
    top_k: PositiveInt
    # The ensemble's transcripts of untranscribed audio (sequence-level KD, pseudo_labels): its
    # T=1 average decoded greedily, or by beam search over the train transcripts' words
    # (decoding.beam_size).
    transcripts: Literal["greedy", "lexicon"]


class StudentDefaults(Strict):
    """``student_defaults``: every key a student may leave out, and its value then."""

    model: ModelConfig
    # The stopping rule (``epochs`` is the cap); a student and its twin must share it.
    convergence: ConvergenceConfig
    # Distilled students only: the directly trained model a student is compared with
    # (required): a key of ``twins``, or a teacher's name (``guide`` or a key of
    # ``teachers.others``: teachers train with plain CTC). Same architecture, seed, budget,
    # stopping rule, labelled share and fork are checked.
    twin: str | None
    # Share of train whose transcripts this student may use (seeded, the same utterances
    # for every student at the same share); the rest of train joins the transfer set.
    labelled_fraction: float = Field(gt=0, le=1)
    # Distilled students only: also learn from the transfer set (KD term only, no transcripts).
    transfer: bool
    # KD frames: all, or nonblank (frames where the ensemble's top token is not blank, and
    # their neighbours; blank frames otherwise dominate the KD term).
    kd_frames: Literal["all", "nonblank"]
    # Distilled students only: CTC also on the ensemble's greedy transcripts of untranscribed audio
    # (sequence-level KD) instead of the KD term alone.
    pseudo_labels: bool
    # Distilled students only: delay the soft targets by this many 40 ms frames, so a streaming student,
    # which emits its spikes later than the full-context teachers, is taught where it can
    # emit them (experiments/streaming.py measures the delay of a streaming twin on dev).
    kd_shift: NonNegativeInt
    # Distilled students only: start from the guide's weights (see ForkConfig); its twin is then a
    # teacher forked the same way (same seed and cycle), so the two differ only in what they learn from.
    fork: ForkConfig | None


class TwinConfig(StudentDefaults):
    """One directly trained small model (``twins.<name>``): CTC on its transcripts alone, no
    teacher, so its ``train_twin@<name>`` stage never reads the soft targets. A twin has no
    ``alpha`` (it is 0 by definition). Keys it leaves out come from ``student_defaults``; of
    those, ``twin``, ``transfer`` and ``kd_frames`` do not apply to it.

    Update budget: ``epochs`` times the batches of one pass over the whole train split, as
    for a distilled student and a teacher, so twins compare at equal optimizer updates.
    """

    seed: int
    epochs: PositiveInt

    @property
    def alpha(self) -> float:
        """The KD weight: 0, a twin learns from transcripts only."""
        return 0.0

    @model_validator(mode="after")
    def _transcripts_only(self) -> TwinConfig:
        if self.pseudo_labels:
            raise ValueError("pseudo_labels is for distilled students (a twin learns from transcripts only)")
        if self.kd_shift:
            raise ValueError("kd_shift is for distilled students (it shifts the soft targets)")
        if self.fork is not None:
            raise ValueError(
                "fork is for distilled students and teachers (a twin that starts from the guide "
                "learns from a teacher); a forked student's twin is a forked teacher"
            )
        return self


class StudentConfig(StudentDefaults):
    """One distilled student (``students.<name>``): ``(1 - alpha) * CTC + alpha * T^2 * KD``,
    with ``alpha > 0``, compared with its ``twin`` (a key of ``twins``, or ``guide``).

    Update budget: ``epochs`` times the batches of one pass over the whole train split,
    whatever data the student sees; a teacher's budget is defined the same way, so twins
    compare at equal optimizer updates. Keys it leaves out come from ``student_defaults``.
    """

    alpha: float = Field(gt=0, le=1)
    seed: int
    epochs: PositiveInt


class GoalsConfig(Strict):
    """Deployment goals of the int8 ``student.distilled`` against the ensemble (one CPU thread)."""

    min_speedup: PositiveFloat  # at least this many times faster than the ensemble
    max_rtf: PositiveFloat  # at most this real-time factor


class ExportConfig(Strict):
    """Export and CPU benchmark of the distilled student."""

    opset: int = Field(ge=13)
    parity_atol: PositiveFloat
    # Largest |WER(int8 ONNX) - WER(eager)| on test accepted (0.005 = 0.5 points).
    int8_wer_tolerance: Share
    # CPU benchmark: the first rtf_utterances test utterances, timed rtf_repeats times;
    # the fastest pass per model is reported.
    rtf_utterances: PositiveInt
    rtf_repeats: PositiveInt
    goals: GoalsConfig


class EvaluateConfig(Strict):
    """Test-set scoring: paired-bootstrap intervals and the error breakdown."""

    # Paired bootstrap over utterances (Bisani & Ney 2004): resamples, seed, interval level.
    bootstrap_samples: int = Field(ge=100)
    bootstrap_seed: int
    confidence: float = Field(gt=0.5, lt=1)
    # Most frequent word substitutions listed per system in the summary.
    top_substitutions: PositiveInt


DecoderName = Literal["greedy", "lexicon", "lexicon+lm"]


class LMConfig(Strict):
    """The word n-gram LM of the train transcripts (interpolated Kneser-Ney, nltk)."""

    order: int = Field(ge=2, le=6)


class GridConfig(Strict):
    """Values tried on dev for the beam with the LM; the lowest dev WER is kept."""

    lm_weight: list[NonNegativeFloat] = Field(min_length=1)
    word_score: list[float] = Field(min_length=1)


class DecodingConfig(Strict):
    """How CTC output becomes words: which decoders are scored and which one ships."""

    # greedy: best path; lexicon: beam search over the words of the train transcripts
    # (torchaudio's ctc_decoder, no LM); lexicon+lm: the same beam with the word n-gram LM.
    decoders: list[DecoderName] = Field(min_length=1)
    default: DecoderName  # the headline table's and the exported model's decoder
    beam_size: PositiveInt
    lm: LMConfig
    grid: GridConfig

    @model_validator(mode="after")
    def _default_is_scored(self) -> DecodingConfig:
        if len(set(self.decoders)) != len(self.decoders):
            raise ValueError(f"decoding.decoders lists a decoder twice: {self.decoders}")
        if self.default not in self.decoders:
            raise ValueError(
                f"decoding.default '{self.default}' is not one of decoding.decoders {self.decoders}"
            )
        return self


def _refuse_directly_trained_students(students: Any) -> None:
    """``students`` holds distilled students only: one with alpha 0 belongs under ``twins``."""
    if not isinstance(students, dict):
        return
    direct = [n for n, s in students.items() if isinstance(s, dict) and s.get("alpha") in (0, 0.0)]
    if direct:
        moves = ", ".join(f"students.{n} -> twins.{n}" for n in direct)
        raise ValueError(
            f"students with alpha 0 are directly trained twins: move them under twins: ({moves}), "
            f"with their epochs, seed and own keys and without alpha"
        )


class Params(Strict):
    """The whole ``params.yaml``: every section is required."""

    data: DataConfig
    features: FeaturesConfig
    tokenizer: TokenizerConfig
    train: TrainConfig
    teachers: TeachersConfig
    ensemble: EnsembleConfig
    soft_targets: SoftTargetsConfig
    student_defaults: StudentDefaults
    twins: dict[str, TwinConfig]
    students: dict[str, StudentConfig]
    export: ExportConfig
    evaluate: EvaluateConfig
    decoding: DecodingConfig

    @model_validator(mode="before")
    @classmethod
    def _fill_students(cls, raw: Any) -> Any:
        """Every twin and student takes the keys it leaves out from ``student_defaults``."""
        if not isinstance(raw, dict):
            return raw
        _refuse_directly_trained_students(raw.get("students"))
        defaults = raw.get("student_defaults")
        if not isinstance(defaults, dict):
            return raw
        shared = {k: v for k, v in defaults.items() if k in StudentDefaults.model_fields}
        filled = dict(raw)
        for section in ("twins", "students"):
            entries = raw.get(section)
            if isinstance(entries, dict):
                filled[section] = {
                    n: {**shared, **s} if isinstance(s, dict) else s for n, s in entries.items()
                }
        return filled

    @model_validator(mode="after")
    def _names(self) -> Params:
        if "baseline" not in self.twins:
            raise ValueError("twins: a 'baseline' twin is required (the directly trained student)")
        if "distilled" not in self.students:
            raise ValueError("students: a 'distilled' student is required")
        both = set(self.twins) & set(self.students)
        if both:
            names = ", ".join(sorted(both))
            raise ValueError(f"twins and students both name {names}: a name is either a twin or a student")
        for section, names in (("twins", self.twins), ("students", self.students)):
            clash = set(names) & set(self.teacher_names())
            if clash:
                raise ValueError(f"{section}: {', '.join(sorted(clash))} is also a teacher's name")
        for name, s in self.students.items():
            self._check_twin(name, s)
        return self

    def _check_twin(self, name: str, s: StudentConfig) -> None:
        """A distilled student's twin exists, trains without a teacher, and matches its recipe."""
        where = f"students.{name}.twin"
        if s.twin is None:
            raise ValueError(
                f"{where} is required: name the directly trained model it is compared "
                f"with (a key of twins, or a teacher's name)"
            )
        if s.twin in self.teacher_names():
            t = self.teacher(s.twin)
            if s.twin != "guide" and t.fork is None and self.ensemble.align == "guide":
                raise ValueError(
                    f"{where}: '{s.twin}' trains with the guided-CTC term (it learns from the guide); "
                    f"a twin learns from transcripts alone: the guide, a fork of it, or a key of twins"
                )
            recipe = (t.model, t.epochs, self.teachers.convergence, t.seed, 1.0, t.fork)
        elif s.twin in self.twins:
            recipe = self.student_recipe(s.twin)
        else:
            raise ValueError(f"{where}: '{s.twin}' is neither a teacher's name nor a key of twins")
        mine = self.student_recipe(name)
        labels = (
            "model",
            "epochs (the cap)",
            "convergence (the stopping rule)",
            "seed",
            "labelled_fraction",
            "fork (the warm start)",
        )
        for label, a, b in zip(labels, mine, recipe):
            if a != b:
                raise ValueError(
                    f"{where}: '{s.twin}' differs in {label} ({b} vs {a}); twins "
                    f"share architecture, epoch cap, stopping rule, seed and labels"
                )

    def student_names(self) -> list[str]:
        """Every small model, the twins first: each is ``student.<name>`` in the reports."""
        return [*self.twins, *self.students]

    def distilled_students(self) -> list[str]:
        """Students that learn from the teachers (``students``): each is exported and compared."""
        return list(self.students)

    def student(self, name: str) -> TwinConfig | StudentConfig:
        """The config of twin or student ``name``."""
        if name in self.twins:
            return self.twins[name]
        if name not in self.students:
            known = ", ".join(self.student_names())
            raise MissingError(f"'{name}' is neither a key of twins nor of students; known: {known}")
        return self.students[name]

    def student_model(self, name: str) -> ModelConfig:
        """The architecture of twin or student ``name``: its own ``model`` or ``student_defaults.model``."""
        return self.student(name).model

    def student_epochs(self, name: str) -> int:
        """The update budget of twin or student ``name`` in passes over the train split."""
        return self.student(name).epochs

    def student_recipe(self, name: str) -> tuple[Any, ...]:
        """What a student shares with its twin: architecture, cap, stopping rule, seed, labels, fork."""
        s = self.student(name)
        return (
            self.student_model(name),
            self.student_epochs(name),
            s.convergence,
            s.seed,
            s.labelled_fraction,
            s.fork,
        )

    def convergence(self, name: str) -> ConvergenceConfig:
        """The stopping rule of model ``name``: a teacher's (``guide`` or a key of
        ``teachers.others``) or a twin's or student's."""
        if name == "guide" or name in self.teachers.others:
            return self.teachers.convergence
        return self.student(name).convergence

    def twin_model(self, name: str) -> str:
        """The evaluation name of the model student ``name`` is compared with."""
        twin = self.students[name].twin or "baseline"
        return f"teacher.{twin}" if twin in self.teacher_names() else f"student.{twin}"

    def teacher(self, name: str) -> TeacherConfig:
        """The config of teacher ``name`` (``guide`` or a key of ``teachers.others``)."""
        if name == "guide":
            return self.teachers.guide
        if name not in self.teachers.others:
            raise MissingError(f"unknown teacher '{name}'; known: {', '.join(self.teacher_names())}")
        return self.teachers.others[name]

    def teacher_names(self) -> list[str]:
        """All ensemble members, the guide first."""
        return ["guide", *self.teachers.others]


class ParamsError(InputError, ValueError):
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
# ``*`` stands for one user-chosen name (a teacher's, a student's).
MOVED_KEYS = {
    "evaluate.rtf_utterances": "export.rtf_utterances",
    "evaluate.decoder": "decoding.default (and decoding.decoders, every decoder evaluate scores)",
    "evaluate.beam_size": "decoding.beam_size",
    "train.epochs": "twins.<name>.epochs and students.<name>.epochs (every model sets its own)",
    "student": "student_defaults.model",
    "distill": "soft_targets",
    "guide": "teachers.guide",
    "teachers.*": "teachers.others.*",
}


# Keys that never existed where the error found them, with what to do instead.
KEY_NOTES = {
    "twins.*.alpha": "a twin trains on its transcripts alone (alpha 0); distilled students go under students",
}


def _moved(dotted: str, table: dict[str, str] = MOVED_KEYS) -> str | None:
    """Where key ``dotted`` moved, if it is one of ``table``'s (:data:`MOVED_KEYS`)."""
    parts = dotted.split(".")
    for old, new in table.items():
        pattern = old.split(".")
        if len(pattern) == len(parts) and all(p in ("*", q) for p, q in zip(pattern, parts)):
            names = iter(q for p, q in zip(pattern, parts) if p == "*")
            return ".".join(next(names) if p == "*" else p for p in new.split("."))
    return None


def _describe(e: dict[str, Any]) -> str:
    """One pydantic error as one line that names its key."""
    dotted = ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        valid = _valid_keys(Params, e["loc"])
        hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
        moved = _moved(dotted)
        if moved:
            hint = f"; it moved to {moved}{hint}"
        note = _moved(dotted, KEY_NOTES)
        if note:
            hint = f"; {note}{hint}"
        return f"unknown key '{dotted}'{hint}"
    if e["type"] == "missing":
        return f"missing {'section' if len(e['loc']) == 1 else 'key'} '{dotted}'"
    if not e["loc"]:  # a whole-file check: its message names the keys
        return e["msg"].removeprefix("Value error, ")
    return f"'{dotted}': {e['msg']} (got {e.get('input')!r})"


def format_errors(err: ValidationError, source: str) -> str:
    """Human-readable summary of a pydantic error, naming each offending key: one line for
    one error, else a heading and one indented line per error."""
    errors = err.errors()
    if any(e["type"] == "missing" and e["loc"] == ("student_defaults",) for e in errors):
        # Without student_defaults every student lacks the same keys: name the section once.
        errors = [
            e
            for e in errors
            if not (
                e["type"] == "missing"
                and e["loc"][0] in ("twins", "students")
                and e["loc"][-1] in StudentDefaults.model_fields
            )
        ]
    lines = [_describe(e) for e in errors]
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    return "\n".join([f"{source}: invalid parameters", *(f"  {line}" for line in lines)])


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate an already-loaded params mapping."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(format_errors(err, source)) from None


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The raw mapping of a params file; a missing or unparsable file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({e})") from None
    return {} if raw is None else raw


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml``; raises :class:`ParamsError` naming bad keys."""
    return parse_params(read_params(path), str(path))


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``overlay``'s keys set; a mapping merges into a mapping."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def override(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of raw params with each dotted key of ``changes`` set (``{"train.lr": 1e-3}``;
    a mapping value merges into the mapping there); the caller validates the result."""
    out = raw
    for key, value in changes.items():
        for part in reversed(key.split(".")):
            value = {part: value}
        out = merge(out, value)
    return copy.deepcopy(out) if out is raw else out


def default_params(changes: dict[str, Any] | None = None, path: str | Path = DEFAULT_PARAMS) -> Params:
    """This checkout's ``params.yaml`` with dotted-key ``changes``, validated: the one way for
    code and tests to build a complete config (``default_params({"train.lr": 1e-3}).train``)."""
    source = f"{path} with {changes}" if changes else str(path)
    return parse_params(override(read_params(path), changes or {}), source)
