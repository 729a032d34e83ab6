"""The whole ``params.yaml`` as one model: the sections, each twin's and student's resolution
from ``student_defaults``, and the checks across sections."""

from __future__ import annotations

from typing import Any

from pydantic import (
    model_validator,
)

from pipeline.config import schema
from pipeline.errors import MissingError


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


class Params(schema.Strict):
    """The whole ``params.yaml``: every section is required."""

    data: schema.DataConfig
    features: schema.FeaturesConfig
    tokenizer: schema.TokenizerConfig
    train: schema.TrainConfig
    teachers: schema.TeachersConfig
    ensemble: schema.EnsembleConfig
    soft_targets: schema.SoftTargetsConfig
    student_defaults: schema.StudentDefaults
    twins: dict[str, schema.TwinConfig]
    students: dict[str, schema.StudentConfig]
    export: schema.ExportConfig
    evaluate: schema.EvaluateConfig
    decoding: schema.DecodingConfig

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
        shared = {k: v for k, v in defaults.items() if k in schema.StudentDefaults.model_fields}
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

    def _check_twin(self, name: str, s: schema.StudentConfig) -> None:
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

    def student(self, name: str) -> schema.TwinConfig | schema.StudentConfig:
        """The config of twin or student ``name``."""
        if name in self.twins:
            return self.twins[name]
        if name not in self.students:
            known = ", ".join(self.student_names())
            raise MissingError(f"'{name}' is neither a key of twins nor of students; known: {known}")
        return self.students[name]

    def student_model(self, name: str) -> schema.ModelConfig:
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

    def convergence(self, name: str) -> schema.ConvergenceConfig:
        """The stopping rule of model ``name``: a teacher's (``guide`` or a key of
        ``teachers.others``) or a twin's or student's."""
        if name == "guide" or name in self.teachers.others:
            return self.teachers.convergence
        return self.student(name).convergence

    def twin_model(self, name: str) -> str:
        """The evaluation name of the model student ``name`` is compared with."""
        twin = self.students[name].twin or "baseline"
        return f"teacher.{twin}" if twin in self.teacher_names() else f"student.{twin}"

    def teacher(self, name: str) -> schema.TeacherConfig:
        """The config of teacher ``name`` (``guide`` or a key of ``teachers.others``)."""
        if name == "guide":
            return self.teachers.guide
        if name not in self.teachers.others:
            raise MissingError(f"unknown teacher '{name}'; known: {', '.join(self.teacher_names())}")
        return self.teachers.others[name]

    def teacher_names(self) -> list[str]:
        """All ensemble members, the guide first."""
        return ["guide", *self.teachers.others]
