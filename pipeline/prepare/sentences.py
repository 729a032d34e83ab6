"""The built-in sentence generator of the synthetic corpus (``data.source: synthetic``).

:func:`sentence_pool` fills about 80 grammar templates (errands, travel, work, weather,
dates, prices, addresses, opinions) with slot fillers drawn from large word lists shipped
in the ``faker`` wheel (American, British, Irish, Indian and New Zealand first and last
names, about 1,100 real cities and capitals, states, countries, job titles, about 2,000
nouns, verbs, adjectives and adverbs, business jargon), plus hand-written everyday lists
(objects, food, venues, relatives). Numbers, times, dates, prices and years are written
with digits and spelled by the normalizer (:func:`pipeline.prepare.text.normalize`), so synthetic
text goes through exactly the path imported text does. With ``vocabulary="closed"`` (the
default corpus) the slots are filled from the short lists of
:mod:`pipeline.prepare.closed_lexicon` instead: a few hundred everyday words, each heard many
times in training. Everything is drawn from a seeded ``random.Random``, so a seed gives
the same sentences on every machine with the same ``faker`` version (pinned in
``pyproject.toml``). ``data.synthetic.text_file`` replaces the generator with the user's
own sentences (:func:`load_text_file`).

Usage::

    from pipeline.prepare.sentences import sentence_pool
    sentence_pool(1000, seed=0, min_words=3, max_words=12)
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pipeline.config import NormalizeConfig
from pipeline.prepare.text import MONTHS, fold_accents, normalize

_MINUTES = (0, 5, 10, 15, 20, 30, 40, 45, 50, 55)
_DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_SPACES = re.compile(r"\s+")

# ---------------------------------------------------------------------------
# The lexicon: hand-written everyday lists plus large word lists from faker.

_OBJECTS = """book phone ticket letter bag key lamp chair table window coat umbrella camera
bottle basket ladder kettle blanket pencil notebook laptop charger wallet jacket sweater
scarf glove hat helmet backpack suitcase mirror clock radio speaker cushion pillow towel
bucket candle plate bowl spoon fork knife mug teapot jar box envelope parcel stamp map
calendar poster painting photo guitar piano violin drum bicycle scooter tent rope hammer
drill screwdriver shovel brush sponge printer keyboard monitor tablet battery cable
bracelet necklace ring watch sandal boot shoe sock shirt skirt dress belt tie""".split()
_FOOD = """bread soup rice coffee tea apples cheese pasta salad oranges bananas pancakes
noodles yogurt honey butter eggs chicken fish potatoes carrots tomatoes onions garlic
lemons grapes cherries strawberries chocolate cake cookies muffins sandwiches pizza curry
dumplings tacos porridge cereal juice lemonade milk""".split()
_RELATIVES = """mother father sister brother aunt uncle cousin neighbour friend colleague
boss grandmother grandfather son daughter wife husband niece nephew roommate teacher
doctor dentist landlord""".split()
_VENUES = """kitchen garden office library station airport bakery pharmacy museum stadium
hospital market park beach harbour cafe restaurant cinema theatre school university
church bridge hotel bank gym supermarket bookshop garage playground zoo gallery
courthouse post_office town_hall bus_stop train_station car_park swimming_pool""".split()
_WEATHER = "rain snow wind sunshine fog thunder storms hail frost showers drizzle heat".split()
_TRANSPORT = "bus train tram ferry taxi bike car plane subway coach boat".split()
_HOBBIES = """swimming cycling painting reading gardening hiking cooking fishing dancing chess
knitting running climbing sailing skiing surfing photography singing baking pottery
birdwatching tennis golf football basketball volleyball rowing yoga""".split()
_STREET_KINDS = """street avenue road lane drive court place boulevard way square terrace
crescent close hill row walk grove park gardens""".split()

_VERB_STOP = set(
    """be have do say get going seem mean become let tend suppose exist occur
