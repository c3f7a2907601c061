"""Language identification of post text, and which languages the text model reads.

py3langid (its model ships in the package), restricted to the languages most
used on social platforms: with all 97 of its languages, 1% of English tweets
come out as Nigerian Pidgin, Tagalog or Javanese, whose scores we would then
withhold; restricted, 0.2% (benchmarks/language.py measures it).
"""

from __future__ import annotations

from functools import cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

UNDETERMINED = "und"
# The text model is trained on English tweets only: its labels for any other
# language are not presented as valid, and such posts are never blocked unseen.
SUPPORTED = frozenset({"en", UNDETERMINED})
CANDIDATES = [
    "en",
    "es",
    "pt",
    "fr",
    "de",
    "it",
    "nl",
    "tr",
    "id",
    "ms",
    "ru",
    "uk",
    "pl",
    "ar",
    "fa",
    "ur",
    "hi",
    "bn",
    "ta",
    "te",
    "mr",
    "ja",
    "zh",
    "ko",
    "th",
    "vi",
    "tl",
    "sv",
    "da",
    "no",
    "fi",
    "is",
    "cs",
    "sk",
    "hu",
    "ro",
    "bg",
    "sr",
    "hr",
    "sl",
    "el",
    "he",
    "ca",
    "eu",
    "gl",
    "et",
    "lv",
    "lt",
    "sw",
    "af",
    "sq",
    "ka",
    "hy",
    "az",
    "kk",
    "mn",
    "ne",
    "si",
    "km",
    "lo",
    "am",
    "cy",
    "ga",
]


@cache
def _identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(CANDIDATES)
    return identifier


def load_identifier() -> None:
    """Load the identifier now: it takes 0.6-1 s, which the first batch of posts would otherwise wait."""
    _identifier()


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, or ``und`` when it has no letters.

    Emoji-only or digit-only posts carry no language; langid would still
    guess one, so they are marked undetermined instead.
    """
    if not any(ch.isalpha() for ch in text):
        return UNDETERMINED
    code, _ = _identifier().classify(text)
    return str(code)


def is_supported(language: str) -> bool:
    return language in SUPPORTED
