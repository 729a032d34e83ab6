"""Teacher and student training recipes: data, model, loss, then :func:`pipeline.train.train`.

Teachers are Conformer-CTC models. The guide teacher trains with plain CTC;
with ``ensemble.align: guide`` every other teacher adds the guided-CTC term
(Kurata & Audhkhasi 2019) that pulls its spikes onto the guide's frames.
Students share one small architecture (``student:``) and train on
``(1 - alpha) * CTC + alpha * T^2 * KL(teacher_T || student_T)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import sentencepiece as spm
import torch

from pipeline.config import ModelConfig, Params, TrainConfig
from pipeline.ctc import ctc_loss, guided_ctc_loss
from pipeline.io import file_digest, read_json, read_jsonl
from pipeline.kd import distillation_loss, kd_loss
from pipeline.loader import Batch, BatchLoader, Extra
from pipeline.model import ConformerCTC, count_parameters, load_model
from pipeline.store import Store
from pipeline.tokenizer import load_tokenizer
from pipeline.train import TrainJob, train

log = logging.getLogger(__name__)


def split_texts(manifest_dir: Path, split: str) -> dict[str, str]:
    return {r["id"]: r["text"] for r in read_jsonl(Path(manifest_dir) / f"{split}.jsonl")}


def make_loader(features_dir: Path, manifest_dir: Path, split: str, sp: spm.SentencePieceProcessor,
                batch_frames: int, extras: Optional[Extra] = None,
                train: Optional[TrainConfig] = None) -> BatchLoader:
    """A loader over ``split``; pass ``train`` for training loaders (workers, speed perturbation)."""
    options = {} if train is None else {"workers": train.loader_workers,
                                         "speed_perturb": train.speed_perturb}
    return BatchLoader(Store(Path(features_dir) / split), split_texts(manifest_dir, split), sp,
                       batch_frames, extras, **options)


def build_model(cfg: ModelConfig, features_dir: Path, vocab_size: int, seed: int) -> ConformerCTC:
    """A freshly initialised model (seeded) with the train split's CMVN."""
    torch.manual_seed(seed)
    cmvn = read_json(Path(features_dir) / "cmvn.json")
    model = ConformerCTC(cfg, len(cmvn["mean"]), vocab_size)
    model.set_cmvn(cmvn["mean"], cmvn["std"])
    return model


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


def soft_target_extras(soft: Store) -> Extra:
    """Per-utterance soft targets for the loader: top-k ids (int64 for gather), probs, rest."""
    return lambda u: {"ids": soft.get(u, "ids").astype(np.int64), "probs": soft.get(u, "probs"),
                      "rest": soft.get(u, "rest")}


def data_digest(paths: dict[str, Path]) -> str:
    """Identity of the training data: CMVN statistics (change with any train feature),
    the train index (ids and lengths) and the tokenizer model."""
    features = Path(paths["features"])
    return file_digest(features / "cmvn.json", features / "train" / "index.json", paths["tokenizer"])


def _ctc_only(batch: Batch, logits: torch.Tensor, lengths: torch.Tensor):
    loss = ctc_loss(logits.log_softmax(-1), lengths, batch.targets, batch.target_lengths)
    return loss, {"ctc": loss.item()}


