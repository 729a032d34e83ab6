"""The ``evaluate`` stage: WER/CER of every model on test, the Hinton-style table.

Rows: every teacher, the ensemble (decoded from the teachers' averaged T=1
posteriors), and every student. Columns: WER, CER, frame agreement with the
ensemble's argmax (our analog of Hinton et al.'s frame accuracy) and
parameters. ``gap_recovered = (WER_baseline - WER_distilled) /
(WER_baseline - WER_ensemble)``, null when the denominator is not positive.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import jiwer
import sentencepiece as spm
import torch

from pipeline.config import Params
from pipeline.ctc import greedy_decode
from pipeline.io import read_json
from pipeline.loader import BatchLoader
from pipeline.model import ConformerCTC, count_parameters
from pipeline.soft_targets import combine_posteriors

if TYPE_CHECKING:  # matplotlib loads in half a second; `transcribe` imports this module for score()
    from pipeline import plots

log = logging.getLogger(__name__)

# PNGs the evaluate stage writes into reports/plots/ (declared as plots in dvc.yaml).
PLOT_FILES = ("wer_per_model.png", "wer_vs_params.png", "training_curves.png")


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
        mask = torch.arange(ens.shape[1], device=lengths.device)[None, :] < lengths[:, None]
        refs += batch.texts
        for name, (logits, lens) in outs.items():
            hyps[name] += [sp.decode(ids) for ids in greedy_decode(logits, lens)]
            agree[name][0] += int(((logits.argmax(-1) == ens_best) & mask).sum())
            agree[name][1] += int(mask.sum())
    wer, cer = {}, {}
    for name, h in hyps.items():
        wer[name], cer[name] = score(refs, h)
    metrics: dict[str, Any] = {
        "wer": {"test": wer},
        "cer": {"test": cer},
        "frame_agreement": {"test": {n: round(a / max(t, 1), 4) for n, (a, t) in agree.items()}},
        "params": {name: count_parameters(m) for name, m in models.items()},
        "gap_recovered": gap_recovered(wer["student.baseline"], wer["student.distilled"],
                                       wer["ensemble"]),
    }
    best_teacher = min(wer[f"teacher.{n}"] for n in teachers)
    metrics["ensemble_beats_best_teacher"] = bool(wer["ensemble"] < best_teacher)
    metrics["distilled_beats_baseline"] = bool(wer["student.distilled"] < wer["student.baseline"])
    metrics["examples"] = [{"ref": r, **{n: hyps[n][i] for n in ("ensemble", "student.distilled")}}
                           for i, r in enumerate(refs[:5])]
    return metrics


def model_order(wer: dict[str, Any]) -> list[str]:
    """Report row order: teachers, the ensemble, then students."""
    return ([n for n in wer if n.startswith("teacher.")] + ["ensemble"] +
            [n for n in wer if n.startswith("student.")])


def ensemble_params(params: dict[str, int]) -> int:
    """The ensemble's parameter count: all of its teachers together."""
    return sum(v for k, v in params.items() if k.startswith("teacher."))


def results_markdown(metrics: dict[str, Any]) -> list[str]:
    """The Hinton-style table and the verdicts."""
    wer, cer = metrics["wer"]["test"], metrics["cer"]["test"]
    agree, params = metrics["frame_agreement"]["test"], metrics["params"]
    lines = ["| system | WER | CER | frame agreement with ensemble | parameters |",
             "|---|---|---|---|---|"]
    for n in model_order(wer):
        p = ensemble_params(params) if n == "ensemble" else params.get(n)
        lines.append(f"| {n} | {wer[n]:.4f} | {cer[n]:.4f} | {agree[n]:.3f} | {p:,} |")
    gap = metrics["gap_recovered"]
    return lines + [
        "", f"gap_recovered: {'n/a (ensemble not better than baseline)' if gap is None else gap}",
        f"ensemble beats best teacher: {metrics['ensemble_beats_best_teacher']}",
        f"distilled beats baseline: {metrics['distilled_beats_baseline']}"]


def corpus_markdown(prepare: dict[str, Any]) -> list[str]:
    """Per-split corpus statistics from ``reports/prepare.json``."""
    lines = ["## Corpus", "",
             "| split | utterances | hours | speakers | vocabulary | OOV rate vs train |",
             "|---|---|---|---|---|---|"]
    for split, c in prepare["corpus"].items():
        oov = c.get("oov_rate")
        lines.append(f"| {split} | {c['utterances']:,} | {c['hours']:.3f} | {c['speakers']} | "
                     f"{c['vocabulary']:,} | {'-' if oov is None else f'{oov:.2%}'} |")
    rejects = prepare.get("rejects", {})
    reasons = ", ".join(f"{k}: {v}" for k, v in rejects.items() if k != "total")
    lines += ["", f"rejected utterances: {rejects.get('total', 0)}" +
              (f" ({reasons})" if reasons else "")]
    return lines


def soft_targets_markdown(soft: dict[str, Any]) -> list[str]:
    """Soft-target statistics from ``reports/soft_targets.json``."""
    def fmt(value: Any) -> str:
        return "n/a" if value is None else f"{value}"

    lines = ["## Soft targets", "",
             f"teachers: {', '.join(soft.get('teachers', []))}; temperature "
             f"T={soft.get('temperature')}, top-k={soft.get('top_k')}, "
             f"{soft.get('bytes_per_frame')} bytes/frame over {soft.get('frames', 0):,} frames",
             f"retained probability mass in the top-k: mean {soft.get('retained_mass_mean')}, "
             f"min {soft.get('retained_mass_min')}", "",
             "| split | ensemble WER (averaged posteriors) | teacher spike agreement (mean) |",
             "|---|---|---|"]
    for split in ("train", "dev"):
        if split in soft:
            s = soft[split]
            lines.append(f"| {split} | {fmt(s.get('ensemble_wer'))} | "
                         f"{fmt(s.get('spike_agreement', {}).get('mean'))} |")
    return lines


