"""The ``evaluate`` stage: WER/CER of every model on test, with paired-bootstrap intervals.

Rows: every teacher, the ensemble (decoded from the teachers' averaged T=1
posteriors), and every student. Columns: WER, CER, each with its percentile
interval from a paired bootstrap over test utterances (:mod:`pipeline.bootstrap`),
frame agreement with the ensemble's argmax (our analog of Hinton et al.'s
frame accuracy) and parameters.

Comparisons are paired (every system is scored on the same resamples):
each distilled student against its twin, the directly trained model named by
``students.<name>.twin`` (``twin``, ``wer_diff``, ``wer_diff_ci``),
the ensemble against the best single teacher (``ensemble_vs_best_teacher``),
and, per distilled student, ``gap_recovered = (WER_twin - WER_student) /
(WER_twin - WER_ensemble)``, null when the denominator is not positive.
``beats_twin``, ``distilled_beats_baseline`` and ``ensemble_beats_best_teacher``
mean *significantly* better: the interval of the difference lies below 0.

Every system is decoded with every decoder of ``decoding.decoders``; the headline (``wer``,
``wer_ci`` and the comparisons) uses ``decoding.default``, and ``wer_by_decoder`` /
``wer_ci_by_decoder`` hold all of them. ``lm_effect``: per system, WER with the LM minus
WER without it (``lexicon+lm - lexicon``, negative: the LM helps), with its paired interval.

Where the errors are: WER per accent (synthetic speakers ``accent+variant``)
or per speaker (``wer_by_group``), and the most frequent word substitutions
(``substitutions``), both from jiwer's per-utterance alignments.

This module computes ``reports/evaluation.json`` and its headline ``reports/metrics.json``;
:mod:`pipeline.evaluate.summary` writes ``reports/summary.md`` and the plots from them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.bootstrap import Interval, gap_fraction, gap_interval, paired_bootstrap, percentile_interval
from pipeline.config import Params
from pipeline.errors import MissingError
from pipeline.io import read_jsonl
from pipeline.loader import BatchLoader
from pipeline.model.conformer import ConformerCTC, count_parameters
from pipeline.model.decoding import Decoder
from pipeline.model.ensemble import combine_posteriors
from pipeline.model.spikes import DelayMeter
from pipeline.splits import EVAL_SPLITS
from pipeline.wer import RATE_DECIMALS, UtteranceErrors, score, utterance_errors

log = logging.getLogger(__name__)

# Decimals of intervals and differences in reports/evaluation.json (rates: RATE_DECIMALS).
INTERVAL_DECIMALS = 6


def gap_recovered(baseline: float, distilled: float, ensemble: float) -> float | None:
    """Share of the baseline-to-ensemble WER gap that distillation closed; None when the
    ensemble is not better than the baseline."""
    value = float(gap_fraction(baseline, distilled, ensemble))
    return None if np.isnan(value) else round(value, RATE_DECIMALS)


def headline_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """What ``dvc metrics show/diff`` and ``dvc exp show`` print (``reports/metrics.json``): test
    WER of every system, each distilled student's WER difference with its twin and
    ``gap_recovered``, and the int8 student's CPU speed-up over the ensemble. Everything else
    is in ``reports/evaluation.json``."""
    return {
        "test_wer": dict(metrics["wer"]["test"]),
        "wer_diff": dict(metrics["wer_diff"]),
        "gap_recovered": dict(metrics["gap_recovered"]),
        "int8_speedup": metrics["goals"]["int8_speedup"],
    }


def twin_of(name: str, params: Params) -> str:
    """The directly trained twin a distilled student is compared with (``students.<name>.twin``)."""
    return params.twin_model(name.removeprefix("student."))


def compared_students(params: Params) -> list[str]:
    """Every distilled student (``students``), each compared with its twin."""
    return [f"student.{n}" for n in params.distilled_students()]


def named_models(
    teachers: Mapping[str, ConformerCTC], students: Mapping[str, ConformerCTC]
) -> dict[str, ConformerCTC]:
    """Models under their report names: ``teacher.<name>`` then ``student.<name>``."""
    return {
        **{f"teacher.{n}": m for n, m in teachers.items()},
        **{f"student.{n}": m for n, m in students.items()},
    }


@dataclass
class Decoded:
    """Transcripts of test by every system with every decoder, in loader order."""

    ids: list[str]
    refs: list[str]
    by_decoder: dict[str, dict[str, list[str]]]  # decoder -> system -> one transcript per utterance
    default: str  # the decoder of the headline
    agreement: dict[str, float]  # system -> share of frames whose argmax is the ensemble's
    delays: dict[str, dict[str, Any]] = field(default_factory=dict)  # system -> token delay vs ensemble

    @property
    def hyps(self) -> dict[str, list[str]]:
        """System -> transcripts with the default decoder."""
        return self.by_decoder[self.default]


@torch.no_grad()
def decode_test(
    models: Mapping[str, ConformerCTC],
    combine: str,
    loader: BatchLoader,
    decoders: Mapping[str, Decoder],
    default: str,
) -> Decoded:
    """Decode ``loader`` with every model (report name -> model, :func:`named_models`) and with
    the ``combine`` ensemble of the ``teacher.*`` ones, each with every one of ``decoders``
    (name -> :func:`pipeline.model.decoding.make_decoder`); ``default`` names the headline's."""
    for m in models.values():
        m.eval()
    systems = [*models, "ensemble"]
    by_decoder: dict[str, dict[str, list[str]]] = {d: {name: [] for name in systems} for d in decoders}
    agree: dict[str, list[int]] = {name: [0, 0] for name in [*models, "ensemble"]}
    delays = {name: DelayMeter() for name in models}
    ids: list[str] = []
    refs: list[str] = []
    for batch in loader:
        outs = {name: m(batch.feats, batch.lengths) for name, m in models.items()}
        lengths = next(iter(outs.values()))[1]
        teacher_logits = [logits for name, (logits, _) in outs.items() if name.startswith("teacher.")]
        ens = combine_posteriors(teacher_logits, 1.0, combine).log()
        outs["ensemble"] = (ens, lengths)
        ens_best = ens.argmax(-1)
        mask = torch.arange(ens.shape[1], device=lengths.device)[None, :] < lengths[:, None]
        ids += batch.ids
        refs += batch.texts
        for name, (logits, lens) in outs.items():
            for d, decode in decoders.items():
                by_decoder[d][name] += decode(logits, lens)
            agree[name][0] += int(((logits.argmax(-1) == ens_best) & mask).sum())
            agree[name][1] += int(mask.sum())
            if name in delays:
                for i, n in enumerate(lens.tolist()):
                    delays[name].update(ens_best[i, :n].cpu().numpy(), logits[i, :n].argmax(-1).cpu().numpy())
    agreement = {n: a / max(t, 1) for n, (a, t) in agree.items()}
    delays_out = {n: m.result() for n, m in delays.items()}
    return Decoded(ids, refs, by_decoder, default, agreement, delays=delays_out)


