"""Text normalization and the built-in sentence generator for the synthetic corpus.

Normalization is applied identically to every transcript (synthetic or
imported) before tokenization and scoring: lower case, digits spelled out,
punctuation other than word-internal apostrophes removed, whitespace collapsed.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """Spell out a non-negative integer below one billion: 342 -> 'three hundred forty two'."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for size, name in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head, rest = divmod(n, size)
            words = number_to_words(head) + " " + name
            return words if rest == 0 else words + " " + number_to_words(rest)
    raise ValueError(f"number too large to spell: {n}")


_NUMBER = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Canonical transcript form used for training targets and WER."""
    text = text.lower().replace("-", " ")
    text = _NUMBER.sub(lambda m: " " + number_to_words(int(m.group())) + " ", text)
    text = _NON_WORD.sub(" ", text)
    text = " ".join(w.strip("'") for w in text.split())
    return _SPACES.sub(" ", text).strip()


# A small grammar of everyday sentences: templates with typed slots.
_WORDS: dict[str, list[str]] = {
    "name": "anna ben carla david elena frank grace henry irene jack laura mike nina oscar "
            "paula quentin rosa sam tina victor wendy xavier yusuf zoe".split(),
    "place": "london paris berlin madrid boston chicago denver seattle toronto dublin "
             "oslo vienna prague lisbon sydney tokyo cairo lima kyoto geneva".split(),
    "object": "book phone ticket letter bag key lamp chair table window coat umbrella "
              "camera bottle basket ladder kettle blanket pencil notebook".split(),
    "adj": "red small heavy old new bright quiet broken warm cold clean green empty "
           "strange yellow tiny huge soft".split(),
    "verb": "found bought lost opened moved painted cleaned carried fixed sold borrowed "
            "dropped washed wrapped packed".split(),
    "day": "monday tuesday wednesday thursday friday saturday sunday".split(),
    "weather": "rain snow wind sunshine fog thunder".split(),
    "food": "bread soup rice coffee tea apples cheese pasta salad oranges".split(),
}
_TEMPLATES = [
    "{name} {verb} the {adj} {object} in {place}",
    "please call {name} at {num} o'clock on {day}",
    "the train to {place} leaves at {num} {num2}",
    "we expect {weather} in {place} on {day}",
    "{name} bought {num} {adj} {object}s for {name2}",
    "did you see the {adj} {object} near the window",
    "my flight from {place} to {place2} was {num} hours late",
    "{name} and {name2} had {food} and {food2} for lunch",
    "there are {num} {object}s on the {adj} table",
    "on {day} {name} {verb} a {adj} {object}",
    "the meeting in {place} starts at {num} thirty",
    "can you bring some {food} and a {adj} {object}",
]


def load_text_file(path: str | Path) -> list[str]:
    """Sentences from a user text file, one per line; blank lines are skipped."""
    lines = [normalize(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"{path}: no usable sentences after normalization")
    return lines


def generate_sentence(rng: random.Random, min_words: int, max_words: int) -> str:
    """One normalized sentence from the built-in grammar, within the word limits."""
    for _ in range(100):
        template = rng.choice(_TEMPLATES)
        fill = {k: rng.choice(v) for k, v in _WORDS.items()}
        fill.update({k + "2": rng.choice(v) for k, v in _WORDS.items()})
        fill["num"] = str(rng.randint(1, 12))
        fill["num2"] = str(rng.choice([5, 10, 15, 20, 25, 40, 45, 50]))
        sentence = normalize(template.format(**fill))
        if min_words <= len(sentence.split()) <= max_words:
            return sentence
    raise ValueError(f"could not generate a sentence of {min_words}-{max_words} words")


def sentence_pool(n: int, seed: int, min_words: int, max_words: int,
                  text_file: str | None = None) -> list[str]:
    """``n`` distinct normalized sentences, deterministic for ``seed``."""
    rng = random.Random(seed)
    if text_file:
        sentences = list(dict.fromkeys(
            s for s in load_text_file(text_file) if min_words <= len(s.split()) <= max_words))
        rng.shuffle(sentences)
        if len(sentences) < n:
            raise ValueError(f"{text_file}: {len(sentences)} distinct usable sentences, "
                             f"need {n} ({min_words}-{max_words} words each)")
        return sentences[:n]
    pool: dict[str, None] = {}
    attempts = 0
    while len(pool) < n:
        pool[generate_sentence(rng, min_words, max_words)] = None
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"the built-in generator produced only {len(pool)} distinct "
                             f"sentences of {n} requested")
    return list(pool)
