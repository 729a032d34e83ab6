"""The evaluate stage: scoring, paired comparisons, the Markdown report and PNG plots."""

from collections import Counter

import pytest
from matplotlib import pyplot as plt

from pipeline.evaluate import plots
from pipeline.evaluate.score import (
    Decoded,
    decoder_comparisons,
    ensemble_comparison,
    error_rate_intervals,
    oov_rates,
    speakers_of,
    student_comparisons,
    top_substitutions,
    wer_by_group,
)
from pipeline.evaluate.summary import PLOT_FILES, read_timings, report_markdown, write_plots
from pipeline.io import write_json
from pipeline.profiles import Profile
from pipeline.wer import utterance_errors

WER = {
    "teacher.guide": 0.42,
    "teacher.t1": 0.40,
    "student.baseline": 0.55,
    "student.distilled": 0.47,
    "ensemble": 0.37,
}
GROUPS = {
    "en-GB": {"ensemble": 0.45, "student.baseline": 0.6, "student.distilled": 0.5},
    "en-US": {"ensemble": 0.3, "student.baseline": 0.5, "student.distilled": 0.44},
}
METRICS = {
    "wer": {"test": WER},
    "cer": {"test": {k: v / 2 for k, v in WER.items()}},
    "wer_ci": {"test": {k: [v - 0.03, v + 0.04] for k, v in WER.items()}},
    "cer_ci": {"test": {k: [v / 2 - 0.01, v / 2 + 0.02] for k, v in WER.items()}},
    "bootstrap": {"samples": 1000, "seed": 0, "confidence": 0.95},
    "frame_agreement": {"test": {k: 0.9 for k in WER}},
    "params": {
        "teacher.guide": 2_500_000,
        "teacher.t1": 2_400_000,
        "student.baseline": 300_000,
        "student.distilled": 300_000,
    },
    "test_utterances": 150,
    "test_words": 1_234,
    "oov_rate": {"dev": 0.031, "test": 0.0331},
    "twin": {"student.distilled": "student.baseline"},
    "wer_diff": {"student.distilled": -0.08},
    "wer_diff_ci": {"student.distilled": [-0.1201, -0.0405]},
    "gap_recovered": {"student.distilled": 0.4444},
    "beats_twin": {"student.distilled": True},
    "gap_recovered_ci": {"student.distilled": [0.21, 0.69]},
    "gap_recovered_skipped": {"student.distilled": 0},
    "ensemble_vs_best_teacher": {"best": "teacher.t1", "diff": -0.03, "ci": [-0.061, 0.0042]},
    "ensemble_beats_best_teacher": False,
    "ensemble_better_point": True,
    "distilled_beats_baseline": True,
    "wer_by_group": {
        "group_by": "accent",
        "utterances": {"en-GB": 70, "en-US": 80},
        "words": {"en-GB": 600, "en-US": 634},
        **{n: {g: GROUPS[g][n] for g in GROUPS} for n in GROUPS["en-GB"]},
    },
    "substitutions": {
        "ensemble": [{"ref": "their", "hyp": "there", "count": 4}, {"ref": "a", "hyp": "the", "count": 2}],
        "student.distilled": [{"ref": "their", "hyp": "there", "count": 5}],
    },
}
SOFT = {
    "temperature": 2.0,
    "top_k": 8,
    "teachers": ["guide", "t1"],
    "bytes_per_frame": 34.1,
    "frames": 7348,
    "retained_mass_mean": 0.91,
    "retained_mass_min": 0.62,
    "train": {
        "utterances": 1200,
        "ensemble_wer": 0.31,
        "ensemble_wer_lexicon": 0.12,
        "spike_agreement": {"mean": 0.973},
    },
    "transfer": {"utterances": 400, "spike_agreement": {"mean": 0.95}},
    "transcripts": "lexicon",
    "dev": {"ensemble_wer": 0.36, "spike_agreement": {"mean": None}},
}
CORPUS = {
    "corpus": {
        "train": {"utterances": 1200, "hours": 1.234, "speakers": 80, "vocabulary": 900},
        "test": {"utterances": 150, "hours": 0.15, "speakers": 8, "vocabulary": 300, "oov_rate": 0.0331},
        "transfer": {"utterances": 300, "hours": 0.31, "speakers": 2},
    },
    "rejects": {"total": 3, "too_long": 2, "empty_transcript": 1},
}
TIMINGS = {
    "teacher.guide": {
        "epochs": 10,
        "steps": 600,
        "passes": 1.0,
        "labelled_utterances": 1200,
        "unlabelled_utterances": 0,
        "seconds": 812.5,
        "train_loss": 0.91,
        "dev_wer": 0.44,
        "last_epoch_dev_wer": 0.46,
        "best_epoch": 8,
        "stopped_epoch": 10,
        "converged": True,
        "average": {"kind": "last", "count": 3, "epochs": [8, 9, 10]},
    },
    "student.distilled": {"epochs": 10, "steps": 600, "seconds": 120.0, "train_loss": 1.2, "dev_wer": 0.5},
    "teacher.t1": {
        "epochs": 4,
        "steps": 240,
        "seconds": 90.0,
        "stopped_epoch": 4,
        "converged": False,
        "fork": {"init": "guide", "lr": 0.001},
    },
}


