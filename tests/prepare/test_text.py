"""Normalization (pipeline/prepare/text.py) and the built-in sentence generator
(pipeline/prepare/sentences.py)."""

from collections import Counter

import pytest

from pipeline.config import NormalizeConfig, default_params
from pipeline.prepare.sentences import generate_sentence, lexicon, plural, sentence_pool
from pipeline.prepare.text import (
    normalize,
    number_to_words,
    ordinal_to_words,
    transcript_problem,
    year_to_words,
)

SPELLED = {
    number_to_words: {
        0: "zero",
        13: "thirteen",
        40: "forty",
        342: "three hundred forty two",
        1000: "one thousand",
        2_000_005: "two million five",
    },
    ordinal_to_words: {
        1: "first",
        2: "second",
        3: "third",
        12: "twelfth",
        20: "twentieth",
        21: "twenty first",
        100: "one hundredth",
    },
    year_to_words: {
        1987: "nineteen eighty seven",
        1905: "nineteen oh five",
        1900: "nineteen hundred",
        2005: "two thousand five",
        2024: "twenty twenty four",
        2000: "two thousand",
    },
}


@pytest.mark.parametrize(
    "spell, n, words",
    [
        pytest.param(spell, n, words, id=f"{spell.__name__}({n})")
        for spell, cases in SPELLED.items()
        for n, words in cases.items()
    ],
)
def test_numbers_are_spelled_out(spell, n, words):
    assert spell(n) == words


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Call me at 7:45 on March 3rd!", "call me at seven forty five on march third"),
        ("Meet at 9:00.", "meet at nine o'clock"),
        ("It was 9:05", "it was nine oh five"),
        ("It costs $3.50", "it costs three dollars fifty cents"),
        ("only £1", "only one pound"),
        ("up 12%", "up twelve percent"),
        ("up 2.5 %", "up two point five percent"),
        ("born in 1999", "born in nineteen ninety nine"),
        ("1999 people", "one thousand nine hundred ninety nine people"),
        ("1,250 visitors", "one thousand two hundred fifty visitors"),
        ("pi is 3.14", "pi is three point one four"),
        ("the 22nd and 11th floors", "the twenty second and eleventh floors"),
        ("Café Zürich", "cafe zurich"),
        ("He said \u201cdon\u2019t\u201d & left", "he said don't and left"),
        ("'quoted' well-known  text", "quoted well known text"),
        ("A 20-year-old", "a twenty year old"),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def options(**changes) -> NormalizeConfig:
    return default_params({"data.normalize": changes}).data.normalize


def test_normalize_options_are_independent():
    raw = "Hello, World: 42!"
    assert normalize(raw, options(lowercase=False)) == "Hello World forty two"
    assert normalize(raw, options(strip_punctuation=False)) == "hello, world: forty two !"
    assert normalize(raw, options(spell_numbers=False)) == "hello world 42"
    off = options(lowercase=False, strip_punctuation=False, spell_numbers=False)
    assert normalize("  Hello,\tWorld:  42! ", off) == "Hello, World: 42!"


def test_normalize_is_idempotent_on_generated_text():
    for s in sentence_pool(200, seed=3, min_words=3, max_words=12):
        assert normalize(s) == s


@pytest.mark.parametrize(
    "raw, kind",
    [
        ("", "empty transcript"),
        ("   \t", "empty transcript"),
        ("?!...", "non-text transcript"),
        ("hello\x00world", "non-text transcript"),
        ("caf\ufffd", "non-text transcript"),
    ],
)
def test_transcript_problem(raw, kind):
    assert transcript_problem(raw).startswith(kind)


@pytest.mark.parametrize("raw", ["hello world", "42", "[noise] yes", "It's 7:45."])
def test_transcript_problem_accepts_text(raw):
    assert transcript_problem(raw) is None


