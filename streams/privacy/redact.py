"""PII redaction of text published downstream.

Kinds: ``email``, ``phone``, ``card`` (Luhn-checked payment cards), ``ip``
(IPv4 and IPv6), ``address`` (street addresses with a number and a street
word), ``mention`` (@handles, off by default). Each match becomes a marker
such as ``[email]``. Detection runs on a folded copy of the text, one
character for one, where full-width and other compatibility forms become
ASCII and zero-width characters become separators, so look-alike digits or
an invisible character inside a number do not hide it; the marker replaces
the original span. Hashtags, prices, dates, times and version numbers are
left alone.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable

KINDS = ("email", "phone", "card", "ip", "address", "mention")
DEFAULT_KINDS = ("email", "phone", "card", "ip", "address")
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}

_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}\s?(?:@|\(at\)|\[at\])\s?[\w-]{1,63}(?:\.[\w-]{1,63})*\.[a-z]{2,24}\b", re.I
)
_CARD = re.compile(r"(?<![\d-])(?:\d[ \-]{0,3}){12,18}\d(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+/.$€£])\+\d{1,3}[\s.\-]{0,3}(?:\(\d{1,5}\)[\s.\-]?)?\d{1,5}(?:[\s.\-]{1,3}\d{1,8}){1,5}(?![\w/%])"
    r"|(?<![\w+/.$€£])(?:\(\d{1,5}\)[\s.\-]?)?\d{2,5}(?:[\s.\-]{1,3}\d{2,8}){1,5}(?![\w/%])"
    r"|(?<![\w+/.$€£])\+\d{7,15}(?!\w)"
    r"|(?<![\w+/.$€£])0\d{9,11}(?!\w)"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", re.I)
_STREET_WORDS = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|way|court|ct|place|pl|terrace|"
    r"square|sq|highway|hwy|parkway|pkwy"
)
_ADDRESS = re.compile(
    rf"\b\d{{1,5}}[a-z]?\s+(?:[A-Z][\w'-]*\.?\s+){{1,4}}(?:{_STREET_WORDS})\b\.?"
    r"|\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|weg|gasse|platz|allee)\s+\d{1,4}[a-z]?\b"
    r"|\b(?:rue|avenue|boulevard|calle|avenida|via|piazza)\s+(?:[\w'-]+\s+){1,4}\d{1,4}\b"
    r"|\b\d{1,4},?\s+(?:rue|avenue|boulevard|calle|via)\s+(?:[\w'’-]+\s?){1,4}",
    re.I,
)
_MENTION = re.compile(r"(?<![\w@])@\w{1,50}")
# Not phone numbers: dates, times, and version strings.
_DATE_PREFIX = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}\b")
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


@functools.lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    if ch in _INVISIBLE or unicodedata.category(ch) in ("So", "Sk") or "\ufe00" <= ch <= "\ufe0f":
        return "-"
    folded = unicodedata.normalize("NFKC", ch)
    return folded if len(folded) == 1 else ch


_ASCII_FOLD = {code: _fold_char(chr(code)) for code in range(128) if _fold_char(chr(code)) != chr(code)}


def fold(text: str) -> str:
    """The same length as ``text``: compatibility forms to ASCII; invisibles, emoji and
    their modifiers to '-', so ``555📞123📞4567`` reads as ``555-123-4567``."""
    if text.isascii():  # most posts: only ^ and ` change
        return text.translate(_ASCII_FOLD)
    return "".join(map(_fold_char, text))


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(span: str) -> str:
    return "".join(ch for ch in span if ch.isdigit())


def _cards(folded: str) -> Iterable[tuple[int, int]]:
    for match in _CARD.finditer(folded):
        digits = _digits(match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield match.span()


def _phones(folded: str) -> Iterable[tuple[int, int]]:
    for match in _PHONE.finditer(folded):
        span = match.group().strip()
        digits = _digits(span)
        if not 7 <= len(digits) <= 15 or _DATE.match(span) or _DATE_PREFIX.match(span):
            continue
        if not (span.startswith(("+", "(", "0")) or len(re.split(r"[\s.\-]", span)) >= 3 or len(digits) >= 10):
            continue  # a bare group like "2024 1500" is more likely a number than a phone
        yield match.span()


def _ips(folded: str) -> Iterable[tuple[int, int]]:
    for match in _IPV4.finditer(folded):
        if all(int(part) <= 255 for part in match.group().split(".")):
            yield match.span()
    for match in _IPV6.finditer(folded):
        candidate = match.group()
        if candidate.count(":") >= 2 and any(c.isalnum() for c in candidate):
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield match.span()


def _simple(pattern: re.Pattern[str]) -> Callable[[str], Iterable[tuple[int, int]]]:
    return lambda folded: (m.span() for m in pattern.finditer(folded))


FINDERS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "email": _simple(_EMAIL),
    "card": _cards,
    "ip": _ips,
    "phone": _phones,
    "address": _simple(_ADDRESS),
    "mention": _simple(_MENTION),
}
# Cards before phones (a card number also looks like a long phone number),
# IPs before phones (a dotted quad also looks like a dotted phone number).
ORDER = ("email", "card", "ip", "address", "phone", "mention")
MARKERS = {"mention": "@user"}


def parse_kinds(raw: str) -> tuple[str, ...]:
    kinds = tuple(k.strip().lower() for k in raw.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown PII kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    return kinds


def find_pii(text: str, kinds: Iterable[str]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, kind) spans, earlier kinds in ORDER winning."""
    folded = fold(text)
    wanted = set(kinds)
    taken: list[tuple[int, int, str]] = []
    for kind in ORDER:
        if kind not in wanted:
            continue
        for start, end in FINDERS[kind](folded):
            if all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, kind))
    return sorted(taken)


def redact(text: str, kinds: Iterable[str]) -> tuple[str, list[str]]:
    """The text with each PII span replaced by its marker, and the kinds found."""
    spans = find_pii(text, kinds)
    if not spans:
        return text, []
    out, cursor = [], 0
    for start, end, kind in spans:
        out.append(text[cursor:start])
        out.append(MARKERS.get(kind, f"[{kind}]"))
        cursor = end
    out.append(text[cursor:])
    return "".join(out), sorted({kind for _, _, kind in spans})