def test_report_has_results_corpus_soft_targets_and_timings():
    md = report_markdown(
        METRICS, SOFT, corpus=CORPUS, timings=TIMINGS, plot_files=["plots/wer_per_model.png"]
    )
    assert ("| ensemble | 0.3700 | [0.3400, 0.4100] | 0.1850 | [0.1750, 0.2050] | 0.900 | 4,900,000 |") in md
    assert "| student.distilled | 0.4700 | [0.4400, 0.5100] |" in md
    assert "gap_recovered of student.distilled: 0.4444, 95 % interval [0.2100, 0.6900]" in md
    assert ("Test set: 150 utterances, 1,234 words; OOV rate against train: dev 3.10%, test 3.31%.") in md
    assert "| train | 1,200 | 1.234 | 80 | 900 | - |" in md
    assert "| test | 150 | 0.150 | 8 | 300 | 3.31% |" in md
    assert "rejected utterances: 3 (too_long: 2, empty_transcript: 1)" in md
    assert "| train | 1200 | 0.31 | 0.12 | 0.973 |" in md and "| dev | n/a | 0.36 | n/a | n/a |" in md
    assert "| transfer | 400 | - (no transcripts) | - | 0.95 |" in md
    assert "pseudo-labels (the ensemble's transcripts of untranscribed audio): lexicon" in md
    assert "| transfer | 300 | 0.310 | 2 | - | - |" in md
    assert "34.1 bytes/frame over 7,348 frames" in md
    assert (
        "| teacher.guide | random init | yes | 10 (10) | 8 | 600 | 1.0 | 1,200 | 0 | 812.5 | 0.4600 | "
        "last 3 (8-10) | 0.4400 |" in md
    )
    # a report without the stopping rule's keys still renders, with dashes
    dashes = "| student.distilled | random init | - | - (10) | - | 600 | - | - | - | 120.0 | - | - | 0.5000 |"
    assert dashes in md
    # a fork's updates come on top of the guide's
    assert "| teacher.t1 | teacher.guide (+600 updates) | its cycle's end | 4 (4) | - | 240 |" in md
    assert (
        "| student.distilled | 300,000 | student.baseline | 0.4700 | 0.5500 | 0.3700 | "
        "-0.0800 [-0.1201, -0.0405] | 0.444 [0.2100, 0.6900] | 120.0 | - | 600 (-) | - |"
    ) in md
    assert "total training time: 1022.5 s" in md
    assert "![wer per model](plots/wer_per_model.png)" in md