die kill lie appear happen remain relate refer base involve""".split()
)
_ADJ_STOP = set(
    """more some all many most other such even just any each much own another
same few both enough less least last next sexual pregnant latter former united""".split()
)


def _clean(word: str) -> str:
    """A lexicon entry as plain ASCII words (accents folded, odd characters dropped)."""
    return _SPACES.sub(" ", re.sub(r"[^A-Za-z' ]", " ", fold_accents(word))).strip()


def _unique(words) -> tuple[str, ...]:  # noqa: ANN001 - any iterable of str
    """Cleaned, de-duplicated, sorted: list order never depends on the faker release's order."""
    return tuple(sorted({w for w in (_clean(x) for x in words) if w}))


def _jobs(raw) -> tuple[str, ...]:  # noqa: ANN001
    """Job titles that read naturally after 'a': 'Engineer, civil' -> 'civil engineer'."""
    titles = []
    for job in raw:
        if re.search(r"[/()]", job):
            continue
        head, _, qualifier = job.partition(", ")
        title = f"{qualifier} {head}" if qualifier else head
        if len(title.split()) <= 3:
            titles.append(title.lower())
    return _unique(titles)


Vocabulary = Literal["closed", "open"]


def lexicon(vocabulary: Vocabulary = "open") -> dict[str, tuple[str, ...]]:
    """Slot name -> fillers. Proper names stay capitalised (the normalizer lowers them).

    ``open``: the large faker lists (names and cities a test sentence may hold that
    training never heard); ``closed``: :data:`pipeline.prepare.closed_lexicon.CLOSED_LEXICON`.
    """
    if vocabulary == "closed":
        from pipeline.prepare.closed_lexicon import CLOSED_LEXICON

        return CLOSED_LEXICON
    if vocabulary != "open":
        raise ValueError(f"unknown vocabulary {vocabulary!r}; expected 'closed' or 'open'")
    return _open_lexicon()


@functools.lru_cache(maxsize=1)
def _open_lexicon() -> dict[str, tuple[str, ...]]:
    from faker.providers import date_time
    from faker.providers.address import en_US as address_us
    from faker.providers.company import en_US as company_us
    from faker.providers.geo import en_US as geo_us
    from faker.providers.job import en_US as job_us
    from faker.providers.lorem import en_US as lorem_us
    from faker.providers.person import en_GB, en_IE, en_IN, en_NZ, en_US

    pos = lorem_us.Provider.parts_of_speech
    people = [m.Provider for m in (en_US, en_GB, en_IE, en_IN, en_NZ)]
    biz_verbs, biz_adjs, biz_nouns = company_us.Provider.bsWords
    return {
        "first": _unique(n for p in people for n in [*p.first_names_male, *p.first_names_female]),
        "last": _unique(n for p in people for n in p.last_names),
        "city": _unique(
            [
                *(c[2] for c in geo_us.Provider.land_coords if len(c[2].split()) <= 2),
                *(c.capital for c in date_time.Provider.countries if len(c.capital.split()) <= 2),
            ]
        ),
        "state": _unique(address_us.Provider.states),
        "country": _unique(
            c for c in address_us.Provider.countries if len(c.split()) <= 3 and not re.search(r"[(),]", c)
        ),
        "job": _jobs(job_us.Provider.jobs),
        "noun": _unique(pos["noun"]),
        "verb": _unique(v for v in pos["verb"] if v not in _VERB_STOP),
        "adj": _unique(a for a in pos["adjective"] if a not in _ADJ_STOP),
        "adv": _unique(a for a in pos["adverb"] if a.endswith("ly") and a != "only"),
        "biz_verb": _unique(biz_verbs),
        "biz_adj": _unique(a.replace("-", " ") for a in biz_adjs if a.islower() and "/" not in a),
        "biz_noun": _unique(n.replace("-", " ") for n in biz_nouns if n.islower()),
        "object": _unique(_OBJECTS),
        "food": _unique(_FOOD),
        "relative": _unique(_RELATIVES),
        "venue": _unique(v.replace("_", " ") for v in _VENUES),
        "weather": _unique(_WEATHER),
        "transport": _unique(_TRANSPORT),
        "hobby": _unique(_HOBBIES),
        "street_kind": _unique(_STREET_KINDS),
        "day": tuple(d.capitalize() for d in _DAYS),
        "month": tuple(m.capitalize() for m in MONTHS),
    }


