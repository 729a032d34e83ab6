"""The ``evaluate`` stage's report: ``reports/summary.md`` and the plots in ``reports/plots/``.

Everything here reads the metrics mapping of :mod:`pipeline.evaluate.score` (``reports/evaluation.json``)
and the other stages' reports; nothing is computed from models or audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.io import read_json
from pipeline.splits import SOFT_TARGET_SPLITS, TRANSFER

if TYPE_CHECKING:  # matplotlib loads in half a second: only write_plots needs it
    from pipeline.evaluate import plots

# PNGs the evaluate stage writes into reports/plots/ (declared as plots in dvc.yaml).
PLOT_FILES = ("wer_per_model.png", "wer_vs_params.png", "training_curves.png", "wer_by_group.png")
# Groups (accents or speakers) shown in the summary table and the plot, worst first; the
# metrics keep all of them.
MAX_GROUP_ROWS = 10


def model_order(wer: dict[str, Any]) -> list[str]:
    """Report row order: teachers, the ensemble, then students."""
    return (
        [n for n in wer if n.startswith("teacher.")]
        + ["ensemble"]
        + [n for n in wer if n.startswith("student.")]
    )


def ensemble_params(params: dict[str, int]) -> int:
    """The ensemble's parameter count: all of its teachers together."""
    return sum(v for k, v in params.items() if k.startswith("teacher."))


def fmt_interval(ci: Sequence[float] | None) -> str:
    """``[lo, hi]`` with 4 decimals, or ``n/a``."""
    return "n/a" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def interval_level(metrics: dict[str, Any]) -> str:
    """The interval level as the report writes it, e.g. ``95 %``."""
    return f"{metrics['bootstrap']['confidence'] * 100:g} %"


def comparison_sentence(system: str, other: str, diff: float, ci: Sequence[float], level: str) -> str:
    """``a vs b: WER difference d [lo, hi]: significant (...)`` or ``...: a tie``."""
    verdict = (
        f"significant ({level} interval excludes 0)"
        if ci[0] > 0 or ci[1] < 0
        else f"{level} interval includes 0: a tie"
    )
    return f"{system} vs {other}: WER difference {diff:+.4f} {fmt_interval(ci)}: {verdict}"


def gap_sentence(metrics: dict[str, Any], name: str) -> str:
    """gap_recovered of one student with its interval and any skipped bootstrap draws."""
    gap, twin = metrics["gap_recovered"][name], metrics["twin"][name]
    skipped = metrics["gap_recovered_skipped"][name]
    value = f"n/a (ensemble not better than {twin})" if gap is None else f"{gap:.4f}"
    note = (
        f"; {skipped} of {metrics['bootstrap']['samples']} draws skipped (ensemble not "
        f"better than {twin} in them)"
        if skipped
        else ""
    )
    return (
        f"gap_recovered of {name}: {value}, {interval_level(metrics)} interval "
        f"{fmt_interval(metrics['gap_recovered_ci'][name])}{note}"
    )


def test_set_sentence(metrics: dict[str, Any]) -> str:
    """Test size and the OOV rates of dev and test against train."""
    rates = ", ".join(f"{s} {r:.2%}" for s, r in metrics.get("oov_rate", {}).items()) or "n/a"
    return (
        f"Test set: {metrics['test_utterances']:,} utterances, {metrics['test_words']:,} "
        f"words; OOV rate against train: {rates}."
    )


def other_decoders(metrics: dict[str, Any]) -> list[str]:
    """The decoders scored beside the headline's (``decoding.decoders`` minus the default)."""
    default = metrics.get("decoder", {}).get("name")
    return [d for d in metrics.get("wer_by_decoder", {}).get("test", {}) if d != default]