def test_report_states_each_comparison_and_its_verdict():
    md = report_markdown(METRICS, SOFT)
    assert (
        "student.distilled vs student.baseline: WER difference -0.0800 [-0.1201, -0.0405]: "
        "significant (95 % interval excludes 0)"
    ) in md
    assert (
        "ensemble vs teacher.t1 (best teacher): WER difference -0.0300 [-0.0610, 0.0042]: "
        "95 % interval includes 0: a tie"
    ) in md
    skipped = {
        **METRICS,
        "gap_recovered_ci": {"student.distilled": None},
        "gap_recovered_skipped": {"student.distilled": 600},
    }
    assert (
        "gap_recovered of student.distilled: 0.4444, 95 % interval n/a; 600 of 1000 draws "
        "skipped (ensemble not better than student.baseline in them)" in report_markdown(skipped, SOFT)
    )


def test_report_shows_where_the_errors_are():
    md = report_markdown(METRICS, SOFT)
    assert "| accent | utterances | words | ensemble | student.baseline | student.distilled |" in md
    # worst accent (by ensemble WER) first
    assert md.index("| en-GB | 70 | 600 | 0.4500 | 0.6000 | 0.5000 |") < md.index("| en-US | 80 |")
    assert "| rank | ensemble | student.distilled |" in md
    assert "| 1 | their → there (4) | their → there (5) |" in md
    assert "| 2 | a → the (2) |  |" in md


def test_many_speakers_list_the_worst_ten():
    speakers = [f"s{i:02d}" for i in range(25)]
    table = {
        "group_by": "speaker",
        "utterances": {s: 4 for s in speakers},
        "words": {s: 40 for s in speakers},
        **{
            n: {s: i / 100 for i, s in enumerate(speakers)}
            for n in ("ensemble", "student.baseline", "student.distilled")
        },
    }
    md = report_markdown({**METRICS, "wer_by_group": table}, SOFT)
    assert "## WER by speaker (worst 10 of 25 by ensemble WER)" in md
    assert "| s24 | 4 | 40 | 0.2400 |" in md and "| s15 |" in md and "| s14 |" not in md


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
    runs = {
        "teacher.guide": plots.read_run_curves(write_run(tmp_path, "g", {"train_loss": [3, 2]})),
        "student.distilled": plots.read_run_curves(
            write_run(tmp_path, "d", {"train_loss": [3, 2.5], "train_kd": [0.2, 0.1]})
        ),
    }
    paths = write_plots(METRICS, runs, tmp_path / "plots")
    assert [p.name for p in paths] == list(PLOT_FILES)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        info = plots.describe(p)
        assert info["width"] > 300 and info["height"] > 200
    assert not list((tmp_path / "plots").glob(".*.tmp"))  # atomic writes leave nothing behind


def test_twin_curves_show_each_pair_to_its_stop(tmp_path):
    runs = {
        "student.baseline": plots.read_run_curves(write_run(tmp_path, "b", {"dev_wer": [0.9, 0.7, 0.72]})),
        "student.distilled": plots.read_run_curves(write_run(tmp_path, "d", {"dev_wer": [0.8, 0.6]})),
        "teacher.guide": plots.read_run_curves(write_run(tmp_path, "g", {"train_loss": [3, 2]})),
    }
    fig = plots.twin_curves({"student.distilled": "student.baseline"}, runs, tmp_path / "twins.png")
    (ax,) = fig.axes
    twin, student = ax.lines
    assert twin.get_xydata().tolist() == [[1, 0.9], [2, 0.7], [3, 0.72]]  # epochs from 1, to its stop
    assert student.get_xydata().tolist() == [[1, 0.8], [2, 0.6]]
    assert [c.get_offsets().tolist() for c in ax.collections] == [[[2, 0.7]], [[2, 0.6]]]  # best epochs
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "student.baseline (stop 3)",
        "student.distilled (stop 2)",
    ]
    with pytest.raises(ValueError, match="no twin pair with dev WER curves"):
        plots.twin_curves({"student.distilled": "teacher.guide"}, runs, tmp_path / "none.png")


def test_training_curves_need_at_least_one_curve(tmp_path):
    with pytest.raises(ValueError, match="no training curves"):
        plots.training_curves({"student.distilled": {}}, tmp_path / "c.png")