def rounded(interval: Interval | None) -> list[float] | None:
    """An interval as a JSON ``[lo, hi]`` list (None stays None)."""
    return None if interval is None else [round(v, INTERVAL_DECIMALS) for v in interval]


def error_rate_intervals(
    params: Params, errors: Mapping[str, UtteranceErrors]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Paired-bootstrap WER draws per system (``(B,)`` each), and the ``wer_ci``/``cer_ci``
    metrics. WER and CER use the same resamples (same seed)."""
    cfg = params.evaluate
    first = next(iter(errors.values()))
    wer = paired_bootstrap(
        {n: e.words for n, e in errors.items()}, first.ref_words, cfg.bootstrap_samples, cfg.bootstrap_seed
    )
    cer = paired_bootstrap(
        {n: e.chars for n, e in errors.items()}, first.ref_chars, cfg.bootstrap_samples, cfg.bootstrap_seed
    )
    metrics = {
        "bootstrap": {
            "samples": cfg.bootstrap_samples,
            "seed": cfg.bootstrap_seed,
            "confidence": cfg.confidence,
        }
    }
    for key, draws in (("wer_ci", wer), ("cer_ci", cer)):
        metrics[key] = {
            "test": {n: rounded(percentile_interval(d, cfg.confidence)) for n, d in draws.items()}
        }
    return wer, metrics


def decoder_comparisons(params: Params, decoded: Decoded) -> dict[str, Any]:
    """WER and its interval of every system with every decoder, and the LM's effect per system
    (``lexicon+lm`` minus ``lexicon``, paired) when both are scored."""
    cfg = params.evaluate
    wer: dict[str, dict[str, float]] = {}
    ci: dict[str, dict[str, list[float] | None]] = {}
    draws: dict[str, dict[str, np.ndarray]] = {}
    for d, hyps in decoded.by_decoder.items():
        errors = {name: utterance_errors(decoded.refs, h) for name, h in hyps.items()}
        first = next(iter(errors.values()))
        draws[d] = paired_bootstrap(
            {n: e.words for n, e in errors.items()},
            first.ref_words,
            cfg.bootstrap_samples,
            cfg.bootstrap_seed,
        )
        wer[d] = {n: round(e.wer, RATE_DECIMALS) for n, e in errors.items()}
        ci[d] = {n: rounded(percentile_interval(x, cfg.confidence)) for n, x in draws[d].items()}
    out: dict[str, Any] = {"wer_by_decoder": {"test": wer}, "wer_ci_by_decoder": {"test": ci}}
    if {"lexicon", "lexicon+lm"} <= set(wer):
        out["lm_effect"] = {
            n: {
                "diff": round(wer["lexicon+lm"][n] - wer["lexicon"][n], INTERVAL_DECIMALS),
                "ci": rounded(
                    percentile_interval(draws["lexicon+lm"][n] - draws["lexicon"][n], cfg.confidence)
                ),
            }
            for n in wer["lexicon"]
        }
    return out


def student_comparisons(
    params: Params, wer: Mapping[str, float], draws: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Each compared student against its comparison model: WER difference (negative:
    the student is better) with its interval, and gap_recovered with its interval."""
    confidence = params.evaluate.confidence
    keys = (
        "twin",
        "wer_diff",
        "wer_diff_ci",
        "gap_recovered",
        "gap_recovered_ci",
        "gap_recovered_skipped",
        "beats_twin",
    )
    out: dict[str, dict[str, Any]] = {k: {} for k in keys}
    for name in compared_students(params):
        twin = out["twin"][name] = twin_of(name, params)
        out["wer_diff"][name] = round(wer[name] - wer[twin], INTERVAL_DECIMALS)
        out["wer_diff_ci"][name] = rounded(percentile_interval(draws[name] - draws[twin], confidence))
        out["gap_recovered"][name] = gap_recovered(wer[twin], wer[name], wer["ensemble"])
        out["beats_twin"][name] = bool(out["wer_diff_ci"][name][1] < 0)
        ci, skipped = gap_interval(draws[twin], draws[name], draws["ensemble"], confidence)
        out["gap_recovered_ci"][name], out["gap_recovered_skipped"][name] = rounded(ci), skipped
        if skipped:
            log.info(
                "gap_recovered of %s: %d of %d bootstrap draws skipped (ensemble not better than %s)",
                name,
                skipped,
                len(draws[name]),
                twin,
            )
    return {**out, "distilled_beats_baseline": out["beats_twin"]["student.distilled"]}


def ensemble_comparison(
    params: Params, wer: Mapping[str, float], draws: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """The ensemble against its best single teacher (lowest test WER), paired."""
    best = min((n for n in wer if n.startswith("teacher.")), key=lambda n: wer[n])
    ci = rounded(percentile_interval(draws["ensemble"] - draws[best], params.evaluate.confidence))
    diff = round(wer["ensemble"] - wer[best], INTERVAL_DECIMALS)
    return {
        "ensemble_vs_best_teacher": {"best": best, "diff": diff, "ci": ci},
        "ensemble_beats_best_teacher": bool(ci[1] < 0),
        "ensemble_better_point": bool(wer["ensemble"] < wer[best]),
    }


def group_labels(speakers: Sequence[str]) -> tuple[str, list[str]]:
    """``("accent", accents)`` when every speaker is ``accent+variant`` (synthetic corpora),
    else ``("speaker", speakers)``."""
    if speakers and all("+" in s for s in speakers):
        return "accent", [s.split("+", 1)[0] for s in speakers]
    return "speaker", list(speakers)


def wer_by_group(errors: Mapping[str, UtteranceErrors], speakers: Sequence[str]) -> dict[str, Any]:
    """WER per accent or speaker for every system, with utterances and words per group.

    ``speakers``: the manifest speaker of each utterance, in the order of the error arrays.
    """
    group_by, labels = group_labels(speakers)
    groups, inverse = np.unique(np.asarray(labels), return_inverse=True)
    ref_words = np.bincount(inverse, weights=next(iter(errors.values())).ref_words)  # (G,)
    out: dict[str, Any] = {
        "group_by": group_by,
        "utterances": dict(zip(groups.tolist(), np.bincount(inverse).tolist())),
        "words": dict(zip(groups.tolist(), ref_words.astype(int).tolist())),
    }
    for name, e in errors.items():
        rates = np.bincount(inverse, weights=e.words) / np.maximum(ref_words, 1)
        out[name] = {g: round(float(r), RATE_DECIMALS) for g, r in zip(groups.tolist(), rates)}
    return out


def top_substitutions(pairs: Counter[tuple[str, str]], k: int) -> list[dict[str, Any]]:
    """The ``k`` most frequent ``{ref, hyp, count}`` substitutions (ties by ref, hyp)."""
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [{"ref": r, "hyp": h, "count": c} for (r, h), c in ranked]


def evaluate_models(
    params: Params, models: Mapping[str, ConformerCTC], decoded: Decoded, speakers: Mapping[str, str]
) -> dict[str, Any]:
    """The metrics mapping of every system from its test transcripts (:func:`decode_test`): the
    headline with the default decoder, every decoder in ``wer_by_decoder`` (and best path as
    ``wer_greedy`` when it is one of them).

    ``models``: report name -> model (:func:`named_models`), for their sizes;
    ``speakers``: utterance id -> manifest speaker (:func:`read_speakers`).
    """
    errors = {name: utterance_errors(decoded.refs, h) for name, h in decoded.hyps.items()}
    wer = {name: e.wer for name, e in errors.items()}
    draws, intervals = error_rate_intervals(params, errors)
    shown = ["ensemble", *compared_students(params)]
    return {
        "wer": {"test": {n: round(v, RATE_DECIMALS) for n, v in wer.items()}},
        "cer": {"test": {n: round(e.cer, RATE_DECIMALS) for n, e in errors.items()}},
        **(
            {
                "wer_greedy": {
                    "test": {n: score(decoded.refs, h)[0] for n, h in decoded.by_decoder["greedy"].items()}
                }
            }
            if "greedy" in decoded.by_decoder
            else {}
        ),
        **decoder_comparisons(params, decoded),
        **intervals,
        "frame_agreement": {"test": {n: round(a, 4) for n, a in decoded.agreement.items()}},
        # When each system emits the tokens it shares with the ensemble, against the ensemble's spikes.
        "token_delay": {"test": decoded.delays},
        "streaming": {n: m.cfg.chunk_frames for n, m in models.items() if m.cfg.streaming},
        "params": {n: count_parameters(m) for n, m in models.items()},
        "test_utterances": len(decoded.refs),
        "test_words": int(errors["ensemble"].ref_words.sum()),
        **student_comparisons(params, wer, draws),
        **ensemble_comparison(params, wer, draws),
        "wer_by_group": wer_by_group(errors, speakers_of(decoded.ids, speakers)),
        "substitutions": {
            n: top_substitutions(errors[n].substitutions, params.evaluate.top_substitutions) for n in shown
        },
        "examples": [
            {"ref": r, **{n: decoded.hyps[n][i] for n in ("ensemble", "student.distilled")}}
            for i, r in enumerate(decoded.refs[:5])
        ],
    }


def read_speakers(manifest: Path) -> dict[str, str]:
    """Utterance id -> speaker from a manifest (``data/manifests/test.jsonl``)."""
    return {r["id"]: r["speaker"] for r in read_jsonl(manifest)}


def speakers_of(ids: Sequence[str], speakers: Mapping[str, str]) -> list[str]:
    """The speaker of each utterance in ``ids``; an utterance without one is an error."""
    missing = [u for u in ids if u not in speakers]
    if missing:
        raise MissingError(
            f"{len(missing)} test utterances have no speaker in the manifest, e.g. {missing[:3]}"
        )
    return [speakers[u] for u in ids]


def oov_rates(prepare: Mapping[str, Any]) -> dict[str, float]:
    """OOV rate against train of dev and test, from ``reports/prepare.json`` (splits without one
    are left out)."""
    corpus = prepare.get("corpus", {})
    rates = {s: corpus.get(s, {}).get("oov_rate") for s in EVAL_SPLITS}
    return {s: r for s, r in rates.items() if r is not None}


# What evaluate copies from the export stage's report (reports/export.json).
BENCHMARK_KEYS = ("rtf", "sizes", "goals", "rtf_utterances", "rtf_audio_seconds", "deployed")
OPTIONAL_BENCHMARK_KEYS = ("streaming",)  # streaming students' chunk timings and latency


def deployment_metrics(
    export_report: dict[str, object], wer: dict[str, float], wer_greedy: dict[str, float] | None = None
) -> dict[str, object]:
    """The export stage's benchmark (``reports/export.json``) for the evaluation report, with
    the test WER of every benchmarked runtime, decoded two ways:

    ``runtime_wer``: evaluate's decoder (``wer``, per system), for the ensemble and the
    PyTorch rows; ``runtime_wer_greedy``: best path, as ``asr-distill transcribe`` runs,
    from ``wer_greedy`` (evaluate) and, for the exported formats, the export stage's
    parity check; ``deployed``: per exported runtime, as ``asr-distill transcribe`` runs it,
    its default decoder, test WER with interval, end-to-end real-time factor and decoding's
    share of it (the export stage's).
    """
    missing = [k for k in ("wer", *BENCHMARK_KEYS) if k not in export_report]
    if missing:
        raise MissingError(f"export report lacks {missing}: re-run the export stage")
    rtf = export_report["rtf"]

    def per_runtime(by_system: dict[str, float]) -> dict[str, float | None]:
        return {
            **{f"{n}.torch": v for n, v in by_system.items() if n != "ensemble"},
            "ensemble": by_system.get("ensemble"),
        }

    decoded = per_runtime(wer)
    greedy = {**per_runtime(wer_greedy or {}), **export_report["wer"]}
    return {
        **{k: export_report[k] for k in BENCHMARK_KEYS},
        **{f"{k}_timing": export_report[k] for k in OPTIONAL_BENCHMARK_KEYS if k in export_report},
        "runtime_wer": {n: decoded.get(n) for n in rtf},
        "runtime_wer_greedy": {n: greedy.get(n) for n in rtf},
    }


def lm_weights(export_report: Mapping[str, Any], student: str = "student.distilled") -> dict[str, float]:
    """The LM weight and word score chosen on dev for ``student`` (``reports/export.json``'s
    ``decoding``), used by evaluate's ``lexicon+lm`` for every system."""
    chosen = export_report.get("decoding", {}).get(student)
    if chosen is None:
        raise MissingError(f"export report lacks the dev grid of {student}: re-run the export stage")
    return {"lm_weight": chosen["lm_weight"], "word_score": chosen["word_score"]}
