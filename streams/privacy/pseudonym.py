"""Pseudonymous user ids: a keyed hash (HMAC-SHA256) of the raw id.

The key is a secret from the environment (STREAMS_PSEUDONYM_SECRET) or a file
(STREAMS_PSEUDONYM_SECRET_FILE). Without one the worker refuses to start,
unless STREAMS_DEV_MODE=1 names the development mode, which uses a fixed,
public key: its pseudonyms protect nothing and say so in the log.
"""

from __future__ import annotations

import hashlib
import hmac

DEV_SECRET = b"social-streams-development-mode-key-not-secret"
PREFIX = "u_"


class Pseudonymizer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the pseudonymisation secret must be at least 16 bytes")
        self._secret = secret

    def __call__(self, user_id: str) -> str:
        digest = hmac.new(self._secret, user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]

    def __repr__(self) -> str:  # never print the key
        return "Pseudonymizer(secret=***)"
