"""Shared plumbing for the thin scripts in ``stages/``: logging, params, clean errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pipeline.config import Params, ParamsError, load_params
from pipeline.errors import InputError

log = logging.getLogger("asr_distill")


def setup_logging() -> None:
    """Log lines with time, level and logger name to stderr, at INFO."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def parser(description: str, *required: str) -> argparse.ArgumentParser:
    """An argument parser with ``--params`` and one required option per name in ``required``
    (``"soft-targets"`` -> ``--soft-targets``, read as ``args.soft_targets``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="parameters file (default params.yaml)")
    for flag in required:
        p.add_argument(f"--{flag}", required=True)
    return p


def run(main: Callable[[argparse.Namespace, Params], None], args: argparse.Namespace) -> None:
    """Load params, run ``main``; known failures exit 1 with a one-paragraph message."""
    setup_logging()
    try:
        params = load_params(args.params)
        main(args, params)
    except (ParamsError, InputError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)  # the user's to fix: one line; anything else is a bug and keeps its traceback
        sys.exit(1)