def plural(noun: str) -> str:
    """Regular English plural of a countable noun: box -> boxes, battery -> batteries."""
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if noun.endswith("knife"):
        return noun[:-2] + "ves"
    return noun + "s"


# Slots computed from the rng rather than picked from a list; digits are spelled by
# normalize(), ordinals are written '<n>th' and fixed by _fix_ordinals().
_COMPUTED: dict[str, Callable[[random.Random], str]] = {
    "num": lambda r: str(r.randint(2, 12)),
    "count": lambda r: str(r.choice([r.randint(2, 40), r.randint(2, 40), r.randrange(50, 1000, 10)])),
    "big": lambda r: f"{r.randrange(1000, 90000, 50):,}",
    "time": lambda r: f"{r.randint(1, 12)}:{r.choice([*_MINUTES, r.randint(1, 59)]):02d}",
    "hour": lambda r: str(r.randint(1, 12)),
    "date": lambda r: f"{r.choice(MONTHS).capitalize()} {r.randint(1, 28)}th",
    "ordinal": lambda r: f"{r.randint(1, 30)}th",
    "year": lambda r: str(r.choice([r.randint(1850, 1999), r.randint(1950, 2030)])),
    "price": lambda r: (
        r.choice(["$", "£", "€"])
        + r.choice(
            [
                str(r.randint(2, 99)),
                f"{r.randint(1, 40)}.{r.choice([50, 99, 25, 75, r.randint(1, 99)]):02d}",
                f"{r.randrange(100, 5000, 5):,}",
            ]
        )
    ),
    "percent": lambda r: f"{r.choice([r.randint(2, 95), r.randint(2, 95), r.randint(1, 9) + 0.5])}%",
    "house": lambda r: str(r.choice([r.randint(1, 99), r.randint(100, 999)])),
    "minutes": lambda r: str(r.choice([5, 10, 15, 20, 25, 30, 40, 45, 50, 90])),
}


def _fix_ordinals(text: str) -> str:
    """'1th' -> '1st', '22th' -> '22nd' (teens keep 'th')."""

    def fix(m: re.Match) -> str:
        n = int(m.group(1))
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return m.group(1) + suffix

    return re.sub(r"\b(\d+)th\b", fix, text)


