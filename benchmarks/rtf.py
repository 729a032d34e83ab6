"""Re-run the export stage's CPU real-time-factor benchmark on this machine, without exporting.

Run it on the CPU you deploy to, after ``dvc repro export``; prints JSON to stdout.
What is timed is documented in :mod:`pipeline.export.benchmark`.

Usage: python benchmarks/rtf.py [--params params.yaml] [--utterances N] [--repeats N]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from pipeline.config import load_params  # noqa: E402
from pipeline.export.benchmark import run_benchmark  # noqa: E402
from pipeline.export.formats import load_split  # noqa: E402
from pipeline.model.conformer import load_model, model_files  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--utterances", type=int, help="default: export.rtf_utterances")
    p.add_argument("--repeats", type=int, help="default: export.rtf_repeats")
    args = p.parse_args()
    params = load_params(args.params)
    test = load_split(Path("data/features/test"), Path("data/manifests/test.jsonl"))
    bench = test[: args.utterances or params.export.rtf_utterances]
    files = model_files(params, Path("models/teachers"), Path("models/students"))
    teachers = {n: load_model(files[f"teacher.{n}"]) for n in params.teacher_names()}
    students = {n: load_model(files[f"student.{n}"]) for n in params.student_names()}
    exported = {n: Path("export") / n for n in params.distilled_students()}
    twins = sorted(
        {params.twin_model(n) for n in params.distilled_students()}
        - {f"student.{n}" for n in params.student_names()}
    )
    report = run_benchmark(
        teachers,
        students,
        files,
        exported,
        bench,
        params.ensemble.combine,
        args.repeats or params.export.rtf_repeats,
        twins,
        goals=params.export.goals,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
