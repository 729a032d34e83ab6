"""PNG plots for the report (matplotlib, Agg backend: no display needed).

Model names follow ``reports/metrics.json``: ``teacher.<name>``, ``ensemble``,
``student.<name>``; colours mark the family so teachers, ensemble and students
read apart at a glance. Every figure is written atomically.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from pipeline.io import atomic_path  # noqa: E402

log = logging.getLogger(__name__)

COLOURS = {"teacher": "#7f7f7f", "ensemble": "#1f77b4", "student": "#ff7f0e"}
# (steps, values) of one metric of one training run
Curve = tuple[list[float], list[float]]


def family(name: str) -> str:
    """``teacher``, ``ensemble`` or ``student`` from a model name like ``student.distilled``."""
    return name.split(".", 1)[0]


def colour(name: str) -> str:
    """The colour of ``name``'s family (teacher grey, ensemble blue, student orange; green otherwise)."""
    return COLOURS.get(family(name), "#2ca02c")


def save(fig: Figure, path: Path) -> Figure:
    """Write ``fig`` as PNG atomically and close it; returns it (its artists hold the data)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return fig


def wer_per_model(wer: dict[str, float], path: Path) -> Figure:
    """Horizontal bars of test WER, one per model, in the report's row order."""
    names = list(wer)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.2))
    bars = ax.barh(names, [wer[n] for n in names], color=[colour(n) for n in names])
    ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test WER (lower is better)")
    ax.set_xlim(0, max(1.0, max(wer.values()) * 1.15))
    ax.set_title("WER per model")
    return save(fig, path)


def merge_coincident(points: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Join the names of points at the same place, so their labels do not overprint."""
    merged: dict[tuple[float, float], list[str]] = {}
    for name, x, y in points:
        merged.setdefault((round(x, 12), round(y, 6)), []).append(name)
    return [(", ".join(names), x, y) for (x, y), names in merged.items()]


def scatter_labelled(
    points: Sequence[tuple[str, float, float]], path: Path, xlabel: str, title: str, tick_format: str
) -> Figure:
    """One labelled point per ``(name, x, y)`` on a log x axis; y is test WER.

    ``tick_format``: format spec for x tick labels, e.g. ``",.0f"`` or ``"g"``.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    # Neighbours along x get labels above and below in turn, so long names do not collide.
    for i, (name, x, y) in enumerate(sorted(merge_coincident(points), key=lambda p: p[1])):
        ax.scatter([x], [y], color=colour(name.split(", ")[0]), s=40, zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 6 if i % 2 else -13), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format(v, tick_format)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test WER (lower is better)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.3, y=0.15)
    return save(fig, path)


def wer_vs_params(wer: dict[str, float], params: dict[str, int], path: Path) -> Figure:
    """Test WER against parameter count (the ensemble counts all its teachers)."""
    points = [(n, float(params[n]), w) for n, w in wer.items() if params.get(n)]
    return scatter_labelled(points, path, "parameters", "WER against model size", ",.0f")


def wer_vs_rtf(points: Sequence[tuple[str, float, float]], path: Path) -> Figure:
    """Test WER against single-thread CPU real-time factor, ``(name, rtf, wer)`` points.

    Runtimes of one model share its WER, so their points sit on one line: a
    legend, not labels beside the points, names them.
    """
    fig, ax = plt.subplots(figsize=(7.8, 4.2))
    palette, markers = plt.get_cmap("tab10"), "osD^vP*X"
    for i, (name, x, y) in enumerate(sorted(points, key=lambda p: p[1])):
        ax.scatter(
            [x],
            [y],
            color=palette(i % 10),
            marker=markers[i % len(markers)],
            s=50,
            zorder=3,
            label=f"{name} (RTF {x:.2g})",
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format(v, "g")))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("CPU real-time factor, 1 thread (lower is faster)")
    ax.set_ylabel("test WER (lower is better)")
    ax.set_title("WER against CPU speed")
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return save(fig, path)


def read_tsv_curve(path: Path) -> Curve:
    """A dvclive ``plots/metrics/<metric>.tsv`` file: columns ``step`` and the metric."""
    steps, values = [], []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            metric = [k for k in row if k not in ("step", "timestamp")]
            if not metric:
                raise ValueError(f"{path}: no metric column besides step")
            steps.append(float(row["step"]))
            values.append(float(row[metric[0]]))
    return steps, values


def read_run_curves(run_dir: Path) -> dict[str, Curve]:
    """Every metric curve of one dvclive run directory, keyed by metric name."""
    files = sorted((Path(run_dir) / "plots" / "metrics").glob("*.tsv"))
    return {f.stem: read_tsv_curve(f) for f in files}


