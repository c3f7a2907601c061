"""Language identification of post text (py3langid, its model ships in the package)."""

from __future__ import annotations

import py3langid

UNDETERMINED = "und"


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, or ``und`` when it has no letters.

    Emoji-only or digit-only posts carry no language; langid would still
    guess one, so they are marked undetermined instead.
    """
    if not any(ch.isalpha() for ch in text):
        return UNDETERMINED
    code, _ = py3langid.classify(text)
    return str(code)