_TEMPLATES = [
    # people and places
    "{first} {last} moved to {city} in {year}.",
    "{first} and {first2} met in {city} on {date}.",
    "My {relative} works as a {job} in {city}.",
    "Have you ever been to {city} in {country}?",
    "I have never been to {country}, but {first} {last} has.",
    "{first} grew up in {city} and studied {noun} in {city2}.",
    "The {job} from {state} arrives at {time} with {first} {last}.",
    "{first} {last} was born in {city} on {date}, {year}.",
    "We visited {city}, {city2} and {city3} last summer.",
    "{first} {last} lives at {house} {last2} {street_kind}.",
    "Turn left on {last} {street_kind} and walk past the {venue}.",
    "The {venue} on {last} {street_kind} opens at {time}.",
    "{first} {last} is the new {job} at the {venue}.",
    "Ask {first} {last} about the {adj} {noun}.",
    "Is {first} {last} still living in {country}?",
    "{first} wants to become a {job} like {first2} {last}.",
    "Doctor {last} and Professor {last2} flew to {city} on {day}.",
    "The law firm of {last} and {last2} is based in {city}.",
    "{first} {last}, a {job} from {city}, won the {noun} prize.",
    "Send the {noun} to {first} {last} in {city}, {country}.",
    "{first} {last} from {city} met {first2} {last2} from {city2}.",
    "{first} {last} and {first2} {last2} opened a {venue} in {city}.",
    "Is {first} {last} related to {first2} {last2}?",
    "The {job} {first} {last} flew from {city} to {city2}.",
    "{first} {last} sold the {adj} {noun} to a {job} in {city}.",
    "Have you heard from {first} {last} since {first2} left {city}?",
    "The {job} from {city} is called {first} {last}.",
    # errands and everyday life
    "Please call {first} {last} at {time} on {day}.",
    "Can you pick up {food} and {food2} on the way home?",
    "I left my {object} at the {venue} in {city} again.",
    "{first} bought {num} {objects} for {price} in {city}.",
    "The {adj} {object} costs {price} at the {venue}.",
    "There are {count} {objects} in the {venue}.",
    "Don't forget the {object}, the {object2} and the {noun}.",
    "We had {food} and {food2} with {first} on {day}.",
    "My {relative} {first} makes the best {food} in {city}.",
    "Could you bring a {adj} {object} for {first} tomorrow?",
    "Where did {first} put the {adj} {object}?",
    "{first} found a {adj} {object} near the {noun}.",
    "The {noun} was {adv} {adj}.",
    "The {transport} to {city} leaves at {time}.",
    "Our {transport} from {city} was {minutes} minutes late.",
    "It takes {minutes} minutes by {transport} to the {venue}.",
    "My flight from {city} to {city2} was {num} hours late.",
    "{first} {last} spends every {day} {hobby} near {city}.",
    "{first} started {hobby} in {city} in {year}.",
    "Is {hobby} popular in {country} or {country2}?",
    "We expect {weather} in {city} and {city2} on {day}.",
    "There was {weather} all week in {state}.",
    "It was {adj} and {adj2} in {city} yesterday.",
    # work and news
    "The meeting about the {adj} {noun} starts at {time}.",
    "The report on {noun} and {noun2} is due on {date}.",
    "I think {first} should {verb} the {noun} before {day}.",
    "We need to {verb} the {adj} {noun} {adv}.",
    "Can you {verb} the {noun} for {first} {last}?",
    "Let us {verb} the {noun} and {verb2} the {noun2}.",
    "{first} {adv} decided to {verb} the {adj} {noun}.",
    "{first} {last} said the {noun} was {adj}.",
    "The {adj} {noun} was the main topic in {city} on {day}.",
    "Nobody in {city} knows how to {verb} the {noun}.",
    "Sales of {objects} in {country} rose by {percent} in {year}.",
    "The price of {food} in {city} went up by {percent}.",
    "About {big} people live in {city}.",
    "The {noun} conference in {city} drew {big} visitors.",
    "The {ordinal} chapter is about {noun}, {noun2} and {noun3}.",
    "{first} {last} won the {noun} award in {year}.",
    "The {adj} {noun} in {city} is {adv} {adj2}.",
    "{first} {last} will {verb} the {adj} {noun} in {city}.",
    "The {adj} {noun} from {country} reached {city} on {date}.",
    "{first} {last} wrote a {adj} article about {noun} and {noun2}.",
    "A {adj} {noun} and a {adj2} {noun2} were found in {city}.",
    "The {noun} and the {noun2} in {city} need {adj} {noun3}.",
    "{first} {last} asked the {job} in {city} to {verb} the {noun}.",
    "The team from {city} will {verb} the {noun} by {date}.",
    "Our {noun} budget for {year} is {price}.",
    "Her {ordinal} book is about {adj} {noun} in {country}.",
    "We must {biz_verb} {biz_adj} {biz_noun} by {date}.",
    "{first} {last} wants a {biz_adj} {biz_noun} for the {noun} team.",
    "The board in {city} hired {first} {last} to {biz_verb} our {biz_noun}.",
    "{last} and {last2} announced a {biz_adj} {biz_noun} on {day}.",
    # conversation
    "Honestly, the {noun} seemed {adj} to {first}.",
    "Why is the {noun} in {city} so {adj}?",
    "I {adv} agree with {first} {last} about the {noun}.",
    "Do you remember the {adj} {noun} in {city}?",
    "That was a {adj} {noun}, wasn't it, {first}?",
    "What time does the {venue} in {city} close on {day}?",
    "See you at the {venue} at {time}, {first}.",
    "Happy birthday, {first} {last}!",
    "Thanks for the {food}, {first}.",
    "Tell {first} the {noun} is {adj}.",
    "I'll meet {first} {last} at {time}.",
    "{first} {last} is {adj}.",
    "Call {first} {last} on {day}.",
    "{first} loves {food}.",
    "Welcome to {city}, {first}.",
]
_SLOT = re.compile(r"\{([a-z_]+?)(\d?)\}")


