"""Forked teachers against independent ones: the ensemble the default run builds, measured.

The default run's teachers other than the guide fork from the converged guide (``fork:
{init: guide}``, a short learning-rate cycle each). This experiment trains the same teachers
(each one's seed, architecture and dropout) from random inits instead, as the GPU profile
does: each until its stopping rule stops it, under the guide's cap, with the guided-CTC term
pulling its spikes onto the guide's frames (``ensemble.align: guide``). It then decodes dev
and test with every member and with both ensembles of the guide and its two others (forked;
independent), using the sweeps' decoder (beam search over the train transcripts' words, no
LM), and reports each system's WER with a 95 % paired-bootstrap interval, the independent
ensemble's WER difference from the forked one with its interval, each ensemble against its
best member, the share of frames on which each member's best token is its ensemble's, and
each teacher's training time and updates.

Usage (in a checkout where ``make run`` finished; results under ``experiments/runs/ensembles/``)::

    python experiments/ensembles.py                       # train what is missing, then score
    python experiments/ensembles.py --only t1 --threads 1 # train one teacher, then stop
    python experiments/ensembles.py --score-only
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep import lexicon_beam  # noqa: E402

from pipeline.bootstrap import paired_bootstrap, percentile_interval  # noqa: E402
from pipeline.config import Params, override, parse_params  # noqa: E402
from pipeline.io import read_json, write_json  # noqa: E402
from pipeline.loader import make_loader  # noqa: E402
from pipeline.model.conformer import load_model  # noqa: E402
from pipeline.model.ensemble import combine_posteriors  # noqa: E402
from pipeline.stage import setup_logging  # noqa: E402
from pipeline.tokens import load_tokenizer  # noqa: E402
from pipeline.train.paths import TrainPaths  # noqa: E402
from pipeline.train.recipes import train_teacher  # noqa: E402
from pipeline.wer import utterance_errors  # noqa: E402

log = logging.getLogger("asr_distill.ensembles")

FORKED, INDEPENDENT = "forked", "independent"


def independent_params(raw: dict[str, Any], params: Params, name: str, threads: int) -> Params:
    """``params`` with teacher ``name`` trained from a random init under the guide's cap (the
    students whose twin it is are left out: a guided teacher is no student's twin)."""
    raw = copy.deepcopy(raw)
    raw["students"] = {k: v for k, v in raw.get("students", {}).items() if v.get("twin") != name}
    changes = {
        f"teachers.others.{name}.fork": None,
        f"teachers.others.{name}.epochs": params.teachers.guide.epochs,
        "train.threads": threads,
    }
    return parse_params(override(raw, changes), f"params.yaml with {changes}")


def train_independent(run: Path, out: Path, raw: dict[str, Any], params: Params, names, threads: int) -> None:
    """Train each teacher of ``names`` from a random init into ``out/models/<name>.pt``."""
    for name in names:
        target = out / "models" / f"{name}.pt"
        if target.exists():
            continue
        paths = TrainPaths(
            features=run / "data/features",
            manifests=run / "data/manifests",
            tokenizer=run / "data/tokenizer/spm.model",
            guide=run / "models/teachers/guide.pt",  # the guided-CTC term's alignments
            model=target,
            checkpoints=out / "checkpoints" / name,
            live=out / "live" / name,
        )
        log.info("training teacher %s from a random init (guided by the guide)", name)
        metrics = train_teacher(independent_params(raw, params, name, threads), name, paths)
        write_json(out / "train" / f"{name}.json", metrics)


def systems(run: Path, out: Path, params: Params) -> dict[str, list[Path]]:
    """System name -> its teachers' model files (one file: a member; several: an ensemble)."""
    others = list(params.teachers.others)
    guide = run / "models/teachers/guide.pt"
    forked = [run / f"models/teachers/{n}.pt" for n in others]
    independent = [out / "models" / f"{n}.pt" for n in others]
    return {
        "guide": [guide],
        **{f"{n} ({FORKED})": [p] for n, p in zip(others, forked)},
        **{f"{n} ({INDEPENDENT})": [p] for n, p in zip(others, independent)},
        f"ensemble ({FORKED})": [guide, *forked],
        f"ensemble ({INDEPENDENT})": [guide, *independent],
    }


@torch.no_grad()
def decode_split(run: Path, params: Params, split: str, files: dict[str, list[Path]]) -> dict[str, Any]:
    """Transcripts of ``split`` per system, and the share of frames on which each member's best
    token is its ensemble's."""
    sp = load_tokenizer(run / "data/tokenizer/spm.model")
    loader = make_loader(run / "data/features", run / "data/manifests", split, sp, params.train.batch_frames)
    decode = lexicon_beam(run, sp, params.decoding.beam_size)
    paths = sorted({p for ps in files.values() for p in ps})
    models = {p: load_model(p).eval() for p in paths}
    hyps: dict[str, list[str]] = {n: [] for n in files}
    agree: dict[str, list[int]] = {}
    refs: list[str] = []
    t0 = time.time()
    for batch in loader:
        outs = {p: m(batch.feats, batch.lengths) for p, m in models.items()}
        lengths = next(iter(outs.values()))[1]
        mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
        refs += batch.texts
        for name, members in files.items():
            if len(members) == 1:
                logits = outs[members[0]][0]
            else:
                logits = combine_posteriors([outs[p][0] for p in members], 1.0, params.ensemble.combine).log()
                best = logits.argmax(-1)
                for p in members:
                    a = agree.setdefault(f"{p.stem} in {name}", [0, 0])
                    a[0] += int(((outs[p][0].argmax(-1) == best) & mask).sum())
                    a[1] += int(mask.sum())
            hyps[name] += decode(logits, lengths)
    log.info(
        "%s: decoded %d utterances with %d systems in %.0fs", split, len(refs), len(files), time.time() - t0
    )
    return {
        "refs": refs,
        "hyps": hyps,
        "agreement": {k: round(a / max(t, 1), 4) for k, (a, t) in agree.items()},
    }


