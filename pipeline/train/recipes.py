"""Teacher and student training recipes: data, model, loss, then :func:`pipeline.train.loop.train`.

Teachers are Conformer-CTC models. The guide teacher trains with plain CTC;
with ``ensemble.align: guide`` every other teacher adds the guided-CTC term
(Kurata & Audhkhasi 2019) that pulls its spikes onto the guide's frames.
Twins and students use ``student_defaults.model`` unless they set their own ``model``.
A twin (``twins.<name>``) trains on its transcripts alone with plain CTC and never reads
the soft targets; a distilled student (``students.<name>``) trains on
``(1 - alpha) * CTC + alpha * T^2 * KL(teacher_T || student_T)``, the CTC term only on
utterances with a transcript (see :func:`student_data`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch

from pipeline.config import ForkConfig, ModelConfig, Params, StudentConfig, TrainConfig, TwinConfig
from pipeline.errors import MissingError
from pipeline.io import file_digest, read_json
from pipeline.loader import Batch, BatchLoader, Extra, make_buckets, make_loader, split_texts
from pipeline.model.conformer import ConformerCTC, count_parameters, load_model
from pipeline.model.ctc import ctc_loss, guided_ctc_loss
from pipeline.splits import TRANSFER
from pipeline.store import Store, StoreUnion
from pipeline.tokens import load_tokenizer
from pipeline.train.kd import delay_targets, distillation_loss, kd_loss, nonblank_frames
from pipeline.train.loop import LossFn, TrainJob, train
from pipeline.train.paths import TrainPaths

log = logging.getLogger(__name__)


def build_model(cfg: ModelConfig, features_dir: Path, vocab_size: int, seed: int) -> ConformerCTC:
    """A freshly initialised model (seeded) with the train split's CMVN."""
    torch.manual_seed(seed)
    cmvn = read_json(Path(features_dir) / "cmvn.json")
    model = ConformerCTC(cfg, len(cmvn["mean"]), vocab_size)
    model.set_cmvn(cmvn["mean"], cmvn["std"])
    return model


def fork_from(
    model: ConformerCTC, fork: ForkConfig | None, cfg: TrainConfig, guide: Path | None
) -> TrainConfig:
    """Start ``model`` from teacher ``fork.init``'s saved model (``guide``) and return
    the train config of the fork's own cycle (warm-up to ``fork.lr``, cosine to the cap);
    without a fork, ``model`` and ``cfg`` stay as they are."""
    if fork is None:
        return cfg
    if not guide:
        raise MissingError(f"a fork from the {fork.init} needs its model: pass --guide")
    source = load_model(guide)
    model.load_state_dict(source.state_dict())
    log.info("forked from %s (%s): warm-up to lr %.2e, cosine to the cap", fork.init, guide, fork.lr)
    cosine = cfg.schedule.model_copy(update={"kind": "cosine"})
    return cfg.model_copy(update={"lr": fork.lr, "schedule": cosine})


def fork_fingerprint(fork: ForkConfig | None, guide: Path | None) -> dict[str, Any] | None:
    """What a fork's checkpoints depend on: its cycle and the model it starts from (``guide``)."""
    if fork is None:
        return None
    if not guide:
        raise MissingError(f"a fork from the {fork.init} needs its model: pass --guide")
    return {**fork.model_dump(), "from": file_digest(guide)}


def training_report(
    metrics: dict[str, Any] | None, model: ConformerCTC, fork: ForkConfig | None, **extra: Any
) -> dict[str, Any] | None:
    """A training stage's report: the loop's metrics, the model's size and start, and
    ``extra``; None off DDP rank 0 (the loop returned none)."""
    if metrics is None:
        return None
    return {
        **metrics,
        "params": count_parameters(model),
        "fork": None if fork is None else fork.model_dump(),
        **extra,
    }


@torch.no_grad()
def argmax_tokens(model: ConformerCTC, loader: BatchLoader) -> dict[str, np.ndarray]:
    """Per-utterance frame argmax of ``model`` (int16), for guided CTC."""
    model.eval()
    out = {}
    for batch in loader:
        logits, lengths = model(batch.feats, batch.lengths)
        best = logits.argmax(-1).to(torch.int16)
        for u, row, n in zip(batch.ids, best, lengths.tolist()):
            out[u] = row[:n].numpy()
    return out


