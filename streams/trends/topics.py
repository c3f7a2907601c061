"""Semantic topics: an online clustering of the posts' embeddings.

Leader clustering on the unit sphere: a post joins the nearest topic when its
cosine similarity reaches ``similarity`` (the topic's centroid moves towards it),
otherwise it starts a new topic while fewer than ``max_topics`` exist, else it
gets no topic. Topic ids are never reused, so ``topic-7`` means the same thing
for the life of the deployment; the label is the topic's most frequent terms.

Assignment is sequential and deterministic given the state and the input
order, so a clusterer restarted from its last saved state assigns re-read
posts exactly as before.
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import numpy as np

# The centroid is a running mean of at most this many posts: old topics still drift, slowly.
CENTROID_MEMORY = 1000
LABEL_TERMS = 3
TERMS_KEPT = 40


def _encode(matrix: np.ndarray) -> str:
    return base64.b64encode(matrix.astype(np.float16).tobytes()).decode("ascii")


def _decode(text: str, dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32).reshape(-1, dim)


class TopicClusterer:
    def __init__(self, similarity: float, max_topics: int, state: dict[str, Any] | None = None) -> None:
        self.similarity = similarity
        self.max_topics = max_topics
        state = state or {}
        self.dim = int(state.get("dim", 0))
        self.centroids = _decode(state["centroids"], self.dim) if state.get("centroids") else np.zeros((0, 0))
        self.ids: list[int] = list(state.get("ids", []))
        self.sizes: list[int] = list(state.get("sizes", []))
        self.terms: list[Counter[str]] = [Counter(t) for t in state.get("terms", [])]
        self.next_id = int(state.get("next_id", 0))
        self.applied = int(state.get("applied", -1))  # last input offset assigned

    def state(self) -> dict[str, Any]:
        """A snapshot: Faust serialises a table value when its changelog record leaves the
        producer's buffer, later than the write; live lists would be serialised with the
        topics assigned since, beside centroids and terms encoded now (a restored state whose
        lists disagree in length)."""
        return {
            "dim": self.dim,
            "centroids": _encode(self.centroids) if len(self.ids) else "",
            "ids": list(self.ids),
            "sizes": list(self.sizes),
            "terms": [dict(t) for t in self.terms],
            "next_id": self.next_id,
            "applied": self.applied,
        }

    def assign(self, embedding: list[float], terms: list[str]) -> tuple[str, str] | None:
        """(topic id, label) of a post, or None when it fits no topic and no room is left."""
        vector = np.asarray(embedding, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if norm == 0 or not np.isfinite(norm):
            return None
        vector /= norm
        index = self._nearest(vector)
        if index is None:
            if len(self.ids) >= self.max_topics:
                return None
            index = self._new_topic(vector)
        else:
            self._move(index, vector)
        self._count_terms(index, terms)
        return f"topic-{self.ids[index]}", self.label(index)

    def _nearest(self, vector: np.ndarray) -> int | None:
        if not self.ids:
            self.dim = self.dim or vector.shape[0]
            return None
        similarities = self.centroids @ vector
        best = int(np.argmax(similarities))
        return best if similarities[best] >= self.similarity else None

    def _new_topic(self, vector: np.ndarray) -> int:
        self.centroids = np.vstack([self.centroids.reshape(-1, vector.shape[0]), vector[None, :]])
        self.ids.append(self.next_id)
        self.sizes.append(1)
        self.terms.append(Counter())
        self.next_id += 1
        return len(self.ids) - 1

    def _move(self, index: int, vector: np.ndarray) -> None:
        weight = min(self.sizes[index], CENTROID_MEMORY)
        centroid = self.centroids[index] * weight + vector
        self.centroids[index] = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        self.sizes[index] += 1

    def _count_terms(self, index: int, terms: list[str]) -> None:
        counts = self.terms[index]
        counts.update(terms)
        if len(counts) > 2 * TERMS_KEPT:
            self.terms[index] = Counter(dict(counts.most_common(TERMS_KEPT)))

    def label(self, index: int) -> str:
        return " · ".join(term for term, _ in self.terms[index].most_common(LABEL_TERMS)) or f"topic {self.ids[index]}"
