"""Documented sweeps over students, on the teachers and soft targets of a finished run.

Each sweep trains students with changed parameters next to a finished `dvc repro` (its
features, tokenizer, teachers and soft targets are reused, never changed), decodes dev and
test with the beam over the train transcripts' words (the ``lexicon`` decoder, no LM), and
writes one JSON and one Markdown table: WER on dev (where settings are chosen) and on test
with 95 % paired-bootstrap intervals, each distilled variant's WER difference with its twin
and ``gap_recovered`` against the ensemble, with their intervals.

Sweeps (variants are ``name: (student, {dotted.param: value})``; a variant with no changes
reuses the run's own model):

- ``levers``: KD weight, temperature, blank-aware KD frames, sequence-level KD (CTC on the
  ensemble's greedy transcripts of untranscribed audio, which the default student uses) and
  the transfer set itself, on the default student.
- ``scarce``: both twins with a fifth of the train transcripts (the rest of train joins the
  transfer set).
- ``ladder``: the twins at about a third of a teacher's parameters; with the run's own
  tenth-size and member-size pairs (the member against teacher t1, forked from the guide
  the same way) it writes ``experiments/size_ladder.json`` for the plot.
- ``transfer``: the transfer set's size: the default student with a larger transfer set
  (``--transfer-sizes``; default twice the run's ``data.synthetic.transfer_utterances``)
  against the run's own, all against the run's twin (the teachers and the twin do not read
  the transfer set). Each size gets a derived data folder ``<out>/data/transfer<N>/``, built
  once (:func:`transfer_data`): the run's transfer rows plus new ones synthesized exactly as
  a full ``prepare`` with N transfer utterances would (the sentence pool and the
  per-utterance seeds are prefix-stable), their features (the run's CMVN, train, dev and
  test stores, linked), and the teachers' soft targets of the whole transfer set (the run's
  train and dev targets, linked).

Every variant trains to convergence under its stopping rule, as the run's own models do.

Usage (in a checkout where ``make run`` finished; results under ``experiments/runs/``)::

    python experiments/sweep.py levers            # train what is missing, then score
    python experiments/sweep.py levers --only alpha0.9 --threads 1   # train one variant
    python experiments/sweep.py ladder --score-only
    python experiments/sweep.py transfer --threads 2              # twice the run's transfer set
    python experiments/sweep.py transfer --run /tmp/tiny --transfer-sizes 80   # other sizes
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from pipeline.bootstrap import gap_interval, paired_bootstrap, percentile_interval  # noqa: E402
from pipeline.config import DataConfig, Params, override, parse_params  # noqa: E402
from pipeline.evaluate.score import decode_test, gap_recovered, named_models  # noqa: E402
from pipeline.features.extract import extract_split, extraction_pool  # noqa: E402
from pipeline.features.shards import assemble_split, output_params  # noqa: E402
from pipeline.io import atomic_path, file_digest, read_json, read_jsonl, write_json, write_jsonl  # noqa: E402
from pipeline.loader import make_loader  # noqa: E402
from pipeline.model.conformer import count_parameters, load_model  # noqa: E402
from pipeline.model.decoding import LEXICON, make_decoder  # noqa: E402
from pipeline.prepare.synthetic import (  # noqa: E402
    SYNTH_BATCH,
    check_voices,
    plan_split,
    synthesize,
    synthetic_sentences,
)
from pipeline.prepare.writer import SplitWriter  # noqa: E402
from pipeline.soft_targets.build import build_soft_targets  # noqa: E402
from pipeline.splits import LABELLED_SPLITS, SOFT_TARGET_SPLITS, TRANSFER  # noqa: E402
from pipeline.stage import setup_logging  # noqa: E402
from pipeline.store import Store  # noqa: E402
from pipeline.tokens import load_tokenizer  # noqa: E402
from pipeline.train.paths import TrainPaths  # noqa: E402
from pipeline.train.recipes import train_small  # noqa: E402
from pipeline.wer import utterance_errors  # noqa: E402

log = logging.getLogger("asr_distill.sweep")

THIRD = {
    "d_model": 128,
    "num_layers": 3,
    "num_heads": 4,
    "ffn_dim": 384,
    "conv_kernel": 15,
    "subsampling_channels": 32,
    "dropout": 0.1,
}
TRANSFER_KEY = "data.synthetic.transfer_utterances"  # the one data param a sweep may change
SCARCE = {"twins.baseline.labelled_fraction": 0.2, "students.distilled.labelled_fraction": 0.2}
THIRD_PAIR = {"twins.baseline.model": THIRD, "students.distilled.model": THIRD}


def transfer_variants(sizes: Iterable[int]) -> dict[str, tuple[str, dict[str, Any], str | None]]:
    """The ``transfer`` sweep: the run's twin pair and the distilled student at each transfer-set size."""
    return {
        "baseline": ("baseline", {}, None),
        "distilled": ("distilled", {}, "baseline"),
        **{f"transfer{n}": ("distilled", {TRANSFER_KEY: n}, "baseline") for n in sizes},
    }