def soft_target_extras(soft: Store, shift: int = 0) -> Extra:
    """Per-utterance soft targets for the loader: top-k ids (int64 for gather), probs, rest.

    ``shift > 0`` delays them by that many frames (see :func:`delay_targets`).
    """

    def extras(u: str) -> dict[str, np.ndarray]:
        ids, probs, rest = soft.get(u, "ids").astype(np.int64), soft.get(u, "probs"), soft.get(u, "rest")
        if shift:
            ids, probs, rest = delay_targets(ids, probs, rest, shift)
        return {"ids": ids, "probs": probs, "rest": rest}

    return extras


def data_digest(paths: TrainPaths) -> str:
    """Identity of the training data: CMVN statistics (change with any train feature),
    the train index (ids and lengths) and the tokenizer model."""
    features = paths.features
    return file_digest(features / "cmvn.json", features / "train" / "index.json", paths.tokenizer)


def ctc_only(batch: Batch, logits: torch.Tensor, lengths: torch.Tensor):
    """Plain CTC on the transcripts (the guide teacher's loss)."""
    loss = ctc_loss(logits.log_softmax(-1), lengths, batch.targets, batch.target_lengths)
    return loss, {"ctc": loss.item()}


def guided_loss(weight: float) -> LossFn:
    """CTC plus ``weight`` times guided CTC towards the guide's frame argmax (``extras["guide"]``)."""

    def loss_fn(batch: Batch, logits: torch.Tensor, lengths: torch.Tensor):
        log_probs = logits.log_softmax(-1)
        ctc = ctc_loss(log_probs, lengths, batch.targets, batch.target_lengths)
        guide_term = guided_ctc_loss(log_probs, lengths, batch.extras["guide"].long())
        return ctc + weight * guide_term, {"ctc": ctc.item(), "guide": guide_term.item()}

    return loss_fn


def guided_loader(
    name: str, paths: TrainPaths, sp: spm.SentencePieceProcessor, plain: BatchLoader, params: Params
) -> BatchLoader:
    """The train loader of teacher ``name`` with the guide's frame argmax over train (computed
    on ``plain``, the loader without it) as ``extras["guide"]``."""
    guide = load_model(paths.require("guide"))
    log.info("%s: computing the guide's frame argmax over train", name)
    guide_tokens = argmax_tokens(guide, plain)
    return make_loader(
        paths.features,
        paths.manifests,
        "train",
        sp,
        params.train.batch_frames,
        extras=lambda u: {"guide": guide_tokens[u]},
        train=params.train,
    )


def train_teacher(params: Params, name: str, paths: TrainPaths) -> dict[str, Any] | None:
    """Train teacher ``name`` (``guide`` or a key of ``teachers``); None off DDP rank 0."""
    tcfg = params.teacher(name)
    sp = load_tokenizer(paths.tokenizer)
    bf = params.train.batch_frames
    guided = name != "guide" and params.ensemble.align == "guide" and tcfg.fork is None
    dev = make_loader(paths.features, paths.manifests, "dev", sp, bf)
    plain = make_loader(paths.features, paths.manifests, "train", sp, bf, train=params.train)
    train_loader, loss_fn = plain, ctc_only
    if guided:
        train_loader = guided_loader(name, paths, sp, plain, params)
        loss_fn = guided_loss(params.ensemble.guide_weight)
    model = build_model(tcfg.model, paths.features, sp.get_piece_size(), tcfg.seed)
    job = TrainJob(
        name=f"teacher.{name}",
        cfg=fork_from(model, tcfg.fork, params.train, paths.guide),
        epochs=tcfg.epochs,
        seed=tcfg.seed,
        loss_fn=loss_fn,
        convergence=params.teachers.convergence,
        checkpoint_dir=paths.checkpoints,
        live_dir=paths.live,
        fingerprint={
            "teacher": tcfg.model_dump(),
            "train": params.train.model_dump(),
            "guided": guided,
            "guide_weight": params.ensemble.guide_weight,
            "data": data_digest(paths),
            "guide": file_digest(paths.require("guide")) if guided else None,
            "fork": fork_fingerprint(tcfg.fork, paths.guide),
        },
    )
    metrics = train(model, train_loader, dev, sp, job, paths.model)
    return training_report(
        metrics,
        model,
        tcfg.fork,
        guided=guided,
        labelled_utterances=len(plain.texts),
        unlabelled_utterances=0,
    )


