"""The evaluate stage's Markdown report and PNG plots."""
import pytest
from matplotlib import pyplot as plt

from pipeline import plots
from pipeline.evaluate import PLOT_FILES, read_timings, report_markdown, write_plots
from pipeline.io import write_json

WER = {"teacher.guide": 0.42, "teacher.t1": 0.40, "student.baseline": 0.55,
       "student.distilled": 0.47, "ensemble": 0.37}
METRICS = {
    "wer": {"test": WER},
    "cer": {"test": {k: v / 2 for k, v in WER.items()}},
    "frame_agreement": {"test": {k: 0.9 for k in WER}},
    "params": {"teacher.guide": 2_500_000, "teacher.t1": 2_400_000,
               "student.baseline": 300_000, "student.distilled": 300_000},
    "gap_recovered": 0.4444, "ensemble_beats_best_teacher": True, "distilled_beats_baseline": True,
}
SOFT = {"temperature": 2.0, "top_k": 8, "teachers": ["guide", "t1"], "bytes_per_frame": 34.1,
        "frames": 7348, "retained_mass_mean": 0.91, "retained_mass_min": 0.62,
        "train": {"ensemble_wer": 0.31, "spike_agreement": {"mean": 0.973}},
        "dev": {"ensemble_wer": 0.36, "spike_agreement": {"mean": None}}}
CORPUS = {"corpus": {"train": {"utterances": 1200, "hours": 1.234, "speakers": 80, "vocabulary": 900},
                     "test": {"utterances": 150, "hours": 0.15, "speakers": 8, "vocabulary": 300,
                              "oov_rate": 0.0331}},
          "rejects": {"total": 3, "too_long": 2, "empty_transcript": 1}}
TIMINGS = {"teacher.guide": {"epochs": 10, "steps": 600, "seconds": 812.5, "train_loss": 0.91,
                             "dev_wer": 0.44},
           "student.distilled": {"epochs": 10, "steps": 600, "seconds": 120.0, "train_loss": 1.2,
                                 "dev_wer": 0.5}}


def test_report_has_results_corpus_soft_targets_and_timings():
    md = report_markdown(METRICS, SOFT, corpus=CORPUS, timings=TIMINGS,
                         plot_files=["plots/wer_per_model.png"])
    assert "| ensemble | 0.3700 | 0.1850 | 0.900 | 4,900,000 |" in md
    assert "| student.distilled | 0.4700 |" in md
    assert "gap_recovered: 0.4444" in md
    assert "| train | 1,200 | 1.234 | 80 | 900 | - |" in md
    assert "| test | 150 | 0.150 | 8 | 300 | 3.31% |" in md
    assert "rejected utterances: 3 (too_long: 2, empty_transcript: 1)" in md
    assert "| train | 0.31 | 0.973 |" in md and "| dev | 0.36 | n/a |" in md
    assert "34.1 bytes/frame over 7,348 frames" in md
    assert "| teacher.guide | 10 | 600 | 812.5 | 0.910 | 0.4400 |" in md
    assert "total training time: 932.5 s" in md
    assert "![wer per model](plots/wer_per_model.png)" in md


def test_report_without_optional_sections_still_renders():
    md = report_markdown(METRICS, SOFT)
    assert "## Corpus" not in md and "## Training" not in md
    assert "## Soft targets" in md


def test_read_timings_names_a_missing_report(tmp_path):
    write_json(tmp_path / "guide.json", TIMINGS["teacher.guide"])
    assert read_timings(tmp_path, ["guide"])["guide"]["seconds"] == 812.5
    with pytest.raises(FileNotFoundError, match=r"t1\.json: training report not found"):
        read_timings(tmp_path, ["guide", "t1"])


def write_run(root, name, metrics):
    """A dvclive run directory with one TSV per metric (step = epoch - 1)."""
    d = root / name / "plots" / "metrics"
    d.mkdir(parents=True)
    for metric, values in metrics.items():
        rows = "".join(f"{i}\t{v}\n" for i, v in enumerate(values))
        (d / f"{metric}.tsv").write_text(f"step\t{metric}\n{rows}")
    return root / name


def test_dvclive_curves_are_read_per_metric(tmp_path):
    run = write_run(tmp_path, "distilled", {"train_loss": [3.0, 2.5, 2.2], "dev_wer": [0.9, 0.7, 0.6]})
    curves = plots.read_run_curves(run)
    assert curves["train_loss"] == ([0.0, 1.0, 2.0], [3.0, 2.5, 2.2])
    assert set(curves) == {"train_loss", "dev_wer"}


def test_write_plots_makes_readable_pngs(tmp_path):
    runs = {"teacher.guide": plots.read_run_curves(write_run(tmp_path, "g", {"train_loss": [3, 2]})),
            "student.distilled": plots.read_run_curves(
                write_run(tmp_path, "d", {"train_loss": [3, 2.5], "train_kd": [0.2, 0.1]}))}
    paths = write_plots(METRICS, runs, tmp_path / "plots")
    assert [p.name for p in paths] == list(PLOT_FILES)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        info = plots.describe(p)
        assert info["width"] > 300 and info["height"] > 200
    assert not list((tmp_path / "plots").glob(".*.tmp"))  # atomic writes leave nothing behind


def test_training_curves_need_at_least_one_curve(tmp_path):
    with pytest.raises(ValueError, match="no training curves"):
        plots.training_curves({"student.distilled": {}}, tmp_path / "c.png")


def test_wer_vs_rtf_plot(tmp_path):
    plots.wer_vs_rtf([("ensemble", 0.05, 0.37), ("student.distilled.onnx_int8", 0.001, 0.47)],
                     tmp_path / "wer_vs_rtf.png")
    assert plt.imread(str(tmp_path / "wer_vs_rtf.png")).shape[2] in (3, 4)


def test_coincident_points_share_one_label():
    merged = plots.merge_coincident([("student.baseline", 3e5, 0.5), ("student.distilled", 3e5, 0.5),
                                     ("ensemble", 5e6, 0.37)])
    assert sorted(merged) == [("ensemble", 5e6, 0.37),
                              ("student.baseline, student.distilled", 3e5, 0.5)]