# name: (student, overrides, twin variant or None for a directly trained model)
SWEEPS: dict[str, dict[str, tuple[str, dict[str, Any], str | None]]] = {
    "levers": {
        "baseline": ("baseline", {}, None),
        "distilled": ("distilled", {}, "baseline"),
        "alpha0.9": ("distilled", {"students.distilled.alpha": 0.9}, "baseline"),
        "temperature1": ("distilled", {"soft_targets.temperature": 1.0}, "baseline"),
        "nonblank": ("distilled", {"students.distilled.kd_frames": "nonblank"}, "baseline"),
        "kd_only_nonblank": (
            "distilled",
            {"students.distilled.alpha": 1.0, "students.distilled.kd_frames": "nonblank"},
            "baseline",
        ),
        "no_pseudo_labels": ("distilled", {"students.distilled.pseudo_labels": False}, "baseline"),
        "greedy_pseudo_labels": ("distilled", {"soft_targets.transcripts": "greedy"}, "baseline"),
        "no_transfer": ("distilled", {"students.distilled.transfer": False}, "baseline"),
    },
    "scarce": {
        "baseline_fifth": ("baseline", SCARCE, None),
        "distilled_fifth": ("distilled", SCARCE, "baseline_fifth"),
    },
    "ladder": {
        "baseline": ("baseline", {}, None),
        "distilled": ("distilled", {}, "baseline"),
        "baseline_third": ("baseline", THIRD_PAIR, None),
        "distilled_third": ("distilled", THIRD_PAIR, "baseline_third"),
        "t1": ("t1", {}, None),
        "member": ("member", {}, "t1"),
    },
    "transfer": transfer_variants(()),  # its sizes: --transfer-sizes, or twice the run's
}
TEACHERS = ("guide", "t1", "t2")  # variants that name a teacher reuse the run's own model


def soft_targets_for(run: Path, params: Params, out: Path) -> Path:
    """The run's soft targets, or new ones at this variant's ``soft_targets`` settings."""
    if not (run / "data/soft_targets/train/index.json").exists():
        return run / "data/soft_targets"  # a twin reads none (and the run has not made them yet)
    meta = read_json(run / "data/soft_targets/train/index.json").get("meta", {})
    same = (
        float(meta.get("temperature", -1)) == params.soft_targets.temperature
        and int(meta.get("top_k", -1)) == params.soft_targets.top_k
        and meta.get("transcripts") == params.soft_targets.transcripts
    )
    if same:
        return run / "data/soft_targets"
    st = params.soft_targets
    target = out / f"soft_targets_T{st.temperature:g}_k{st.top_k}_{st.transcripts}"
    if not (target / "train" / "index.json").exists():
        teacher_targets(run, params, run / "data", SOFT_TARGET_SPLITS, target)
    return target


