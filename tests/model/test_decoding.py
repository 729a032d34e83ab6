"""The decoders (pipeline/model/decoding.py): greedy, lexicon and lexicon+lm behind one interface,
batch and chunk by chunk."""

import numpy as np
import pytest
import torch
from testkit import mixture_logits

from pipeline.config import ParamsError, default_params
from pipeline.io import read_json
from pipeline.model.decoding import LEXICON, LM, Beam, Greedy, export_settings, make_decoder
from pipeline.tokens import BLANK


def decoder(name, tiny_export, **settings):
    out, _, sp = tiny_export
    base = {"beam_size": 20, "lm_weight": 1.0, "word_score": 0.0, **settings}
    return make_decoder(name, sp, lexicon=out / LEXICON, lm=out / LM, **base)


def test_lexicon_decoding_only_emits_lexicon_words(tiny_export):
    _, _, sp = tiny_export
    ids = sp.encode("hello world")
    wrong = next(i for i in range(2, sp.get_piece_size()) if i not in ids)
    # the last piece of "world" loses narrowly to a piece that spells no word there
    logits = mixture_logits(sp, [("hello world", 0.45)], 2 * len(ids) + 2)
    logits[0, 2 * len(ids) - 2, wrong] = logits[0, 2 * len(ids) - 2].max() + 0.3
    lengths = torch.tensor([logits.shape[1]])
    assert decoder("greedy", tiny_export)(logits, lengths)[0] != "hello world"
    assert decoder("lexicon", tiny_export)(logits, lengths) == ["hello world"]


def test_the_lm_picks_the_word_its_context_predicts(tiny_export):
    """ "a small test" is in every training sentence that has "a small"; "a small export" in none.
    Acoustically "export" is ahead (0.55 to 0.45 on every frame where the two differ)."""
    _, _, sp = tiny_export
    length = 2 * (len(sp.encode("a small export")) + 2)
    logits = mixture_logits(sp, [("a small export", 0.55), ("a small test", 0.45)], length)
    lengths = torch.tensor([length])
    assert decoder("lexicon", tiny_export)(logits, lengths) == ["a small export"]
    assert decoder("lexicon+lm", tiny_export, lm_weight=2.0)(logits, lengths) == ["a small test"]
    assert decoder("lexicon+lm", tiny_export, lm_weight=0.0)(logits, lengths) == ["a small export"]


@pytest.mark.parametrize("name", ["greedy", "lexicon", "lexicon+lm"])
def test_every_decoder_reads_a_clean_path(tiny_export, name):
    _, _, sp = tiny_export
    text = "a small test of the export"
    logits = mixture_logits(sp, [(text, 1.0)], 2 * len(sp.encode(text)) + 3)
    assert decoder(name, tiny_export)(logits, torch.tensor([logits.shape[1]])) == [text]


@pytest.mark.parametrize("name", ["greedy", "lexicon", "lexicon+lm"])
@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_a_stream_of_chunks_ends_with_the_batch_decode(tiny_export, name, chunk):
    _, _, sp = tiny_export
    rng = np.random.default_rng(chunk)
    text = "hello world this is the export and the transcribe command"
    length = 2 * len(sp.encode(text)) + 5
    clean = mixture_logits(sp, [(text, 0.6), ("the export and the transcribe", 0.4)], length)[0]
    logits = clean + torch.from_numpy(rng.normal(0, 1.5, clean.shape).astype(np.float32))  # (T, V)
    dec = decoder(name, tiny_export, lm_weight=0.5)
    offline = dec(logits[None], torch.tensor([length]))[0]
    stream, partials = dec.stream(), []
    for start in range(0, length, chunk):
        stream.step(logits[start : start + chunk].numpy())
        partials.append(stream.text)
    assert stream.finish() == offline and offline.strip()
    assert len(set(partials)) > 2  # the text grew while the chunks came in


def test_greedy_stream_merges_a_repeat_across_chunks(tiny_export):
    _, _, sp = tiny_export
    token = sp.encode("hello")[0]
    one_hot = np.full((4, sp.get_piece_size()), -9.0, np.float32)
    one_hot[[0, 1], token] = one_hot[[2], BLANK] = one_hot[[3], token] = 0.0
    stream = Greedy(sp).stream()
    stream.step(one_hot[:1])
    stream.step(one_hot[1:])  # frame 1 repeats frame 0's token: one emission, then a new one
    assert stream.tokens == [token, token]


def test_the_export_names_its_default_decoder_and_the_dev_choice(tiny_export):
    out, _, sp = tiny_export
    config = read_json(out / "config.json")
    assert config["decoding"]["default"] == default_params().decoding.default == "lexicon+lm"
    settings = export_settings(config, out)
    assert settings["name"] == "lexicon+lm" and settings["lm"] == out / LM
    assert isinstance(make_decoder(sp=sp, **settings), Beam)
    assert export_settings(config, out, "greedy")["name"] == "greedy"
    config["decoding"]["decoders"] = ["greedy"]
    with pytest.raises(ValueError, match="decoder 'lexicon' not exported"):
        export_settings(config, out, "lexicon")


def test_a_beam_decoder_without_its_files_is_a_clear_error(tiny_export, tmp_path):
    _, _, sp = tiny_export
    settings = {"beam_size": 4, "lm_weight": 1.0, "word_score": 0.0}
    with pytest.raises(FileNotFoundError, match="needs a lexicon"):
        make_decoder("lexicon", sp, lexicon=tmp_path / "none.txt", **settings)
    (tmp_path / "lexicon.txt").write_text("hello h e l l o\n")
    with pytest.raises(FileNotFoundError, match="ARPA"):
        make_decoder("lexicon+lm", sp, lexicon=tmp_path / "lexicon.txt", lm=None, **settings)


def test_the_default_decoder_must_be_one_that_is_scored():
    with pytest.raises(ParamsError, match="decoding.default 'lexicon\\+lm' is not one of"):
        default_params({"decoding.decoders": ["greedy", "lexicon"]})
    assert default_params({"decoding.decoders": ["greedy"], "decoding.default": "greedy"}).decoding


def test_the_old_evaluate_decoder_keys_say_where_they_moved():
    with pytest.raises(ParamsError) as err:
        default_params({"evaluate.decoder": "lexicon", "evaluate.beam_size": 20})
    assert "'evaluate.decoder'; it moved to decoding.default" in str(err.value)
    assert "'evaluate.beam_size'; it moved to decoding.beam_size" in str(err.value)
