"""Trend terms of a post: hashtags, cashtags and keywords.

Keywords are case-folded words and two-word phrases of the text with stop
words, mentions, links and numbers left out. Terms longer than
``MAX_TERM_CHARS`` are ignored (a 10,000-character "word" is not a trend), and
a post yields at most ``MAX_KEYWORDS`` keywords, so one post cannot flood the
trends stage.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, get_args

TermKind = Literal["hashtag", "cashtag", "keyword", "topic", "visual", "entity"]
KINDS: tuple[TermKind, ...] = get_args(TermKind)
MAX_TERM_CHARS = 64
MAX_KEYWORDS = 24
MIN_WORD_CHARS = 3
MAX_MENTIONS = 20  # @handles of one post that become interactions

_HANDLE = re.compile(r"(?<![\w@])@(\w{1,50})")

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9.]{0,9})\b")
_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
# Links, mentions, tags and the redaction masks ("[email]") are not keywords.
_SKIP = re.compile(r"(?:https?://|www\.)\S+|[@#$]\w+|\[[a-z]+\]", re.IGNORECASE)

# English function words and tweet noise; trends are about content words.
STOP_WORDS = frozenset(
    """a about above after again against all almost also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
    during each even ever every few for from further get gets getting go goes going gonna got had hadn't has
    hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's i i'd
    i'll i'm i've if in into is isn't it it's its itself just let's like lol me more most much must mustn't my
    myself no nor not now of off oh ok on once one only or other ought our ours ourselves out over own really rt
    same say says shan't she she'd she'll she's should shouldn't so some still such than that that's the their
    theirs them themselves then there there's these they they'd they'll they're they've this those though
    through to too u under until up upon us very via want was wasn't we we'd we'll we're we've well were weren't
    what what's when when's where where's which while who who's whom why why's will with won't would wouldn't
    yeah yes yet you you'd you'll you're you've your yours yourself yourselves tomorrow today tonight day night
    time may might user http amp im dont cant wont ive youre thats""".split()  # noqa: SIM905 - a word list reads better as text
)


def fold(term: str) -> str:
    """Case-fold and NFKC-normalise, so look-alike spellings count as one term."""
    return unicodedata.normalize("NFKC", term).casefold().strip("'’-")


def cashtags(text: str) -> list[str]:
    return list(dict.fromkeys(f"${tag.upper()}" for tag in _CASHTAG.findall(text)))


def mentioned_handles(text: str) -> list[str]:
    """The @handles of a text without the '@', each once, in order (at most ``MAX_MENTIONS``)."""
    return list(dict.fromkeys(_HANDLE.findall(text)))[:MAX_MENTIONS]


def keywords(text: str) -> list[str]:
    """Content words and two-word phrases of adjacent content words, in order."""
    words: list[str | None] = []
    for chunk in _SKIP.split(text):
        for raw in _WORD.findall(chunk):
            folded = fold(raw).replace("’", "'")
            words.append(folded if len(folded) >= MIN_WORD_CHARS and folded not in STOP_WORDS else None)
        words.append(None)  # no phrase across a link or a mention
    found: list[str] = []
    for i, word in enumerate(words):
        if word is None or len(word) > MAX_TERM_CHARS:
            continue
        found.append(word)
        following = words[i + 1] if i + 1 < len(words) else None
        if following is not None and len(word) + len(following) < MAX_TERM_CHARS:
            found.append(f"{word} {following}")
    return list(dict.fromkeys(found))[:MAX_KEYWORDS]


def post_terms(text: str, hashtags: list[str]) -> dict[str, list[str]]:
    """The ``terms`` of an enriched post (the topic is assigned by the trends stage)."""
    return {
        "hashtags": [tag for tag in hashtags if len(tag) <= MAX_TERM_CHARS],
        "cashtags": cashtags(text),
        "keywords": keywords(text),
    }