def score(params: Params, decoded: dict[str, Any]) -> dict[str, Any]:
    """WER with intervals per system; the independent ensemble against the forked one, and each
    ensemble against its best member, paired."""
    errors = {n: utterance_errors(decoded["refs"], h) for n, h in decoded["hyps"].items()}
    cfg = params.evaluate
    first = next(iter(errors.values()))
    draws = paired_bootstrap(
        {n: e.words for n, e in errors.items()}, first.ref_words, cfg.bootstrap_samples, cfg.bootstrap_seed
    )

    def ci(x: np.ndarray) -> list[float]:
        return [round(v, 4) for v in percentile_interval(x, cfg.confidence)]

    wer = {n: e.wer for n, e in errors.items()}
    out: dict[str, Any] = {"wer": {n: {"wer": round(w, 4), "ci": ci(draws[n])} for n, w in wer.items()}}
    a, b = f"ensemble ({INDEPENDENT})", f"ensemble ({FORKED})"
    out["independent_minus_forked"] = {"diff": round(wer[a] - wer[b], 4), "ci": ci(draws[a] - draws[b])}
    for kind in (FORKED, INDEPENDENT):
        members = ["guide", *(n for n in wer if n.endswith(f"({kind})") and not n.startswith("ensemble"))]
        best = min(members, key=lambda n: wer[n])
        ens = f"ensemble ({kind})"
        out[f"{ens} minus best member"] = {
            "best": best,
            "diff": round(wer[ens] - wer[best], 4),
            "ci": ci(draws[ens] - draws[best]),
        }
    out["agreement"] = decoded["agreement"]
    return out


def training(run: Path, out: Path, params: Params) -> dict[str, Any]:
    """Seconds, updates and stop epoch of the guide, the forks and the independent teachers."""
    rows = {"guide": run / "reports/teachers/guide.json"}
    for n in params.teachers.others:
        rows[f"{n} ({FORKED})"] = run / f"reports/teachers/{n}.json"
        rows[f"{n} ({INDEPENDENT})"] = out / "train" / f"{n}.json"
    keys = ("seconds", "steps", "stopped_epoch", "best_epoch", "epochs")
    return {n: {k: read_json(p).get(k) for k in keys} for n, p in rows.items() if p.exists()}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| system | dev WER | test WER | 95 % interval | train s | updates | stop epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, test in result["test"]["wer"].items():
        t = result["training"].get(name, {})
        lines.append(
            f"| {name} | {result['dev']['wer'][name]['wer']:.4f} | {test['wer']:.4f} | "
            f"[{test['ci'][0]:.4f}, {test['ci'][1]:.4f}] | {t.get('seconds') or ''} | "
            f"{t.get('steps') or ''} | {t.get('stopped_epoch') or ''} |"
        )
    for split in ("dev", "test"):
        d = result[split]["independent_minus_forked"]
        lo, hi = d["ci"]
        lines.append(f"\n{split}: independent minus forked ensemble {d['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=".", help="checkout where `make run` finished (default .)")
    p.add_argument("--out", default=None, help="results folder (default <run>/experiments/runs/ensembles)")
    p.add_argument("--only", nargs="*", help="train only these teachers, then stop")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default train.threads)")
    p.add_argument("--score-only", action="store_true", help="score what is trained, train nothing")
    args = p.parse_args()
    setup_logging()
    run = Path(args.run).resolve()
    out = Path(args.out).resolve() if args.out else run / "experiments" / "runs" / "ensembles"
    raw = yaml.safe_load((run / "params.yaml").read_text())
    params = parse_params(raw)
    threads = args.threads or params.train.threads
    torch.set_num_threads(threads)
    others = list(params.teachers.others)
    if args.only:
        unknown = set(args.only) - set(others)
        if unknown:
            p.error(f"unknown teacher(s) {sorted(unknown)}; the run's others are {others}")
        train_independent(run, out, raw, params, args.only, threads)
        return
    if not args.score_only:
        train_independent(run, out, raw, params, others, threads)
    files = systems(run, out, params)
    missing = sorted({str(f) for fs in files.values() for f in fs if not f.exists()})
    if missing:
        raise FileNotFoundError(f"not trained yet: {', '.join(missing)}")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "training": training(run, out, params),
        **{split: score(params, decode_split(run, params, split, files)) for split in ("dev", "test")},
    }
    write_json(out / "ensembles.json", result)
    (out / "ensembles.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
