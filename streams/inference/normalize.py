"""Text normalisation shared by training and serving.

The models were trained on text normalised by exactly these functions, so the
worker must normalise the same way before tokenising. Mentions become ``@user``
and links become ``http`` (as in TweetEval), literal ``\\uXXXX`` escapes left by
some tweet dumps are decoded, HTML entities unescaped, control characters
removed and whitespace collapsed.
"""

from __future__ import annotations

import html
import re
import unicodedata

NORMALISATION = "v1: unicode-escapes, html-unescape, NFC, @mention->@user, url->http, no controls, collapsed spaces"

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_MENTION = re.compile(r"(?<![\w@])@\w{1,50}")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def _decode_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    # A lone surrogate cannot be encoded later; drop it rather than fail.
    return "" if 0xD800 <= ord(char) <= 0xDFFF else char


def strip_controls(text: str) -> str:
    """Remove control and format characters except ordinary whitespace and ZWJ.

    The zero-width joiner stays so emoji sequences keep their meaning.
    """
    return "".join(ch for ch in text if ch in "\t\n\r " or ch == "\u200d" or unicodedata.category(ch)[0] != "C")


def clean_text(text: str) -> str:
    """Make text safe to publish: decoded, NFC, no control characters."""
    text = _ESCAPE.sub(_decode_escape, text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    return _SPACES.sub(" ", strip_controls(text)).strip()


def normalize_for_model(text: str) -> str:
    """The text the model sees: clean, mentions and links replaced."""
    text = clean_text(text)
    text = _URL.sub("http", text)
    text = _MENTION.sub("@user", text)
    return text.strip()