def labelled_ids(ids: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The ``round(fraction * len(ids))`` utterances (at least one) whose transcripts students
    may use: ranked by a seeded hash of the id, so every student at the same share gets the
    same ones, and a smaller share is a subset of a larger one."""
    if fraction >= 1.0:
        return set(ids)
    rank = sorted(ids, key=lambda u: hashlib.sha256(f"{seed}:{u}".encode()).hexdigest())
    return set(rank[: max(1, round(fraction * len(ids)))])


@dataclass
class StudentData:
    """What one student trains on: stores, texts, which utterances lack a transcript."""

    stores: list[Store]
    texts: dict[str, str]
    unlabelled: set[str]
    soft: list[Store]  # soft-target stores covering every id (distilled students only)

    def summary(self) -> dict[str, int]:
        """How many utterances the student reads with and without a transcript (report keys)."""
        return {
            "labelled_utterances": len(self.texts) - len(self.unlabelled),
            "unlabelled_utterances": len(self.unlabelled),
        }


def student_data(params: Params, name: str, paths: TrainPaths) -> StudentData:
    """Labelled part of train for a twin; a distilled student adds the rest of train and,
    with ``transfer``, the transfer set, labelled by the soft targets alone (or, with
    ``pseudo_labels``, also by the ensemble's greedy transcripts): it needs ``paths.soft_targets``."""
    scfg = params.student(name)
    features = paths.features
    train_texts = split_texts(paths.manifests, "train")
    keep = labelled_ids(list(train_texts), scfg.labelled_fraction, params.data.seed)
    if scfg.alpha == 0:
        return StudentData([Store(features / "train")], {u: train_texts[u] for u in keep}, set(), [])
    soft_dir = paths.require("soft_targets")
    texts = dict(train_texts)
    splits = ["train"]
    if scfg.transfer and (features / TRANSFER / "index.json").exists():
        transfer = Store(features / TRANSFER)
        if len(transfer):
            splits.append(TRANSFER)
            texts.update({u: "" for u in transfer.ids()})
    unlabelled = set(texts) - keep
    if scfg.pseudo_labels:
        hyps = {}
        for split in splits:
            hyps.update(read_json(soft_dir / f"{split}.hyps.json"))
        for u in unlabelled:
            texts[u] = hyps[u]
        unlabelled = {u for u in unlabelled if not texts[u]}  # an empty hypothesis stays KD-only
    return StudentData(
        [Store(features / s) for s in splits], texts, unlabelled, [Store(soft_dir / s) for s in splits]
    )


def train_twin(params: Params, name: str, paths: TrainPaths) -> dict[str, Any] | None:
    """Train twin ``name`` (``twins.<name>``) with plain CTC on its transcripts; None off rank 0.

    ``paths`` needs no ``soft_targets``: a twin never reads them.
    """
    if name not in params.twins:
        raise MissingError(f"twins.{name}: no such twin; twins: {', '.join(params.twins)}")
    return _train_small(params, name, paths)


def train_student(params: Params, name: str, paths: TrainPaths) -> dict[str, Any] | None:
    """Train distilled student ``name`` (``students.<name>``) on hard labels and the soft
    targets in ``paths.soft_targets``; None off rank 0."""
    if name not in params.students:
        hint = " (a twin: train_twin)" if name in params.twins else ""
        raise MissingError(
            f"students.{name}: no such distilled student{hint}; students: {', '.join(params.students)}"
        )
    return _train_small(params, name, paths)


def train_small(params: Params, name: str, paths: TrainPaths) -> dict[str, Any] | None:
    """Train twin or distilled student ``name``, whichever it is (sweeps train both)."""
    return (train_twin if name in params.twins else train_student)(params, name, paths)


def recipe_fingerprint(scfg: TwinConfig | StudentConfig) -> dict[str, Any]:
    """The recipe keys of a twin or student that its checkpoints depend on, ``alpha`` included:
    0.0 for a twin, so a twin's fingerprint is that of the same model as a student with alpha 0."""
    recipe = scfg.model_dump(exclude={"model", "epochs", "twin", "convergence", "fork"})
    if isinstance(scfg, TwinConfig):
        recipe["alpha"] = 0.0
    return recipe


def student_loader(
    params: Params, scfg: TwinConfig | StudentConfig, data: StudentData, sp: spm.SentencePieceProcessor
) -> tuple[BatchLoader, float, dict[str, Any] | None]:
    """The train loader of a twin or student with, if ``alpha > 0``, its soft targets as extras;
    also the temperature its KD term uses (the soft targets') and their metadata (None for
    a twin)."""
    extras, soft_meta, temperature = None, None, params.soft_targets.temperature
    if scfg.alpha > 0:
        soft = StoreUnion(data.soft)
        soft_meta = soft.meta
        temperature = float(soft.meta["temperature"])
        extras = soft_target_extras(soft, scfg.kd_shift)
    loader = BatchLoader(
        StoreUnion(data.stores),
        data.texts,
        sp,
        params.train.batch_frames,
        extras,
        workers=params.train.loader_workers,
        speed_perturb=params.train.speed_perturb,
        unlabelled=data.unlabelled,
    )
    return loader, temperature, soft_meta


def budget_epoch_steps(features: Path, batch_frames: int) -> int:
    """Batches in one pass over the whole train split: a twin's or student's budget epoch."""
    full_train = Store(features / "train")
    return len(make_buckets({u: full_train.frames(u) for u in full_train.ids()}, batch_frames))


def student_loss(alpha: float, temperature: float, nonblank: bool) -> LossFn:
    """CTC on the transcribed utterances and, if ``alpha > 0``, the KD term at ``temperature``
    (on the frames where the teachers' top token is not blank if ``nonblank``)."""

    def loss_fn(batch: Batch, logits: torch.Tensor, lengths: torch.Tensor):
        ctc = ctc_loss(logits.log_softmax(-1), lengths, batch.targets, batch.target_lengths, batch.labelled)
        if alpha == 0:
            return ctc, {"ctc": ctc.item()}
        ids = batch.extras["ids"]
        frames = nonblank_frames(ids[..., 0], lengths) if nonblank else None
        kd = kd_loss(logits, lengths, ids, batch.extras["probs"], batch.extras["rest"], temperature, frames)
        return distillation_loss(ctc, kd, alpha, temperature), {"ctc": ctc.item(), "kd": kd.item()}

    return loss_fn


def _train_small(params: Params, name: str, paths: TrainPaths) -> dict[str, Any] | None:
    """Train twin or student ``name`` on hard labels and, if ``alpha > 0``, the soft targets.

    The budget is ``epochs`` passes' worth of updates over the whole train split, whatever
    the model reads, so twins are compared at equal optimizer updates.
    """
    scfg = params.student(name)
    sp = load_tokenizer(paths.tokenizer)
    dev = make_loader(paths.features, paths.manifests, "dev", sp, params.train.batch_frames)
    alpha = scfg.alpha
    data = student_data(params, name, paths)
    train_loader, temperature, soft_meta = student_loader(params, scfg, data, sp)
    epoch_steps = budget_epoch_steps(paths.features, params.train.batch_frames)
    model_cfg = params.student_model(name)
    model = build_model(model_cfg, paths.features, sp.get_piece_size(), scfg.seed)
    epochs = params.student_epochs(name)
    job = TrainJob(
        name=f"student.{name}",
        cfg=fork_from(model, scfg.fork, params.train, paths.guide),
        epochs=epochs,
        seed=scfg.seed,
        loss_fn=student_loss(alpha, temperature, scfg.kd_frames == "nonblank"),
        convergence=scfg.convergence,
        checkpoint_dir=paths.checkpoints,
        live_dir=paths.live,
        epoch_steps=epoch_steps,
        fingerprint={
            "student": model_cfg.model_dump(),
            "recipe": recipe_fingerprint(scfg),
            "temperature": temperature if alpha > 0 else None,
            "epochs": epochs,
            "train": params.train.model_dump(),
            "data": data_digest(paths),
            **data.summary(),
            "stores": [file_digest(st.dir / "index.json") for st in data.stores],
            "soft_targets": soft_meta,
            "fork": fork_fingerprint(scfg.fork, paths.guide),
        },
    )
    log.info(
        "student.%s: %d labelled and %d untranscribed utterances, at most %d updates",
        name,
        len(data.texts) - len(data.unlabelled),
        len(data.unlabelled),
        epochs * epoch_steps,
    )
    metrics = train(model, train_loader, dev, sp, job, paths.model)
    return training_report(metrics, model, scfg.fork, alpha=alpha, **data.summary())
