"""The ``export`` stage, whole: every distilled student (``export/<name>/``) as TorchScript,
ONNX fp32 and ONNX int8 with its decoding resources (lexicon, LM, the LM weight and word score
chosen on dev), with parity checks (logits against eager PyTorch, test WER of every format),
then the single-thread CPU real-time-factor benchmark of the ensemble, the students in PyTorch
and the exported students, side by side in one run, and the deployed runtimes end to end (file
read, fbank, model, the default decoder) with their test WER.

Writes ``export/`` (see :mod:`pipeline.export.formats`) and ``reports/export.json``
(``parity``, ``wer``, ``decoding`` (the dev grid), ``deployed``, ``rtf``, ``sizes``,
``goals``); ``evaluate`` copies the benchmark into ``reports/metrics.json`` (see
:mod:`pipeline.export.benchmark`).

Usage: python stages/export.py --teachers models/teachers --students models/students \\
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \\
         --lm data/lm --out export --report reports/export.json
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.config import Params
from pipeline.deploy.runtime import ONNX_FP32, ONNX_INT8, STREAMING, single_thread, torch_runner
from pipeline.deploy.streaming import StreamingModel, time_streaming
from pipeline.deploy.transcribe import ExportedModel, end_to_end_rtf
from pipeline.export import formats as ex
from pipeline.export.benchmark import run_benchmark
from pipeline.io import atomic_path, read_jsonl, write_json
from pipeline.model.conformer import ConformerCTC, load_model, model_files
from pipeline.store import Store
from pipeline.tokens import load_tokenizer

log = logging.getLogger("asr_distill")


@dataclass
class ExportData:
    """What every student's export reads: the tokenizer (model and file), the test and dev
    utterances (:func:`pipeline.export.formats.load_split`), test's audio files by id, the
    decoding resources (the ``lm`` stage's folder) and the test features' store metadata."""

    sp: Any
    tokenizer: Path
    test: list[dict[str, Any]]
    dev: list[dict[str, Any]]
    audio: dict[str, Path]
    resources: Path
    features_meta: dict[str, Any]


def export_stage(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    """The stage's options (``--teachers``, ``--students``, ``--features``, ``--manifests``,
    ``--tokenizer``, ``--lm``, ``--out``, ``--report``) -> ``--out`` and the report, returned."""
    torch.set_num_threads(1)  # batch-1 parity runs and the benchmark: one thread
    sp = load_tokenizer(args.tokenizer)
    files = model_files(params, args.teachers, args.students)
    students = {n: load_model(files[f"student.{n}"]) for n in params.student_names()}
    features, manifests = Path(args.features), Path(args.manifests)
    data = ExportData(
        sp,
        Path(args.tokenizer),
        test=ex.load_split(features / "test", manifests / "test.jsonl"),
        dev=ex.load_split(features / "dev", manifests / "dev.jsonl"),
        audio={r["id"]: Path(r["audio"]) for r in read_jsonl(manifests / "test.jsonl")},
        resources=Path(args.lm),
        features_meta=Store(features / "test").meta,
    )
    distilled = params.distilled_students()
    twins = sorted(
        {params.twin_model(n) for n in distilled if params.twin_model(n).startswith("teacher.")}
    )  # timed beside their students
    report: dict = {"parity": {}, "wer": {}, "decoding": {}, "deployed": {}}
    with atomic_path(args.out) as out:
        out.mkdir()
        for name in distilled:  # export/<name>/: every student that learned from the teachers
            export_student(name, students[name], out / name, data, params, report)
        teachers = {n: load_model(files[f"teacher.{n}"]) for n in params.teacher_names()}
        report.update(
            run_benchmark(
                teachers,
                students,
                files,
                {n: out / n for n in distilled},
                data.test[: params.export.rtf_utterances],
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
    return report


def export_student(
    name: str, model: ConformerCTC, out_dir: Path, data: ExportData, params: Params, report: dict
) -> None:
    """Export ``student.<name>`` into ``out_dir`` with the LM weights it chose on dev, check
    every format's parity, run the deployed runtimes and, for a streaming student, time its
    chunks; each result goes into its section of ``report``."""
    log.info("export: student.%s", name)
    out_dir.mkdir()
    decoding = params.decoding
    weights = {"lm_weight": 0.0, "word_score": 0.0}  # the LM's: none without lexicon+lm
    if "lexicon+lm" in decoding.decoders:
        with single_thread():
            dev_logits = ex.all_logits(torch_runner(model.eval()), [u["feats"] for u in data.dev])
        chosen = ex.choose_lm_weights(
            dev_logits, [u["text"] for u in data.dev], data.sp, data.resources, decoding
        )
        report["decoding"][f"student.{name}"] = chosen
        weights = {k: chosen[k] for k in weights}
    entry = ex.decoding_entry(decoding, **weights)
    ex.write_artifacts(
        model, out_dir, data.tokenizer, data.features_meta, params.export.opset, entry, data.resources
    )
    test_feats, test_texts = [u["feats"] for u in data.test], [u["text"] for u in data.test]
    checked = ex.check_parity(
        model, out_dir, test_feats, test_texts, data.sp, params.export, f"student.{name}"
    )
    report["parity"][f"student.{name}"] = checked["parity"]
    report["wer"].update(checked["wer"])
    for fmt, file in (("onnx", ONNX_FP32), ("int8", ONNX_INT8)):
        report["deployed"][f"student.{name}.{fmt}"] = deployed(out_dir / file, data.test, data.audio, params)
    if model.cfg.streaming:  # one chunk per call, one thread, as a device runs it
        timed = data.test[: params.export.rtf_utterances]
        report.setdefault("streaming", {})[f"student.{name}"] = time_streaming(
            StreamingModel.load(out_dir / STREAMING),
            [u["feats"] for u in timed],
            sum(u["duration"] for u in timed),
            params.export.rtf_repeats,
        )


def deployed(model_file: Path, test: list[dict], audio: dict[str, Path], params: Params) -> dict:
    """One exported runtime as ``asr-distill transcribe`` runs it (one thread, its default
    decoder): test WER with its interval from the test fbank, and the end-to-end real-time
    factor on the benchmark's utterances read from their audio files."""
    with single_thread():
        model = ExportedModel.load(model_file, threads=1)
        texts = [model.decode(u["feats"]) for u in test]
        result = ex.deployed_wer(texts, [u["text"] for u in test], model.decoder.name, params.evaluate)
        files = [audio[u["id"]] for u in test[: params.export.rtf_utterances]]
        result.update(end_to_end_rtf(model, files, params.export.rtf_repeats))
    log.info("deployed %s: %s", model_file, result)
    return result
