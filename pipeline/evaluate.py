"""The ``evaluate`` stage: WER/CER of every model on test, the Hinton-style table.

Rows: every teacher, the ensemble (decoded from the teachers' averaged T=1
posteriors), and every student. Columns: WER, CER, frame agreement with the
ensemble's argmax (our analog of Hinton et al.'s frame accuracy) and
parameters. ``gap_recovered = (WER_baseline - WER_distilled) /
(WER_baseline - WER_ensemble)``, null when the denominator is not positive.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import jiwer
import sentencepiece as spm
import torch

from pipeline.config import Params
from pipeline.ctc import greedy_decode
from pipeline.loader import BatchLoader
from pipeline.model import ConformerCTC, count_parameters
from pipeline.soft_targets import combine_posteriors

log = logging.getLogger(__name__)


def score(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """(WER, CER) with jiwer; an empty hypothesis counts as all deletions."""
    hyps = [h if h.strip() else "" for h in hyps]
    wer = jiwer.wer(refs, hyps)
    cer = jiwer.cer(refs, hyps)
    return round(float(wer), 4), round(float(cer), 4)


def gap_recovered(baseline: float, distilled: float, ensemble: float) -> Optional[float]:
    """Share of the baseline-to-ensemble WER gap that distillation closed."""
    denominator = baseline - ensemble
    if denominator <= 0:
        return None
    return round((baseline - distilled) / denominator, 4)


@torch.no_grad()
def evaluate_models(params: Params, teachers: dict[str, ConformerCTC],
                    students: dict[str, ConformerCTC], loader: BatchLoader,
                    sp: spm.SentencePieceProcessor) -> dict[str, Any]:
    """Decode test with every model and the ensemble; returns the metrics mapping."""
    models = {f"teacher.{n}": m for n, m in teachers.items()}
    models.update({f"student.{n}": m for n, m in students.items()})
    for m in models.values():
        m.eval()
    hyps: dict[str, list[str]] = {name: [] for name in [*models, "ensemble"]}
    agree: dict[str, list[int]] = {name: [0, 0] for name in [*models, "ensemble"]}
    refs: list[str] = []
    for batch in loader:
        outs = {name: m(batch.feats, batch.lengths) for name, m in models.items()}
        lengths = next(iter(outs.values()))[1]
        teacher_logits = [outs[f"teacher.{n}"][0] for n in teachers]
        ens = combine_posteriors(teacher_logits, 1.0, params.ensemble.combine).log()
        outs["ensemble"] = (ens, lengths)
        ens_best = ens.argmax(-1)
        mask = torch.arange(ens.shape[1])[None, :] < lengths[:, None]
        refs += batch.texts
        for name, (logits, lens) in outs.items():
            hyps[name] += [sp.decode(ids) for ids in greedy_decode(logits, lens)]
            agree[name][0] += int(((logits.argmax(-1) == ens_best) & mask).sum())
            agree[name][1] += int(mask.sum())
    wer, cer = {}, {}
    for name, h in hyps.items():
        wer[name], cer[name] = score(refs, h)
    all_models = {**models}
    metrics: dict[str, Any] = {
        "wer": {"test": wer},
        "cer": {"test": cer},
        "frame_agreement": {"test": {n: round(a / max(t, 1), 4) for n, (a, t) in agree.items()}},
        "params": {name: count_parameters(m) for name, m in all_models.items()},
        "gap_recovered": gap_recovered(wer["student.baseline"], wer["student.distilled"],
                                       wer["ensemble"]),
    }
    best_teacher = min(wer[f"teacher.{n}"] for n in teachers)
    metrics["ensemble_beats_best_teacher"] = bool(wer["ensemble"] < best_teacher)
    metrics["distilled_beats_baseline"] = bool(wer["student.distilled"] < wer["student.baseline"])
    metrics["examples"] = [{"ref": r, **{n: hyps[n][i] for n in ("ensemble", "student.distilled")}}
                           for i, r in enumerate(refs[:5])]
    return metrics


def report_markdown(metrics: dict[str, Any], soft: dict[str, Any]) -> str:
    """The Hinton-style results table plus the verdicts, as Markdown."""
    wer, cer = metrics["wer"]["test"], metrics["cer"]["test"]
    agree, params = metrics["frame_agreement"]["test"], metrics["params"]
    order = [n for n in wer if n.startswith("teacher.")] + ["ensemble"] + \
            [n for n in wer if n.startswith("student.")]
    lines = ["# asr-distill results (test split)", "",
             "| system | WER | CER | frame agreement with ensemble | parameters |",
             "|---|---|---|---|---|"]
    for n in order:
        p = params.get(n)
        if n == "ensemble":
            p = sum(v for k, v in params.items() if k.startswith("teacher."))
        lines.append(f"| {n} | {wer[n]:.4f} | {cer[n]:.4f} | {agree[n]:.3f} | {p:,} |")
    gap = metrics["gap_recovered"]
    lines += ["", f"gap_recovered: {'n/a (ensemble not better than baseline)' if gap is None else gap}",
              f"ensemble beats best teacher: {metrics['ensemble_beats_best_teacher']}",
              f"distilled beats baseline: {metrics['distilled_beats_baseline']}", "",
              f"soft targets: T={soft.get('temperature')}, top-k={soft.get('top_k')}, "
              f"{soft.get('bytes_per_frame')} bytes/frame, retained mass mean "
              f"{soft.get('retained_mass_mean')} (min {soft.get('retained_mass_min')})"]
    if metrics.get("examples"):
        lines += ["", "## Examples", ""]
        for ex in metrics["examples"]:
            lines += [f"- ref: {ex['ref']}", f"  - ensemble: {ex['ensemble']}",
                      f"  - student.distilled: {ex['student.distilled']}"]
    return "\n".join(lines) + "\n"


def wer_plot_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the ``dvc plots`` bar chart of WER per model."""
    return [{"model": n, "wer": w, "params": metrics["params"].get(n, 0)}
            for n, w in metrics["wer"]["test"].items()]

