"""The single-thread CPU real-time-factor benchmark."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from testkit import tiny_config

import pipeline.export.benchmark as benchmark
from pipeline.config import default_params
from pipeline.deploy.runtime import torch_runner
from pipeline.evaluate.score import deployment_metrics
from pipeline.export.benchmark import ensemble_runner, measure_rtf, run_benchmark, speed_goals
from pipeline.model.conformer import ConformerCTC, save_model

GOALS = default_params({"export.goals": {"min_speedup": 50.0, "max_rtf": 0.01}}).export.goals
CFG = tiny_config()


def models(n: int) -> list[ConformerCTC]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(ConformerCTC(CFG, n_mels=40, vocab_size=12).eval())
    return out


def test_ensemble_runner_returns_averaged_log_posteriors():
    a, b = models(2)
    feats, n = np.random.default_rng(0).normal(size=(1, 200, 40)).astype(np.float32), np.array([200])
    log_probs, lengths = ensemble_runner([a, b], "mean")(feats, n)
    pa = torch.softmax(torch.from_numpy(torch_runner(a)(feats, n)[0]), -1)
    pb = torch.softmax(torch.from_numpy(torch_runner(b)(feats, n)[0]), -1)
    np.testing.assert_allclose(np.exp(log_probs), ((pa + pb) / 2).numpy(), atol=1e-5)
    assert lengths.tolist() == [49]


def test_measure_rtf_times_every_runner_on_one_thread():
    before = torch.get_num_threads()
    seen = []

    def probe(feats, lengths):
        seen.append(torch.get_num_threads())
        return torch_runner(models(1)[0])(feats, lengths)

    examples = [np.zeros((150, 40), np.float16), np.zeros((300, 40), np.float16)]
    rtf = measure_rtf(
        {"probe": probe, "student": torch_runner(models(1)[0])}, examples, audio_seconds=4.5, repeats=2
    )
    assert set(rtf) == {"probe", "student"}
    assert all(0 < v < 1 for v in rtf.values())  # a tiny model runs faster than real time
    assert set(seen) == {1} and len(seen) == 1 + 2 * len(examples)  # warm-up + 2 passes
    assert torch.get_num_threads() == before


def test_measure_rtf_is_the_fastest_pass_over_the_audio_seconds(monkeypatch):
    """On a clock that only the runners move, the RTF is exactly the fastest pass's seconds
    over the audio's seconds, per runner."""
    clock = {"now": 0.0}
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    calls = {"slow": 0}

    def fast(feats, lengths):
        clock["now"] += 0.01

    def slow(feats, lengths):  # 30 ms a call in its warm-up and first pass, 20 ms after
        calls["slow"] += 1
        clock["now"] += 0.03 if calls["slow"] <= 3 else 0.02

    examples = [np.zeros((150, 40), np.float16), np.zeros((300, 40), np.float16)]
    rtf = measure_rtf({"fast": fast, "slow": slow}, examples, audio_seconds=4.5, repeats=3)
    assert rtf == {"fast": round(2 * 0.01 / 4.5, 6), "slow": round(2 * 0.02 / 4.5, 6)}


def test_measure_rtf_needs_audio():
    with pytest.raises(ValueError, match="at least one utterance"):
        measure_rtf({}, [], audio_seconds=0.0, repeats=1)


def test_speed_goals():
    goals = speed_goals({"ensemble": 0.5, "student.distilled.int8": 0.005}, GOALS)
    assert goals == {
        "int8_speedup": 100.0,
        "int8_at_least_50x_faster": True,
        "int8_rtf_at_most_0.01": True,
    }
    slow = speed_goals({"ensemble": 0.1, "student.distilled.int8": 0.02}, GOALS)
    assert not slow["int8_at_least_50x_faster"] and not slow["int8_rtf_at_most_0.01"]
    other = default_params({"export.goals": {"min_speedup": 4, "max_rtf": 0.05}}).export.goals
    assert speed_goals({"ensemble": 0.1, "student.distilled.int8": 0.02}, other) == {
        "int8_speedup": 5.0,
        "int8_at_least_4x_faster": True,
        "int8_rtf_at_most_0.05": True,
    }


def test_run_benchmark_times_every_runtime_and_sizes_every_file(tiny_export, tmp_path):
    out, distilled, _ = tiny_export
    teachers = dict(zip(("guide", "t1"), models(2)))
    students = {"baseline": models(1)[0], "distilled": distilled}
    files = {}
    for kind, group in (("teacher", teachers), ("student", students)):
        for name, model in group.items():
            files[f"{kind}.{name}"] = tmp_path / f"{kind}.{name}.pt"
            save_model(model, files[f"{kind}.{name}"])
    rng = np.random.default_rng(0)
    examples = [
        {"feats": rng.normal(8, 3, size=(t, 40)).astype(np.float16), "duration": t / 100} for t in (120, 300)
    ]
    report = run_benchmark(
        teachers, students, files, {"distilled": out}, examples, "mean", repeats=1, goals=GOALS
    )
    names = {
        "ensemble",
        "student.baseline.torch",
        "student.distilled.torch",
        "student.distilled.torchscript",
        "student.distilled.onnx",
        "student.distilled.int8",
    }
    assert set(report["rtf"]) == set(report["sizes"]) == names
    assert all(0 < v < 1 for v in report["rtf"].values())  # tiny models: faster than real time
    assert report["sizes"]["ensemble"] == sum(files[f"teacher.{n}"].stat().st_size for n in teachers)
    assert report["rtf_utterances"] == 2 and report["rtf_audio_seconds"] == 4.2
    assert report["goals"] == speed_goals(report["rtf"], GOALS)


DEPLOYED = {
    "decoder": "lexicon+lm",
    "wer": 0.25,
    "wer_ci": [0.2, 0.3],
    "rtf_end_to_end": 0.004,
    "decode_share": 0.3,
}


def test_deployment_metrics_add_each_runtimes_wer():
    rtf = {
        "ensemble": 0.01,
        "student.baseline.torch": 0.001,
        "student.distilled.torch": 0.001,
        "student.distilled.int8": 0.0002,
    }
    report = {
        "wer": {"student.distilled.int8": 0.31},
        "rtf": rtf,
        "sizes": {},
        "goals": speed_goals(rtf, GOALS),
        "rtf_utterances": 3,
        "rtf_audio_seconds": 9.0,
        "deployed": {"student.distilled.int8": DEPLOYED},
    }
    wer = {"teacher.t1": 0.2, "ensemble": 0.18, "student.baseline": 0.4, "student.distilled": 0.3}
    greedy = {"ensemble": 0.28, "student.baseline": 0.6, "student.distilled": 0.5}
    merged = deployment_metrics(report, wer, greedy)
    assert merged["rtf"] == rtf and merged["goals"]["int8_speedup"] == 50.0
    assert merged["deployed"] == {"student.distilled.int8": DEPLOYED}
    assert merged["runtime_wer"] == {
        "ensemble": 0.18,
        "student.baseline.torch": 0.4,
        "student.distilled.torch": 0.3,
        "student.distilled.int8": None,  # evaluate's decoder runs the PyTorch models
    }
    assert merged["runtime_wer_greedy"] == {
        "ensemble": 0.28,
        "student.baseline.torch": 0.6,
        "student.distilled.torch": 0.5,
        "student.distilled.int8": 0.31,  # the export stage's parity check
    }
    with pytest.raises(KeyError, match=r"re-run the export stage"):
        deployment_metrics({"wer": {}}, wer)
