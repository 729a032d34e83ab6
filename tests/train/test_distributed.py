"""DDP on the CPU: two gloo ranks train exactly like one process on the same global batches."""

import json
import os
import socket

import pytest
import sentencepiece as spm
import torch
import torch.multiprocessing as tmp_mp
from tiny_corpus import TEXTS, make_corpus, tiny_job, tiny_model

from pipeline.loader import BatchLoader
from pipeline.store import Store
from pipeline.train.loop import train


def run_training(rank, world, root, port, results):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    if world == 1:
        for key in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
            os.environ.pop(key)
    sp = spm.SentencePieceProcessor(model_file=str(root / "spm.model"))
    loader = BatchLoader(Store(root / "feats"), TEXTS, sp, batch_frames=600, workers=0)
    model = tiny_model(dropout=0.0)
    opts = dict(batch_frames=600, spec_augment=False, loader_workers=0, device="cpu")
    out = root / f"world{world}"
    job = tiny_job(out, f"w{world}", opts, checkpoint_dir=out / "ckpt", live_dir=out / "live", fingerprint={})
    metrics = train(model, loader, loader, sp, job, out / "model.pt")
    results[rank] = metrics


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    make_corpus(root)
    single = {}
    run_training(0, 1, root, 0, single)
    manager = tmp_mp.Manager()
    results = manager.dict()
    tmp_mp.spawn(run_training, args=(2, root, free_port(), results), nprocs=2, join=True)
    return root, single, dict(results)


def history(path):
    ckpt = torch.load(path, weights_only=True)
    return json.loads(ckpt["extra"]["history"])


def test_two_ranks_match_one_process(runs):
    root, single, _ = runs
    one = history(root / "world1" / "model.pt")
    two = history(root / "world2" / "model.pt")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    w1 = torch.load(root / "world1" / "model.pt", weights_only=True)["state_dict"]
    w2 = torch.load(root / "world2" / "model.pt", weights_only=True)["state_dict"]
    for k in w1:
        if k.endswith("self_attn.in_proj_bias"):
            # Its key third has zero true gradient (softmax ignores a constant per query),
            # so Adam turns float round-off there into lr-sized steps; compare q and v only.
            d = w1[k].shape[0] // 3
            w1[k], w2[k] = torch.cat([w1[k][:d], w1[k][2 * d :]]), torch.cat([w2[k][:d], w2[k][2 * d :]])
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-4, atol=1e-5, msg=k)


def test_only_rank_zero_writes(runs):
    root, _, results = runs
    assert results[0]["world_size"] == 2 and results[1] is None
    out = root / "world2"
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["epochs", "last.pt"]
    assert sorted(p.name for p in (out / "ckpt" / "epochs").iterdir()) == ["1.pt", "2.pt"]
    assert sorted(p.name for p in out.iterdir()) == ["ckpt", "live", "model.pt"]
