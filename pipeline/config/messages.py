"""One line per bad key of ``params.yaml``: unknown keys with the valid ones, keys that moved,
missing sections."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from pipeline.config.params import Params
from pipeline.config.schema import StudentDefaults
from pipeline.errors import InputError


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