def _fill(template: str, rng: random.Random, lex: dict[str, tuple[str, ...]]) -> str:
    """Fill every slot of ``template`` from ``lex``; ``{x}`` and ``{x2}`` are drawn independently."""
    drawn: dict[str, str] = {}

    def draw(m: re.Match) -> str:
        key = m.group(1) + m.group(2)
        if key not in drawn:
            base = m.group(1)
            if base == "objects":
                drawn[key] = plural(rng.choice(lex["object"]))
            elif base in _COMPUTED:
                drawn[key] = _COMPUTED[base](rng)
            else:
                drawn[key] = rng.choice(lex[base])
        return drawn[key]

    text = _fix_ordinals(_SLOT.sub(draw, template))
    return re.sub(r"\b([Aa]) (?=[AEIOUaeiou])", r"\1n ", text)


def generate_sentence(
    rng: random.Random,
    min_words: int,
    max_words: int,
    cfg: NormalizeConfig | None = None,
    vocabulary: Vocabulary = "open",
) -> str:
    """One normalized sentence from the built-in grammar, within the word limits."""
    lex = lexicon(vocabulary)
    for _ in range(200):
        sentence = normalize(_fill(rng.choice(_TEMPLATES), rng, lex), cfg)
        if min_words <= len(sentence.split()) <= max_words:
            return sentence
    raise ValueError(
        f"the built-in generator could not make a sentence of {min_words}-{max_words} "
        "words in 200 tries; widen data.synthetic.min_words/max_words"
    )


def load_text_file(path: str | Path, cfg: NormalizeConfig | None = None) -> list[str]:
    """Sentences from a user text file, one per line, normalized; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.synthetic.text_file: {path} does not exist")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = [normalize(line, cfg) for line in raw.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"{path}: no usable sentences after normalization")
    return lines


def sentence_pool(
    n: int,
    seed: int,
    min_words: int,
    max_words: int,
    text_file: str | None = None,
    normalizer: NormalizeConfig | None = None,
    vocabulary: Vocabulary = "open",
) -> list[str]:
    """``n`` distinct normalized sentences, deterministic for ``seed``.

    From ``text_file`` (shuffled, filtered to ``min_words..max_words``) when
    given, else from the built-in generator with the ``vocabulary`` lexicon.
    """
    rng = random.Random(seed)
    if text_file:
        sentences = list(
            dict.fromkeys(
                s for s in load_text_file(text_file, normalizer) if min_words <= len(s.split()) <= max_words
            )
        )
        rng.shuffle(sentences)
        if len(sentences) < n:
            raise ValueError(
                f"{text_file}: {len(sentences)} distinct usable sentences, "
                f"need {n} ({min_words}-{max_words} words each)"
            )
        return sentences[:n]
    pool: dict[str, None] = {}
    attempts = 0
    while len(pool) < n:
        pool[generate_sentence(rng, min_words, max_words, normalizer, vocabulary)] = None
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(
                f"the built-in generator produced only {len(pool)} distinct sentences of {n} requested"
            )
    return list(pool)