def teacher_targets(
    run: Path, params: Params, data: Path, splits: Iterable[str], target: Path
) -> dict[str, Any]:
    """Build the run's teachers' soft targets of ``splits`` of ``data`` (its ``features/`` and
    ``manifests/``) into ``target``; returns the stage's metrics."""
    sp = load_tokenizer(run / "data/tokenizer/spm.model")
    files = {n: run / "models/teachers" / f"{n}.pt" for n in params.teacher_names()}
    models = {n: load_model(f) for n, f in files.items()}
    bf = params.train.batch_frames
    loaders = {s: make_loader(data / "features", data / "manifests", s, sp, bf) for s in splits}
    words = [w for r in read_jsonl(run / "data/manifests/train.jsonl") for w in r["text"].split()]
    digests = {n: file_digest(f) for n, f in files.items()}
    return build_soft_targets(params, models, loaders, sp, target, words, digests)


class DataPaths(NamedTuple):
    """What a variant trains on: features, manifests and soft targets."""

    features: Path
    manifests: Path
    soft_targets: Path


def variant_data(
    run: Path, out: Path, raw: dict[str, Any], params: Params, changes: dict[str, Any]
) -> DataPaths:
    """The run's data, or, for a variant that changes the transfer set's size, its derived folder."""
    data_keys = sorted(k for k in changes if k.startswith("data."))
    if not data_keys:
        data = run / "data"
        return DataPaths(data / "features", data / "manifests", soft_targets_for(run, params, out))
    if data_keys != [TRANSFER_KEY]:
        raise ValueError(f"{data_keys}: of the data, a sweep changes only {TRANSFER_KEY}")
    start = parse_params(raw).data.synthetic.transfer_utterances
    return transfer_data(run, out, params, start)


def transfer_data(run: Path, out: Path, params: Params, start: int) -> DataPaths:
    """``<out>/data/transfer<N>/``, built once: the run's data with transfer utterances
    ``start..N-1`` added (manifests, features, soft targets)."""
    size = params.data.synthetic.transfer_utterances
    if params.data.source != "synthetic" or size <= start:
        raise ValueError(
            f"{TRANSFER_KEY}={size}: a larger transfer set ({start} in the run) needs the synthetic corpus"
        )
    folder = out.resolve() / "data" / f"transfer{size}"
    source = soft_targets_for(run, params, out)
    if not (source / "train" / "index.json").exists():
        raise FileNotFoundError(f"{source}: the run's soft targets are missing (run `make run` first)")
    derived_manifests(run, folder, params.data, start)
    derived_features(run, folder, params)
    derived_soft_targets(run, folder, params, source)
    return DataPaths(folder / "features", folder / "manifests", folder / "soft_targets")


def link(src: Path, dst: Path) -> None:
    """``dst``: a symlink to ``src`` (absolute), made once."""
    if not dst.is_symlink():
        dst.symlink_to(src.resolve())


def derived_manifests(run: Path, folder: Path, cfg: DataConfig, start: int) -> None:
    """``folder/manifests``: the run's train, dev and test (linked) and its transfer rows (audio
    paths made absolute) followed by the new utterances; their rejects in ``rejects.jsonl``."""
    target = folder / "manifests"
    if (target / f"{TRANSFER}.jsonl").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for split in LABELLED_SPLITS:
        link(run / "data/manifests" / f"{split}.jsonl", target / f"{split}.jsonl")
    old = [
        {**r, "audio": str(run.resolve() / r["audio"])}
        for r in read_jsonl(run / "data/manifests/transfer.jsonl")
    ]
    if old and int(old[-1]["id"].rsplit("-", 1)[1]) >= start:
        raise ValueError(f"{run}: transfer ids reach {old[-1]['id']}, beyond its {TRANSFER_KEY}={start}")
    rows, rejects = new_transfer_rows(cfg, start, folder / "audio")
    write_jsonl(target / "rejects.jsonl", rejects)
    write_jsonl(target / f"{TRANSFER}.jsonl", old + rows)  # last: it marks the folder complete


