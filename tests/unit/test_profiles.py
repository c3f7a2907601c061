"""The profile fold, its envelopes and erasure requests, without a broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from streams.errors import InvalidPost, Reason
from streams.profiles import envelopes
from streams.profiles.agent import UserSender, erasure_user
from streams.profiles.fold import (
    DAY_MS,
    INTEREST_HALF_LIFE_DAYS,
    add_visual_tags,
    new_profile,
    published_profile,
    update_profile,
)
from streams.topics import key_partition

T0 = 1_700_000_000_000


def post(at: int, label: str = "positive", action: str = "allow", tags: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "created_at_ms": at,
        "sentiment": {"label": label},
        "moderation": {"action": action},
        "terms": {"hashtags": list(tags)},
        "metrics": {"likes": 3, "reposts": -1, "replies": "x"},
        "language": "en",
    }


def test_the_fold_counts_posts_tone_flags_engagement_and_languages() -> None:
    profile = new_profile("u1")
    profile = update_profile(profile, post(T0, "negative", "review", ("news",)))
    profile = update_profile(profile, post(T0 + DAY_MS, "positive", "allow", ("news", "sport")))
    assert profile["posts"] == 2 and profile["flagged"] == 1
    assert profile["first_seen"] == T0 and profile["last_seen"] == T0 + DAY_MS
    assert profile["sentiment"] == {"negative": 1, "neutral": 0, "positive": 1}
    assert profile["engagement"] == {"likes": 6, "reposts": 0, "replies": 0}  # bad counts are ignored
    assert profile["languages"] == {"en": 2}
    assert profile["hashtags"]["news"] > profile["hashtags"]["sport"]


def test_the_fold_does_not_change_its_input() -> None:
    profile = new_profile("u1")
    update_profile(profile, post(T0, tags=("a",)))
    assert profile == new_profile("u1")


def test_interests_decay_by_the_half_life_and_a_late_post_counts_less() -> None:
    profile = update_profile(new_profile("u1"), post(T0 + int(INTEREST_HALF_LIFE_DAYS * DAY_MS), tags=("new",)))
    profile = update_profile(profile, post(T0, tags=("old",)))  # arrives late, a half-life older
    assert profile["hashtags"]["old"] == pytest.approx(0.5, abs=1e-3)
    assert profile["hashtags"]["new"] == pytest.approx(1.0)


def test_the_published_profile_has_rates_and_top_hashtags() -> None:
    profile = update_profile(new_profile("u1"), post(T0, "negative", "block", ("a",)))
    record = published_profile(profile)
    assert record["toxicity_rate"] == 1.0 and record["sentiment_mix"]["negative"] == 1.0
    assert record["top_hashtags"] == [{"tag": "a", "weight": 1.0}]
    assert published_profile(new_profile("u2"))["posts_per_day"] == 0.0


def test_picture_tags_become_decayed_visual_interests_weighted_by_their_score() -> None:
    profile = update_profile(new_profile("u1"), post(T0))
    later = T0 + int(INTEREST_HALF_LIFE_DAYS * DAY_MS)
    profile = add_visual_tags(profile, {"cat": 0.9, "animal": 1.0}, T0)
    profile = add_visual_tags(profile, {"food": 0.8}, later)  # a half-life later: the cat is worth half
    assert profile["visual"] == {"food": 0.8, "animal": 0.5, "cat": 0.45}
    record = published_profile(profile)
    assert record["top_visual_tags"][0] == {"tag": "food", "weight": 0.8}
    assert published_profile(new_profile("u2"))["top_visual_tags"] == []


def test_envelopes_round_trip() -> None:
    sent = envelopes.post_envelope({"created_at_ms": T0, "text": "not carried", "language": "en"}, 3, 41)
    [(user, back)] = envelopes.decode(b"u1", envelopes.encode(sent))
    assert user == "u1" and back["kind"] == "post" and back["source"] == (3, 41)
    assert "text" not in back["post"] and back["post"]["language"] == "en"
    erase = envelopes.erase_envelope(T0)
    assert envelopes.decode(b"u1", envelopes.encode(erase)) == [("u1", {"kind": "erase", "requested_at_ms": T0})]
    media = envelopes.media_envelope({"cat": 0.9}, T0, 2, 7)
    assert envelopes.decode(b"u2", envelopes.encode(media)) == [("u2", media)]


def test_several_users_envelopes_in_one_message_come_back_in_order() -> None:
    first = envelopes.post_envelope({"created_at_ms": T0, "language": "en"}, 1, 10)
    second = envelopes.post_envelope({"created_at_ms": T0 + 1, "language": "fr"}, 1, 11)
    value = envelopes.encode_users([("u1", first), ("u2", second), ("u1", second)])
    back: list[tuple[str, Any]] = envelopes.decode(None, value)
    assert [(user, e["source"]) for user, e in back] == [("u1", (1, 10)), ("u2", (1, 11)), ("u1", (1, 11))]
    assert back[1][1]["kind"] == "post" and back[1][1]["post"]["language"] == "fr"


@dataclass
class Event:
    message: Any


class RecordingTopic:
    """Each send: (partition, the partition of the event it was sent for, its envelopes)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int | None, list[tuple[str, Any]]]] = []

    async def send(self, value: bytes, partition: int) -> None:
        ref = faust.streams._current_event.get(None)
        current = ref() if ref is not None else None
        made_for = current.message.partition if current is not None else None  # the transaction it joins
        self.sent.append((partition, made_for, envelopes.decode(None, value)))


