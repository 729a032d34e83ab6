"""The soft_targets stage's pseudo-labels: the ensemble's transcripts, greedy or by lexicon beam search."""

import pytest
import torch
from tiny_corpus import TEXTS, make_corpus

from pipeline.config import default_params
from pipeline.io import read_json
from pipeline.loader import BatchLoader
from pipeline.soft_targets.build import build_soft_targets
from pipeline.store import Store


class Speller(torch.nn.Module):
    """A 'teacher' whose every frame pair spells one character of ``word`` and a blank, with
    one misspelling (the first character repeated after a blank), whatever the audio."""

    def __init__(self, sp, word: str) -> None:
        super().__init__()
        ids = [sp.piece_to_id(c) for c in word]
        path = [ids[0], 0, ids[0], *[t for i in ids[1:] for t in (0, i)]]  # r _ r _ e _ d: "rred"
        self.path = torch.tensor(path)
        self.vocab = sp.get_piece_size()

    def forward(self, feats, lengths):
        n, t = feats.shape[0], len(self.path)
        logits = torch.full((n, t, self.vocab), -8.0)
        logits[:, torch.arange(t), self.path] = 8.0
        return logits, torch.full((n,), t)


@pytest.mark.parametrize("transcripts", ["greedy", "lexicon"])
def test_pseudo_labels_come_from_the_chosen_decoder(tmp_path, transcripts):
    sp = make_corpus(tmp_path)
    loader = BatchLoader(Store(tmp_path / "feats"), TEXTS, sp, batch_frames=400)
    params = default_params({"soft_targets.transcripts": transcripts, "soft_targets.top_k": 4})
    teachers = {"guide": Speller(sp, "red"), "t1": Speller(sp, "red")}
    words = [w for t in TEXTS.values() for w in t.split()]
    metrics = build_soft_targets(params, teachers, {"train": loader}, sp, tmp_path / "soft", words)
    hyps = read_json(tmp_path / "soft" / "train.hyps.json")
    assert set(hyps) == set(TEXTS)
    # greedy keeps the misspelling; the beam may only emit lexicon words, and "red" is the nearest
    expected = "rred" if transcripts == "greedy" else "red"
    assert set(hyps.values()) == {expected}
    assert metrics["transcripts"] == transcripts
    # every reference has two words: "rred" makes two errors in each, "red" one fewer in "red car"
    # (the report rounds rates to 4 decimals)
    assert metrics["train"]["ensemble_wer"] == 1.0
    assert metrics["train"]["ensemble_wer_lexicon"] == pytest.approx(23 / 24, abs=1e-4)
