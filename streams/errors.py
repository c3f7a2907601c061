"""The exception tree and the dead-letter reason codes.

    StreamsError                 base of every error this package raises
    ├── SettingsError            a setting is invalid: the message says which and how to fix it
    ├── ModelError               a model folder is missing, altered, or does not fit its manifest
    └── InvalidPost              one input message cannot be processed; carries a Reason

An ``InvalidPost`` never stops the worker: it becomes a record on the
dead-letter topic. The other errors stop start-up with one clear line.

The failure policy, by kind (``streams.batches.is_environment_failure``): a failure of the
environment (the broker unreachable, a delivery timeout, a fenced producer)
fails the batch and the worker exits for its supervisor to restart it; any
other exception raised on a record is deterministic (it would be raised again
on the same bytes) and makes that record a dead letter with its stage and
reason ``processing_failure``, and the partition moves on.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where in the pipeline a post was rejected."""

    PARSE = "parse"
    VALIDATE = "validate"
    INFERENCE = "inference"
    ENRICH = "enrich"  # building the enriched record, after the model
    PUBLISH = "publish"
    FANOUT = "fanout"  # the fan-out to profiles and trends (posts.enriched, control.erasure)
    PROFILES = "profiles"
    TRENDS = "trends"
    MEDIA = "media"


class Reason(StrEnum):
    """Why a post went to the dead-letter topic: one code per cause."""

    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_LARGE = "too_large"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    INVALID_TIMESTAMP = "invalid_timestamp"
    EMPTY_TEXT = "empty_text"
    MODEL_FAILURE = "model_failure"
    PROCESSING_FAILURE = "processing_failure"  # a step raised on this record alone: it would again


class StreamsError(Exception):
    """Base of every error raised by Social Streams."""


class SettingsError(StreamsError):
    """An environment setting has an invalid value."""


class ModelError(StreamsError):
    """A model folder cannot be served."""


class InvalidPost(StreamsError):
    """A message on the input topic that cannot become an enriched post."""

    def __init__(self, reason: Reason, message: str, stage: Stage = Stage.VALIDATE) -> None:
        super().__init__(message)
        self.reason = reason
        self.stage = stage
        self.message = message
