"""The user profile: a pure fold of enriched posts, with time-decayed interests.

No protected attribute (age, gender, ethnicity, religion, health) is inferred
or stored: profiles hold what a user did (activity, tone, topics, engagement
received, languages), never what they are.
"""

from __future__ import annotations

import math
from typing import Any

SCHEMA_VERSION = 1
INTEREST_HALF_LIFE_DAYS = 7.0
TOP_INTERESTS = 10
# Interests below this weight are forgotten, which keeps a profile small.
MIN_INTEREST = 0.05
DAY_MS = 86_400_000


def new_profile(user: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "user_id": user,
        "posts": 0,
        "first_seen": None,
        "last_seen": None,
        "sentiment": {"negative": 0, "neutral": 0, "positive": 0},
        "flagged": 0,
        "hashtags": {},
        "interests_at": None,
        "engagement": {"likes": 0, "reposts": 0, "replies": 0},
        "languages": {},
    }


def decay(weights: dict[str, float], from_ms: int | None, to_ms: int) -> dict[str, float]:
    """Weights aged by the half-life from ``from_ms`` to ``to_ms`` (never grown)."""
    if from_ms is None or to_ms <= from_ms:
        return dict(weights)
    factor = math.pow(0.5, (to_ms - from_ms) / DAY_MS / INTEREST_HALF_LIFE_DAYS)
    return {term: weight * factor for term, weight in weights.items() if weight * factor >= MIN_INTEREST}


def _top(weights: dict[str, float]) -> dict[str, float]:
    ranked = sorted(weights.items(), key=lambda item: (-item[1], item[0]))[: TOP_INTERESTS * 3]
    return {term: round(weight, 4) for term, weight in ranked}


def update_profile(profile: dict[str, Any], post: dict[str, Any]) -> dict[str, Any]:
    """The profile after one more enriched post (event time from ``created_at_ms``)."""
    at = int(post["created_at_ms"])
    out = {**profile, "sentiment": dict(profile["sentiment"]), "engagement": dict(profile["engagement"])}
    out["posts"] = profile["posts"] + 1
    out["first_seen"] = min(at, profile["first_seen"] or at)
    out["last_seen"] = max(at, profile["last_seen"] or at)
    label = post.get("sentiment", {}).get("label")
    if label in out["sentiment"]:
        out["sentiment"][label] += 1
    out["flagged"] = profile["flagged"] + (post.get("moderation", {}).get("action", "allow") != "allow")
    newest = max(at, profile["interests_at"] or at)
    hashtags = decay(profile["hashtags"], profile["interests_at"], newest)
    weight = math.pow(0.5, (newest - at) / DAY_MS / INTEREST_HALF_LIFE_DAYS)  # a late post counts less
    for tag in post.get("terms", {}).get("hashtags", []):
        hashtags[tag] = hashtags.get(tag, 0.0) + weight
    out["hashtags"] = _top(hashtags)
    out["interests_at"] = newest
    for name in out["engagement"]:
        value = (post.get("metrics") or {}).get(name)
        if isinstance(value, int) and value >= 0:
            out["engagement"][name] += value
    language = post.get("language", "und")
    out["languages"] = {**profile["languages"], language: profile["languages"].get(language, 0) + 1}
    return out


def published_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """The record for users.profiles: counts plus the derived rates and top interests."""
    posts = max(profile["posts"], 1)
    span_days = max((profile["last_seen"] - profile["first_seen"]) / DAY_MS, 1.0) if profile["first_seen"] else 1.0
    top = sorted(profile["hashtags"].items(), key=lambda item: (-item[1], item[0]))[:TOP_INTERESTS]
    return {
        "schema_version": SCHEMA_VERSION,
        "user_id": profile["user_id"],
        "posts": profile["posts"],
        "first_seen_ms": profile["first_seen"],
        "last_seen_ms": profile["last_seen"],
        "posts_per_day": round(profile["posts"] / span_days, 3),
        "sentiment_mix": {label: round(count / posts, 4) for label, count in profile["sentiment"].items()},
        "toxicity_rate": round(profile["flagged"] / posts, 4),
        "top_hashtags": [{"tag": tag, "weight": weight} for tag, weight in top],
        "interests_decay_half_life_days": INTEREST_HALF_LIFE_DAYS,
        "engagement_received": profile["engagement"],
        "languages": profile["languages"],
    }
