"""The frozen settings object: the only reader of the environment.

Every variable is listed in ``ENV`` with its default and meaning; the README's
configuration table is generated from it (``social-streams settings``).
An invalid value raises ``SettingsError`` naming the variable and what to fix.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from streams.clients import KafkaConnection
from streams.errors import SettingsError
from streams.ingest.parse import InputLimits
from streams.privacy.pseudonym import DEV_SECRET
from streams.privacy.redact import parse_kinds
from streams.terms import KINDS
from streams.trends.watchlist import WatchList
from streams.trends.watchlist import load as load_watch_list

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = PACKAGE_DIR.parent / "models" / "social-minilm"
DEFAULT_VISION_DIR = PACKAGE_DIR.parent / "models" / "vision"

# (field, environment variable, default, description)
ENV: list[tuple[str, str, str, str]] = [
    ("bootstrap", "KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers (comma-separated)"),
    (
        "security_protocol",
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's security.protocol), for every client",
    ),
    ("sasl_mechanism", "KAFKA_SASL_MECHANISM", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)"),
    ("sasl_username", "KAFKA_SASL_USERNAME", "", "SASL user name (Confluent Cloud: the API key)"),
    ("sasl_password", "KAFKA_SASL_PASSWORD", "", "SASL password (Confluent Cloud: the API secret); never logged"),
    ("sasl_password_file", "KAFKA_SASL_PASSWORD_FILE", "", "File holding the SASL password (a mounted Secret)"),
    (
        "ssl_ca_file",
        "KAFKA_SSL_CA_FILE",
        "",
        "PEM file of the CA that signed the brokers' certificates; empty: the system's",
    ),
    ("ssl_cert_file", "KAFKA_SSL_CERT_FILE", "", "PEM client certificate, for mutual TLS (with KAFKA_SSL_KEY_FILE)"),
    ("ssl_key_file", "KAFKA_SSL_KEY_FILE", "", "PEM private key of the client certificate"),
    ("ssl_key_password", "KAFKA_SSL_KEY_PASSWORD", "", "Password of an encrypted private key; never logged"),
    ("app_id", "STREAMS_APP_ID", "social-streams", "Consumer group and prefix of internal topics"),
    ("topic_raw", "STREAMS_TOPIC_RAW", "posts.raw", "Input topic of raw posts"),
    ("topic_enriched", "STREAMS_TOPIC_ENRICHED", "posts.enriched", "Enriched posts"),
    ("topic_flagged", "STREAMS_TOPIC_FLAGGED", "posts.flagged", "Moderation queue (review or block)"),
    ("topic_deadletter", "STREAMS_TOPIC_DEADLETTER", "posts.deadletter", "Rejected input, with the reason"),
    ("topic_trends", "STREAMS_TOPIC_TRENDS", "trends.windows", "Trend windows"),
    ("topic_alerts", "STREAMS_TOPIC_ALERTS", "trends.alerts", "Trend spike alerts"),
    ("topic_profiles", "STREAMS_TOPIC_PROFILES", "users.profiles", "User profiles (compacted)"),
    ("topic_erasure", "STREAMS_TOPIC_ERASURE", "control.erasure", "Erasure requests"),
    ("topic_media", "STREAMS_TOPIC_MEDIA", "posts.media", "What the media agent found in posts' images"),
    (
        "agents",
        "STREAMS_AGENTS",
        "enrich,profiles,trends",
        "Agents this worker runs (enrich, profiles, trends, media): scale enrichment and images apart from the rest",
    ),
    ("partitions", "STREAMS_PARTITIONS", "4", "Partitions of the topics the app creates"),
    ("replication", "STREAMS_REPLICATION", "1", "Replication factor of the topics the app creates"),
    ("store", "STREAMS_STORE", "memory://", "Table store URL (memory:// or rocksdb://)"),
    (
        "state_dir",
        "STREAMS_STATE_DIR",
        ".",
        "Folder for the worker's local table state (one <app id>-data folder in it; rocksdb:// keeps its files there)",
    ),
    ("guarantee", "STREAMS_GUARANTEE", "at_least_once", "Processing guarantee: at_least_once or exactly_once"),
    (
        "session_timeout_s",
        "STREAMS_SESSION_TIMEOUT_S",
        "30",
        "Seconds without a heartbeat before the group gives a dead worker's partitions to the others",
    ),
    (
        "commit_interval_s",
        "STREAMS_COMMIT_INTERVAL_S",
        "1",
        "Seconds between two commits of the offsets read (exactly-once: of the transactions): the most a "
        "crash repeats, and how long a read_committed reader waits for a stage's outputs",
    ),
    (
        "delivery_timeout_s",
        "STREAMS_DELIVERY_TIMEOUT_S",
        "120",
        "Seconds the producer retries an output; past it the batch is not committed and the worker exits (70)",
    ),
    (
        "producer_batch_bytes",
        "STREAMS_PRODUCER_BATCH_BYTES",
        "262144",
        "Largest batch of records the producer sends to one partition in one request, bytes (Kafka's batch.size)",
    ),
    ("batch_size", "STREAMS_BATCH_SIZE", "64", "Posts per inference micro-batch"),
    ("batch_linger_s", "STREAMS_BATCH_LINGER_S", "0.02", "Longest wait for a micro-batch to fill, seconds"),
    (
        "batches_in_flight",
        "STREAMS_BATCHES_IN_FLIGHT",
        "2",
        "Micro-batches the enrich agent works on at once: the next in the model while the last is published",
    ),
    ("model_dir", "STREAMS_MODEL_DIR", str(DEFAULT_MODEL_DIR), "Model folder the worker serves"),
    ("model_threads", "STREAMS_MODEL_THREADS", "1", "ONNX Runtime intra-op threads per worker"),
    (
        "model_device",
        "STREAMS_MODEL_DEVICE",
        "cpu",
        "cpu, or cuda: ONNX Runtime's CUDA provider where the installed build has one (onnxruntime-gpu; "
        "serve an fp16 folder there: models/export.py --fp16)",
    ),
    (
        "media_analysis",
        "STREAMS_MEDIA_ANALYSIS",
        "1",
        "1 = the enrich agent passes posts with media to the media agents; 0 = media passes through unanalysed",
    ),
    ("vision_model_dir", "STREAMS_VISION_MODEL_DIR", str(DEFAULT_VISION_DIR), "Image model folder (media agent)"),
    ("media_max_items", "STREAMS_MEDIA_MAX_ITEMS", "4", "Media items analysed per post; the rest get an error"),
    ("media_video_frames", "STREAMS_MEDIA_VIDEO_FRAMES", "8", "Keyframes analysed per video, spread evenly"),
    (
        "media_deadline_s",
        "STREAMS_MEDIA_DEADLINE_S",
        "15",
        "Longest one media fetch may take, seconds: connect, headers, redirects and body together",
    ),
    (
        "media_max_decoded_bytes",
        "STREAMS_MEDIA_MAX_DECODED_BYTES",
        "268435456",
        "Decoded image bytes (3 a pixel) a media batch holds at once; more are decoded in turn (metric)",
    ),
    (
        "media_allow_hosts",
        "STREAMS_MEDIA_ALLOW_HOSTS",
        "",
        "Hosts the media agent may fetch from even at private addresses (comma-separated; on-premise stores)",
    ),
    ("media_nsfw_review", "STREAMS_MEDIA_NSFW_REVIEW", "0.5", "NSFW score that sends an image's post to review"),
    ("media_nsfw_block", "STREAMS_MEDIA_NSFW_BLOCK", "0.8", "NSFW score that marks an image's post block"),
    (
        "media_cache_ttl_s",
        "STREAMS_MEDIA_CACHE_TTL_S",
        "3600",
        "Seconds the same bytes (by sha256) are not analysed again",
    ),
    (
        "max_text_chars",
        "STREAMS_MAX_TEXT_CHARS",
        "10000",
        "Text longer than this is truncated for the model (the output keeps it whole)",
    ),
    ("max_message_bytes", "STREAMS_MAX_MESSAGE_BYTES", "1048576", "Larger raw messages are dead-lettered"),
    ("max_hashtags", "STREAMS_MAX_HASHTAGS", "30", "Hashtags kept per post; the rest are left out (metric)"),
    ("max_media", "STREAMS_MAX_MEDIA", "16", "Media items a post may carry; a post with more is dead-lettered"),
    (
        "deadletter_original_bytes",
        "STREAMS_DEADLETTER_ORIGINAL_BYTES",
        "1048576",
        "Most bytes of an original kept in its dead letter; a longer one is cut (its sha256 and size kept)",
    ),
    ("dedupe_ttl_s", "STREAMS_DEDUPE_TTL_S", "86400", "How long a post id is remembered, seconds"),
    (
        "review_threshold",
        "STREAMS_REVIEW_THRESHOLD",
        "model",
        "Moderation score at or above which a post is reviewed, every head; 'model': the model's per-head choice",
    ),
    (
        "block_threshold",
        "STREAMS_BLOCK_THRESHOLD",
        "model",
        "Moderation score at or above which a post is blocked, every head; 'model': the model's per-head choice",
    ),
    (
        "pseudonym_secret",
        "STREAMS_PSEUDONYM_SECRET",
        "",
        "Key of the user-id pseudonyms (HMAC-SHA256, 16+ bytes); never logged",
    ),
    (
        "pseudonym_secret_file",
        "STREAMS_PSEUDONYM_SECRET_FILE",
        "",
        "File holding that key (for example a mounted Secret)",
    ),
    ("dev_mode", "STREAMS_DEV_MODE", "0", "1 = development mode: a fixed, public pseudonym key when none is given"),
    (
        "redact_enriched",
        "STREAMS_REDACT_ENRICHED",
        "email,phone,card,ip,address",
        "PII kinds masked in posts.enriched text (kinds: email, phone, card, ip, address, mention; empty = none)",
    ),
    (
        "redact_flagged",
        "STREAMS_REDACT_FLAGGED",
        "email,phone,card,ip,address",
        "PII kinds masked in posts.flagged text",
    ),
    (
        "profile_publish_interval_s",
        "STREAMS_PROFILE_PUBLISH_INTERVAL_S",
        "30",
        "Least time between two publications of one user's profile, seconds",
    ),
    (
        "compacted_segment_ms",
        "STREAMS_COMPACTED_SEGMENT_MS",
        "3600000",
        "segment.ms of compacted topics: how soon old values (and erased users) can be compacted away",
    ),
    (
        "tombstone_retention_ms",
        "STREAMS_TOMBSTONE_RETENTION_MS",
        "86400000",
        "delete.retention.ms of compacted topics: how long tombstones stay readable",
    ),
    (
        "trend_kinds",
        "STREAMS_TREND_KINDS",
        "hashtag,cashtag,keyword,topic,visual,entity",
        "Trend term kinds (hashtag, cashtag, keyword, topic, visual: image tags, entity: the watch list's); "
        "each can be left out",
    ),
    (
        "watchlist",
        "STREAMS_WATCHLIST",
        "",
        "TOML file of the entities always windowed, with their aliases and hashtags (empty: none)",
    ),
    ("trend_window_s", "STREAMS_TREND_WINDOW_S", "60", "Tumbling trend window, seconds of event time"),
    ("trend_hop_size_s", "STREAMS_TREND_HOP_SIZE_S", "600", "Hopping trend window size, seconds (0 = none)"),
    ("trend_hop_s", "STREAMS_TREND_HOP_S", "60", "Hopping trend window advance, seconds"),
    ("trend_grace_s", "STREAMS_TREND_GRACE_S", "10", "How late a post may be and still count in its window, seconds"),
    (
        "trend_idle_s",
        "STREAMS_TREND_IDLE_S",
        "60",
        "A source partition silent this long (wall seconds) stops holding back the watermark",
    ),
    (
        "trend_max_future_s",
        "STREAMS_TREND_MAX_FUTURE_S",
        "300",
        "Posts dated further than this after their enrichment are left out of trends (metric)",
    ),
    ("trend_min_count", "STREAMS_TREND_MIN_COUNT", "2", "Least count of a window published to trends.windows"),
    (
        "trend_hop_min_count",
        "STREAMS_TREND_HOP_MIN_COUNT",
        "5",
        "Least count of a hopping window published (a mention is in size/advance of them: 10 by default)",
    ),
    ("trend_alert_z", "STREAMS_TREND_ALERT_Z", "5.0", "Spike: standard deviations above the baseline"),
    (
        "trend_alert_z_sustained",
        "STREAMS_TREND_ALERT_Z_SUSTAINED",
        "3.0",
        "Spike: ... or this many, two windows in a row",
    ),
    ("trend_alert_ratio", "STREAMS_TREND_ALERT_RATIO", "2.0", "Spike: times the baseline mean"),
    ("trend_alert_min_count", "STREAMS_TREND_ALERT_MIN_COUNT", "5", "Spike: least count in the window"),
    ("trend_alpha", "STREAMS_TREND_ALPHA", "0.1", "Weight of the newest window in the baseline (EWMA)"),
    ("trend_alert_min_users", "STREAMS_TREND_ALERT_MIN_USERS", "3", "Spike and early warning: least distinct authors"),
    (
        "trend_warning_threshold",
        "STREAMS_TREND_WARNING_THRESHOLD",
        "0.5",
        "Early warning: least probability that the term trends within the hour",
    ),
    (
        "trend_warning_min_count",
        "STREAMS_TREND_WARNING_MIN_COUNT",
        "3",
        "Early warning: least count in the window",
    ),
    (
        "trend_common_growth",
        "STREAMS_TREND_COMMON_GROWTH",
        "10.0",
        "Spike of an everyday word (streams/trends/common_words.txt): times its own baseline",
    ),
    (
        "trend_spikes_per_hour",
        "STREAMS_TREND_SPIKES_PER_HOUR",
        "20",
        "Most spike alerts per term kind and hour of event time, the strongest first (0: no limit)",
    ),
    (
        "trend_warnings_per_hour",
        "STREAMS_TREND_WARNINGS_PER_HOUR",
        "10",
        "Most early warnings per term kind and hour of event time, the most probable first (0: no limit)",
    ),
    (
        "trend_forecast_windows",
        "STREAMS_TREND_FORECAST_WINDOWS",
        "3",
        "Windows forecast ahead (TSB, median and 80% interval)",
    ),
    (
        "topic_similarity",
        "STREAMS_TOPIC_SIMILARITY",
        "0.55",
        "Cosine similarity at which a post joins a semantic topic; below it a new topic starts",
    ),
    ("topic_max", "STREAMS_TOPIC_MAX", "64", "Most semantic topics; when full, posts far from all get none"),
    ("web_port", "STREAMS_WEB_PORT", "6066", "Port of the worker's HTTP server (metrics, health)"),
    (
        "web_host",
        "STREAMS_WEB_HOST",
        "127.0.0.1",
        "Address the HTTP server binds: loopback by default, 0.0.0.0 in containers (the image sets it)",
    ),
    (
        "web_advertised_host",
        "STREAMS_WEB_ADVERTISED_HOST",
        "",
        "Host the other workers reach this one's HTTP server at (query routing); empty: STREAMS_WEB_HOST, or "
        "the machine's host name when that binds every interface (Kubernetes: the pod IP)",
    ),
    (
        "web_token",
        "STREAMS_WEB_TOKEN",
        "",
        "Bearer token the query views (/profiles, /trends) and /health's details require; empty: open "
        "(/metrics and /health's status always are)",
    ),
    ("lake_uri", "STREAMS_LAKE_URI", "lake", "Root of the sink's Delta tables: a folder, or s3://, gs://, az:// URL"),
    (
        "sink_topics",
        "STREAMS_SINK_TOPICS",
        "posts.enriched,posts.flagged,trends.windows,trends.alerts",
        "Topics the sink appends to tables, comma-separated",
    ),
    ("sink_batch_rows", "STREAMS_SINK_BATCH_ROWS", "5000", "Rows that make the sink append (one file per table)"),
    ("sink_batch_s", "STREAMS_SINK_BATCH_S", "10", "Longest a row waits in the sink before an append, seconds"),
    ("log_level", "STREAMS_LOG_LEVEL", "info", "Log level: debug, info, warning, error"),
    (
        "event_loop",
        "STREAMS_EVENT_LOOP",
        "uvloop",
        "The worker's event loop: uvloop (libuv; less CPU per Kafka record) or asyncio (the standard library's)",
    ),
    (
        "gc_young_threshold",
        "STREAMS_GC_YOUNG_THRESHOLD",
        "10000",
        "Objects the interpreter lets accumulate before it collects its young generation (Python's default: 700)",
    ),
]

Guarantee = Literal["at_least_once", "exactly_once"]
SINKABLE = ("posts.enriched", "posts.flagged", "trends.windows", "trends.alerts")
Threshold = float | None  # None: the model folder's per-head recommendation
GUARANTEES: tuple[Guarantee, ...] = get_args(Guarantee)
AGENTS = ("enrich", "profiles", "trends", "media")
SECRETS = {"pseudonym_secret", "web_token", "sasl_password", "ssl_key_password"}
ANY_ADDRESS = ("0.0.0.0", "::", "[::]", "")
LOG_LEVELS = ("debug", "info", "warning", "error")
EVENT_LOOPS = ("uvloop", "asyncio")
DEVICES = ("cpu", "cuda")
# A batch is one record set to the broker: it must fit the broker's message.max.bytes (1 MiB by default).
MAX_PRODUCER_BATCH_BYTES = 1_000_000
# A raw post, or the original a dead letter keeps, is at most this: escaped as JSON (up to six
# bytes a byte) it still fits the 8 MiB records the app's topics take (streams.runtime).
MAX_INPUT_BYTES = 1 << 20


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: str
    sasl_password_file: str
    ssl_ca_file: str
    ssl_cert_file: str
    ssl_key_file: str
    ssl_key_password: str
    app_id: str
    topic_raw: str
    topic_enriched: str
    topic_flagged: str
    topic_deadletter: str
    topic_trends: str
    topic_alerts: str
    topic_profiles: str
    topic_erasure: str
    topic_media: str
    agents: str
    partitions: int
    replication: int
    store: str
    state_dir: Path
    guarantee: Guarantee
    session_timeout_s: float
    commit_interval_s: float
    delivery_timeout_s: float
    producer_batch_bytes: int
    batch_size: int
    batch_linger_s: float
    batches_in_flight: int
    model_dir: Path
    model_threads: int
    model_device: str
    media_analysis: int
    vision_model_dir: Path
    media_max_items: int
    media_video_frames: int
    media_deadline_s: float
    media_max_decoded_bytes: int
    media_allow_hosts: str
    media_nsfw_review: float
    media_nsfw_block: float
    media_cache_ttl_s: float
    max_text_chars: int
    max_message_bytes: int
    max_hashtags: int
    max_media: int
    deadletter_original_bytes: int
    dedupe_ttl_s: int
    review_threshold: Threshold
    block_threshold: Threshold
    pseudonym_secret: str
    pseudonym_secret_file: str
    dev_mode: int
    redact_enriched: str
    redact_flagged: str
    profile_publish_interval_s: float
    compacted_segment_ms: int
    tombstone_retention_ms: int
    trend_kinds: str
    watchlist: str
    trend_window_s: int
    trend_hop_size_s: int
    trend_hop_s: int
    trend_grace_s: int
    trend_idle_s: float
    trend_max_future_s: int
    trend_min_count: int
    trend_hop_min_count: int
    trend_alert_z: float
    trend_alert_z_sustained: float
    trend_alert_ratio: float
    trend_alert_min_count: int
    trend_alpha: float
    trend_alert_min_users: int
    trend_warning_threshold: float
    trend_warning_min_count: int
    trend_common_growth: float
    trend_spikes_per_hour: int
    trend_warnings_per_hour: int
    trend_forecast_windows: int
    topic_similarity: float
    topic_max: int
    web_port: int
    web_host: str
    web_advertised_host: str
    web_token: str
    lake_uri: str
    sink_topics: str
    sink_batch_rows: int
    sink_batch_s: float
    log_level: str
    event_loop: str
    gc_young_threshold: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, var, default, _ in ENV:
            raw = env.get(var, default)
            values[name] = _convert(var, raw, _PARSERS[types[name]])
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        unknown = set(self.agent_names) - set(AGENTS)
        _require(
            not unknown and bool(self.agent_names), "STREAMS_AGENTS", f"must name one or more of {', '.join(AGENTS)}"
        )
        _require(self.partitions >= 1, "STREAMS_PARTITIONS", "must be at least 1")
        _require(self.replication >= 1, "STREAMS_REPLICATION", "must be at least 1")
        _require(
            6 <= self.session_timeout_s <= 300,
            "STREAMS_SESSION_TIMEOUT_S",
            "must be between 6 and 300 (the broker's group.min/max.session.timeout.ms)",
        )
        _require(0.1 <= self.commit_interval_s <= 60, "STREAMS_COMMIT_INTERVAL_S", "must be between 0.1 and 60")
        _require(1 <= self.delivery_timeout_s <= 3600, "STREAMS_DELIVERY_TIMEOUT_S", "must be between 1 and 3600")
        _require(
            1024 <= self.producer_batch_bytes <= MAX_PRODUCER_BATCH_BYTES,
            "STREAMS_PRODUCER_BATCH_BYTES",
            f"must be between 1024 and {MAX_PRODUCER_BATCH_BYTES} (a broker's default message.max.bytes)",
        )
        _require(self.batch_size >= 1, "STREAMS_BATCH_SIZE", "must be at least 1")
        self.check_input_limits()
        self.check_media()
        _require(0 < self.batch_linger_s <= 60, "STREAMS_BATCH_LINGER_S", "must be above 0 and at most 60 seconds")
        _require(1 <= self.batches_in_flight <= 8, "STREAMS_BATCHES_IN_FLIGHT", "must be between 1 and 8")
        _require(self.model_threads >= 1, "STREAMS_MODEL_THREADS", "must be at least 1")
        _require(self.model_device in DEVICES, "STREAMS_MODEL_DEVICE", f"must be one of {', '.join(DEVICES)}")
        _require(self.guarantee in GUARANTEES, "STREAMS_GUARANTEE", f"must be one of {', '.join(GUARANTEES)}")
        _require(self.log_level in LOG_LEVELS, "STREAMS_LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}")
        _require(self.event_loop in EVENT_LOOPS, "STREAMS_EVENT_LOOP", f"must be one of {', '.join(EVENT_LOOPS)}")
        _require(
            self.event_loop != "uvloop" or importlib.util.find_spec("uvloop") is not None,
            "STREAMS_EVENT_LOOP",
            "is uvloop, which is not installed here (pip install uvloop; it has no Windows build): "
            "install it or set asyncio",
        )
        _require(
            100 <= self.gc_young_threshold <= 1_000_000, "STREAMS_GC_YOUNG_THRESHOLD", "must be between 100 and 1000000"
        )
        for var, value in (
            ("STREAMS_REVIEW_THRESHOLD", self.review_threshold),
            ("STREAMS_BLOCK_THRESHOLD", self.block_threshold),
        ):
            _require(value is None or 0 < value <= 1, var, "must be 'model' or a probability above 0 and at most 1")
        if self.review_threshold is not None and self.block_threshold is not None:
            _require(
                self.review_threshold <= self.block_threshold,
                "STREAMS_REVIEW_THRESHOLD",
                "must not be above STREAMS_BLOCK_THRESHOLD",
            )
        _require(self.store.startswith(("memory://", "rocksdb://")), "STREAMS_STORE", "must be memory:// or rocksdb://")
        _require(bool(self.bootstrap.strip()), "KAFKA_BOOTSTRAP", "must name at least one host:port")
        self.check_connection()
        _require(bool(self.web_host.strip()), "STREAMS_WEB_HOST", "must name an address, e.g. 127.0.0.1 or 0.0.0.0")
        _require(1 <= self.web_port <= 65535, "STREAMS_WEB_PORT", "must be a port number, 1 to 65535")
        _require(self.profile_publish_interval_s >= 0, "STREAMS_PROFILE_PUBLISH_INTERVAL_S", "must be 0 or more")
        _require(self.compacted_segment_ms >= 1, "STREAMS_COMPACTED_SEGMENT_MS", "must be at least 1")
        _require(self.tombstone_retention_ms >= 0, "STREAMS_TOMBSTONE_RETENTION_MS", "must be 0 or more")
        _require(self.dev_mode in (0, 1), "STREAMS_DEV_MODE", "must be 0 or 1")
        _require(bool(self.lake_uri.strip()), "STREAMS_LAKE_URI", "must name a folder or an object-store URL")
        unknown_sink = set(self.sink_topic_names) - set(SINKABLE)
        _require(
            bool(self.sink_topic_names) and not unknown_sink,
            "STREAMS_SINK_TOPICS",
            f"must name one or more of {', '.join(SINKABLE)}",
        )
        _require(self.sink_batch_rows >= 1, "STREAMS_SINK_BATCH_ROWS", "must be at least 1")
        _require(self.sink_batch_s > 0, "STREAMS_SINK_BATCH_S", "must be above 0")
        self.check_trends()
        for var, kinds in (
            ("STREAMS_REDACT_ENRICHED", self.redact_enriched),
            ("STREAMS_REDACT_FLAGGED", self.redact_flagged),
        ):
            try:
                parse_kinds(kinds)
            except ValueError as exc:
                raise SettingsError(f"{var}: {exc}") from None

    def check_connection(self) -> None:
        problem = self.connection.problem()
        if problem is not None:
            raise SettingsError(problem)
        for var, path in (
            ("KAFKA_SASL_PASSWORD_FILE", self.sasl_password_file),
            ("KAFKA_SSL_CA_FILE", self.ssl_ca_file),
            ("KAFKA_SSL_CERT_FILE", self.ssl_cert_file),
            ("KAFKA_SSL_KEY_FILE", self.ssl_key_file),
        ):
            _require(not path or Path(path).is_file(), var, f"{path} is not a file")
        _require(
            not (self.sasl_password and self.sasl_password_file),
            "KAFKA_SASL_PASSWORD",
            "and KAFKA_SASL_PASSWORD_FILE are both set: keep one",
        )

    @functools.cached_property
    def connection(self) -> KafkaConnection:
        """The Kafka connection every client of this deployment uses (the password file read once)."""
        password = self.sasl_password
        if self.sasl_password_file and Path(self.sasl_password_file).is_file():
            password = Path(self.sasl_password_file).read_text(encoding="utf-8").strip()
        return KafkaConnection(
            self.bootstrap,
            self.security_protocol.strip().upper(),
            self.sasl_mechanism.strip().upper(),
            self.sasl_username,
            password,
            self.ssl_ca_file,
            self.ssl_cert_file,
            self.ssl_key_file,
            self.ssl_key_password,
        )

    def check_input_limits(self) -> None:
        _require(
            1024 <= self.max_message_bytes <= MAX_INPUT_BYTES,
            "STREAMS_MAX_MESSAGE_BYTES",
            f"must be between 1024 and {MAX_INPUT_BYTES} (a post and its enrichment must fit one record)",
        )
        _require(1 <= self.max_hashtags <= 1000, "STREAMS_MAX_HASHTAGS", "must be between 1 and 1000")
        _require(1 <= self.max_media <= 256, "STREAMS_MAX_MEDIA", "must be between 1 and 256")
        _require(
            0 <= self.deadletter_original_bytes <= MAX_INPUT_BYTES,
            "STREAMS_DEADLETTER_ORIGINAL_BYTES",
            f"must be between 0 and {MAX_INPUT_BYTES} (a dead letter must fit one record)",
        )

    def check_media(self) -> None:
        _require(self.media_analysis in (0, 1), "STREAMS_MEDIA_ANALYSIS", "must be 0 or 1")
        _require(1 <= self.media_max_items <= 32, "STREAMS_MEDIA_MAX_ITEMS", "must be between 1 and 32")
        _require(1 <= self.media_video_frames <= 64, "STREAMS_MEDIA_VIDEO_FRAMES", "must be between 1 and 64")
        _require(0.5 <= self.media_deadline_s <= 120, "STREAMS_MEDIA_DEADLINE_S", "must be between 0.5 and 120")
        _require(
            16 << 20 <= self.media_max_decoded_bytes <= 16 << 30,
            "STREAMS_MEDIA_MAX_DECODED_BYTES",
            "must be between 16 MiB and 16 GiB (16777216 to 17179869184)",
        )
        _require(
            0 < self.media_nsfw_review <= self.media_nsfw_block <= 1,
            "STREAMS_MEDIA_NSFW_REVIEW",
            "must be above 0 and at most STREAMS_MEDIA_NSFW_BLOCK, which is at most 1",
        )
        _require(self.media_cache_ttl_s >= 0, "STREAMS_MEDIA_CACHE_TTL_S", "must be 0 or more")

    def check_trends(self) -> None:
        unknown = set(self.trend_kind_names) - set(KINDS)
        _require(not unknown, "STREAMS_TREND_KINDS", f"may name only {', '.join(KINDS)}")
        load_watch_list(self.watchlist)  # a file that cannot be used fails here, with one line
        _require(self.trend_window_s >= 1, "STREAMS_TREND_WINDOW_S", "must be at least 1")
        _require(self.trend_hop_size_s >= 0, "STREAMS_TREND_HOP_SIZE_S", "must be 0 or more")
        _require(
            self.trend_hop_size_s == 0 or 1 <= self.trend_hop_s <= self.trend_hop_size_s,
            "STREAMS_TREND_HOP_S",
            "must be between 1 and STREAMS_TREND_HOP_SIZE_S",
        )
        _require(self.trend_grace_s >= 0, "STREAMS_TREND_GRACE_S", "must be 0 or more")
        _require(self.trend_idle_s > 0, "STREAMS_TREND_IDLE_S", "must be above 0")
        _require(self.trend_max_future_s >= 0, "STREAMS_TREND_MAX_FUTURE_S", "must be 0 or more")
        _require(self.trend_min_count >= 1, "STREAMS_TREND_MIN_COUNT", "must be at least 1")
        _require(self.trend_hop_min_count >= 1, "STREAMS_TREND_HOP_MIN_COUNT", "must be at least 1")
        _require(self.trend_alert_z > 0, "STREAMS_TREND_ALERT_Z", "must be above 0")
        _require(self.trend_alert_z_sustained > 0, "STREAMS_TREND_ALERT_Z_SUSTAINED", "must be above 0")
        _require(self.trend_alert_ratio >= 1, "STREAMS_TREND_ALERT_RATIO", "must be at least 1")
        _require(self.trend_alert_min_count >= 1, "STREAMS_TREND_ALERT_MIN_COUNT", "must be at least 1")
        _require(0 < self.trend_alpha <= 1, "STREAMS_TREND_ALPHA", "must be in (0, 1]")
        _require(self.trend_alert_min_users >= 1, "STREAMS_TREND_ALERT_MIN_USERS", "must be at least 1")
        _require(0 <= self.trend_warning_threshold <= 1, "STREAMS_TREND_WARNING_THRESHOLD", "must be 0 to 1")
        _require(self.trend_warning_min_count >= 1, "STREAMS_TREND_WARNING_MIN_COUNT", "must be at least 1")
        _require(self.trend_common_growth >= 1, "STREAMS_TREND_COMMON_GROWTH", "must be at least 1")
        _require(self.trend_spikes_per_hour >= 0, "STREAMS_TREND_SPIKES_PER_HOUR", "must be 0 or more")
        _require(self.trend_warnings_per_hour >= 0, "STREAMS_TREND_WARNINGS_PER_HOUR", "must be 0 or more")
        _require(1 <= self.trend_forecast_windows <= 60, "STREAMS_TREND_FORECAST_WINDOWS", "must be 1 to 60")
        _require(0 < self.topic_similarity < 1, "STREAMS_TOPIC_SIMILARITY", "must be between 0 and 1")
        _require(1 <= self.topic_max <= 1024, "STREAMS_TOPIC_MAX", "must be 1 to 1024")

    def __repr__(self) -> str:
        # A task dump or a traceback prints the settings: never with the keys in clear.
        shown = ", ".join(f"{name}={_as_variable(name, getattr(self, name))!r}" for name, _, _, _ in ENV)
        return f"Settings({shown})"

    @property
    def advertised_url(self) -> str:
        """How the other workers reach this one's HTTP server (Faust's canonical URL)."""
        host = self.web_advertised_host.strip() or self.web_host.strip()
        if host in ANY_ADDRESS:  # an address to bind, not one to reach
            host = socket.gethostname()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address in a URL
        return f"http://{host}:{self.web_port}"

    @property
    def input_limits(self) -> InputLimits:
        return InputLimits(self.max_message_bytes, self.max_hashtags, self.max_media)

    @functools.cached_property
    def watch_list(self) -> WatchList:
        return load_watch_list(self.watchlist)

    @property
    def trend_kind_names(self) -> list[str]:
        return [name.strip() for name in self.trend_kinds.split(",") if name.strip()]

    def pseudonym_key(self) -> bytes:
        """The pseudonymisation key; refuses to go on without one outside dev mode."""
        if self.pseudonym_secret_file:
            path = Path(self.pseudonym_secret_file)
            if not path.is_file():
                raise SettingsError(f"STREAMS_PSEUDONYM_SECRET_FILE {path} does not exist")
            key = path.read_bytes().strip()
        else:
            key = self.pseudonym_secret.encode()
        if not key:
            if self.dev_mode:
                return DEV_SECRET
            raise SettingsError(
                "no pseudonymisation key: set STREAMS_PSEUDONYM_SECRET (16+ bytes) or "
                "STREAMS_PSEUDONYM_SECRET_FILE, or STREAMS_DEV_MODE=1 for a public development key"
            )
        _require(len(key) >= 16, "STREAMS_PSEUDONYM_SECRET", "must be at least 16 bytes long")
        return key

    def describe(self) -> dict[str, str]:
        """Every setting by variable name, as its variable would be written (the start-up log and
        the environment of child workers: a threshold left to the model reads ``model``)."""
        return {var: _as_variable(name, getattr(self, name)) for name, var, _, _ in ENV}

    @property
    def sink_topic_names(self) -> list[str]:
        return [name.strip() for name in self.sink_topics.split(",") if name.strip()]

    @property
    def sink_sources(self) -> dict[str, str]:
        """The topics the sink reads (as this deployment names them) -> their contract (and table) names."""
        named = {
            "posts.enriched": self.topic_enriched,
            "posts.flagged": self.topic_flagged,
            "trends.windows": self.topic_trends,
            "trends.alerts": self.topic_alerts,
        }
        return {named[contract]: contract for contract in self.sink_topic_names}

    @property
    def media_allow_host_names(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.media_allow_hosts.split(",") if h.strip())

    @property
    def agent_names(self) -> list[str]:
        return [name.strip() for name in self.agents.split(",") if name.strip()]

    @property
    def output_topics(self) -> list[str]:
        return [
            self.topic_enriched,
            self.topic_flagged,
            self.topic_deadletter,
            self.topic_trends,
            self.topic_alerts,
            self.topic_media,
        ]


def default(name: str) -> str:
    """A setting's default, as its variable would be written."""
    return next(value for field_name, _, value, _ in ENV if field_name == name)


def _require(ok: bool, var: str, message: str) -> None:
    if not ok:
        raise SettingsError(f"{var} {message}")


def _convert(var: str, raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(raw.strip())
    except ValueError:
        raise SettingsError(f"{var}={raw!r} is not a valid {parse.__name__}") from None


def _text(raw: str) -> str:
    return raw


def threshold(raw: str) -> float | None:
    """'model' (or empty): the model folder's per-head threshold; else a probability."""
    return None if raw.lower() in ("", "model") else finite_number(raw)


def finite_number(raw: str) -> float:
    """A float that is a number of seconds or a ratio: inf and nan are not (a linger of inf
    would never take a batch)."""
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


_PARSERS: dict[Any, Callable[[str], Any]] = {
    "str": _text,
    "Guarantee": _text,  # checked against GUARANTEES in Settings.check
    "int": int,
    "float": finite_number,
    "Threshold": threshold,
    "Path": Path,
}


def _as_variable(name: str, value: Any) -> str:
    if name in SECRETS and value:
        return "***"
    if name in ("review_threshold", "block_threshold") and value is None:
        return "model"
    return str(value)
