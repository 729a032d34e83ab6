import numpy as np
import pytest

from pipeline.loader import make_buckets


@pytest.mark.parametrize("budget", [50, 200, 1000])
def test_buckets_respect_the_frame_budget(budget):
    rng = np.random.default_rng(0)
    frames = {f"u{i}": int(rng.integers(5, 120)) for i in range(300)}
    batches = make_buckets(frames, budget)
    assert sorted(u for b in batches for u in b) == sorted(frames)  # every utterance once
    for b in batches:
        longest = max(frames[u] for u in b)
        assert longest * len(b) <= budget or len(b) == 1


def test_overlong_utterance_gets_its_own_batch():
    batches = make_buckets({"a": 10, "b": 10, "huge": 500}, 100)
    assert ["huge"] in batches
