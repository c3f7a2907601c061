"""A generator of realistic synthetic posts, with planted trending topics.

Posts mix several languages, hashtags, @mentions, links, emoji, replies and
engagement counts. Every ``burst_every`` posts a topic starts trending: for
the next ``burst_length`` posts, one in three is about it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

EN_TEMPLATES = [
    "Just watched {thing} and honestly it was {adj} {emoji}",
    "Can't believe how {adj} the {thing} was today #{tag}",
    "@{user} have you seen {thing}? {adj} stuff {emoji} {link}",
    "Worst {thing} ever. Never again. #{tag}",
    "Loving the new {thing}! So {adj} {emoji}{emoji}",
    "Anyone else think {thing} is overrated? #{tag} #{tag2}",
    "Thanks @{user} for the {thing}, made my day {emoji}",
    "Why is {thing} always so {adj}?? {link}",
    "{thing} update: nothing works and I'm so done #{tag}",
    "Good morning! Coffee, {thing}, and a {adj} playlist {emoji}",
]
OTHER_LANGUAGES = [
    ("es", "¡Qué {adj_es} el {thing}! #{tag} {emoji}"),
    ("fr", "Franchement le {thing} était {adj_fr} aujourd'hui #{tag}"),
    ("de", "Der {thing} war heute echt {adj_de} {emoji}"),
    ("pt", "Que {thing} {adj_es}, amei! #{tag}"),
    ("ar", "هذا رائع جدا {emoji} #{tag}"),
    ("ja", "今日の{thing}は最高でした {emoji}"),
]
THINGS = ["game", "concert", "movie", "update", "launch", "match", "album", "episode", "keynote", "trailer"]
ADJECTIVES = ["amazing", "terrible", "boring", "wild", "beautiful", "disappointing", "hilarious", "great"]
ADJ_ES, ADJ_FR, ADJ_DE = ["increíble", "aburrido"], ["génial", "nul"], ["toll", "schrecklich"]
TAGS = ["music", "sports", "tech", "news", "gaming", "movies", "food", "travel", "monday", "weekend"]
EMOJI = ["😂", "🔥", "😍", "😭", "👍", "🙄", "🎉", "💔", "🤔", "✨"]
TRENDS = ["solareclipse", "worldcupfinal", "newphonelaunch", "stormwarning", "electionnight"]


class SyntheticPosts:
    def __init__(
        self, seed: int = 7, start_ms: int = 1_767_225_600_000, users: int = 500,
        burst_every: int = 400, burst_length: int = 150, step_ms: int = 250,
    ) -> None:  # fmt: skip
        self.seed = seed
        self.rng = random.Random(seed)
        self.start_ms = start_ms
        self.users = users
        self.burst_every = burst_every
        self.burst_length = burst_length
        self.step_ms = step_ms

    def trend_at(self, index: int) -> str | None:
        if index % self.burst_every < self.burst_length and index >= self.burst_every:
            return TRENDS[(index // self.burst_every) % len(TRENDS)]
        return None

    def text(self, index: int) -> tuple[str, str]:
        rng = self.rng
        values = {
            "thing": rng.choice(THINGS), "adj": rng.choice(ADJECTIVES), "emoji": rng.choice(EMOJI),
            "tag": rng.choice(TAGS), "tag2": rng.choice(TAGS), "user": f"user{rng.randrange(self.users)}",
            "link": f"https://example.com/{rng.randrange(10**6):x}", "adj_es": rng.choice(ADJ_ES),
            "adj_fr": rng.choice(ADJ_FR), "adj_de": rng.choice(ADJ_DE),
        }  # fmt: skip
        if rng.random() < 0.15:
            lang, template = rng.choice(OTHER_LANGUAGES)
        else:
            lang, template = "en", rng.choice(EN_TEMPLATES)
        text = template.format(**values)
        trend = self.trend_at(index)
        if trend and rng.random() < 0.34:
            text = f"{text} #{trend}"
        return lang, text

    def post(self, index: int) -> dict[str, Any]:
        rng = self.rng
        lang, text = self.text(index)
        post: dict[str, Any] = {
            "id": f"syn{self.seed}-{index}",
            "user_id": f"u{rng.randrange(self.users)}",
            "text": text,
            "created_at": self.start_ms + index * self.step_ms + rng.randrange(-2000, 2000),
            "platform": rng.choice(["twitter", "mastodon", "bluesky"]),
            "lang": lang,
            "metrics": {k: int(rng.paretovariate(1.5)) - 1 for k in ("likes", "reposts", "replies")},
        }
        if rng.random() < 0.1:
            post["reply_to"] = f"syn{self.seed}-{rng.randrange(max(index, 1))}"
        return post

    def __iter__(self) -> Iterator[dict[str, Any]]:
        index = 0
        while True:
            yield self.post(index)
            index += 1
