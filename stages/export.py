"""Stage ``export``: every distilled student (``export/<name>/``) as TorchScript, ONNX fp32
and ONNX int8, with parity checks (logits against eager PyTorch, test WER of every format),
then the single-thread CPU real-time-factor benchmark of the ensemble, the students in
PyTorch and the exported students, side by side in one run.

Writes ``export/`` (see :mod:`pipeline.export`) and ``reports/export.json``
(``parity``, ``wer``, ``rtf``, ``sizes``, ``goals``); ``evaluate`` copies the
benchmark into ``reports/metrics.json`` (see :mod:`pipeline.benchmark`).

Usage: python stages/export.py --teachers models/teachers --students models/students \
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --out export --report reports/export.json
"""

import logging
from pathlib import Path

import torch

from pipeline import export as ex
from pipeline.benchmark import run_benchmark
from pipeline.io import atomic_path, write_json
from pipeline.model import load_model, model_files
from pipeline.runtime import STREAMING
from pipeline.stage import parser, run
from pipeline.store import Store
from pipeline.streaming import StreamingModel, time_streaming
from pipeline.tokens import load_tokenizer

log = logging.getLogger("asr_distill")


def main(args, params):
    torch.set_num_threads(1)  # batch-1 parity runs and the benchmark: one thread
    sp = load_tokenizer(args.tokenizer)
    files = model_files(params, args.teachers, args.students)
    students = {n: load_model(files[f"student.{n}"]) for n in params.student_names()}
    test = ex.load_split(Path(args.features) / "test", Path(args.manifests) / "test.jsonl")
    distilled = params.distilled_students()
    twins = sorted(
        {params.twin_model(n) for n in distilled if params.twin_model(n).startswith("teacher.")}
    )  # timed beside their students
    report: dict = {"parity": {}, "wer": {}}
    with atomic_path(args.out) as out:
        out.mkdir()
        for name in distilled:  # export/<name>/: every student that learned from the teachers
            log.info("export: student.%s", name)
            (out / name).mkdir()
            ex.write_artifacts(
                students[name],
                out / name,
                Path(args.tokenizer),
                Store(Path(args.features) / "test").meta,
                params.export.opset,
            )
            checked = ex.check_parity(
                students[name],
                out / name,
                [u["feats"] for u in test],
                [u["text"] for u in test],
                sp,
                params.export,
                f"student.{name}",
            )
            report["parity"][f"student.{name}"] = checked["parity"]
            report["wer"].update(checked["wer"])
            if students[name].cfg.streaming:  # one chunk per call, one thread, as a device runs it
                timed = test[: params.export.rtf_utterances]
                report.setdefault("streaming", {})[f"student.{name}"] = time_streaming(
                    StreamingModel.load(out / name / STREAMING),
                    [u["feats"] for u in timed],
                    sum(u["duration"] for u in timed),
                    params.export.rtf_repeats,
                )
        teachers = {n: load_model(files[f"teacher.{n}"]) for n in params.teacher_names()}
        report.update(
            run_benchmark(
                teachers,
                students,
                files,
                {n: out / n for n in distilled},
                test[: params.export.rtf_utterances],
                params.ensemble.combine,
                params.export.rtf_repeats,
                twins,
                goals=params.export.goals,
            )
        )
    write_json(args.report, report)
    log.info(
        "int8 student vs ensemble: %sx faster, RTF %s (goals: %gx, RTF <= %g)",
        report["goals"]["int8_speedup"],
        report["rtf"]["student.distilled.int8"],
        params.export.goals.min_speedup,
        params.export.goals.max_rtf,
    )


if __name__ == "__main__":
    flags = ("teachers", "students", "features", "manifests", "tokenizer", "out", "report")
    run(main, parser(__doc__, *flags).parse_args())
