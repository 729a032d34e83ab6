"""Profiles: short overlays of ``params.yaml`` in ``profiles/<name>.yaml``.

A profile holds only what differs from ``params.yaml``: a mapping merges into the mapping
at the same place, any other value replaces it, and ``<name>: null`` under
``teachers.others``, ``twins`` or ``students`` removes that model. Two ways to use one::

    asr-distill profile tiny                       # params.yaml := params.yaml + profiles/tiny.yaml
    asr-distill profile tiny --exp-run --temp      # dvc exp run -S ... (the overlay), workspace untouched

The first rewrites ``params.yaml`` in place (atomically, comments kept: the profile's own
comments replace those of the keys it changes, its header replaces the file's) and marks
the file with the profile's name, so that a second profile is not stacked on the first.
The second passes the overlay to ``dvc exp run`` as Hydra overrides (``-S key=value``,
``+key=value`` for a new key, ``~key`` to remove one): DVC applies them to ``params.yaml``
the way it applies any ``-S``, so both give the same parameters. Either way the result is
validated first; a bad key fails naming the key and the profile file.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from pipeline.config import Params, parse_params
from pipeline.errors import InputError, MissingError

PROFILES = Path("profiles")
# Mappings whose entries a profile may remove with ``<name>: null``.
REMOVABLE = ("teachers.others", "twins", "students")
MARKER = re.compile(r"^# profile: (\S+) ")


class ProfileError(InputError):
    """A profile that cannot be applied; the message names the file and the key."""


def _yaml() -> YAML:
    y = YAML()  # round trip: comments, key order and flow style survive
    y.width = 4096
    y.preserve_quotes = True
    y.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return y


def _plain(node: Any) -> Any:
    """A ruamel tree as plain dicts and lists (what ``yaml.safe_load`` would give)."""
    return json.loads(json.dumps(node))


def profile_path(name: str, repo: Path = Path(".")) -> Path:
    """``profiles/<name>.yaml`` under ``repo``, or ``name`` itself if it is a YAML file."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else repo / PROFILES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available(repo)) or "none"
        raise MissingError(f"{path}: no such profile (profiles here: {known})")
    return path


def available(repo: Path = Path(".")) -> list[str]:
    """The profile names in ``repo/profiles``."""
    return sorted(p.stem for p in (repo / PROFILES).glob("*.yaml"))


def describe(path: Path) -> str:
    """The first line of a profile's header comment, without the ``#``."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        return line.lstrip("# ").strip()
    return ""


def _load(path: Path) -> CommentedMap:
    try:
        data = _yaml().load(path.read_text())
    except Exception as e:  # ruamel's errors name the line
        raise ProfileError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return CommentedMap()
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    return data


def _removal(key: str, base: dict[str, Any], name: str, profile: Path, missing_ok: bool = False) -> bool:
    """Whether ``key: null`` removes an entry (under :data:`REMOVABLE`); a name that is not
    there is an error, unless ``missing_ok`` (the profile is applied again)."""
    parent = key.rpartition(".")[0]
    if parent not in REMOVABLE:
        return False
    if name not in base and not missing_ok:
        raise ProfileError(f"{profile}: '{key}: null' removes an entry, but there is no '{key}'")
    return True


def _render(value: Any) -> str:
    """A value in Hydra's override grammar (what ``dvc exp run -S`` parses)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:  # 1e-05 -> 1.0e-05, a float to every parser
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    raise ProfileError(f"cannot pass {value!r} ({type(value).__name__}) to dvc exp run -S")


def overrides(
    base: dict[str, Any], overlay: dict[str, Any], profile: Path, prefix: str = "", again: bool = False
) -> Iterator[str]:
    """The overlay as ``dvc exp run -S`` arguments (Hydra overrides), leaf by leaf; what
    ``base`` already has is left out (``again``: the profile was applied to ``base`` before)."""
    for name, value in overlay.items():
        key = f"{prefix}{name}"
        if value is None and _removal(key, base, name, profile, again):
            if name in base:
                yield f"~{key}"
        elif isinstance(value, dict) and isinstance(base.get(name), dict):
            yield from overrides(base[name], value, profile, f"{key}.", again)
        elif name in base and base[name] == value:
            continue  # already so
        else:
            yield f"{'' if name in base else '+'}{key}={_render(_plain(value))}"


def _comment(node: CommentedMap, key: str) -> tuple[str, str]:
    """``(end-of-line comment, full comment lines after it)`` of ``key`` in ``node``."""
    item = node.ca.items.get(key) if isinstance(node, CommentedMap) else None
    token = item[2] if item and len(item) > 2 else None
    if token is None:
        return "", ""
    first, _, rest = token.value.partition("\n")
    return (first if first.lstrip().startswith("#") else ""), rest


def _set_comment(node: CommentedMap, key: str, eol: str, rest: str) -> None:
    """Give ``key`` the end-of-line comment ``eol`` and keep the comment lines ``rest``."""
    if not eol and not rest:
        node.ca.items.pop(key, None)
        return
    node.yaml_add_eol_comment(eol or "#", key)
    node.ca.items[key][2].value = f"{eol}\n{rest}" if eol else f"\n{rest}"


