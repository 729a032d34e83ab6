"""Text normalization: one normalizer for every transcript, synthetic or imported.

Normalization (:func:`normalize`) is applied identically to every transcript,
synthetic or imported, before it reaches a manifest; ``data.normalize`` picks
its steps:

- ``spell_numbers``: digits become words, read the way a speaker says them:
  times (``7:45`` -> ``seven forty five``), money (``$3.50``), percentages,
  ordinals (``21st``), years after ``in``/``since``/a month (``in 1987`` ->
  ``in nineteen eighty seven``), decimals, and plain cardinals;
- ``lowercase``;
- ``strip_punctuation``: accents folded to ASCII, everything but letters,
  digits and word-internal apostrophes removed, hyphens split words.

Whitespace is always collapsed.

Usage::

    from pipeline.prepare.text import normalize
    normalize("Call me at 7:45 on March 3rd!")   # 'call me at seven forty five on march third'

The synthetic corpus's sentences come from :mod:`pipeline.prepare.sentences`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from pipeline.config import NormalizeConfig

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
MONTHS = ("january february march april may june july august september october november december").split()


def number_to_words(n: int) -> str:
    """Spell out an integer below one billion: 342 -> 'three hundred forty two'."""
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
            if head >= 1000 and size == 1_000_000:
                raise ValueError(f"number too large to spell: {n}")
            words = number_to_words(head) + " " + name
            return words if rest == 0 else words + " " + number_to_words(rest)
    raise ValueError(f"number too large to spell: {n}")


def ordinal_to_words(n: int) -> str:
    """Spell an ordinal: 21 -> 'twenty first', 40 -> 'fortieth'."""
    *head, last = number_to_words(n).split()
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def year_to_words(n: int) -> str:
    """Read a year the way people say it: 1987 -> 'nineteen eighty seven', 2005 -> 'two thousand five'."""
    if 2000 <= n <= 2009 or n % 1000 == 0 or not 1100 <= n <= 2099:
        return number_to_words(n)
    head, tail = divmod(n, 100)
    if tail == 0:
        return number_to_words(head) + " hundred"
    return number_to_words(head) + " " + (f"oh {_ONES[tail]}" if tail < 10 else number_to_words(tail))


def _digits(s: str) -> str:
    """Digit by digit, for numbers too long to read as a quantity."""
    return " ".join(_ONES[int(c)] for c in s)


def _cardinal(s: str) -> str:
    n = int(s)
    return number_to_words(n) if n < 1_000_000_000 else _digits(s)


def _decimal(s: str) -> str:
    """'3.25' -> 'three point two five'; '12' -> 'twelve'."""
    whole, _, frac = s.partition(".")
    return _cardinal(whole) + (f" point {_digits(frac)}" if frac else "")


def _time(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 24 or minute > 59:
        return f" {_cardinal(m.group(1))} {_cardinal(m.group(2))} "
    if minute == 0:
        return f" {number_to_words(hour)} o'clock "
    tail = f"oh {_ONES[minute]}" if minute < 10 else number_to_words(minute)
    return f" {number_to_words(hour)} {tail} "


_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    words = f"{_cardinal(str(whole))} {one if whole == 1 else many}"
    if m.group(3) and int(m.group(3)):
        cents = int(m.group(3))
        words += f" {number_to_words(cents)} {sub_one if cents == 1 else sub_many}"
    return f" {words} "


_YEAR_CUES = "in|since|until|till|by|from|of|year|" + "|".join(MONTHS)
_NUMBER_RULES: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d\d))?\b"), _money),
    (re.compile(r"\b(\d{1,2}):(\d\d)\b"), _time),
    (re.compile(r"\b(\d+(?:\.\d+)?)\s?%"), lambda m: f" {_decimal(m.group(1))} percent "),
    (
        re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE),
        lambda m: f" {ordinal_to_words(int(m.group(1)))} " if len(m.group(1)) < 10 else m.group(),
    ),
    (
        re.compile(rf"\b({_YEAR_CUES})\s+(1[1-9]\d\d|20\d\d)\b", re.IGNORECASE),
        lambda m: f" {m.group(1)} {year_to_words(int(m.group(2)))} ",
    ),
    (re.compile(r"\b(\d{1,3}(?:,\d{3})+)\b"), lambda m: f" {_cardinal(m.group(1).replace(',', ''))} "),
    (re.compile(r"\b\d+\.\d+\b"), lambda m: f" {_decimal(m.group())} "),
    (re.compile(r"\d+"), lambda m: f" {_cardinal(m.group())} "),
]


def spell_numbers(text: str) -> str:
    """Replace every digit sequence in ``text`` with words (times, money, ordinals, years...)."""
    for pattern, replace in _NUMBER_RULES:
        text = pattern.sub(replace, text)
    return text


def fold_accents(text: str) -> str:
    """'Café Zürich' -> 'Cafe Zurich': decompose and drop combining marks."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_NON_WORD = re.compile(r"[^A-Za-z0-9' ]+")
_APOSTROPHES = re.compile(r"[\u2018\u2019\u02bc`]")
_SPACES = re.compile(r"\s+")
_DEFAULT_NORMALIZE = NormalizeConfig(lowercase=True, strip_punctuation=True, spell_numbers=True)


def normalize(text: str, cfg: NormalizeConfig | None = None) -> str:
    """Canonical transcript form used for training targets and WER (see module docstring)."""
    cfg = cfg or _DEFAULT_NORMALIZE
    text = unicodedata.normalize("NFKC", text)
    if cfg.spell_numbers:
        text = spell_numbers(text)
    if cfg.lowercase:
        text = text.lower()
    if cfg.strip_punctuation:
        text = _APOSTROPHES.sub("'", fold_accents(text)).replace("&", " and ")
        text = _NON_WORD.sub(" ", text.replace("-", " "))
        text = " ".join(w.strip("'") for w in text.split())
    return _SPACES.sub(" ", text).strip()


def transcript_problem(raw: str) -> str | None:
    """Why a raw transcript is unusable before normalization, or ``None``.

    Empty or whitespace-only text is an ``empty transcript``; text with a
    decoding replacement character, control characters, or neither letters nor
    digits (``"[noise]"`` excepted, it has letters) is a ``non-text transcript``.
    """
    if not raw.strip():
        return "empty transcript"
    if "\ufffd" in raw or any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in raw):
        return "non-text transcript (control or undecodable characters)"
    if not any(c.isalnum() for c in raw):
        return f"non-text transcript ({raw.strip()[:30]!r})"
    return None
