"""The ``evaluate`` stage, whole: test WER/CER of every teacher, the ensemble and every student
with paired-bootstrap intervals and comparisons, WER by accent (or speaker), the most frequent
word substitutions, the export stage's CPU benchmark with the WER of every runtime (``rtf``,
``sizes``, ``goals``, ``runtime_wer``), all in ``reports/evaluation.json``; the headline
figures in ``reports/metrics.json`` (the DVC metrics file); ``reports/summary.md`` and the plots.

Every system is decoded with every decoder of ``decoding.decoders`` (the lexicon and LM from
the ``lm`` stage; ``lexicon+lm`` with the LM weight and word score export chose on dev for
student.distilled), the headline with ``decoding.default``.

Usage: python stages/evaluate.py --teachers models/teachers --students models/students \\
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \\
         --lm data/lm --soft-targets-report reports/soft_targets.json --prepare-report reports/prepare.json \\
         --train-reports reports --live dvclive --metrics reports/metrics.json \\
         --report reports/evaluation.json --summary reports/summary.md \\
         --plot reports/plots/wer_per_model.json --plots-dir reports/plots --export-report reports/export.json
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.config import Params
from pipeline.evaluate.plots import read_run_curves
from pipeline.evaluate.score import (
    decode_test,
    deployment_metrics,
    evaluate_models,
    headline_metrics,
    lm_weights,
    named_models,
    oov_rates,
    read_speakers,
)
from pipeline.evaluate.summary import read_timings, report_markdown, wer_plot_rows, write_plots
from pipeline.io import atomic_path, read_json, write_json
from pipeline.loader import make_loader
from pipeline.model.conformer import ConformerCTC, load_model, model_files
from pipeline.model.decoding import LEXICON, LM, make_decoder
from pipeline.tokens import load_tokenizer

log = logging.getLogger("asr_distill")

# The soft_targets report's keys that the evaluation report copies as they are.
SOFT_TARGET_KEYS = ("bytes_per_frame", "retained_mass_mean", "retained_mass_min", "temperature", "top_k")


def evaluate_stage(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    """The stage's options (see the module's Usage) -> the evaluation report, the metrics file,
    the summary and the plots; returns the evaluation report."""
    torch.set_num_threads(params.train.threads)
    sp = load_tokenizer(args.tokenizer)
    files = model_files(params, args.teachers, args.students)
    teachers = {n: load_model(files[f"teacher.{n}"]) for n in params.teacher_names()}
    students = {n: load_model(files[f"student.{n}"]) for n in params.student_names()}
    export_report = read_json(args.export_report)
    metrics = score_test(args, params, sp, named_models(teachers, students), export_report)
    prepare = read_json(args.prepare_report)
    metrics["oov_rate"] = oov_rates(prepare)
    soft = read_json(args.soft_targets_report)
    metrics["soft_targets"] = soft_targets_section(soft)
    metrics.update(
        deployment_metrics(export_report, metrics["wer"]["test"], metrics.get("wer_greedy", {}).get("test"))
    )
    write_outputs(args, metrics, soft, prepare, list(teachers), list(students))
    log.info(
        "test WER %s; student.distilled - %s: %s %s; gap_recovered %s %s; int8 speed-up vs ensemble %sx",
        metrics["wer"]["test"],
        metrics["twin"]["student.distilled"],
        metrics["wer_diff"]["student.distilled"],
        metrics["wer_diff_ci"]["student.distilled"],
        metrics["gap_recovered"],
        metrics["gap_recovered_ci"]["student.distilled"],
        metrics["goals"]["int8_speedup"],
    )
    return metrics


def score_test(
    args: argparse.Namespace,
    params: Params,
    sp: Any,
    models: dict[str, ConformerCTC],
    export_report: dict[str, Any],
) -> dict[str, Any]:
    """Decode test with every model, the ensemble and every decoder (``lexicon+lm`` with the
    LM weights of ``export_report``); the metrics of
    :func:`pipeline.evaluate.score.evaluate_models` and the ``decoder`` used."""
    loader = make_loader(Path(args.features), Path(args.manifests), "test", sp, params.train.batch_frames)
    speakers = read_speakers(Path(args.manifests) / "test.jsonl")
    cfg, lm = params.decoding, Path(args.lm)
    weights = lm_weights(export_report) if "lexicon+lm" in cfg.decoders else {"lm_weight": 0, "word_score": 0}
    decoders = {
        d: make_decoder(d, sp, lexicon=lm / LEXICON, lm=lm / LM, beam_size=cfg.beam_size, **weights)
        for d in cfg.decoders
    }
    decoded = decode_test(models, params.ensemble.combine, loader, decoders, cfg.default)
    metrics = evaluate_models(params, models, decoded, speakers)
    metrics["decoder"] = {
        "name": cfg.default,
        "decoders": list(cfg.decoders),
        "beam_size": cfg.beam_size,
        **weights,
    }
    return metrics


def soft_targets_section(soft: dict[str, Any]) -> dict[str, Any]:
    """The report's ``soft_targets``: the soft_targets stage's storage and retained mass, the
    teachers' spike agreement on train and the ensemble's WER on dev."""
    section = {k: soft[k] for k in SOFT_TARGET_KEYS}
    section["spike_agreement_train"] = soft["train"]["spike_agreement"]["mean"]
    section["ensemble_wer_dev"] = soft["dev"]["ensemble_wer"]
    return section


def write_outputs(
    args: argparse.Namespace,
    metrics: dict[str, Any],
    soft: dict[str, Any],
    prepare: dict[str, Any],
    teachers: Sequence[str],
    students: Sequence[str],
) -> None:
    """The plots, the plot rows, ``reports/summary.md`` (with every model's training report
    and dev curves), the evaluation report and the headline metrics."""
    reports, live = Path(args.train_reports), Path(args.live)
    timings = {f"teacher.{n}": t for n, t in read_timings(reports / "teachers", teachers).items()}
    timings.update({f"student.{n}": t for n, t in read_timings(reports / "students", students).items()})
    runs = {f"teacher.{n}": read_run_curves(live / "teachers" / n) for n in teachers}
    runs.update({f"student.{n}": read_run_curves(live / "students" / n) for n in students})
    pngs = write_plots(metrics, runs, Path(args.plots_dir))
    summary = Path(args.summary)
    write_json(args.plot, wer_plot_rows(metrics))
    with atomic_path(summary) as tmp:
        tmp.write_text(
            report_markdown(
                metrics,
                soft,
                corpus=prepare,
                timings=timings,
                plot_files=[Path(os.path.relpath(p, summary.parent)).as_posix() for p in pngs],
            )
        )
    write_json(args.report, metrics)
    write_json(args.metrics, headline_metrics(metrics))