def new_transfer_rows(cfg: DataConfig, start: int, audio: Path) -> tuple[list[dict], list[dict]]:
    """Synthesize transfer utterances ``start..`` (``cfg``'s count) into ``audio/transfer/`` as a
    full ``prepare`` would, through its writer's checks; returns (manifest rows, rejects).

    espeak-ng keeps state within a batch of ``SYNTH_BATCH``, so a batch is spoken from its start
    and the utterances before ``start`` are dropped."""
    s = cfg.synthetic
    check_voices(s)
    # As synthetic_corpus plans it: the transfer set speaks with the training voices.
    plans = plan_split(TRANSFER, synthetic_sentences(cfg)[TRANSFER], s.train_variants, s, cfg.seed)
    first = start - start % SYNTH_BATCH
    writer = SplitWriter(cfg, audio, audio)
    t0, todo = time.time(), len(plans) - start
    log.info("synthesizing transfer utterances %d..%d (%d, from %d)", start, len(plans) - 1, todo, first)
    for i, (split, u) in enumerate(synthesize({TRANSFER: plans[first:]}, s, cfg.sample_rate), first):
        if i >= start:
            writer.add(u.id, split, u.audio, u.text, u.speaker)
    seconds = time.time() - t0
    rejects = writer.rejects
    log.info(
        "synthesized %d transfer utterances in %.0fs (%.1f utt/s); %d rejected: %s",
        todo,
        seconds,
        todo / max(seconds, 1e-9),
        len(rejects),
        sorted({r["reason"] for r in rejects})[:5],
    )
    if len(rejects) > cfg.max_reject_fraction * todo:
        raise ValueError(
            f"{len(rejects)}/{todo} new transfer utterances rejected, above data.max_reject_fraction"
        )
    return writer.rows[TRANSFER], rejects


def derived_features(run: Path, folder: Path, params: Params) -> None:
    """``folder/features``: the run's train, dev and test stores and CMVN (train's, linked, never
    recomputed) and a transfer store of the whole derived transfer manifest."""
    target = folder / "features"
    if (target / TRANSFER / "index.json").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in (*LABELLED_SPLITS, "cmvn.json"):
        link(run / "data/features" / name, target / name)
    cfg, sample_rate = params.features, params.data.sample_rate
    meta = {"sample_rate": sample_rate, **output_params(cfg)}
    if Store(run / "data/features/train").meta != meta:
        raise ValueError(f"{run}/data/features: made with other features params than params.yaml's")
    rows = read_jsonl(folder / "manifests" / f"{TRANSFER}.jsonl")
    work = folder / "features.partial" / TRANSFER
    t0 = time.time()
    with extraction_pool(cfg.num_workers) as pool:  # as the features stage runs them
        result = extract_split(rows, work, cfg, sample_rate, f"fbank {TRANSFER}", pool)
    with atomic_path(target / TRANSFER) as tmp:
        assemble_split(work, tmp, result.sidecars, meta, cfg.n_mels)
    shutil.rmtree(folder / "features.partial")
    seconds = time.time() - t0
    log.info(
        "features of %d transfer utterances in %.0fs (%.1f utt/s)", len(rows), seconds, len(rows) / seconds
    )


def derived_soft_targets(run: Path, folder: Path, params: Params, source: Path) -> None:
    """``folder/soft_targets``: the teachers' targets and transcripts of the whole derived transfer
    set; train and dev (and train's transcripts) linked from ``source``, the run's."""
    target = folder / "soft_targets"
    if not (target / TRANSFER / "index.json").exists():
        metrics = teacher_targets(run, params, folder, [TRANSFER], target)
        n = metrics[TRANSFER]["utterances"]
        log.info(
            "soft targets of %d transfer utterances in %.0fs (%.1f utt/s)",
            n,
            metrics["seconds"],
            n / max(metrics["seconds"], 1e-9),
        )
        write_json(folder / "soft_targets.json", metrics)
    for name in ("train", "dev", "train.hyps.json"):
        link(source / name, target / name)