def train_teacher(params: Params, name: str, paths: dict[str, Path]) -> Optional[dict[str, Any]]:
    """Train teacher ``name`` (``guide`` or a key of ``teachers``); None off DDP rank 0."""
    tcfg = params.teacher(name)
    sp = load_tokenizer(paths["tokenizer"])
    bf = params.train.batch_frames
    guided = name != "guide" and params.ensemble.align == "guide"
    dev = make_loader(paths["features"], paths["manifests"], "dev", sp, bf)
    plain = make_loader(paths["features"], paths["manifests"], "train", sp, bf, train=params.train)
    loss_fn = _ctc_only
    if guided:
        guide = load_model(paths["guide"])
        log.info("%s: computing the guide's frame argmax over train", name)
        guide_tokens = argmax_tokens(guide, plain)
        weight = params.ensemble.guide_weight
        train_loader = make_loader(paths["features"], paths["manifests"], "train", sp, bf,
                                   extras=lambda u: {"guide": guide_tokens[u]}, train=params.train)

        def loss_fn(batch: Batch, logits: torch.Tensor, lengths: torch.Tensor):
            log_probs = logits.log_softmax(-1)
            ctc = ctc_loss(log_probs, lengths, batch.targets, batch.target_lengths)
            guide_term = guided_ctc_loss(log_probs, lengths, batch.extras["guide"].long())
            return ctc + weight * guide_term, {"ctc": ctc.item(), "guide": guide_term.item()}
    else:
        train_loader = plain
    model = build_model(tcfg.model, paths["features"], sp.get_piece_size(), tcfg.seed)
    job = TrainJob(name=f"teacher.{name}", cfg=params.train, epochs=tcfg.epochs,
                   seed=tcfg.seed, loss_fn=loss_fn, checkpoint_dir=paths["checkpoints"],
                   live_dir=paths["live"],
                   # train.epochs is the students' schedule; the teacher's is in tcfg
                   fingerprint={"teacher": tcfg.model_dump(),
                                "train": params.train.model_dump(exclude={"epochs"}),
                                "guided": guided, "guide_weight": params.ensemble.guide_weight,
                                "data": data_digest(paths),
                                "guide": file_digest(paths["guide"]) if guided else None})
    metrics = train(model, train_loader, dev, sp, job, paths["model"])
    return None if metrics is None else {**metrics, "params": count_parameters(model),
                                         "guided": guided}


def train_student(params: Params, name: str, paths: dict[str, Path]) -> Optional[dict[str, Any]]:
    """Train student ``name`` on hard labels and, if ``alpha > 0``, the soft targets; None off rank 0."""
    scfg = params.students[name]
    sp = load_tokenizer(paths["tokenizer"])
    bf = params.train.batch_frames
    dev = make_loader(paths["features"], paths["manifests"], "dev", sp, bf)
    alpha, temperature = scfg.alpha, params.distill.temperature
    extras, soft = None, None
    if alpha > 0:
        soft = Store(Path(paths["soft_targets"]) / "train")
        temperature = float(soft.meta["temperature"])
        extras = soft_target_extras(soft)
    train_loader = make_loader(paths["features"], paths["manifests"], "train", sp, bf, extras,
                               train=params.train)

    def loss_fn(batch: Batch, logits: torch.Tensor, lengths: torch.Tensor):
        ctc = ctc_loss(logits.log_softmax(-1), lengths, batch.targets, batch.target_lengths)
        if alpha == 0:
            return ctc, {"ctc": ctc.item()}
        kd = kd_loss(logits, lengths, batch.extras["ids"], batch.extras["probs"],
                     batch.extras["rest"], temperature)
        return distillation_loss(ctc, kd, alpha, temperature), {"ctc": ctc.item(), "kd": kd.item()}

    model = build_model(params.student, paths["features"], sp.get_piece_size(), scfg.seed)
    job = TrainJob(name=f"student.{name}", cfg=params.train, epochs=params.train.epochs,
                   seed=scfg.seed, loss_fn=loss_fn, checkpoint_dir=paths["checkpoints"],
                   live_dir=paths["live"],
                   fingerprint={"student": params.student.model_dump(), "alpha": alpha,
                                "temperature": temperature if alpha > 0 else None,
                                "train": params.train.model_dump(),
                                "data": data_digest(paths),
                                "soft_targets": soft.meta if alpha > 0 else None})
    metrics = train(model, train_loader, dev, sp, job, paths["model"])
    return None if metrics is None else {**metrics, "params": count_parameters(model),
                                         "alpha": alpha}
