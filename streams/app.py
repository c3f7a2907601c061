"""The composition root: builds the runtime, wires every agent, hands them to the views.

``build_runtime`` checks the installed Faust (streams.faust_compat), creates the
app, the topics and the metrics, loads the model once, and installs the agents
in flow order:

    enrich (posts.raw) -> fan-out (posts.enriched, control.erasure) -> profiles, trends

Nothing here runs on import, so tests and the CLI build apps with their own settings.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

import faust

from streams import faust_compat
from streams.clients import KafkaConnection
from streams.commits import CommitGate, guard_commits
from streams.errors import SettingsError
from streams.fanout import Router, install_fanout
from streams.inference.session import TextModel
from streams.ingest.agent import install_enrich
from streams.media.agent import install_media
from streams.metrics import Metrics
from streams.privacy.policy import PrivacyPolicy
from streams.profiles.agent import ProfilesAgent, install_profiles
from streams.rebalance import RebalanceTimer
from streams.runtime import Runtime
from streams.settings import Settings
from streams.topics import MAX_RECORD_BYTES, media_requests_topic, profiles_by_user_topic, visual_by_term_topic
from streams.transactions import SourceTransactions
from streams.trends.agent import Trends, install_trends
from streams.web.views import install_views

log = logging.getLogger(__name__)
LOOP_LAG_PROBE_S = 0.05


def state_folder(settings: Settings) -> Path:
    """STREAMS_STATE_DIR, created if missing (Faust makes only the app's own folder in it), and
    checked writable: Faust would fail later, deep in its start-up, with a long traceback."""
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"STREAMS_STATE_DIR: cannot create {settings.state_dir} ({exc.strerror})") from exc
    try:
        tempfile.TemporaryFile(dir=settings.state_dir).close()
    except OSError as exc:
        raise SettingsError(
            f"STREAMS_STATE_DIR: cannot write in {settings.state_dir} ({exc.strerror}): name a writable folder"
        ) from exc
    return settings.state_dir


def broker_credentials(connection: KafkaConnection) -> faust.types.auth.CredentialsT | None:
    """Faust's spelling of the connection's security; None for PLAINTEXT."""
    if connection.uses_sasl:
        return faust.SASLCredentials(
            username=connection.sasl_username,
            password=connection.sasl_password,
            ssl_context=connection.ssl_context() if connection.uses_ssl else None,
            mechanism=connection.sasl_mechanism,
        )
    if connection.uses_ssl:
        return faust.SSLCredentials(connection.ssl_context())
    return None


def create_app(settings: Settings) -> faust.App:
    connection = settings.connection
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in connection.servers],
        broker_credentials=broker_credentials(connection),
        store=settings.store,
        # Faust's own default is the same folder name in the working directory.
        datadir=str(state_folder(settings) / "{conf.name}-data"),
        processing_guarantee=settings.guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # A killed worker's partitions wait this long before they move: heartbeats
        # go ten times per timeout so a live but busy worker is never taken for dead.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 10,
        # Faust's default is 2.8 s. Each stage's work shows as done (committed) only at the next
        # commit, and with exactly-once its outputs reach the next stage only then: a second
        # keeps that short for a few commit requests (or transactions) per second.
        broker_commit_interval=settings.commit_interval_s,
        # How long the producer retries a record; past it the batch fails (streams.batches).
        producer_request_timeout=settings.delivery_timeout_s,
        producer_max_request_size=MAX_RECORD_BYTES,
        # A batch's outputs are sent together and awaited together: a few ms of
        # linger packs them into a few requests instead of one request each.
        producer_linger=0.005,
        # aiokafka keeps one batch a partition and one request in flight to a broker: a
        # send into a full batch waits for the request before it. At Kafka's 16 KiB a batch
        # of enriched posts (4.6 KB each) and its table writes took a round trip per few
        # records; a batch of posts now fits in one.
        producer_max_batch_size=settings.producer_batch_bytes,
        consumer_max_fetch_size=MAX_RECORD_BYTES,
        # Faust compares a recovering table's offsets with the changelog's end, a check made
        # for RocksDB files. With transactions the in-memory store's count of records read
        # can pass the end that a read_committed consumer reports (aborted records and
        # markers), and the worker crashed with a ConsistencyError; nothing is persisted
        # to disagree with in memory.
        recovery_consistency_check=not settings.store.startswith("memory://"),
        table_standby_replicas=standby_replicas(settings),
        web_port=settings.web_port,
        # web_bind is the address the server listens on (Faust's default: every interface);
        # canonical_url only names this worker to the others (query routing), so it must be
        # an address they can reach.
        web_bind=settings.web_host,
        canonical_url=settings.advertised_url,
        # Only the views the README documents: Faust's table, router, graph, stats and
        # performance views would expose internal state and the cluster's topology.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        autodiscover=False,
    )


def standby_replicas(settings: Settings) -> int:
    """Standby replicas of each table partition: none for the in-memory store in a worker
    that has tables.

    A standby keeps reading another worker's changelogs, but the in-memory store drops
    those rows when a recovery completes and reads a partition that moves here from its
    changelog's start all the same: standbys only cost each worker the consumption of the
    other workers' table writes. A worker with no table (media only) keeps one: with no
    table and no standby Faust joins the group with round-robin assignment, a protocol
    the other workers' group refuses (InconsistentGroupProtocol).
    """
    has_tables = bool(set(settings.agent_names) - {"media"})
    return 0 if settings.store.startswith("memory://") and has_tables else 1


def build_runtime(settings: Settings, model: TextModel | None = None) -> Runtime:
    faust_compat.check()
    app = create_app(settings)
    privacy = PrivacyPolicy.create(settings.pseudonym_key(), settings.redact_enriched, settings.redact_flagged)
    if settings.dev_mode and not (settings.pseudonym_secret or settings.pseudonym_secret_file):
        log.warning("development mode: user ids are pseudonymised with a public key, which protects nothing")
    model = model or TextModel(
        settings.model_dir, settings.model_threads, settings.max_text_chars, device=settings.model_device
    )
    runtime = Runtime(settings, app, model, Metrics(), privacy)
    for name in (settings.topic_raw, *settings.output_topics):
        runtime.topics[name] = runtime.raw_topic(name)
    # Topics between agents that may run in different workers: one declaration each, shared.
    shared = (media_requests_topic, profiles_by_user_topic, visual_by_term_topic)
    for internal in (name(settings.app_id) for name in shared):
        runtime.topics[internal] = runtime.internal_topic(internal, settings.partitions)
    runtime.metrics.model_info.info({"text": model.manifest.tag})
    app.sensors.add(RebalanceTimer(runtime.rebalances, runtime.metrics))
    if settings.guarantee == "exactly_once":
        runtime.commit_gate = CommitGate()
    install_agents(runtime)
    return runtime


def install_agents(runtime: Runtime) -> None:
    """Every agent this worker runs (STREAMS_AGENTS), in flow order, then the views."""
    names = runtime.settings.agent_names
    if "enrich" in names:
        install_enrich(runtime)
    if "media" in names:
        install_media(runtime)
    profiles: ProfilesAgent | None = install_profiles(runtime) if "profiles" in names else None
    trends: Trends | None = install_trends(runtime) if "trends" in names else None
    routers: list[Router] = [stage for stage in (profiles, trends.route if trends else None) if stage is not None]
    install_fanout(runtime, routers, read_erasure=profiles is not None)
    install_start_checks(runtime)
    install_views(runtime, profiles, trends.query if trends else None)


# Table writes that may wait in Faust's producer buffer before every stream stops: a
# few batches of the trends windows stage (one write per term a batch touches).
TABLE_WRITES_BUFFERED = 20_000


def install_start_checks(runtime: Runtime) -> None:
    """Check the consumer's internals once it runs; in exactly-once mode route commits
    through the gate and each send into the transaction of its input; in at-least-once
    mode tidy the acknowledged offsets before each commit, and let table writes wait in
    the producer buffer without stopping the streams."""
    app, gate = runtime.app, runtime.commit_gate
    if gate is not None:
        # Not in a task: Faust starts app tasks only after the first recovery, and agents
        # may process (and send) before. Not at build time either: Faust decides whether
        # the consumer uses transactions when it is built, from whether it runs in a worker.
        def install_exactly_once() -> None:
            faust_compat.recovery_reads_changelog_ends_from_broker(app)  # before the first recovery
            transactions = SourceTransactions(app, gate, runtime.on_roll_back)
            transactions.install()
            runtime.transactions = transactions
            guard_commits(app, gate, transactions.commit_written, transactions.committable)

        runtime.on_worker_start.append(install_exactly_once)
    else:
        runtime.on_worker_start.append(lambda: faust_compat.tidy_acks_before_each_commit(app.consumer))
        # Not with transactions: there a table write must join the transaction of the batch it
        # belongs with, and each commit first drains the buffer (streams.commits).
        runtime.on_worker_start.append(lambda: faust_compat.let_producer_buffer_hold(app, TABLE_WRITES_BUFFERED))

    @app.task
    async def check_consumer() -> None:
        faust_compat.check_consumer(app.consumer)

    @app.task
    async def measure_event_loop_lag() -> None:
        # Every agent, timer and Kafka client task shares one loop: a step that holds it
        # holds back every post in flight. The lag of a short sleep measures that.
        while True:
            asked = time.monotonic() + LOOP_LAG_PROBE_S
            await asyncio.sleep(LOOP_LAG_PROBE_S)
            runtime.metrics.event_loop_lag.observe(max(0.0, time.monotonic() - asked))