def model_path(run: Path, out: Path, name: str, student: str, changes: dict[str, Any]) -> Path:
    if student in TEACHERS:
        return run / f"models/teachers/{student}.pt"
    if not changes:
        return run / f"models/students/{student}.pt"
    return out / "models" / f"{name}.pt"


def train_variants(run: Path, out: Path, raw: dict[str, Any], variants: dict, threads: int) -> None:
    for name, (student, changes, _) in variants.items():
        target = model_path(run, out, name, student, changes)
        if target.exists():
            continue
        if not changes:
            raise FileNotFoundError(f"{target}: the run's own model is missing (run `make run` first)")
        params = parse_params(
            override(raw, {**changes, "train.threads": threads}), f"params.yaml with {changes}"
        )
        data = variant_data(run, out, raw, params, changes)
        paths = TrainPaths(
            features=data.features,
            manifests=data.manifests,
            tokenizer=run / "data/tokenizer/spm.model",
            soft_targets=data.soft_targets,
            guide=run / "models/teachers/guide.pt",  # a forked student's warm start
            model=target,
            checkpoints=out / "checkpoints" / name,
            live=out / "live" / name,
        )
        log.info("training %s (%s) with %s", name, student, changes)
        metrics = train_small(params, student, paths)
        write_json(out / "train" / f"{name}.json", {**metrics, "changes": changes})


def lexicon_beam(run: Path, sp, beam_size: int):
    """The sweeps' decoder: beam search over the run's lexicon (the ``lm`` stage's), no LM (the
    comparisons are of acoustic models; the LM's effect is the evaluate stage's)."""
    lexicon = run / "data/lm" / LEXICON
    return make_decoder("lexicon", sp, lexicon=lexicon, beam_size=beam_size, lm_weight=0.0, word_score=0.0)


def decoded(
    run: Path, out: Path, params: Params, split: str, models: dict[str, Path]
) -> tuple[list[str], dict[str, list[str]]]:
    """References and transcripts of ``split`` per model and the ensemble, cached by file digest."""
    cache = out / "hyps" / f"{split}.json"
    store = read_json(cache) if cache.exists() else {}
    digests = {n: file_digest(p) for n, p in models.items()}
    teachers = {n: run / "models/teachers" / f"{n}.pt" for n in params.teacher_names()}
    ens_key = "ensemble:" + ",".join(file_digest(p) for p in teachers.values())
    missing = {n: p for n, p in models.items() if digests[n] not in store}
    if missing or ens_key not in store:
        sp = load_tokenizer(run / "data/tokenizer/spm.model")
        loader = make_loader(
            run / "data/features", run / "data/manifests", split, sp, params.train.batch_frames
        )
        decode = lexicon_beam(run, sp, params.decoding.beam_size)
        if ens_key not in store:
            ensemble = named_models({n: load_model(p) for n, p in teachers.items()}, {})
            result = decode_test(ensemble, params.ensemble.combine, loader, {"lexicon": decode}, "lexicon")
            store["refs"], store[ens_key] = result.refs, result.hyps["ensemble"]
        store.update({digests[n]: h for n, h in decode_models(missing, loader, decode).items()})
        write_json(cache, store)
    return store["refs"], {**{n: store[digests[n]] for n in models}, "ensemble": store[ens_key]}


@torch.no_grad()
def decode_models(models: dict[str, Path], loader, decode) -> dict[str, list[str]]:
    """Transcripts of every utterance of ``loader`` per model, in loader order."""
    loaded = {n: load_model(p).eval() for n, p in models.items()}
    hyps: dict[str, list[str]] = {n: [] for n in loaded}
    for batch in loader:
        for n, m in loaded.items():
            hyps[n] += decode(*m(batch.feats, batch.lengths))
    return hyps


