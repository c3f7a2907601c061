"""The user profile: a pure fold of enriched posts, with time-decayed interests.

No protected attribute (age, gender, ethnicity, religion, health) is inferred
or stored: profiles hold what a user did (activity, tone, topics, engagement
received, languages), never what they are.
"""

from __future__ import annotations

import math
from typing import Any, NotRequired, TypedDict

SCHEMA_VERSION = 1
INTEREST_HALF_LIFE_DAYS = 7.0
TOP_INTERESTS = 10
# Interests below this weight are forgotten, which keeps a profile small.
MIN_INTEREST = 0.05
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Interlocutors kept per direction: counts are exact while a user has at most this many; past
# it, the one with the fewest interactions makes room (a profile stays small).
MAX_INTERLOCUTORS = 200
TOP_INTERLOCUTORS = 10
POST_TYPES = ("original", "reply", "repost")


class Profile(TypedDict):
    """A user's profile as the ``profiles`` table holds it (JSON on the changelog)."""

    schema_version: int
    user_id: str
    posts: int
    first_seen: int | None  # event ms
    last_seen: int | None
    sentiment: dict[str, int]  # label -> posts
    flagged: int
    hashtags: dict[str, float]  # tag -> decayed weight
    interests_at: int | None  # event ms the weights are aged to
    engagement: dict[str, int]  # likes, reposts, replies received
    languages: dict[str, int]
    # image tag -> decayed weight (what the user's pictures show), and the event ms it is aged to
    visual: NotRequired[dict[str, float]]
    visual_at: NotRequired[int | None]
    # posts.enriched partition -> offset of the last post folded in (makes the fold idempotent)
    applied_offsets: NotRequired[dict[str, int]]
    # the interaction graph around the user (pseudonyms): whom they mention, who mentions them
    mentions_out: NotRequired[dict[str, int]]
    mentions_in: NotRequired[dict[str, int]]
    # engagement patterns: posts per UTC hour of day and per UTC weekday (Monday first), per type
    hours: NotRequired[list[int]]
    weekdays: NotRequired[list[int]]
    post_types: NotRequired[dict[str, int]]


def new_profile(user: str) -> Profile:
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


def update_profile(profile: Profile, post: dict[str, Any]) -> Profile:
    """The profile after one more enriched post (event time from ``created_at_ms``)."""
    at = int(post["created_at_ms"])
    out: Profile = {**profile, "sentiment": dict(profile["sentiment"]), "engagement": dict(profile["engagement"])}
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
    _count_activity(out, post, at)
    mentioned = [target for target in post.get("mentions") or [] if target != profile["user_id"]]
    if mentioned:
        out["mentions_out"] = _counted(profile.get("mentions_out", {}), mentioned)
    return out


def _count_activity(out: Profile, post: dict[str, Any], at: int) -> None:
    hours, weekdays = list(out.get("hours", [0] * 24)), list(out.get("weekdays", [0] * 7))
    hours[(at // HOUR_MS) % 24] += 1
    weekdays[(at // DAY_MS + 3) % 7] += 1  # 1970-01-01 was a Thursday
    out["hours"], out["weekdays"] = hours, weekdays
    kind = (
        "reply" if post.get("reply_to") is not None else "repost" if post.get("repost_of") is not None else "original"
    )
    types = dict(out.get("post_types", dict.fromkeys(POST_TYPES, 0)))
    types[kind] += 1
    out["post_types"] = types


def _counted(counts: dict[str, int], users: list[str]) -> dict[str, int]:
    """Counts with one more interaction with each of ``users``, at most MAX_INTERLOCUTORS kept."""
    counts = dict(counts)
    for user in users:
        if user not in counts and len(counts) >= MAX_INTERLOCUTORS:
            del counts[min(counts, key=lambda u: (counts[u], u))]
        counts[user] = counts.get(user, 0) + 1
    return counts


def add_mentioned_by(profile: Profile, by: str) -> Profile:
    """The profile after a post by ``by`` mentioned this user."""
    if by == profile["user_id"]:
        return profile
    return {**profile, "mentions_in": _counted(profile.get("mentions_in", {}), [by])}


def forget_interlocutor(profile: Profile, user: str) -> Profile:
    """The profile without an erased user among its interlocutors."""
    return {
        **profile,
        "mentions_out": {u: n for u, n in profile.get("mentions_out", {}).items() if u != user},
        "mentions_in": {u: n for u, n in profile.get("mentions_in", {}).items() if u != user},
    }


def interlocutors(profile: Profile | None) -> set[str]:
    if profile is None:
        return set()
    return set(profile.get("mentions_out", {})) | set(profile.get("mentions_in", {}))


def _top_users(counts: dict[str, int]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_INTERLOCUTORS]
    return [{"user_id": user, "count": count} for user, count in ranked]


def interactions(profile: Profile) -> dict[str, Any]:
    """Whom the user talks to and who talks to them (by @mention), and how much it goes both ways."""
    out, incoming = profile.get("mentions_out", {}), profile.get("mentions_in", {})
    both, either = set(out) & set(incoming), set(out) | set(incoming)
    return {
        "mentions_out": _top_users(out),
        "mentions_in": _top_users(incoming),
        "users_reached": len(out),
        "reached_by": len(incoming),
        "reciprocity": round(len(both) / len(either), 4) if either else 0.0,
    }


def activity(profile: Profile) -> dict[str, Any]:
    """When the user posts (UTC hour of day, weekday from Monday) and what: originals, replies, reposts."""
    return {
        "hours_utc": profile.get("hours", [0] * 24),
        "weekdays_utc": profile.get("weekdays", [0] * 7),
        "post_types": profile.get("post_types", dict.fromkeys(POST_TYPES, 0)),
    }


def add_visual_tags(profile: Profile, tags: dict[str, float], at_ms: int) -> Profile:
    """The profile after the tags of one post's pictures (each weighted by its score), decayed
    like hashtags: the same half-life, a late post counting less."""
    previous_at = profile.get("visual_at")
    newest = max(at_ms, previous_at or at_ms)
    visual = decay(profile.get("visual", {}), previous_at, newest)
    weight = math.pow(0.5, (newest - at_ms) / DAY_MS / INTEREST_HALF_LIFE_DAYS)
    for tag, score in tags.items():
        visual[tag] = visual.get(tag, 0.0) + weight * score
    return {**profile, "visual": _top(visual), "visual_at": newest}


def published_profile(profile: Profile) -> dict[str, Any]:
    """The record for users.profiles: counts plus the derived rates and top interests."""
    posts = max(profile["posts"], 1)
    first, last = profile["first_seen"], profile["last_seen"]
    span_days = max((last - first) / DAY_MS, 1.0) if first is not None and last is not None else 1.0
    top = sorted(profile["hashtags"].items(), key=lambda item: (-item[1], item[0]))[:TOP_INTERESTS]
    visual = sorted(profile.get("visual", {}).items(), key=lambda item: (-item[1], item[0]))[:TOP_INTERESTS]
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
        "top_visual_tags": [{"tag": tag, "weight": weight} for tag, weight in visual],
        "interests_decay_half_life_days": INTEREST_HALF_LIFE_DAYS,
        "engagement_received": profile["engagement"],
        "languages": profile["languages"],
        "interactions": interactions(profile),
        "activity": activity(profile),
    }