def results_table(metrics: dict[str, Any]) -> list[str]:
    """The Hinton-style table: WER (the default decoder) and CER with their intervals,
    agreement, parameters, then the WER of every other decoder with its interval."""
    wer, cer = metrics["wer"]["test"], metrics["cer"]["test"]
    wer_ci, cer_ci = metrics["wer_ci"]["test"], metrics["cer_ci"]["test"]
    agree, params, level = metrics["frame_agreement"]["test"], metrics["params"], interval_level(metrics)
    default = metrics.get("decoder", {}).get("name")
    others = other_decoders(metrics)
    by_decoder = metrics.get("wer_by_decoder", {}).get("test", {})
    ci_by_decoder = metrics.get("wer_ci_by_decoder", {}).get("test", {})
    lines = [
        f"| system | WER{f' ({default})' if default else ''} | WER {level} interval | CER | "
        f"CER {level} interval | frame agreement with ensemble | parameters |"
        + "".join(f" WER ({d}) |" for d in others),
        "|---|---|---|---|---|---|---|" + "---|" * len(others),
    ]
    for n in model_order(wer):
        p = ensemble_params(params) if n == "ensemble" else params.get(n)
        extra = "".join(f" {by_decoder[d][n]:.4f} {fmt_interval(ci_by_decoder[d][n])} |" for d in others)
        lines.append(
            f"| {n} | {wer[n]:.4f} | {fmt_interval(wer_ci[n])} | {cer[n]:.4f} | "
            f"{fmt_interval(cer_ci[n])} | {agree[n]:.3f} | {p:,} |{extra}"
        )
    return lines