def score(
    run: Path,
    out: Path,
    params: Params,
    variants: dict,
    split: str,
    relative_to: dict[str, str] | None = None,
) -> dict[str, Any]:
    """WER with intervals per variant; against its twin where it has one; and, for the variants
    ``relative_to`` maps to a reference variant, its WER relative to the reference's."""
    models = {
        name: model_path(run, out, name, student, changes) for name, (student, changes, _) in variants.items()
    }
    refs, hyps = decoded(run, out, params, split, models)
    errors = {n: utterance_errors(refs, h) for n, h in hyps.items()}
    cfg = params.evaluate
    first = errors["ensemble"]
    draws = paired_bootstrap(
        {n: e.words for n, e in errors.items()}, first.ref_words, cfg.bootstrap_samples, cfg.bootstrap_seed
    )
    rows = {}
    for name in [*variants, "ensemble"]:
        e = errors[name]
        row = {
            "wer": round(e.wer, 4),
            "wer_ci": [round(v, 4) for v in percentile_interval(draws[name], cfg.confidence)],
        }
        twin = variants.get(name, (None, None, None))[2]
        if twin is not None:
            diff = draws[name] - draws[twin]
            ci, _ = gap_interval(draws[twin], draws[name], draws["ensemble"], cfg.confidence)
            row.update(
                {
                    "twin": twin,
                    "wer_diff": round(e.wer - errors[twin].wer, 4),
                    "wer_diff_ci": [round(v, 4) for v in percentile_interval(diff, cfg.confidence)],
                    "gap_recovered": gap_recovered(errors[twin].wer, e.wer, errors["ensemble"].wer),
                    "gap_recovered_ci": None if ci is None else [round(v, 3) for v in ci],
                }
            )
        reference = (relative_to or {}).get(name)
        if reference:
            ratio = draws[name] / draws[reference] - 1
            row.update(
                {
                    "relative_to": reference,
                    "relative_wer": round(e.wer / errors[reference].wer - 1, 4),
                    "relative_wer_ci": [round(v, 4) for v in percentile_interval(ratio, cfg.confidence)],
                }
            )
        rows[name] = row
    return rows


def describe(run: Path, out: Path, variants: dict) -> dict[str, dict[str, Any]]:
    """Parameters, changes and training wall time of every variant."""
    info = {}
    for name, (student, changes, _) in variants.items():
        path = model_path(run, out, name, student, changes)
        kind = "teachers" if student in TEACHERS else "students"
        report = out / "train" / f"{name}.json" if changes else run / f"reports/{kind}/{student}.json"
        seconds = read_json(report).get("seconds") if report.exists() else None
        info[name] = {
            "student": student,
            "changes": changes,
            "params": count_parameters(load_model(path)),
            "seconds": seconds,
        }
    return info


def fmt(ci: list[float] | None) -> str:
    return (
        "n/a"
        if ci is None
        else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"
        if ci[0] < 0
        else f"[{ci[0]:.4f}, {ci[1]:.4f}]"
    )


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| variant | changes | params | dev WER | test WER | 95 % interval | vs twin | WER diff | "
        "diff interval | gap_recovered | gap interval | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, info in result["variants"].items():
        dev, test = result["dev"][name], result["test"][name]
        changes = (
            ", ".join(f"`{k}={v}`" for k, v in info["changes"].items() if not k.endswith(".model"))
            or "(run's own)"
        )
        if any(k.endswith(".model") for k in info["changes"]):
            changes = "third-size model" + ("" if changes == "(run's own)" else ", " + changes)
        twin = dev.get("twin")
        vs = (
            (
                f"{twin} | {test['wer_diff']:+.4f} | {fmt(test['wer_diff_ci'])} | "
                f"{test['gap_recovered']} | {fmt(test['gap_recovered_ci'])}"
            )
            if twin
            else " | | | |"
        )
        lines.append(
            f"| {name} | {changes} | {info['params']:,} | {dev['wer']:.4f} | "
            f"{test['wer']:.4f} | {fmt(test['wer_ci'])} | {vs} | {info['seconds'] or ''} |"
        )
    ens = result["test"]["ensemble"]
    lines.append(
        f"| ensemble | | | {result['dev']['ensemble']['wer']:.4f} | {ens['wer']:.4f} | "
        f"{fmt(ens['wer_ci'])} | | | | | | |"
    )
    return "\n".join(lines) + "\n"


