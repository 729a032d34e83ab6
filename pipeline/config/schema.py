"""The sections of ``params.yaml``, one strict pydantic model each, with their own checks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

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
    # closed: a few hundred everyday words (pipeline/prepare/closed_lexicon.py), test OOV near 0;
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
    """``data:``: which corpus ``prepare`` builds, and its checks and limits."""

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
    """``tokenizer:``: the sentencepiece model of the train transcripts."""

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
    # arrives (pipeline/deploy/streaming.py runs it chunk by chunk).
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
    """``ensemble:``: how the teachers' posteriors combine, and whether they are aligned to the guide."""

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