def _apply(
    base: CommentedMap, overlay: CommentedMap, profile: Path, prefix: str = "", again: bool = False
) -> None:
    """Merge ``overlay`` into ``base`` in place (see the module docstring); ``again``: the
    profile was applied to ``base`` before."""
    for name, value in overlay.items():
        key = f"{prefix}{name}"
        if value is None and _removal(key, base, name, profile, again):
            base.pop(name, None)
        elif isinstance(value, dict) and isinstance(base.get(name), dict):
            _apply(base[name], value, profile, f"{key}.", again)
        elif name in base and _plain(base[name]) == _plain(value):
            continue  # already so: its comment stays
        else:
            _, rest = _comment(base, name)
            eol, _ = _comment(overlay, name)
            base[name] = copy.deepcopy(value)
            _set_comment(base, name, eol, rest)


def applied(params_text: str) -> str | None:
    """The name of the profile a params file was written with, if any."""
    match = MARKER.match(params_text)
    return match.group(1) if match else None


def _header(text: str) -> tuple[list[str], str]:
    """Split a YAML text into its leading comment lines and the rest."""
    lines = text.splitlines(keepends=True)
    n = 0
    while n < len(lines) and (lines[n].startswith("#") or not lines[n].strip()):
        n += 1
    return lines[:n], "".join(lines[n:])


class Profile:
    """A profile read against a params file: validated on construction."""

    def __init__(self, name: str, params: Path = Path("params.yaml"), repo: Path = Path(".")) -> None:
        self.path = profile_path(name, repo)
        self.name = self.path.stem
        self.params = Path(params)
        if not self.params.is_file():
            raise MissingError(f"{self.params}: parameters file not found")
        self.text = self.params.read_text()
        current = applied(self.text)
        if current and current != self.name:
            raise ProfileError(
                f"{self.params} already has profile '{current}' applied; a profile applies to the "
                f"defaults: restore them first (git checkout {self.params}), then apply '{self.name}'"
            )
        self.base = _load(self.params)
        parse_params(_plain(self.base), str(self.params))  # the base's own errors name params.yaml
        self.overlay = _load(self.path)
        self.again = current == self.name
        self.merged = copy.deepcopy(self.base)
        _apply(self.merged, self.overlay, self.path, again=self.again)
        self.result: Params = parse_params(_plain(self.merged), f"{self.path} (applied to {self.params})")

    def raw(self) -> dict[str, Any]:
        """The params with the profile applied, as plain dicts and lists."""
        return _plain(self.merged)

    def overrides(self) -> list[str]:
        """The overlay as ``dvc exp run -S`` arguments."""
        return list(overrides(_plain(self.base), _plain(self.overlay), self.path, again=self.again))

    def text_applied(self) -> str:
        """``params.yaml`` with the profile applied: the profile's header, then the merged keys."""
        out = io.StringIO()
        _yaml().dump(self.merged, out)
        _, body = _header(out.getvalue())
        header, _ = _header(self.path.read_text())
        header = [line for line in header if line.strip()]
        if "#\n" in header:  # the description ends at a bare '#' line (what follows is about the file)
            header = header[: header.index("#\n")]
        marker = (
            f"# profile: {self.name} (params.yaml + {PROFILES / self.path.name}, written by "
            f"`asr-distill profile {self.name}`; `git checkout params.yaml` restores the defaults)\n"
        )
        return marker + "".join(header) + body

    def write(self) -> None:
        """Rewrite the params file with the profile applied, atomically."""
        fd, tmp = tempfile.mkstemp(prefix=f".{self.params.name}.", dir=self.params.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.text_applied())
            os.chmod(tmp, self.params.stat().st_mode & 0o777)
            os.replace(tmp, self.params)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exp_run(self, dvc_args: Sequence[str] = (), repo: Path = Path(".")) -> int:
        """``dvc exp run -S <override> ... <dvc_args>``: the profile as a DVC experiment."""
        cmd = ["dvc", "exp", "run"]
        target = "" if self.params == Path("params.yaml") else f"{self.params}:"  # DVC's file:key form
        for override in self.overrides():
            cmd += ["-S", target + override]
        return subprocess.run([*cmd, *dvc_args], cwd=repo).returncode


def command(name: str | None, params: Path, show: bool, exp_run: Sequence[str] | None) -> int:
    """``asr-distill profile``: list the profiles, show one as ``-S`` arguments, apply it to
    ``params``, or run it as a DVC experiment. Returns the exit code."""
    if name is None:
        for known in available():
            print(f"{known:24s} {describe(profile_path(known))}")
        return 0
    profile = Profile(name, params)
    if show:
        print("\n".join(f"-S {shlex.quote(o)}" for o in profile.overrides()))
        return 0
    if exp_run is not None:
        return profile.exp_run(exp_run)
    profile.write()
    changed = len(profile.overrides())
    print(f"{params}: profile {profile.name} applied ({changed} keys changed); `dvc repro` runs it")
    return 0