def ladder_json(result: dict[str, Any]) -> dict[str, Any]:
    """Rows for experiments/size_ladder.py: (twin, distilled) pairs by size."""
    rows = []
    for name, info in result["variants"].items():
        twin = result["test"][name].get("twin")
        if twin:
            t, d = result["test"][twin], result["test"][name]
            rows.append(
                {
                    "params": info["params"],
                    "twin": [t["wer"], *t["wer_ci"]],
                    "distilled": [d["wer"], *d["wer_ci"]],
                    "name": name,
                }
            )
    ens = result["test"]["ensemble"]
    return {
        "rows": sorted(rows, key=lambda r: r["params"]),
        "ensemble": ens["wer"],
        "ensemble_ci": ens["wer_ci"],
        "date": result["date"],
    }


def trained(run: Path, out: Path, variants: dict) -> dict:
    """The variants whose model exists, and whose twin's does (``--score-only`` scores what
    is trained); the rest are named in the log."""
    have = {
        n
        for n, (student, changes, _) in variants.items()
        if model_path(run, out, n, student, changes).exists()
    }
    kept = {n: v for n, v in variants.items() if n in have and (v[2] is None or v[2] in have)}
    if len(kept) < len(variants):
        log.info("not trained, left out: %s", ", ".join(sorted(set(variants) - set(kept))))
    if not kept:
        raise FileNotFoundError(f"{out}: no variant of this sweep is trained")
    return kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", choices=sorted(SWEEPS))
    p.add_argument("--run", default=".", help="checkout where `make run` finished (default .)")
    p.add_argument("--out", default=None, help="results folder (default <run>/experiments/runs)")
    p.add_argument("--only", nargs="*", help="train only these variants, then stop")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default train.threads)")
    p.add_argument("--score-only", action="store_true", help="score what is trained, train nothing")
    p.add_argument(
        "--transfer-sizes",
        nargs="+",
        type=int,
        help="transfer sweep: its sizes, each larger than the run's (default twice the run's)",
    )
    args = p.parse_args()
    if args.transfer_sizes and args.sweep != "transfer":
        p.error("--transfer-sizes is for the transfer sweep")
    setup_logging()
    run = Path(args.run).resolve()
    out = Path(args.out).resolve() if args.out else run / "experiments" / "runs"
    raw = yaml.safe_load((run / "params.yaml").read_text())
    params = parse_params(raw)
    threads = args.threads or params.train.threads
    torch.set_num_threads(threads)
    variants = SWEEPS[args.sweep]
    if args.sweep == "transfer":
        variants = transfer_variants(args.transfer_sizes or [2 * params.data.synthetic.transfer_utterances])
    if args.only:
        unknown = set(args.only) - set(variants)
        if unknown:
            p.error(f"unknown variant(s) {sorted(unknown)}; {args.sweep} has {sorted(variants)}")
        train_variants(run, out, raw, {n: variants[n] for n in args.only}, threads)
        return
    if not args.score_only:
        train_variants(run, out, raw, variants, threads)
    variants = trained(run, out, variants)
    t0 = time.time()
    result = {
        "sweep": args.sweep,
        "date": time.strftime("%Y-%m-%d"),
        "variants": describe(run, out, variants),
        **{split: score(run, out, params, variants, split) for split in ("dev", "test")},
    }
    log.info("scored %d variants on dev and test in %.0fs", len(variants), time.time() - t0)
    write_json(out / f"{args.sweep}.json", result)
    (out / f"{args.sweep}.md").write_text(markdown(result))
    if args.sweep == "ladder":
        write_json(out / "size_ladder.json", ladder_json(result))
    print(markdown(result))
    best = min((n for n in variants if variants[n][2]), key=lambda n: result["dev"][n]["wer"])
    print(f"lowest dev WER among distilled variants: {best} ({result['dev'][best]['wer']:.4f})")


if __name__ == "__main__":
    main()