def table_head(title: str, *columns: str) -> list[str]:
    """A report section's first lines: its ``title``, a blank line and a Markdown table header
    of ``columns``."""
    return [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def lm_effect_markdown(metrics: dict[str, Any]) -> list[str]:
    """What the word LM changes: per system, WER with it minus without it (lexicon+lm - lexicon)."""
    effect = metrics.get("lm_effect")
    if not effect:
        return []
    columns = ("system", "WER difference", f"{interval_level(metrics)} interval")
    lines = table_head("## The language model's effect (lexicon+lm - lexicon)", *columns)
    for n in model_order(effect):
        lines.append(f"| {n} | {effect[n]['diff']:+.4f} | {fmt_interval(effect[n]['ci'])} |")
    decoder = metrics.get("decoder", {})
    return lines + [
        "",
        "Negative: the LM lowers the WER. Both decoders search the same lexicon with beam "
        f"{decoder.get('beam_size', '-')}; lexicon+lm adds the word n-gram LM of the train transcripts at "
        f"weight {decoder.get('lm_weight', '-')} and word score {decoder.get('word_score', '-')}, "
        "chosen on dev for student.distilled by the export stage.",
    ]


def deployed_markdown(metrics: dict[str, Any]) -> list[str]:
    """The exported runtimes as ``asr-distill transcribe`` runs them, end to end."""
    deployed = metrics.get("deployed")
    if not deployed:
        return []
    columns = ("runtime", "decoder", "test WER", f"{interval_level(metrics)} interval", "end-to-end RTF")
    lines = table_head("### Deployed: audio file to text", *columns, "decoding's share")
    for name, d in deployed.items():
        lines.append(
            f"| {name} | {d['decoder']} | {d['wer']:.4f} | {fmt_interval(d['wer_ci'])} | "
            f"{d['rtf_end_to_end']:.5f} | {100 * d['decode_share']:.1f} % |"
        )
    return lines + [
        "",
        "Each exported model with the decoder its config.json names, as `asr-distill transcribe` "
        "runs it: test WER over the whole test set; the real-time factor on one thread covers "
        f"reading the file (soundfile), fbank, the model and decoding, over the first "
        f"{metrics.get('rtf_utterances', '-')} test files (fastest of the timed passes).",
    ]


def results_markdown(metrics: dict[str, Any]) -> list[str]:
    """The results table, the test set, and the paired comparisons in plain sentences."""
    boot, level = metrics["bootstrap"], interval_level(metrics)
    ens = metrics["ensemble_vs_best_teacher"]
    comparisons = [
        comparison_sentence("ensemble", f"{ens['best']} (best teacher)", ens["diff"], ens["ci"], level)
    ]
    for name, diff in metrics["wer_diff"].items():
        comparisons.append(
            comparison_sentence(name, metrics["twin"][name], diff, metrics["wer_diff_ci"][name], level)
        )
    comparisons += [gap_sentence(metrics, name) for name in metrics["wer_diff"]]
    return [
        *results_table(metrics),
        "",
        test_set_sentence(metrics),
        f"Intervals: {level} paired bootstrap over test utterances ({boot['samples']} "
        f"resamples, seed {boot['seed']}); a WER difference is negative when the first "
        "system is better.",
        "",
        *(f"- {c}" for c in comparisons),
    ]


def group_systems(metrics: dict[str, Any]) -> list[str]:
    """Systems of the per-group table and plot: the ensemble and every student."""
    return ["ensemble", *(n for n in metrics["wer"]["test"] if n.startswith("student."))]


def shown_groups(metrics: dict[str, Any]) -> list[str]:
    """Groups of the per-group table and plot: the worst ``MAX_GROUP_ROWS`` by ensemble WER."""
    ensemble = metrics["wer_by_group"]["ensemble"]
    return sorted(ensemble, key=lambda g: (-ensemble[g], g))[:MAX_GROUP_ROWS]


def groups_markdown(metrics: dict[str, Any]) -> list[str]:
    """WER per accent or speaker for the ensemble and the students, worst first."""
    table, systems = metrics["wer_by_group"], group_systems(metrics)
    group_by, groups = table["group_by"], shown_groups(metrics)
    total = len(table["ensemble"])
    shown = f" (worst {len(groups)} of {total} by ensemble WER)" if len(groups) < total else ""
    lines = [
        f"## WER by {group_by}{shown}",
        "",
        f"| {group_by} | utterances | words | {' | '.join(systems)} |",
        "|---|---|---|" + "---|" * len(systems),
    ]
    for g in groups:
        rates = " | ".join(f"{table[n][g]:.4f}" for n in systems)
        lines.append(f"| {g} | {table['utterances'][g]:,} | {table['words'][g]:,} | {rates} |")
    return lines


def substitutions_markdown(metrics: dict[str, Any]) -> list[str]:
    """The most frequent word substitutions (ref -> hyp, count), systems side by side."""
    subs = metrics["substitutions"]
    rows = max((len(v) for v in subs.values()), default=0)
    lines = [
        "## Most frequent word substitutions",
        "",
        f"| rank | {' | '.join(subs)} |",
        "|---|" + "---|" * len(subs),
    ]
    for i in range(rows):
        cells = [
            f"{s[i]['ref']} → {s[i]['hyp']} ({s[i]['count']})" if i < len(s) else "" for s in subs.values()
        ]
        lines.append(f"| {i + 1} | {' | '.join(cells)} |")
    return lines if rows else lines[:2] + ["no substitutions"]


def corpus_markdown(prepare: dict[str, Any]) -> list[str]:
    """Per-split corpus statistics from ``reports/prepare.json``."""
    lines = [
        "## Corpus",
        "",
        "| split | utterances | hours | speakers | vocabulary | OOV rate vs train |",
        "|---|---|---|---|---|---|",
    ]
    for split, c in prepare["corpus"].items():
        oov = c.get("oov_rate")
        vocab = c.get("vocabulary")  # none for the transfer set: it has no transcripts
        lines.append(
            f"| {split} | {c['utterances']:,} | {c['hours']:.3f} | {c['speakers']} | "
            f"{'-' if vocab is None else f'{vocab:,}'} | "
            f"{'-' if oov is None else f'{oov:.2%}'} |"
        )
    rejects = prepare.get("rejects", {})
    reasons = ", ".join(f"{k}: {v}" for k, v in rejects.items() if k != "total")
    lines += ["", f"rejected utterances: {rejects.get('total', 0)}" + (f" ({reasons})" if reasons else "")]
    return lines


def soft_targets_markdown(soft: dict[str, Any]) -> list[str]:
    """Soft-target statistics from ``reports/soft_targets.json``."""

    def fmt(value: Any) -> str:
        return "n/a" if value is None else f"{value}"

    lines = [
        "## Soft targets",
        "",
        f"teachers: {', '.join(soft.get('teachers', []))}; temperature "
        f"T={soft.get('temperature')}, top-k={soft.get('top_k')}, "
        f"{soft.get('bytes_per_frame')} bytes/frame over {soft.get('frames', 0):,} frames",
        f"retained probability mass in the top-k: mean {soft.get('retained_mass_mean')}, "
        f"min {soft.get('retained_mass_min')}",
        "",
        "| split | utterances | ensemble WER (averaged posteriors), greedy | lexicon | "
        "teacher spike agreement (mean) |",
        "|---|---|---|---|---|",
    ]
    for split in SOFT_TARGET_SPLITS:
        if split in soft:
            s = soft[split]
            wer = "- (no transcripts)" if split == TRANSFER else fmt(s.get("ensemble_wer"))
            lex = "-" if split == TRANSFER else fmt(s.get("ensemble_wer_lexicon"))
            lines.append(
                f"| {split} | {fmt(s.get('utterances'))} | {wer} | {lex} | "
                f"{fmt(s.get('spike_agreement', {}).get('mean'))} |"
            )
    transcripts = soft.get("transcripts")
    if transcripts:
        lines += ["", f"pseudo-labels (the ensemble's transcripts of untranscribed audio): {transcripts}"]
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


def _average_label(t: dict[str, Any]) -> str:
    """``last 5 (26-30)`` / ``best 3 (21, 24, 25)``: which epochs' weights were averaged."""
    avg = t.get("average")
    if not avg:
        return "-"
    epochs = avg["epochs"]
    consecutive = epochs == list(range(epochs[0], epochs[-1] + 1))
    span = f"{epochs[0]}-{epochs[-1]}" if consecutive and len(epochs) > 1 else ", ".join(map(str, epochs))
    return f"{avg['kind']} {avg['count']} ({span})"


def _start_label(t: dict[str, Any], timings: dict[str, dict[str, Any]]) -> str:
    """``random init``, or ``teacher.guide (+7,290 updates)`` for a fork of the guide."""
    fork = t.get("fork")
    if not fork:
        return "random init"
    source = f"teacher.{fork['init']}"
    steps = timings.get(source, {}).get("steps")
    return source if steps is None else f"{source} (+{steps:,} updates)"


def timings_markdown(timings: dict[str, dict[str, Any]]) -> list[str]:
    """Training to convergence per model (``teacher.guide`` -> its report): where the rule
    stopped it, its best epoch, the average saved, updates and wall time."""
    lines = [
        "## Training",
        "",
        "| model | starts from | converged | stopped at epoch (cap) | best epoch | updates | "
        "passes over its data | transcribed utterances | untranscribed utterances | seconds | "
        "dev WER, last epoch | saved average | dev WER, saved (greedy) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value}"

    def wer(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    for name, t in timings.items():
        converged = {True: "yes", False: "no (cap)"}.get(t.get("converged"), "-")
        if t.get("fork") and t.get("converged") is False:
            converged = "its cycle's end"  # a fork's cap ends its cosine cycle: the rate is at 5 %
        lines.append(
            f"| {name} | {_start_label(t, timings)} | {converged} | "
            f"{cell(t.get('stopped_epoch'))} ({cell(t.get('epochs'))}) | "
            f"{cell(t.get('best_epoch'))} | {cell(t.get('steps'))} | "
            f"{cell(t.get('passes'))} | {cell(t.get('labelled_utterances'))} | "
            f"{cell(t.get('unlabelled_utterances'))} | {cell(t.get('seconds'))} | "
            f"{wer(t.get('last_epoch_dev_wer'))} | {_average_label(t)} | {wer(t.get('dev_wer'))} |"
        )
    total = sum(float(t.get("seconds") or 0.0) for t in timings.values())
    return lines + [
        "",
        f"total training time: {total:.1f} s. Every model trains until its dev WER stops "
        "improving (the stopping rule in params.yaml; its epochs are the cap) and is saved as "
        "the average of its last or best epochs' weights that scores best on dev. A fork starts "
        "from the guide's saved model (its updates come on top of the guide's) and runs its own "
        "learning-rate cycle. Twins share architecture, seed, stopping rule, cap and start; a "
        "distilled student spends its updates on "
        "more audio when it reads the transfer set (its advantage), the teachers' guide on "
        "transcribed train only.",
    ]


def distillation_markdown(
    metrics: dict[str, Any], timings: dict[str, dict[str, Any]] | None = None
) -> list[str]:
    """One row per distilled student beside its directly trained twin and the ensemble."""
    wer, params, level = metrics["wer"]["test"], metrics["params"], interval_level(metrics)
    timings = timings or {}
    lines = [
        "## Distillation: each student against its twin",
        "",
        f"| student | parameters | twin | student WER | twin WER | ensemble WER | "
        f"difference [{level}] | gap recovered [{level}] | student s | twin s | "
        f"student updates (stop epoch) | twin updates (stop epoch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def updates(name: str) -> str:
        t = timings.get(name, {})
        if t.get("steps") is None:
            return "-"
        return f"{t['steps']:,} ({t.get('stopped_epoch', '-')})"

    for name, twin in metrics["twin"].items():
        gap = metrics["gap_recovered"][name]
        seconds = [timings.get(n, {}).get("seconds", "-") for n in (name, twin)]
        lines.append(
            f"| {name} | {params.get(name, 0):,} | {twin} | {wer[name]:.4f} | {wer[twin]:.4f} | "
            f"{wer['ensemble']:.4f} | {metrics['wer_diff'][name]:+.4f} "
            f"{fmt_interval(metrics['wer_diff_ci'][name])} | "
            f"{'n/a' if gap is None else f'{gap:.3f}'} "
            f"{fmt_interval(metrics['gap_recovered_ci'][name])} | {seconds[0]} | {seconds[1]} | "
            f"{updates(name)} | {updates(twin)} |"
        )
    return lines + [
        "",
        "gap recovered = (twin WER - student WER) / (twin WER - ensemble WER): "
        "0 is no better than the twin, 1 is as good as the ensemble. Each model trained until "
        "its stopping rule stopped it (updates: its own; a fork's come on top of the guide's).",
    ]


def deployment_markdown(metrics: dict[str, Any]) -> list[str]:
    """Single-thread CPU real-time factor, file size and test WER per runtime."""
    rtf, sizes, wer = metrics["rtf"], metrics["sizes"], metrics["runtime_wer"]
    greedy = metrics.get("runtime_wer_greedy", {})
    decoder = metrics.get("decoder", {}).get("name", "greedy")
    lines = [
        "## Deployment (one CPU thread, batch 1)",
        "",
        "| model | runtime RTF | speed-up vs ensemble | file size | test WER (greedy) "
        f"| test WER ({decoder}) |",
        "|---|---|---|---|---|---|",
    ]

    def cell(w: float | None) -> str:
        return "-" if w is None else f"{w:.4f}"

    for name, value in rtf.items():
        speedup = rtf["ensemble"] / value if value > 0 else float("inf")
        lines.append(
            f"| {name} | {value:.6f} | {speedup:.1f}x | {sizes.get(name, 0) / 1e6:.2f} MB | "
            f"{cell(greedy.get(name))} | {cell(wer.get(name))} |"
        )
    goals = metrics["goals"]
    # Each goal's key names its threshold (export.goals): int8_at_least_50x_faster, int8_rtf_at_most_0.01.
    speed = next(k for k in goals if k.startswith("int8_at_least_"))
    rtf_goal = next(k for k in goals if k.startswith("int8_rtf_at_most_"))
    return lines + [
        "",
        f"{metrics['rtf_utterances']} test utterances "
        f"({metrics['rtf_audio_seconds']} s of audio); int8 speed-up vs ensemble "
        f"{goals['int8_speedup']}x "
        f"(goal {speed.removeprefix('int8_at_least_').removesuffix('_faster')}: "
        f"{'met' if goals[speed] else 'not met'}), "
        f"RTF <= {rtf_goal.removeprefix('int8_rtf_at_most_')}: {'met' if goals[rtf_goal] else 'not met'}",
        "",
        "Test WER (greedy): best path (for the exported formats, from the export stage's parity "
        f"check); test WER ({decoder}): decoding.default, measured on the PyTorch models (the "
        "exported formats match their logits). The exported models with their own decoder, end "
        "to end, are in the next table.",
    ]


def streaming_markdown(metrics: dict[str, Any]) -> list[str]:
    """Streaming students beside the full-context ones: latency, per-chunk compute, token delay."""
    timed = metrics.get("streaming_timing", {})
    delays = metrics.get("token_delay", {}).get("test", {})
    wer = metrics["wer"]["test"]
    lines = [
        "## Streaming",
        "",
        "| model | chunk | algorithmic latency | compute per chunk, 1 thread (mean / p95) | chunk RTF "
        "| token delay vs ensemble (mean) | test WER |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(delays):
        frames = metrics["streaming"].get(name)
        t = timed.get(name)
        chunk = f"{4 * frames * 10} ms" if frames else "full context"
        latency = f"{t['algorithmic_latency_ms']:.0f} ms" if t else "-"
        compute = (
            f"{t['compute_ms_per_chunk']['mean']:.2f} / {t['compute_ms_per_chunk']['p95']:.2f} ms"
            if t
            else "-"
        )
        rtf = f"{t['chunk_rtf']:.4f}" if t else "-"
        delay = delays[name].get("mean_ms")
        lines.append(
            f"| {name} | {chunk} | {latency} | {compute} | {rtf} | "
            f"{'-' if delay is None else f'{delay:.0f} ms'} | {wer[name]:.4f} |"
        )
    return lines + [
        "",
        "Algorithmic latency: the chunk plus the fbank lookahead its last frame needs. Compute: the "
        "exported streaming graph (`streaming.onnx`), one chunk per call (exported distilled "
        "students). Token delay: frames between the ensemble's spike and the model's for the tokens "
        "both emit, 40 ms each.",
    ]


def report_markdown(
    metrics: dict[str, Any],
    soft: dict[str, Any],
    corpus: dict[str, Any] | None = None,
    timings: dict[str, dict[str, Any]] | None = None,
    plot_files: Sequence[str] = (),
) -> str:
    """The whole Markdown report: results, WER by accent or speaker, word substitutions,
    corpus, soft targets, training, deployment, plots, examples.

    ``corpus``: ``reports/prepare.json``; ``timings``: training reports keyed
    by model name; ``plot_files``: PNG paths relative to the report.
    """
    lines = [
        "# asr-distill results (test split)",
        "",
        *results_markdown(metrics),
        "",
        *distillation_markdown(metrics, timings),
        *(["", *lm] if (lm := lm_effect_markdown(metrics)) else []),
        "",
        *groups_markdown(metrics),
        "",
        *substitutions_markdown(metrics),
    ]
    if corpus is not None:
        lines += ["", *corpus_markdown(corpus)]
    lines += ["", *soft_targets_markdown(soft)]
    if timings:
        lines += ["", *timings_markdown(timings)]
    if "rtf" in metrics:
        lines += ["", *deployment_markdown(metrics)]
        if metrics.get("deployed"):
            lines += ["", *deployed_markdown(metrics)]
    if metrics.get("streaming"):
        lines += ["", *streaming_markdown(metrics)]
    if plot_files:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(f).stem.replace('_', ' ')}]({f})" for f in plot_files]
    if metrics.get("examples"):
        lines += ["", "## Examples", ""]
        for ex in metrics["examples"]:
            lines += [
                f"- ref: {ex['ref']}",
                f"  - ensemble: {ex['ensemble']}",
                f"  - student.distilled: {ex['student.distilled']}",
            ]
    return "\n".join(lines) + "\n"


def write_plots(
    metrics: dict[str, Any], runs: dict[str, dict[str, plots.Curve]], plots_dir: Path
) -> list[Path]:
    """WER per model, WER against parameters, training curves, WER by accent (or speaker),
    each distilled student's and its twin's dev curves, and (with a benchmark in ``metrics``)
    WER against CPU real-time factor, as PNGs in ``plots_dir``."""
    from pipeline.evaluate import plots

    wer = {n: metrics["wer"]["test"][n] for n in model_order(metrics["wer"]["test"])}
    params = {**metrics["params"], "ensemble": ensemble_params(metrics["params"])}
    paths = [Path(plots_dir) / f for f in PLOT_FILES]
    plots.wer_per_model(wer, paths[0])
    plots.wer_vs_params(wer, params, paths[1])
    plots.training_curves(runs, paths[2])
    groups = metrics["wer_by_group"]
    plots.wer_by_group(
        {n: groups[n] for n in group_systems(metrics)}, shown_groups(metrics), groups["group_by"], paths[3]
    )
    pairs = {s: t for s, t in (metrics.get("twin") or {}).items() if s in runs and t in runs}
    if pairs:
        paths.append(Path(plots_dir) / "twin_curves.png")
        plots.twin_curves(pairs, runs, paths[-1])
    if "rtf" in metrics:
        paths.append(Path(plots_dir) / "wer_vs_rtf.png")
        rtf, runtime_wer = metrics["rtf"], metrics.get("runtime_wer_greedy") or metrics["runtime_wer"]
        plots.wer_vs_rtf(
            [(n, rtf[n], runtime_wer[n]) for n in rtf if runtime_wer.get(n) is not None], paths[-1]
        )
    return paths


def wer_plot_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the ``dvc plots`` bar chart of WER per model."""
    return [
        {"model": n, "wer": w, "params": metrics["params"].get(n, 0)}
        for n, w in metrics["wer"]["test"].items()
    ]
