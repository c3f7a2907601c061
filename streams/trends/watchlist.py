"""Watch lists: the entities a team follows, whatever the stream happens to mention.

A TOML file (``STREAMS_WATCHLIST``) names each entity with the words that mean it:

    [[entity]]
    name = "Acme"
    aliases = ["acme", "acme corp", "rocket skates"]   # words or phrases, in any language
    hashtags = ["acme", "acmeskates"]                  # without the '#'

A post mentions an entity when its text holds one of the aliases as whole words,
or its hashtags one of the hashtags; both compared case- and accent-insensitively
("ACMÉ" is "acme"). Each mentioned entity is a term of kind ``entity`` (its
name, folded): always windowed, whatever its count, with the window's sentiment
and toxicity, a sentiment-shift alert (streams.trends.detect.observe_tone) as
well as the volume alerts, and its share of voice among the watched entities in
the same window. All watched entities are routed to one trends partition, so
that one stage sees them together.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from streams.errors import SettingsError

MAX_ENTITIES = 1_000
MAX_TERM_CHARS = 64


def fold_accents(text: str) -> str:
    """Case-folded, without accents: what a person means by "the same word"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


@dataclass(frozen=True)
class Entity:
    name: str
    aliases: tuple[str, ...]
    hashtags: tuple[str, ...]

    @property
    def term(self) -> str:
        return fold_accents(self.name)[:MAX_TERM_CHARS]


class WatchList:
    def __init__(self, entities: list[Entity]) -> None:
        self.entities = entities
        self.by_alias: dict[str, str] = {}
        self.by_hashtag: dict[str, str] = {}
        for entity in entities:
            for alias in (entity.name, *entity.aliases):
                self.by_alias[" ".join(fold_accents(alias).split())] = entity.term
            for tag in entity.hashtags:
                self.by_hashtag[fold_accents(tag.lstrip("#"))] = entity.term
        # Longest first: "acme corp" before "acme"; whole words only (no "acme" in "acmeism").
        aliases = sorted(self.by_alias, key=len, reverse=True)
        words = "|".join(re.escape(alias).replace(r"\ ", r"\s+") for alias in aliases)
        self.pattern = re.compile(rf"(?<!\w)(?:{words})(?!\w)") if aliases else None

    def __bool__(self) -> bool:
        return bool(self.entities)

    def match(self, text: str, hashtags: list[str]) -> list[str]:
        """The terms of the entities the post mentions, each once, in the order first met."""
        found: dict[str, None] = {}
        if self.pattern is not None:
            for hit in self.pattern.finditer(fold_accents(text)):
                found[self.by_alias[" ".join(hit.group(0).split())]] = None
        for tag in hashtags:
            term = self.by_hashtag.get(fold_accents(tag))
            if term is not None:
                found[term] = None
        return list(found)


def load(path: str) -> WatchList:
    """The watch list of a TOML file ("" for none); a file that cannot be used fails with one line."""
    if not path:
        return WatchList([])
    where = f"STREAMS_WATCHLIST={path}"
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read the file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{where}: not valid TOML ({exc})") from None
    raw = document.get("entity", [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise SettingsError(f"{where}: entities are [[entity]] tables with a name, aliases and hashtags")
    if len(raw) > MAX_ENTITIES:
        raise SettingsError(f"{where}: {len(raw)} entities; at most {MAX_ENTITIES}")
    entities = [_entity(where, i, e) for i, e in enumerate(raw)]
    terms = [e.term for e in entities]
    duplicate = next((t for t in terms if terms.count(t) > 1), None)
    if duplicate is not None:
        raise SettingsError(f"{where}: two entities are named {duplicate!r} (names are compared without case)")
    return WatchList(entities)


def _entity(where: str, index: int, raw: dict[str, object]) -> Entity:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TERM_CHARS:
        raise SettingsError(f"{where}: entity {index + 1} needs a name of 1 to {MAX_TERM_CHARS} characters")
    unknown = set(raw) - {"name", "aliases", "hashtags"}
    if unknown:
        raise SettingsError(f"{where}: entity {name!r} has unknown keys {sorted(unknown)}; use aliases and hashtags")
    lists = {}
    for key in ("aliases", "hashtags"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise SettingsError(f"{where}: entity {name!r}: {key} must be a list of non-empty strings")
        lists[key] = tuple(v.strip() for v in value)
    return Entity(name.strip(), lists["aliases"], lists["hashtags"])
