"""The ``asr-distill`` command line.

Usage::

    asr-distill transcribe speech.wav other.flac              # one line of text per file
    asr-distill transcribe --json *.wav                       # JSON lines with timings
    asr-distill transcribe --decoder greedy speech.wav        # not the model's default decoder
    asr-distill transcribe --model export/distilled/student.int8.onnx speech.wav
    asr-distill transcribe --window 30 --context 5 meeting.flac  # long audio: 30 s windows
    asr-distill transcribe --stream --model export/<student>/streaming.onnx speech.wav
    asr-distill ci-report --base origin/main                  # Markdown: metrics and params diff
    asr-distill profile small                                 # params.yaml + profiles/small.yaml
    asr-distill profile tiny --exp-run --temp                 # the same as a dvc exp run

Text goes to stdout; errors name the file on stderr. Every file is attempted; a bad file
(missing, a directory, unreadable, empty, non-finite or silent audio: the checks and reasons
of the prepare stage) gets one line ``FILE: problem``, and the exit code is 1 if any failed
(2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MODEL = Path("export/distilled/student.onnx")
# pipeline.deploy.transcribe's defaults and pipeline.model.decoding's names, repeated so that --help does
# not import torch
DECODERS = ("greedy", "lexicon", "lexicon+lm")
WINDOW_SECONDS = 20.0
CONTEXT_SECONDS = 4.0


def build_parser() -> argparse.ArgumentParser:
    """The ``asr-distill`` parser: one subcommand per command (``transcribe``, ``ci-report``,
    ``profile``)."""
    p = argparse.ArgumentParser(prog="asr-distill", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    add_transcribe_parser(sub)
    add_ci_report_parser(sub)
    add_profile_parser(sub)
    return p


def add_transcribe_parser(sub: argparse._SubParsersAction) -> None:
    """The ``transcribe`` subcommand: files, model, output, decoder, threads, windows, streaming."""
    t = sub.add_parser("transcribe", help="turn audio files into text with the exported student")
    t.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="audio files (wav, flac, ogg, mp3, ...; any sample rate, any channels)",
    )
    t.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help="ONNX model; config.json and tokenizer.model are read from its "
        f"directory (default {DEFAULT_MODEL}; int8: export/distilled/student.int8.onnx)",
    )
    t.add_argument(
        "--json",
        action="store_true",
        help="print JSON lines: file, text, decoder, audio_seconds, compute_seconds, rtf, seconds",
    )
    t.add_argument(
        "--decoder",
        choices=DECODERS,
        help="greedy (best path), lexicon (beam over the training words) or lexicon+lm (the same "
        "with the word LM); default: the model's own, from its config.json",
    )
    t.add_argument("--threads", type=int, default=1, help="CPU threads for fbank and the model (default 1)")
    t.add_argument(
        "--window",
        type=float,
        default=WINDOW_SECONDS,
        metavar="SECONDS",
        help="longer audio runs through the model in windows of this many seconds, so memory "
        f"stays bounded (default {WINDOW_SECONDS:g})",
    )
    t.add_argument(
        "--context",
        type=float,
        default=CONTEXT_SECONDS,
        metavar="SECONDS",
        help="audio on each side of a window's kept middle; overlapping windows share it "
        f"(default {CONTEXT_SECONDS:g})",
    )
    t.add_argument(
        "--stream",
        action="store_true",
        help="a streaming student: feed each file chunk by chunk as if live, print partial "
        "results on stderr as they grow (uses streaming.onnx from the --model directory)",
    )


def add_ci_report_parser(sub: argparse._SubParsersAction) -> None:
    """The ``ci-report`` subcommand: the revision to compare with and the repository."""
    r = sub.add_parser("ci-report", help="Markdown report of metrics and params changed since a revision")
    r.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/main")
    r.add_argument("--repo", type=Path, default=Path("."), help="repository root (default .)")


def add_profile_parser(sub: argparse._SubParsersAction) -> None:
    """The ``profile`` subcommand: the profile, the params file, and show or run instead of write."""
    f = sub.add_parser(
        "profile",
        help="apply a parameter profile (profiles/<name>.yaml) to params.yaml, or run it with dvc exp run",
    )
    f.add_argument("name", nargs="?", help="profile name or a YAML file; without it, list the profiles")
    f.add_argument("--params", type=Path, default=Path("params.yaml"), help="default params.yaml")
    f.add_argument("--show", action="store_true", help="print the profile as dvc exp run -S arguments")
    f.add_argument(
        "--exp-run",
        nargs=argparse.REMAINDER,
        metavar="DVC_ARGS",
        help="run `dvc exp run -S ...` instead of writing params.yaml; what follows goes to dvc exp run "
        "(--temp or --queue leave the workspace alone, -n NAME names the experiment)",
    )


def error(message: str) -> None:
    """Print ``asr-distill: error: message`` on stderr."""
    print(f"asr-distill: error: {message}", file=sys.stderr)


def transcribe(args: argparse.Namespace) -> int:
    """Transcribe every file; a failure is reported and the next file is still tried."""
    import torch

    from pipeline.audio.read import AudioError
    from pipeline.deploy.transcribe import ExportedModel

    torch.set_num_threads(args.threads)  # fbank runs in torch; extra threads only contend
    try:
        if args.stream:
            model = load_streaming(args.model, args.threads, args.decoder)
        else:
            model = ExportedModel.load(args.model, args.threads, args.window, args.context, args.decoder)
    except (FileNotFoundError, ValueError, KeyError) as e:
        error(str(e))
        return 1
    failed = 0
    for path in args.files:
        try:
            if args.stream:
                result = model.transcribe(path, partial_printer(path))
            else:
                result = model.transcribe(path).as_dict()
        except AudioError as e:
            error(str(e))
            failed += 1
            continue
        except Exception as e:  # one bad file must not stop the batch; name it and go on
            logging.getLogger(__name__).debug("%s", path, exc_info=True)
            error(f"{path}: transcription failed ({type(e).__name__}: {e})")
            failed += 1
            continue
        print(json.dumps(result, ensure_ascii=False) if args.json else result["text"], flush=True)
    if failed:
        error(f"{failed} of {len(args.files)} files failed")
    return 1 if failed else 0


def load_streaming(model: Path, threads: int, decoder: str | None):
    """The streaming graph of the export directory holding ``model`` (or ``model`` itself)."""
    from pipeline.deploy.runtime import STREAMING
    from pipeline.deploy.streaming import StreamingModel

    path = model if model.name == STREAMING else model.parent / STREAMING
    return StreamingModel.load(path, threads, decoder)


def partial_printer(path: Path):
    """Print ``FILE [seconds heard] text so far`` on stderr."""

    def show(seconds: float, text: str) -> None:
        print(f"{path} [{seconds:6.2f} s] {text}", file=sys.stderr, flush=True)

    return show


def ci_report(args: argparse.Namespace) -> int:
    """Print the Markdown CI report against ``--base``; 1 if it cannot be made."""
    from pipeline.ci_report import ReportError
    from pipeline.ci_report import ci_report as build

    try:
        print(build(args.base, args.repo))
    except ReportError as e:
        error(str(e))
        return 1
    return 0


def profile(args: argparse.Namespace) -> int:
    """Apply, show or run a parameter profile (``pipeline.profiles.command``); 1 on a bad profile."""
    from pipeline.errors import InputError
    from pipeline.profiles import command

    try:
        return command(args.name, args.params, args.show, args.exp_run)
    except InputError as e:
        error(str(e))
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``asr-distill`` command on ``argv`` (default: the command line); its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    commands = {"transcribe": transcribe, "ci-report": ci_report, "profile": profile}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