def test_wer_vs_rtf_plot(tmp_path):
    fig = plots.wer_vs_rtf(
        [("ensemble", 0.05, 0.37), ("student.distilled.int8", 0.001, 0.47)], tmp_path / "wer_vs_rtf.png"
    )
    assert plt.imread(str(tmp_path / "wer_vs_rtf.png")).shape[2] in (3, 4)
    ax = fig.axes[0]
    # one point per runtime, fastest first, named with its RTF in the legend
    assert [c.get_offsets().tolist() for c in ax.collections] == [[[0.001, 0.47]], [[0.05, 0.37]]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "student.distilled.int8 (RTF 0.001)",
        "ensemble (RTF 0.05)",
    ]
    assert ax.get_xscale() == "log"


def test_size_ladder_plot(tmp_path):
    rows = [
        {"params": 191_472, "twin": [0.57, 0.56, 0.58], "distilled": [0.43, 0.42, 0.44]},
        {"params": 2_165_008, "twin": [0.25, 0.24, 0.26], "distilled": [0.17, 0.16, 0.18]},
    ]
    fig = plots.size_ladder(list(reversed(rows)), tmp_path / "ladder.png", ensemble=0.18)
    assert plt.imread(str(tmp_path / "ladder.png")).shape[2] in (3, 4)
    ax = fig.axes[0]
    twin, distilled, ensemble = ax.lines[0], ax.lines[3], ax.lines[-1]  # each errorbar: line + 2 caps
    assert twin.get_xydata().tolist() == [[191_472, 0.57], [2_165_008, 0.25]]  # sorted by size
    assert distilled.get_xydata().tolist() == [[191_472, 0.43], [2_165_008, 0.17]]
    assert list(ensemble.get_ydata()) == [0.18, 0.18]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "teacher ensemble",
        "directly trained (twin)",
        "distilled from the ensemble",
    ]


def test_coincident_points_share_one_label():
    merged = plots.merge_coincident(
        [("student.baseline", 3e5, 0.5), ("student.distilled", 3e5, 0.5), ("ensemble", 5e6, 0.37)]
    )
    assert sorted(merged) == [("ensemble", 5e6, 0.37), ("student.baseline, student.distilled", 3e5, 0.5)]


