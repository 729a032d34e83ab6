import json

import numpy as np
import pytest

from pipeline.store import Store, StoreWriter, write_store


def items(n=25, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield f"u{i:03d}", {"x": rng.standard_normal((int(rng.integers(1, 40)), dim)).astype(np.float32)}


def test_round_trip_fp16_across_shards(tmp_path):
    originals = dict(items())
    write_store(
        tmp_path / "s", ((u, a) for u, a in originals.items()), {"x": ("float16", (5,))}, shard_frames=100
    )
    store = Store(tmp_path / "s")
    assert len(store) == 25
    assert len(list((tmp_path / "s").glob("x-*.npy"))) > 2  # really sharded
    for u, a in originals.items():
        got = store.get(u, "x")
        assert got.dtype == np.float16 and got.shape == a["x"].shape
        np.testing.assert_allclose(got.astype(np.float32), a["x"], rtol=1e-3, atol=1e-3)


def test_index_is_consistent_with_shards(tmp_path):
    write_store(tmp_path / "s", items(), {"x": ("float16", (5,))}, shard_frames=64)
    store = Store(tmp_path / "s")
    sizes = {}
    for shard, offset, frames in store.index.values():
        sizes[shard] = max(sizes.get(shard, 0), offset + frames)
    for shard, end in sizes.items():
        assert np.load(tmp_path / "s" / f"x-{shard:05d}.npy", mmap_mode="r").shape[0] == end


def test_duplicate_and_mismatched_fields_are_rejected(tmp_path):
    w = StoreWriter(tmp_path / "s", {"a": ("float16", (2,)), "b": ("uint16", ())}, 100)
    w.add("u1", {"a": np.zeros((3, 2)), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="duplicate utterance id 'u1'"):
        w.add("u1", {"a": np.zeros((3, 2)), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="u2"):
        w.add("u2", {"a": np.zeros((3, 2)), "b": np.zeros(4)})


def test_missing_store_and_unknown_id_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no index.json"):
        Store(tmp_path)
    write_store(tmp_path / "s", items(3), {"x": ("float16", (5,))}, 100)
    with pytest.raises(KeyError, match="nope"):
        Store(tmp_path / "s").get("nope", "x")


def test_check_accepts_a_whole_store_and_names_a_short_shard(tmp_path):
    write_store(tmp_path / "s", items(), {"x": ("float16", (5,))}, shard_frames=64)
    store = Store(tmp_path / "s")
    store.check()
    np.save(tmp_path / "s" / "x-00001.npy", np.zeros((3, 5), dtype=np.float16))
    with pytest.raises(ValueError, match=r"x-00001\.npy: shard is float16 \(3, 5\)"):
        Store(tmp_path / "s").check()


def test_check_names_an_index_with_a_gap(tmp_path):
    write_store(tmp_path / "s", items(), {"x": ("float16", (5,))}, shard_frames=64)
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    shard, offset, frames = index["utterances"]["u001"]
    index["utterances"]["u001"] = [shard, offset + 1, frames]
    (tmp_path / "s" / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"index.json: utterance 'u001' starts at row"):
        Store(tmp_path / "s").check()
