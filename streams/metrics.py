"""All Prometheus metrics of the worker, in one typed bundle created once.

Labels are few and fixed (topic, reason, action, model); never a user id, a
post id or a term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Inference of a micro-batch takes ~2 ms (one post) to ~1 s (128 long posts).
INFERENCE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# End-to-end from arrival on posts.raw to acknowledged output: tens of ms when
# idle, seconds under a backlog.
# Fine around a quarter second, where a real-time target sits (p99 of 250 ms): a
# quantile is interpolated inside its bucket, and 0.25-0.5 could not tell 260 from 480.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A rebalance: under a second when nothing moves, up to minutes to restore big tables.
REBALANCE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# How late the event loop wakes a sleeper: a few ms when nothing holds it.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


BATCH_CLASSES = ((1, "1"), (8, "2-8"), (32, "9-32"), (128, "33-128"))


def batch_class(size: int) -> str:
    """A few fixed classes of batch size: a label with bounded values."""
    return next((name for limit, name in BATCH_CLASSES if size <= limit), "129+")


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.posts_in = Counter("streams_posts_in_total", "Messages read", ["topic"], registry=r)
        self.posts_out = Counter("streams_posts_out_total", "Records published", ["topic"], registry=r)
        self.dead_letters = Counter("streams_dead_letters_total", "Dead-lettered messages", ["reason"], registry=r)
        self.limits_hit = Counter(
            "streams_limits_hit_total",
            "Inputs cut to a limit (hashtags, internal_message, dead_letter_original, image_pixels, ...)",
            ["limit"],
            registry=r,
        )
        self.records_failed = Counter(
            "streams_records_failed_total",
            "Records a stage failed on for good (dead-lettered; the partition moves on), per stage",
            ["stage"],
            registry=r,
        )
        self.duplicates = Counter("streams_duplicates_skipped_total", "Posts skipped as already seen", registry=r)
        self.moderation = Counter("streams_moderation_actions_total", "Moderation actions", ["action"], registry=r)
        self.inference_seconds = Histogram(
            "streams_inference_seconds",
            "Model time per micro-batch, per model and batch-size class",
            ["model", "batch"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram("streams_batch_size", "Posts per micro-batch", buckets=BATCH_BUCKETS, registry=r)
        self.end_to_end_seconds = Histogram(
            "streams_end_to_end_seconds",
            "From a post's append to posts.raw to its output being acknowledged",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.enrich_stage_seconds = Histogram(
            "streams_enrich_stage_seconds",
            "Each enriched post's time in each step of the enrich agent: waiting (append to posts.raw until its "
            "micro-batch is taken), model (until the batch's scores and explanations are ready), publish (until "
            "every output of the batch is acknowledged)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_loop_lag = Histogram(
            "streams_event_loop_lag_seconds",
            "How much later than asked the event loop woke a sleeping task: time every post waits behind other work",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.gc_pause = Histogram(
            "streams_gc_pause_seconds",
            "Each collection of the interpreter's cyclic garbage collector, by generation: it holds the GIL, "
            "so the event loop and the inference thread both wait it out",
            ["generation"],
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "streams_consumer_lag",
            "Records not yet committed, per assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.trend_mentions = Counter(
            "streams_trend_mentions_total", "Term mentions read by trends, per outcome", ["outcome"], registry=r
        )
        self.trend_mentions_routed = Counter(
            "streams_trend_mentions_routed_total", "Term mentions sent to the trends partitions", registry=r
        )
        self.trend_posts_skipped = Counter(
            "streams_trend_posts_skipped_total", "Enriched posts left out of trends, per reason", ["reason"], registry=r
        )
        self.trend_windows = Counter(
            "streams_trend_windows_total", "Final trend windows published, per window type", ["type"], registry=r
        )
        self.trend_alerts = Counter(
            "streams_trend_alerts_total",
            "Trend spike alerts opened, per severity and term kind",
            ["severity", "kind"],
            registry=r,
        )
        self.trend_alerts_suppressed = Counter(
            "streams_trend_alerts_suppressed_total",
            "Alerts that qualified but found their hour's budget spent, per alert type and term kind",
            ["type", "kind"],
            registry=r,
        )
        self.trend_warnings = Counter(
            "streams_trend_warnings_total", "Early warnings: terms predicted to trend within the hour", registry=r
        )
        self.trend_watermark_lag = Gauge(
            "streams_trend_watermark_lag_seconds",
            "Wall clock minus the trends watermark (event time), per trends partition",
            ["partition"],
            registry=r,
        )
        self.rebalance_seconds = Histogram(
            "streams_rebalance_seconds",
            "Rebalance phases: join (until the assignment arrives), recovery (tables restored, processing resumed)",
            ["phase"],
            buckets=REBALANCE_BUCKETS,
            registry=r,
        )
        self.rebalances = Counter("streams_rebalances_total", "Rebalances completed (recovery included)", registry=r)
        self.agent_crashes = Counter(
            "streams_agent_crashes_total", "Agents that raised and were restarted by Faust", ["agent"], registry=r
        )
        self.table_rows = Gauge("streams_table_rows", "Rows of each table held by this worker", ["table"], registry=r)
        self.profile_repeats = Counter(
            "streams_profile_repeats_skipped_total", "Posts already folded into a profile, seen again", registry=r
        )
        self.records_read_back = Counter(
            "streams_records_read_back_total",
            "Records the consumer skipped around a rebalance, read back from the broker",
            ["topic"],
            registry=r,
        )
        self.records_revoked = Counter(
            "streams_records_revoked_total",
            "Records of a partition revoked while they waited for a batch, left for its new owner",
            ["topic"],
            registry=r,
        )
        self.records_repeated = Counter(
            "streams_records_repeated_total",
            "Records the consumer delivered again in one generation, dropped (processed already)",
            ["topic"],
            registry=r,
        )
        self.erasures = Counter("streams_erasures_total", "Erasure requests carried out", registry=r)
        self.last_batch_at = Gauge("streams_last_batch_timestamp_seconds", "When the last batch finished", registry=r)
        self.model_info = Info("streams_model", "The model the worker serves", registry=r)
        self.media_items = Counter(
            "streams_media_items_total",
            "Media items by outcome: analysed, cached, or the error",
            ["outcome"],
            registry=r,
        )
        self.media_model_seconds = Histogram(
            "streams_media_model_seconds", "Seconds per image in each vision model", ["model"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.media_bytes = Counter("streams_media_fetched_bytes_total", "Bytes of media fetched", registry=r)