def test_a_batchs_posts_go_as_one_message_per_source_and_destination_partition() -> None:
    topic, partitions = RecordingTopic(), 4
    users = [f"user-{i}" for i in range(40)]
    sender = UserSender(topic, partitions)
    for offset, user in enumerate(users):
        event: Any = Event(SimpleNamespace(partition=offset % 2, offset=offset))
        sender.add(event, user, envelopes.post_envelope({"created_at_ms": T0}, offset % 2, offset))
    asyncio.run(sender.flush())
    groups = {(destination, made_for) for destination, made_for, _ in topic.sent}
    assert len(topic.sent) == len(groups) <= 2 * partitions  # one message per (destination, source)
    assert sorted(user for _, _, entries in topic.sent for user, _ in entries) == sorted(users)
    for destination, made_for, entries in topic.sent:
        assert all(key_partition(user.encode(), partitions) == destination for user, _ in entries)
        sources = [envelope["source"] for _, envelope in entries]
        assert {source for source, _ in sources} == {made_for}
        offsets = [offset for _, offset in sources]
        assert offsets == sorted(offsets)  # a source's order kept
    asyncio.run(sender.flush())
    assert len(topic.sent) == len(groups)  # sent once


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", Reason.INVALID_JSON),
        (b"[1]", Reason.NOT_AN_OBJECT),
        (b"{}", Reason.MISSING_FIELD),
        (b'{"user_id": true}', Reason.WRONG_TYPE),
        (b'{"user_id": [1]}', Reason.WRONG_TYPE),
        (b'{"user_id": "   "}', Reason.INVALID_VALUE),
        (None, Reason.INVALID_JSON),
    ],
)
def test_invalid_erasure_requests_say_what_is_wrong(value: bytes | None, reason: Reason) -> None:
    with pytest.raises(InvalidPost) as caught:
        erasure_user(value)
    assert caught.value.reason == reason


def test_a_valid_erasure_request_names_its_user() -> None:
    assert erasure_user(b'{"user_id": " alice ", "requested_at": "2026-01-01T00:00:00Z"}') == "alice"
    assert erasure_user(b'{"user_id": 42}') == "42"


def test_interactions_count_mentions_both_ways_with_reciprocity_and_forget_an_erased_user() -> None:
    from streams.profiles.fold import add_mentioned_by, forget_interlocutor

    alice = new_profile("u_alice")
    for targets in (["u_bob", "u_carol"], ["u_bob"], ["u_alice"]):  # a self-mention is no interaction
        alice = update_profile(alice, {**post(T0), "mentions": targets})
    for by in ("u_bob", "u_dave", "u_dave", "u_alice"):
        alice = add_mentioned_by(alice, by)
    shown = published_profile(alice)["interactions"]
    assert shown["mentions_out"] == [{"user_id": "u_bob", "count": 2}, {"user_id": "u_carol", "count": 1}]
    assert shown["mentions_in"] == [{"user_id": "u_dave", "count": 2}, {"user_id": "u_bob", "count": 1}]
    assert (shown["users_reached"], shown["reached_by"]) == (2, 2)
    assert shown["reciprocity"] == round(1 / 3, 4)  # bob of bob, carol, dave
    forgotten = published_profile(forget_interlocutor(alice, "u_bob"))["interactions"]
    assert "u_bob" not in str(forgotten) and forgotten["reciprocity"] == 0.0


def test_activity_counts_hours_weekdays_and_post_types_in_utc() -> None:
    monday_9 = 1_700_470_800_000  # 2023-11-20 09:00 UTC, a Monday
    profile = new_profile("u1")
    profile = update_profile(profile, post(monday_9))
    profile = update_profile(profile, {**post(monday_9 + 3_600_000), "reply_to": "p1"})
    profile = update_profile(profile, {**post(monday_9 + DAY_MS), "repost_of": 7})
    activity = published_profile(profile)["activity"]
    assert activity["hours_utc"][9] == 2 and activity["hours_utc"][10] == 1 and sum(activity["hours_utc"]) == 3
    assert activity["weekdays_utc"][:2] == [2, 1]  # Monday, Tuesday
    assert activity["post_types"] == {"original": 1, "reply": 1, "repost": 1}


def test_the_interlocutors_of_a_very_social_user_stay_bounded() -> None:
    from streams.profiles.fold import MAX_INTERLOCUTORS

    profile = update_profile(new_profile("u1"), {**post(T0), "mentions": ["u_friend"]})
    profile = update_profile(profile, {**post(T0), "mentions": ["u_friend"]})
    for i in range(MAX_INTERLOCUTORS + 50):
        profile = update_profile(profile, {**post(T0), "mentions": [f"u_{i}"]})
    assert len(profile["mentions_out"]) == MAX_INTERLOCUTORS and profile["mentions_out"]["u_friend"] == 2