def read_timings(reports_dir: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``<reports_dir>/<name>.json`` training reports, keyed by name; a missing one is an error."""
    out = {}
    for name in names:
        path = Path(reports_dir) / f"{name}.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: training report not found (run its training stage)")
        out[name] = read_json(path)
    return out


def timings_markdown(timings: dict[str, dict[str, Any]]) -> list[str]:
    """Training time and final numbers per model (``teacher.guide`` -> its report)."""
    lines = ["## Training", "",
             "| model | epochs | steps | seconds | final train loss | final dev WER |",
             "|---|---|---|---|---|---|"]
    for name, t in timings.items():
        lines.append(f"| {name} | {t.get('epochs')} | {t.get('steps')} | {t.get('seconds')} | "
                     f"{t.get('train_loss', float('nan')):.3f} | {t.get('dev_wer', float('nan')):.4f} |")
    total = sum(float(t.get("seconds") or 0.0) for t in timings.values())
    return lines + ["", f"total training time: {total:.1f} s"]


def deployment_markdown(metrics: dict[str, Any]) -> list[str]:
    """Single-thread CPU real-time factor, file size and test WER per runtime."""
    rtf, sizes, wer = metrics["rtf"], metrics["sizes"], metrics["runtime_wer"]
    lines = ["## Deployment (one CPU thread, batch 1)", "",
             "| model | runtime RTF | speed-up vs ensemble | file size | test WER |",
             "|---|---|---|---|---|"]
    for name, value in rtf.items():
        speedup = rtf["ensemble"] / value if value > 0 else float("inf")
        w = wer.get(name)
        lines.append(f"| {name} | {value:.6f} | {speedup:.1f}x | {sizes.get(name, 0) / 1e6:.2f} MB | "
                     f"{'n/a' if w is None else f'{w:.4f}'} |")
    goals = metrics["goals"]
    return lines + ["", f"{metrics['rtf_utterances']} test utterances "
                    f"({metrics['rtf_audio_seconds']} s of audio); int8 speed-up vs ensemble "
                    f"{goals['int8_speedup_vs_ensemble']}x (goal 50x: "
                    f"{'met' if goals['int8_at_least_50x_faster'] else 'not met'}), "
                    f"RTF <= 0.01: {'met' if goals['int8_rtf_at_most_0.01'] else 'not met'}"]


def report_markdown(metrics: dict[str, Any], soft: dict[str, Any],
                    corpus: Optional[dict[str, Any]] = None,
                    timings: Optional[dict[str, dict[str, Any]]] = None,
                    plot_files: Sequence[str] = ()) -> str:
    """The whole Markdown report: results, corpus, soft targets, training, plots, examples.

    ``corpus``: ``reports/prepare.json``; ``timings``: training reports keyed
    by model name; ``plot_files``: PNG paths relative to the report.
    """
    lines = ["# asr-distill results (test split)", "", *results_markdown(metrics)]
    if corpus is not None:
        lines += ["", *corpus_markdown(corpus)]
    lines += ["", *soft_targets_markdown(soft)]
    if timings:
        lines += ["", *timings_markdown(timings)]
    if "rtf" in metrics:
        lines += ["", *deployment_markdown(metrics)]
    if plot_files:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(f).stem.replace('_', ' ')}]({f})" for f in plot_files]
    if metrics.get("examples"):
        lines += ["", "## Examples", ""]
        for ex in metrics["examples"]:
            lines += [f"- ref: {ex['ref']}", f"  - ensemble: {ex['ensemble']}",
                      f"  - student.distilled: {ex['student.distilled']}"]
    return "\n".join(lines) + "\n"


def write_plots(metrics: dict[str, Any], runs: dict[str, dict[str, plots.Curve]],
                plots_dir: Path) -> list[Path]:
    """WER per model, WER against parameters, training curves and (with a benchmark in
    ``metrics``) WER against CPU real-time factor, as PNGs in ``plots_dir``."""
    from pipeline import plots

    wer = {n: metrics["wer"]["test"][n] for n in model_order(metrics["wer"]["test"])}
    params = {**metrics["params"], "ensemble": ensemble_params(metrics["params"])}
    paths = [Path(plots_dir) / f for f in PLOT_FILES]
    plots.wer_per_model(wer, paths[0])
    plots.wer_vs_params(wer, params, paths[1])
    plots.training_curves(runs, paths[2])
    if "rtf" in metrics:
        paths.append(Path(plots_dir) / "wer_vs_rtf.png")
        rtf, runtime_wer = metrics["rtf"], metrics["runtime_wer"]
        plots.wer_vs_rtf([(n, rtf[n], runtime_wer[n]) for n in rtf if runtime_wer.get(n) is not None],
                         paths[-1])
    return paths


def wer_plot_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the ``dvc plots`` bar chart of WER per model."""
    return [{"model": n, "wer": w, "params": metrics["params"].get(n, 0)}
            for n, w in metrics["wer"]["test"].items()]