def test_sentence_pool_is_deterministic_distinct_and_bounded():
    a = sentence_pool(300, seed=7, min_words=4, max_words=9)
    assert a == sentence_pool(300, seed=7, min_words=4, max_words=9)
    assert a != sentence_pool(300, seed=8, min_words=4, max_words=9)
    assert len(set(a)) == 300
    assert all(4 <= len(s.split()) <= 9 for s in a)


def test_generator_is_varied():
    """Many templates and fillers: no sentence shape dominates, vocabulary grows with size."""
    pool = sentence_pool(1000, seed=0, min_words=3, max_words=12)
    first_two = Counter(" ".join(s.split()[:2]) for s in pool)
    assert first_two.most_common(1)[0][1] < 0.05 * len(pool)
    vocab = {w for s in pool for w in s.split()}
    assert len(vocab) > 2000
    assert {"o'clock", "percent", "january"} & vocab  # numbers, times, dates are spelled
    assert len(lexicon()["first"]) > 1000 and len(lexicon()["city"]) > 500


def test_generator_rejects_impossible_lengths():
    import random

    with pytest.raises(ValueError, match="min_words/max_words"):
        generate_sentence(random.Random(0), 1, 1)


def test_text_file_is_normalized_filtered_and_deterministic(tmp_path):
    path = tmp_path / "sentences.txt"
    lines = [f"Line number {i}, said Ann." for i in range(30)] + ["", "Too short", "x" * 3]
    path.write_text("\n".join(lines), encoding="utf-8")
    pool = sentence_pool(20, seed=1, min_words=4, max_words=10, text_file=str(path))
    assert pool == sentence_pool(20, seed=1, min_words=4, max_words=10, text_file=str(path))
    assert len(set(pool)) == 20
    assert all(s.startswith("line number ") and s.endswith(" said ann") for s in pool)
    assert "line number twenty nine said ann" in sentence_pool(
        30, seed=1, min_words=4, max_words=10, text_file=str(path)
    )


def test_text_file_errors_name_the_file(tmp_path):
    path = tmp_path / "few.txt"
    path.write_text("one two three four\n", encoding="utf-8")
    with pytest.raises(ValueError, match="few.txt: 1 distinct usable sentences, need 5"):
        sentence_pool(5, seed=0, min_words=3, max_words=8, text_file=str(path))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        sentence_pool(5, seed=0, min_words=3, max_words=8, text_file=str(tmp_path / "missing.txt"))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="binary.txt: not UTF-8"):
        sentence_pool(1, seed=0, min_words=1, max_words=8, text_file=str(binary))


PLURALS = {
    "box": "boxes",
    "battery": "batteries",
    "key": "keys",
    "knife": "knives",
    "brush": "brushes",
    "lamp": "lamps",
}


@pytest.mark.parametrize("noun, plural_form", PLURALS.items())
def test_plural(noun, plural_form):
    assert plural(noun) == plural_form


def test_closed_vocabulary_is_small_and_covers_held_out_sentences():
    """The default corpus: a few hundred word types, and sentences cut from one pool share
    them, so held-out sentences have almost no word that the training slice lacks."""
    pool = sentence_pool(3000, seed=0, min_words=4, max_words=12, vocabulary="closed")
    held_out, train = pool[:1000], pool[1000:]
    train_vocab = {w for s in train for w in s.split()}
    tokens = [w for s in held_out for w in s.split()]
    oov = sum(w not in train_vocab for w in tokens) / len(tokens)
    assert 300 < len(train_vocab) < 900
    assert oov < 0.02
    open_pool = sentence_pool(3000, seed=0, min_words=4, max_words=12, vocabulary="open")
    open_train = {w for s in open_pool[1000:] for w in s.split()}
    open_tokens = [w for s in open_pool[:1000] for w in s.split()]
    assert sum(w not in open_train for w in open_tokens) / len(open_tokens) > 0.05
    assert len(lexicon("closed")["first"]) < 50 < len(lexicon("open")["first"])


def test_unknown_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="unknown vocabulary"):
        lexicon("tiny")
