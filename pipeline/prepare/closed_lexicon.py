"""The closed vocabulary of the default synthetic corpus.

A read-speech task of the size a task domain has (an assistant that handles
errands, travel, work and small talk): a few hundred everyday words, so that
in an hour of training speech each word is heard many times and the test set's
words are nearly all seen in training, as in WSJ's 5k task or LibriSpeech
test-clean against its training transcripts. The grammar templates and the
spelled numbers, times, dates and prices are the open generator's; only the
slot fillers are these short lists (``data.synthetic.vocabulary: closed``).

Usage::

    from pipeline.prepare.closed_lexicon import CLOSED_LEXICON
    CLOSED_LEXICON["city"][:3]   # ('Austin', 'Berlin', 'Boston')
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    """Sorted, de-duplicated entries of a whitespace-separated list (``_`` joins words)."""
    return tuple(sorted({w.replace("_", " ") for w in text.split()}))


CLOSED_LEXICON: dict[str, tuple[str, ...]] = {
    "first": _words("""James Mary John Linda David Sarah Michael Emma Peter Anna Daniel Laura
        Thomas Kate Paul Lucy Mark Susan Robert Helen Steven Alice George Maria"""),
    "last": _words("""Smith Jones Brown Taylor Wilson Johnson Miller Davis Clark Lewis Walker
        Hall Young King Wright Green Baker Adams Hill Moore"""),
    "city": _words("""London Paris Boston Chicago Dublin Berlin Madrid Rome Tokyo Sydney Toronto
        Denver Seattle Miami Dallas Glasgow Leeds Oxford Vienna Prague Lisbon Austin Houston
        Atlanta"""),
    "state": _words("Texas Ohio Florida Oregon Georgia Nevada Maine Utah Kansas Virginia"),
    "country": _words("""France Spain Italy Germany Canada Mexico Japan China India Ireland
        Brazil Norway Greece Egypt Kenya Peru"""),
    "job": _words("""teacher doctor nurse engineer lawyer pilot chef farmer painter writer driver
        manager banker dentist designer plumber"""),
    "noun": _words("""plan project report meeting budget idea problem question answer market price
        story picture game music movie message house road river family team party trip weekend
        holiday night morning evening office letter contract schedule order bill payment
        account password website email account service product design test result list
        change issue client visit lesson course"""),
    "verb": _words("""finish check change start open close move clean fix paint sell buy send read
        write build visit share review sign print order cancel test book update"""),
    "adj": _words("""big small new old good great nice cold warm hot quiet busy late early cheap
        expensive simple strange famous important useful heavy long short bright dark clean
        happy friendly modern"""),
    "adv": _words("quickly slowly really quietly carefully finally easily clearly suddenly probably"),
    "biz_verb": _words("improve deliver manage support grow launch"),
    "biz_adj": _words("global digital online local new better"),
    "biz_noun": _words("sales service products systems network strategy"),
    "object": _words("""book phone ticket letter bag key lamp chair table window coat umbrella
        camera bottle basket blanket pencil notebook laptop charger wallet jacket sweater scarf
        hat backpack suitcase mirror clock radio pillow towel candle plate bowl cup box map
        guitar bicycle printer"""),
    "food": _words("""bread soup rice coffee tea apples cheese pasta salad oranges bananas pancakes
        eggs chicken fish potatoes tomatoes chocolate cake cookies sandwiches pizza juice milk"""),
    "relative": _words("""mother father sister brother aunt uncle cousin neighbour friend colleague
        boss son daughter wife husband"""),
    "venue": _words("""kitchen garden office library station airport bakery pharmacy museum
        hospital market park beach cafe restaurant cinema school hotel bank gym supermarket
        bookshop post_office bus_stop swimming_pool"""),
    "weather": _words("rain snow wind sunshine fog thunder storms frost showers heat"),
    "transport": _words("bus train taxi bike car plane boat"),
    "hobby": _words("""swimming cycling painting reading gardening hiking cooking fishing dancing
        running singing baking tennis golf football"""),
    "street_kind": _words("street avenue road lane drive square"),
    "day": _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday"),
    "month": _words("""January February March April May June July August September October
        November December"""),
}