def training_curves(runs: dict[str, dict[str, Curve]], path: Path) -> Figure:
    """One panel per metric (``train_loss``, ``dev_wer``, ...), one line per model."""
    metrics = sorted({m for curves in runs.values() for m in curves})
    if not metrics:
        raise ValueError(f"{path}: no training curves to plot")
    cols = min(2, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.3 * rows), squeeze=False)
    palette = plt.get_cmap("tab10")
    for ax, metric in zip(axes.flat, metrics):
        for i, (name, curves) in enumerate(runs.items()):
            if metric in curves:
                steps, values = curves[metric]
                epochs = [s + 1 for s in steps]  # the trainer logs one dvclive step per epoch
                ax.plot(
                    epochs,
                    values,
                    marker="o" if len(steps) < 20 else None,
                    label=name,
                    color=palette(i % 10),
                    linestyle="-" if family(name) == "student" else "--",
                )
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle("Training curves")
    fig.tight_layout()
    return save(fig, path)


def twin_curves(pairs: dict[str, str], runs: dict[str, dict[str, Curve]], path: Path) -> Figure:
    """One panel per distilled student (``pairs``: student -> its twin): both models' dev WER
    per epoch up to where the stopping rule stopped each, the best epoch marked (a fork's
    epochs count from its start)."""
    shown = [(s, t) for s, t in pairs.items() if all("dev_wer" in runs.get(n, {}) for n in (s, t))]
    if not shown:
        raise ValueError(f"{path}: no twin pair with dev WER curves to plot")
    fig, axes = plt.subplots(1, len(shown), figsize=(5.0 * len(shown), 3.6), squeeze=False)
    for ax, (student, twin) in zip(axes.flat, shown):
        for name, style in ((twin, "--"), (student, "-")):
            steps, values = runs[name]["dev_wer"]
            epochs = [int(s) + 1 for s in steps]  # one dvclive step per epoch
            best = min(range(len(values)), key=values.__getitem__)
            label = f"{name} (stop {epochs[-1]})"
            line = ax.plot(epochs, values, linestyle=style, color=colour(name), label=label)
            ax.scatter([epochs[best]], [values[best]], color=line[0].get_color(), zorder=3, s=30)
        ax.set_title(f"{student} vs {twin}", fontsize=9)
        ax.set_xlabel("epoch (dot: best)")
        ax.set_ylabel("dev WER, greedy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Each distilled student and its twin, to their stops")
    fig.tight_layout()
    return save(fig, path)


def describe(path: Path) -> dict[str, Any]:
    """Size and pixel dimensions of a written PNG (for logs and tests)."""
    image = plt.imread(str(path))
    return {"bytes": Path(path).stat().st_size, "height": image.shape[0], "width": image.shape[1]}


def wer_by_group(
    wer: dict[str, dict[str, float]], groups: Sequence[str], group_by: str, path: Path
) -> Figure:
    """Grouped bars of test WER: one group of bars per accent (or speaker) in ``groups``,
    one bar per system in ``wer`` (system -> group -> WER)."""
    systems = list(wer)
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(max(6.4, 0.3 * len(groups) * len(systems) + 2.0), 4.2))
    palette = plt.get_cmap("tab10")
    for i, name in enumerate(systems):
        offset = (i - (len(systems) - 1) / 2) * width  # bars of one group sit side by side
        ax.bar(
            [g + offset for g in range(len(groups))],
            [wer[name][g] for g in groups],
            width,
            label=name,
            color=palette(i % 10),
        )
    crowded = len(groups) > 5  # long speaker ids: slanted labels
    ax.set_xticks(
        range(len(groups)), list(groups), rotation=30 if crowded else 0, ha="right" if crowded else "center"
    )
    ax.set_xlabel(group_by)
    ax.set_ylabel("test WER (lower is better)")
    ax.set_title(f"WER by {group_by}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def size_ladder(rows: Sequence[dict[str, Any]], path: Path, ensemble: float | None = None) -> Figure:
    """Test WER against parameters (log scale) for directly trained twins and distilled
    students; ``rows``: ``{"params", "twin": [wer, lo, hi], "distilled": [wer, lo, hi]}``."""
    rows = sorted(rows, key=lambda r: r["params"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label, c in (
        ("twin", "directly trained (twin)", "#7f7f7f"),
        ("distilled", "distilled from the ensemble", COLOURS["student"]),
    ):
        x = [r["params"] for r in rows]
        y = [r[key][0] for r in rows]
        err = [[r[key][0] - r[key][1] for r in rows], [r[key][2] - r[key][0] for r in rows]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=c, label=label)
    if ensemble is not None:
        ax.axhline(ensemble, color=COLOURS["ensemble"], linestyle="--", label="teacher ensemble")
    ax.set_xscale("log")
    ax.set_xlabel("student parameters")
    ax.set_ylabel("test WER (95 % interval)")
    ax.set_title("What distillation buys at each size")
    ax.legend(fontsize=8)
    return save(fig, path)