def test_wer_by_group_plot(tmp_path):
    wer = {n: {g: GROUPS[g][n] for g in GROUPS} for n in ("ensemble", "student.distilled")}
    fig = plots.wer_by_group(wer, ["en-GB", "en-US"], "accent", tmp_path / "wer_by_group.png")
    assert plots.describe(tmp_path / "wer_by_group.png")["width"] > 300
    ax = fig.axes[0]  # one bar per (system, group), the systems' bars side by side in each group
    heights = [[round(b.get_height(), 4) for b in c] for c in ax.containers]
    assert heights == [[0.45, 0.3], [0.5, 0.44]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["en-GB", "en-US"]


# The paired comparisons built on per-utterance counts.
REFS = ["the cat sat on the mat", "a dog ran", "their house is red"]
HYPS = ["the cat sat on a mat", "a dog ran away", "there house red"]


def test_top_substitutions_rank_by_count_then_words():
    pairs = Counter({("b", "x"): 2, ("a", "y"): 2, ("c", "z"): 5, ("d", "w"): 1})
    assert top_substitutions(pairs, 3) == [
        {"ref": "c", "hyp": "z", "count": 5},
        {"ref": "a", "hyp": "y", "count": 2},
        {"ref": "b", "hyp": "x", "count": 2},
    ]


def test_wer_by_group_uses_accents_of_synthetic_speakers_else_speakers():
    errors = {"ensemble": utterance_errors(REFS, HYPS)}
    by_accent = wer_by_group(errors, ["en-US+m4", "en-GB+f3", "en-US+f3"])
    assert by_accent["group_by"] == "accent"
    assert by_accent["ensemble"] == {"en-GB": round(1 / 3, 4), "en-US": 0.3}  # (1 + 2) / (6 + 4)
    assert by_accent["utterances"] == {"en-GB": 1, "en-US": 2}
    assert by_accent["words"] == {"en-GB": 3, "en-US": 10}
    by_speaker = wer_by_group(errors, ["1089", "1089", "2300"])
    assert by_speaker["group_by"] == "speaker" and by_speaker["ensemble"] == {"1089": 0.2222, "2300": 0.5}


def test_speakers_of_names_utterances_missing_from_the_manifest():
    assert speakers_of(["u1"], {"u1": "en+m4"}) == ["en+m4"]
    with pytest.raises(KeyError, match="1 test utterances have no speaker"):
        speakers_of(["u1", "u2"], {"u1": "en+m4"})


def test_oov_rates_come_from_prepare_and_skip_splits_without_one():
    assert oov_rates(CORPUS) == {"test": 0.0331}


@pytest.fixture
def tiny_params(root):
    params = Profile("tiny", root / "params.yaml", root).result
    return params.model_copy(
        update={"evaluate": params.evaluate.model_copy(update={"bootstrap_samples": 500})}
    )


def comparisons(params, hyps):
    """The evaluate stage's paired comparisons over 40 utterances of ``REFS`` repeated."""
    refs = REFS * 40
    errors = {n: utterance_errors(refs, h * 40) for n, h in hyps.items()}
    wer = {n: e.wer for n, e in errors.items()}
    draws, intervals = error_rate_intervals(params, errors)
    return {
        **intervals,
        **student_comparisons(params, wer, draws),
        **ensemble_comparison(params, wer, draws),
        "wer": wer,
    }


def test_paired_comparisons_of_the_evaluate_stage(tiny_params):
    worse = ["the cat sat on a rug", "a dog ran away", "there house red"]
    m = comparisons(
        tiny_params,
        {
            "teacher.guide": HYPS,
            "teacher.t1": worse,
            "ensemble": HYPS,
            "student.baseline": worse,
            "student.distilled": HYPS,
            "student.member": worse,
        },
    )
    assert set(m["wer_ci"]["test"]) == set(m["cer_ci"]["test"]) == set(m["wer"])
    lo, hi = m["wer_ci"]["test"]["ensemble"]
    assert lo < m["wer"]["ensemble"] < hi
    # distilled makes one error fewer than baseline in every repeat: significantly better
    # each distilled student against its own twin: the member-size one against teacher t1
    assert m["twin"] == {
        "student.distilled": "student.baseline",
        "student.member": "teacher.t1",
    }
    assert m["wer_diff"]["student.member"] == 0.0 and not m["beats_twin"]["student.member"]
    assert m["gap_recovered"]["student.member"] == 0.0
    assert m["wer_diff"]["student.distilled"] == pytest.approx(-1 / 13, abs=1e-6)
    assert m["wer_diff_ci"]["student.distilled"][1] < 0 and m["distilled_beats_baseline"]
    # ensemble = best teacher on every utterance: a paired difference of exactly 0, a tie
    assert m["ensemble_vs_best_teacher"] == {"best": "teacher.guide", "diff": 0.0, "ci": [0.0, 0.0]}
    assert not m["ensemble_beats_best_teacher"] and not m["ensemble_better_point"]
    # the distilled student matches the ensemble: the whole gap recovered, in every draw
    assert m["gap_recovered"]["student.distilled"] == 1.0
    assert m["gap_recovered_ci"]["student.distilled"] == [1.0, 1.0]
    assert m["gap_recovered_skipped"] == {"student.distilled": 0, "student.member": 0}


def test_gap_recovered_is_null_when_the_ensemble_is_no_better(tiny_params):
    m = comparisons(
        tiny_params,
        {
            "teacher.guide": HYPS,
            "teacher.t1": HYPS,
            "ensemble": HYPS,
            "student.baseline": HYPS,
            "student.distilled": HYPS,
            "student.member": HYPS,
        },
    )
    assert m["gap_recovered"]["student.distilled"] is None
    assert m["gap_recovered_ci"]["student.distilled"] is None
    assert m["gap_recovered_skipped"]["student.distilled"] == 500
    assert m["wer_diff_ci"]["student.distilled"] == [0.0, 0.0] and not m["distilled_beats_baseline"]


def test_report_shows_every_decoder_the_lm_effect_and_the_deployed_runtimes():
    by_decoder = {
        "greedy": {k: v + 0.2 for k, v in WER.items()},
        "lexicon": {k: v + 0.05 for k, v in WER.items()},
    }
    by_decoder["lexicon+lm"] = WER
    metrics = {
        **METRICS,
        "decoder": {"name": "lexicon+lm", "beam_size": 20, "lm_weight": 1.0, "word_score": -1.0},
        "wer_by_decoder": {"test": by_decoder},
        "wer_ci_by_decoder": {
            "test": {d: {k: [v - 0.01, v + 0.01] for k, v in w.items()} for d, w in by_decoder.items()}
        },
        "lm_effect": {k: {"diff": -0.05, "ci": [-0.07, -0.03]} for k in WER},
        "rtf": {"ensemble": 0.01, "student.distilled.int8": 0.0002},
        "sizes": {},
        "runtime_wer": {},
        "goals": {"int8_speedup": 50.0, "int8_at_least_50x_faster": True, "int8_rtf_at_most_0.01": True},
        "rtf_utterances": 50,
        "rtf_audio_seconds": 160.0,
        "deployed": {
            "student.distilled.int8": {
                "decoder": "lexicon+lm",
                "wer": 0.4412,
                "wer_ci": [0.43, 0.452],
                "rtf_end_to_end": 0.00412,
                "decode_share": 0.318,
            }
        },
    }
    md = report_markdown(metrics, SOFT)
    header = next(line for line in md.splitlines() if line.startswith("| system | WER"))
    assert header.startswith("| system | WER (lexicon+lm) |")
    assert header.endswith("| WER (greedy) | WER (lexicon) |")
    row = next(line for line in md.splitlines() if line.startswith("| student.distilled |"))
    greedy = by_decoder["greedy"]["student.distilled"]
    assert row.endswith(
        f" {greedy:.4f} [{greedy - 0.01:.4f}, {greedy + 0.01:.4f}] | {WER['student.distilled'] + 0.05:.4f} "
        f"[{WER['student.distilled'] + 0.04:.4f}, {WER['student.distilled'] + 0.06:.4f}] |"
    )
    assert "## The language model's effect (lexicon+lm - lexicon)" in md
    assert "| student.distilled | -0.0500 | [-0.0700, -0.0300] |" in md
    assert "weight 1.0 and word score -1.0" in md
    assert "| student.distilled.int8 | lexicon+lm | 0.4412 | [0.4300, 0.4520] | 0.00412 | 31.8 % |" in md


def test_every_decoder_is_scored_and_the_lm_effect_is_paired(tiny_params):
    refs = REFS * 40
    worse = ["the cat sat on a rug", "a dog ran away", "there house red"] * 40
    by_decoder = {
        "greedy": {"ensemble": worse, "student.distilled": worse},
        "lexicon": {"ensemble": HYPS * 40, "student.distilled": worse},
        "lexicon+lm": {"ensemble": HYPS * 40, "student.distilled": REFS * 40},
    }
    decoded = Decoded([f"u{i}" for i in range(len(refs))], refs, by_decoder, "lexicon+lm", {})
    assert decoded.hyps is by_decoder["lexicon+lm"]
    m = decoder_comparisons(tiny_params, decoded)
    wer = m["wer_by_decoder"]["test"]
    assert wer["greedy"]["ensemble"] == round(5 / 13, 4) and wer["lexicon"]["ensemble"] == round(4 / 13, 4)
    assert wer["lexicon+lm"]["student.distilled"] == 0.0
    lo, hi = m["wer_ci_by_decoder"]["test"]["greedy"]["ensemble"]
    assert lo < 5 / 13 < hi
    # the LM fixes every error of the distilled student and none of the ensemble's
    assert m["lm_effect"]["student.distilled"]["diff"] == pytest.approx(-5 / 13, abs=1e-4)
    assert m["lm_effect"]["student.distilled"]["ci"][1] < 0
    assert m["lm_effect"]["ensemble"] == {"diff": 0.0, "ci": [0.0, 0.0]}
    without_lexicon = Decoded(decoded.ids, refs, {"greedy": by_decoder["greedy"]}, "greedy", {})
    assert "lm_effect" not in decoder_comparisons(tiny_params, without_lexicon)
