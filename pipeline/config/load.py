"""Reading ``params.yaml``, overriding dotted keys and the checkout's defaults."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from pipeline.config.messages import ParamsError, format_errors
from pipeline.config.params import Params
from pipeline.errors import MissingError

# The checkout's own params.yaml: the defaults every other config starts from.
DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


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
