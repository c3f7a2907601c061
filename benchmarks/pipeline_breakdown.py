"""Where the time goes: the floor, the model alone, and the pipeline, on the same tweets, in one run.

    pip install -e '.[bench]'        # py-spy, for the profile
    python benchmarks/pipeline_breakdown.py [--posts 5000] [--workers 2] [--partitions 4]
                                            [--profile-s 20] [--paced-s 30]

One local broker (on the same cores, as in the demo), the same real tweets
(SemEval-2017, distinct ids) for every stage, each into fresh topics:

1. floor: ``--workers`` processes of a raw aiokafka consume -> produce loop (one
   consumer group, batches as they come), what Kafka and Python cost with no work;
2. model alone: ``--workers`` processes of ``TextModel.predict`` on the same texts,
   at the worker's batch size and threads; the model with its explanations (the same,
   plus the occlusion rows of each post moderation flags: one more model row per
   content word); then the enrich step as the worker runs
   it, without Kafka (parse, model, the occlusion explanation of flagged posts,
   language, privacy, the record as JSON);
3. the pipeline with ``STREAMS_AGENTS=enrich`` only: the workers start, the group
   settles (every partition of posts.raw assigned), then the posts are appended and
   timed until every post is enriched (``--cold``: the posts are queued first and the
   time includes the workers' start-up rebalance, 3-5 s here);
4. the pipeline with every agent: until every post is enriched and the consumer
   group has committed everything it reads (fan-out, profiles, trends: all the work).
   Meanwhile py-spy samples each worker (the whole run, or ``--profile-s``
   seconds): the share of CPU samples per part (by the innermost frame that names one);
5. records and bytes written per post on each topic of run 4 (outputs, repartition
   topics, changelogs), and the CPU seconds of each worker and of the broker during
   runs 3 and 4, and the whole machine's (the benchmark's own polling and py-spy
   included);
6. end-to-end latency at half the rate run 4 sustained, paced for ``--paced-s``
   seconds into the same workers after ``--warm-up-s`` seconds of the same (the first
   live posts move event time on by years, and every trend window closes at once):
   p50, p90 and p99 of ``streams_end_to_end_seconds``
   (append to posts.raw -> enriched record acknowledged), from the histogram's buckets,
   the same split into the enrich agent's steps (``streams_enrich_stage_seconds``:
   waiting for a micro-batch, model, publish), and the event loop's lag meanwhile
   (``streams_event_loop_lag_seconds``).

``--pipeline-only`` runs 3, 4 and 6 alone: for comparing two versions of the code
one after the other.

Printed: a table of posts/s and the ratios pipeline / model and pipeline / floor.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline_throughput import real_tweets  # noqa: E402
from trends import fresh_settings  # noqa: E402

from streams.demo import (  # noqa: E402
    start_broker,
    start_workers,
    stop_broker,
    stop_workers,
    wait_assigned,
    wait_healthy,
)
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

# The innermost frame whose file or function names a part decides the sample's part.
PARTS = (
    ("trends", ("streams/trends/",)),
    ("profiles", ("streams/profiles/", "streams/privacy/")),
    ("fan-out", ("streams/fanout.py",)),
    ("tokenising", ("tokenizers", "encode_batch")),
    ("model (ONNX Runtime)", ("onnxruntime", "session.run", "raw_outputs")),
    ("inference: pre/post-processing, explanations", ("streams/inference/",)),
    ("JSON", ("orjson", "json/")),
    ("parse, validate, enrich", ("streams/ingest/", "streams/records.py", "pydantic")),
    ("Kafka client", ("aiokafka", "kafka/")),
    ("Faust and mode", ("faust/", "mode/")),
    ("metrics", ("prometheus_client",)),
    ("asyncio", ("asyncio/",)),
)


# agents -> (CPU seconds per process during the run, the run's seconds)
CPU: dict[str, tuple[dict[str, float], float]] = {}
# The stage a sample worked for: the outermost frame of ours decides.
AGENTS = (
    ("enrich (parse, model, explanations, publish)", ("streams/ingest/", "streams/inference/")),
    ("fan-out (read posts.enriched, route)", ("streams/fanout.py",)),
    ("trends (route, windows, topics, timers)", ("streams/trends/",)),
    ("profiles", ("streams/profiles/",)),
    ("metrics, health, views", ("streams/web/", "streams/metrics.py")),
)


def produce(bootstrap: str, topic: str, posts: list[bytes], rate: float | None = None) -> None:
    """Append the posts, keyed by id; ``rate``: posts/s, paced."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    started = time.monotonic()
    for index, value in enumerate(posts):
        if rate is not None:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.send(topic, key=orjson.loads(value)["id"].encode(), value=value)
    producer.flush()
    producer.close()


def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or []]
    ends = consumer.end_offsets(partitions)
    consumer.close()
    return ends


def wait_count(bootstrap: str, topic: str, expected: int, timeout_s: float) -> float:
    """The monotonic time at which the topic's end offsets add up to ``expected`` records."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    deadline = time.monotonic() + timeout_s
    try:
        while sum(consumer.end_offsets(partitions).values()) < expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"{topic}: fewer than {expected} records after {timeout_s}s")
            time.sleep(0.1)
        return time.monotonic()
    finally:
        consumer.close()


# 1. The floor --------------------------------------------------------------------------------


async def _copy(bootstrap: str, source: str, target: str, group: str, idle_s: float) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            last = time.monotonic()
            sent = [await producer.send(target, key=r.key, value=orjson.dumps(orjson.loads(r.value))) for r in records]
            await asyncio.gather(*sent)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def _copy_process(bootstrap: str, source: str, target: str, group: str) -> None:
    asyncio.run(_copy(bootstrap, source, target, group, idle_s=5.0))


def floor(bootstrap: str, posts: list[bytes], workers: int, partitions: int) -> float:
    settings = fresh_settings(bootstrap, partitions, "floor")
    ensure_topics(settings)
    produce(bootstrap, settings.topic_raw, posts)
    context = multiprocessing.get_context("spawn")
    copiers = [
        context.Process(
            target=_copy_process, args=(bootstrap, settings.topic_raw, settings.topic_enriched, settings.app_id)
        )  # fmt: skip
        for _ in range(workers)
    ]
    started = time.monotonic()
    for copier in copiers:
        copier.start()
    done = wait_count(bootstrap, settings.topic_enriched, len(posts), 600)
    for copier in copiers:
        copier.join()
    return len(posts) / (done - started)


# 2. The model alone --------------------------------------------------------------------------


def _predict_process(texts: list[str], ready: Any, go: Any) -> None:
    from streams.inference.session import TextModel

    s = Settings.from_env()
    model = TextModel(Path(s.model_dir), threads=s.model_threads)
    model.predict(texts[: s.batch_size])
    ready.release()
    go.wait()
    for start in range(0, len(texts), s.batch_size):
        model.predict(texts[start : start + s.batch_size])


def model_alone(posts: list[bytes], workers: int) -> float:
    texts = [orjson.loads(p)["text"] for p in posts]
    return len(texts) / in_processes(_predict_process, [texts[i::workers] for i in range(workers)])


def _explained_process(texts: list[str], ready: Any, go: Any) -> None:
    from streams.inference.moderation import Thresholds, decide, explain_flag
    from streams.inference.session import TextModel

    s = Settings.from_env()
    model = TextModel(Path(s.model_dir), threads=s.model_threads)
    thresholds = Thresholds.resolve(model.manifest.thresholds, s.review_threshold, s.block_threshold)

    def explained(batch: list[str]) -> None:
        for text, prediction in zip(batch, model.predict(batch), strict=True):
            scores = {head: result.scores for head, result in prediction.heads.items()}
            explain_flag(model, text, decide(scores, thresholds, True), prediction)

    explained(texts[: s.batch_size])
    ready.release()
    go.wait()
    for start in range(0, len(texts), s.batch_size):
        explained(texts[start : start + s.batch_size])


def model_with_explanations(posts: list[bytes], workers: int) -> float:
    """The model's whole work in the enrich step: every post, and one more row per content
    word of each flagged post (its occlusion explanation)."""
    texts = [orjson.loads(p)["text"] for p in posts]
    return len(texts) / in_processes(_explained_process, [texts[i::workers] for i in range(workers)])


def _enrich_process(values: list[bytes], ready: Any, go: Any) -> None:
    from streams.inference.moderation import Thresholds
    from streams.inference.session import TextModel
    from streams.ingest.enrich import enrich_batch
    from streams.ingest.parse import parse_post
    from streams.privacy.policy import PrivacyPolicy

    s = Settings.from_env()
    model = TextModel(Path(s.model_dir), threads=s.model_threads)
    privacy = PrivacyPolicy.create(s.pseudonym_key(), s.redact_enriched, s.redact_flagged)
    thresholds = Thresholds.resolve(model.manifest.thresholds, s.review_threshold, s.block_threshold)
    posts = [parse_post(value, s.max_message_bytes) for value in values]
    enrich_batch(model, posts[: s.batch_size], thresholds, privacy)
    ready.release()
    go.wait()
    for start in range(0, len(posts), s.batch_size):
        for result in enrich_batch(model, posts[start : start + s.batch_size], thresholds, privacy)[0]:
            orjson.dumps(result.record)


def in_processes(target: Any, shares: list[Any]) -> float:
    """Seconds for ``target(share, ready, go)`` in one process per share, timed from a common start."""
    context = multiprocessing.get_context("spawn")
    ready, go = context.Semaphore(0), context.Event()
    processes = [context.Process(target=target, args=(share, ready, go)) for share in shares]
    for process in processes:
        process.start()
    for _ in processes:
        ready.acquire()
    started = time.monotonic()
    go.set()
    for process in processes:
        process.join()
    return time.monotonic() - started


def inference_as_served(posts: list[bytes], workers: int) -> float:
    """The enrich step without Kafka: parse, model, explanations (occlusion of flagged posts),
    language, privacy, the record as JSON."""
    if not (os.environ.get("STREAMS_PSEUDONYM_SECRET") or os.environ.get("STREAMS_PSEUDONYM_SECRET_FILE")):
        os.environ["STREAMS_DEV_MODE"] = "1"  # as start_workers does: no key, the public development one
    return len(posts) / in_processes(_enrich_process, [posts[i::workers] for i in range(workers)])


# 3, 4. The pipeline --------------------------------------------------------------------------


def committed_behind(bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> list[str]:
    """The partitions whose committed offset (asked without joining the group) is short of ``ends``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return [f"{tp.topic}[{tp.partition}] {consumer.committed(tp) or 0}/{end}" for tp, end in ends.items()
                if end > 0 and (consumer.committed(tp) or 0) < end]  # fmt: skip
    finally:
        consumer.close()


def wait_committed(bootstrap: str, group: str, topics: list[str], timeout_s: float = 600) -> None:
    """Until the group has committed, on every partition of ``topics``, the end it had when asked."""
    ends = end_offsets(bootstrap, topics)
    deadline = time.monotonic() + timeout_s
    while behind := committed_behind(bootstrap, group, ends):
        if time.monotonic() > deadline:
            raise SystemExit(f"the group did not commit what it read within {timeout_s} s: {', '.join(behind)}")
        time.sleep(0.5)


def wait_all_work(bootstrap: str, settings: Settings) -> None:
    """Until the group has committed everything the posts caused. The inputs first; then,
    twice (the topic clusterer adds a hop), the internal topics as far as they reached:
    the trends heartbeats write watermarks every second, so their ends never stand still."""
    wait_committed(bootstrap, settings.app_id, [settings.topic_raw, settings.topic_enriched])
    internal = [t for t in internal_topics(bootstrap, settings) if "changelog" not in t]
    for _ in range(2):
        wait_committed(bootstrap, settings.app_id, internal)


def internal_topics(bootstrap: str, settings: Settings) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    names = sorted(t for t in consumer.topics() if t.startswith(f"{settings.app_id}-"))
    consumer.close()
    return names


def pipeline(
    bootstrap: str, posts: list[bytes], args: argparse.Namespace, agents: str, profile_dir: Path | None
) -> tuple[float, Settings, list[Any], list[Path]]:
    """Posts/s until the work is done; the workers are left running (for the paced run)."""
    settings = fresh_settings(bootstrap, args.partitions, "pipe")
    ensure_topics(settings)
    if args.cold:
        produce(bootstrap, settings.topic_raw, posts)
    os.environ["STREAMS_AGENTS"] = agents  # start_workers hands this process's environment on
    workers = start_workers(settings, args.workers)
    try:
        wait_healthy(settings, workers)
        if not args.cold:  # the group settled first: no rebalance inside the timed run
            wait_assigned(settings, [settings.web_port + i for i in range(len(workers))])
        processes = {f"worker {i}": w.pid for i, w in enumerate(workers)} | {"broker": broker_pid()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items() if pid}
        cpu_before["machine (all processes)"] = machine_busy_seconds()
        started = time.monotonic()
        profiles = [] if profile_dir is None else start_profiles(workers, args.profile_s, profile_dir)
        if not args.cold:
            produce(bootstrap, settings.topic_raw, posts)
        done = wait_count(bootstrap, settings.topic_enriched, len(posts), 1800)
        if agents != "enrich":  # every agent: until the group has committed all it reads
            print(f"  every post enriched after {done - started:.1f} s", flush=True)
            wait_all_work(bootstrap, settings)
            done = time.monotonic()
        for process, _ in profiles:  # a whole-run profile stops here; py-spy writes it on SIGINT
            if not args.profile_s:
                process.send_signal(signal.SIGINT)
            process.wait()
    except BaseException:
        stop_workers(workers)
        raise
    now = {name: cpu_seconds(pid) for name, pid in processes.items() if pid}
    now["machine (all processes)"] = machine_busy_seconds()
    CPU[agents] = ({name: now[name] - spent for name, spent in cpu_before.items()}, done - started)
    return len(posts) / (done - started), settings, workers, [path for _, path in profiles]


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat, not idle or iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    pid_file = log_dirs().parent / "broker.pid"
    return int(pid_file.read_text().strip()) if pid_file.is_file() else None


def start_profiles(workers: list[Any], seconds: int, folder: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = []
    for index, worker in enumerate(workers):
        path = folder / f"worker-{index}.txt"
        command = [spy, "record", "--pid", str(worker.pid), "--rate", "100", "--nonblocking", "--format", "raw",
                   "--output", str(path)]  # fmt: skip
        if seconds:
            command += ["--duration", str(seconds)]
        out.append((subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path))
    return out


def part_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for part, needles in PARTS:
            if any(needle in frame for needle in needles):
                return part
    return "other"


def agent_of(stack: str) -> str:
    """The stage whose code is outermost on the stack: what the sample's work was for
    (the Faust, Kafka and JSON work it called included)."""
    for frame in stack.split(";"):
        for agent, needles in AGENTS:
            if any(needle in frame for needle in needles):
                return agent
    return "no stage on the stack (Faust's consumer, producer and changelog tasks, the event loop)"


def profile_shares(paths: list[Path], classify: Any) -> dict[str, float]:
    samples: collections.Counter[str] = collections.Counter()
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if count.isdigit():
                samples[classify(stack)] += int(count)
    total = sum(samples.values()) or 1
    return {part: n / total for part, n in samples.most_common()}


# 5. Records and bytes per post ---------------------------------------------------------------


def log_dirs() -> Path:
    """Where the local broker keeps its partitions (deploy/local/kafka: log.dirs)."""
    properties = Path.home() / ".cache" / "social-streams" / f"broker-{os.environ.get('KAFKA_PORT', '9092')}"
    for line in (properties / "server.properties").read_text().splitlines():
        if line.startswith("log.dirs="):
            return Path(line.split("=", 1)[1])
    raise SystemExit(f"no log.dirs in {properties}/server.properties")


def written_per_post(bootstrap: str, settings: Settings, posts: int) -> list[tuple[str, float, float]]:
    """Records (end offsets) and bytes (the partitions' log segments on disk, with Kafka's
    batch headers) per post, for each topic the workers wrote."""
    topics = [settings.topic_enriched, settings.topic_flagged, settings.topic_deadletter, settings.topic_trends,
              settings.topic_alerts, settings.topic_profiles, *internal_topics(bootstrap, settings)]  # fmt: skip
    folder = log_dirs()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    out = []
    for topic in dict.fromkeys(topics):
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        records = sum(consumer.end_offsets(partitions).values()) if partitions else 0
        size = sum(
            f.stat().st_size for f in folder.glob(f"{topic}-*/*.log") if f.parent.name.rsplit("-", 1)[0] == topic
        )
        out.append((topic.removeprefix(f"{settings.app_id}."), records / posts, size / posts))
    consumer.close()
    return out


# 6. Latency, paced ---------------------------------------------------------------------------


def histogram(ports: list[int], name: str, label: str = "") -> dict[float, float]:
    """Cumulative bucket counts of a histogram (of its samples with ``label``, e.g. 'stage="model"'),
    summed over the workers."""
    buckets: dict[float, float] = collections.defaultdict(float)
    for port in ports:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith(f"{name}_bucket") and label in line:
                bound = line.split('le="')[1].split('"')[0]
                buckets[float("inf") if bound == "+Inf" else float(bound)] += float(line.rsplit(" ", 1)[1])
    return buckets


def quantile(buckets: dict[float, float], q: float) -> float:
    """The quantile from cumulative buckets, interpolated linearly inside its bucket (as Prometheus does)."""
    bounds = sorted(buckets)
    if not bounds:  # a worker without this metric (code from before it was added)
        return float("nan")
    total = buckets[bounds[-1]]
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / max(buckets[bound] - below, 1e-9)
            return lower + (bound - lower) * share
        lower, below = bound, buckets[bound]
    return lower


GENERATIONS = {"0": "young", "1": "middle", "2": "full"}
ENRICH_STAGES = ("waiting", "model", "publish")


def paced_latency(  # type: ignore[no-untyped-def]
    bootstrap: str, settings: Settings, posts: list[bytes], rate: float, seconds: int, warm_up_s: int, ports: list[int]
):
    """Latency quantiles of ``seconds`` of posts paced at ``rate``, after ``warm_up_s`` seconds
    of the same: the first live posts move event time on from the replay's tweets (years
    old) to now, which closes every trend term's windows at once, a one-off burst."""
    fresh = []
    for index, value in enumerate((posts * 2)[: int(rate * (seconds + warm_up_s))]):
        post = orjson.loads(value)
        post["id"] = f"paced-{index}-{post['id']}"
        post["created_at"] = int(time.time() * 1000)  # now-ish: the windows stay open and current
        fresh.append(orjson.dumps(post))
    warm_up, measured = fresh[: int(rate * warm_up_s)], fresh[int(rate * warm_up_s) :]
    produce(bootstrap, settings.topic_raw, warm_up, rate=rate)
    stages = [("streams_enrich_stage_seconds", f'stage="{stage}"') for stage in ENRICH_STAGES]
    collections = [("streams_gc_pause_seconds", f'generation="{g}"') for g in GENERATIONS]
    names = [("streams_end_to_end_seconds", ""), ("streams_event_loop_lag_seconds", ""), *stages,
             ("streams_gc_pause_seconds", ""), *collections]  # fmt: skip
    before = {name: histogram(ports, *name) for name in names}
    produce(bootstrap, settings.topic_raw, measured, rate=rate)
    time.sleep(3)  # the last posts' outputs
    quantiles = {}
    for name in names:
        after = histogram(ports, *name)
        delta = {bound: after[bound] - before[name].get(bound, 0.0) for bound in after}
        quantiles[name] = {q: quantile(delta, q) for q in (0.5, 0.9, 0.99)}
        quantiles[name][1.0] = longest(delta)
        quantiles[name]["count"] = delta.get(float("inf"), 0.0)
    return len(measured), len(fresh), quantiles


def longest(buckets: dict[float, float]) -> float:
    """The upper bound of the highest bucket that counted anything: the worst case, to a bucket."""
    counts = [buckets[bound] for bound in sorted(buckets)]
    reached = [bound for bound, count, before in zip(sorted(buckets), counts, [0.0, *counts], strict=False)
               if count > before]  # fmt: skip
    return reached[-1] if reached else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--profile-s", type=int, default=0, help="seconds of profile; 0: the whole run")
    parser.add_argument("--paced-s", type=int, default=30)
    parser.add_argument("--warm-up-s", type=int, default=10, help="paced posts before the latency is measured")
    parser.add_argument("--profile-dir", help="keep the raw py-spy profiles (collapsed stacks) here")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="queue the posts before the workers start: the timed runs include their start-up rebalance",
    )
    parser.add_argument(
        "--pipeline-only",
        action="store_true",
        help="skip the floor, the model alone and the enrich step (for A/B runs of the pipeline)",
    )
    args = parser.parse_args()
    posts = real_tweets(args.posts)
    bootstrap, started_broker = start_broker()
    rows: list[tuple[str, float]] = []
    try:
        if not args.pipeline_only:
            rows.append(("floor: aiokafka consume -> produce", floor(bootstrap, posts, args.workers, args.partitions)))
            print(f"{rows[-1][0]}: {rows[-1][1]:.0f} posts/s", flush=True)
            rows.append(("model alone (TextModel.predict)", model_alone(posts, args.workers)))
            print(f"{rows[-1][0]}: {rows[-1][1]:.0f} posts/s", flush=True)
            rows.append(("model + occlusion rows of flagged posts", model_with_explanations(posts, args.workers)))
            print(f"{rows[-1][0]}: {rows[-1][1]:.0f} posts/s", flush=True)
            rows.append(("enrich step without Kafka (+ explanations, language, privacy, JSON)",
                         inference_as_served(posts, args.workers)))  # fmt: skip
            print(f"{rows[-1][0]}: {rows[-1][1]:.0f} posts/s", flush=True)
        rate, _, workers, _ = pipeline(bootstrap, posts, args, "enrich", None)
        stop_workers(workers)
        rows.append(("pipeline, enrich only", rate))
        print(f"{rows[-1][0]}: {rate:.0f} posts/s", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            kept = Path(args.profile_dir or folder)
            kept.mkdir(parents=True, exist_ok=True)
            rate, settings, workers, paths = pipeline(bootstrap, posts, args, "enrich,profiles,trends", kept)
            shares, stages = profile_shares(paths, part_of), profile_shares(paths, agent_of)
        rows.append(("pipeline, every agent", rate))
        print(f"{rows[-1][0]}: {rate:.0f} posts/s", flush=True)
        try:
            ports = [settings.web_port + i for i in range(args.workers)]
            paced, appended, latency = paced_latency(
                bootstrap, settings, posts, rate / 2, args.paced_s, args.warm_up_s, ports
            )
            written = written_per_post(bootstrap, settings, len(posts) + appended)
        finally:
            stop_workers(workers)
    finally:
        stop_broker(started_broker)
    print(f"\n{len(posts)} real tweets, {args.workers} processes, {args.partitions} partitions, {os.cpu_count()} cores")
    if args.pipeline_only:
        for name, value in rows:
            print(f"| {name} | {value:.0f} |")
    else:
        floor_rate, model_rate, work_rate = rows[0][1], rows[1][1], rows[2][1]
        print("| stage | posts/s | / model alone | / model + occlusion | / floor |")
        print("|---|---|---|---|---|")
        for name, value in rows:
            print(f"| {name} | {value:.0f} | {value / model_rate:.2f} | {value / work_rate:.2f} "
                  f"| {value / floor_rate:.3f} |")  # fmt: skip
    print(f"\nCPU seconds per process during each pipeline run ({os.cpu_count()} cores):")
    print("| run | seconds | " + " | ".join(next(iter(CPU.values()))[0]) + " |")
    print("|---|---|" + "---|" * len(next(iter(CPU.values()))[0]))
    for agents, (used, seconds) in CPU.items():
        cells = " | ".join(f"{v:.0f} ({v / seconds:.0%} of a core)" for v in used.values())
        print(f"| {agents} | {seconds:.0f} | {cells} |")
    span = f"{args.profile_s} s" if args.profile_s else "the whole run"
    print(f"\nEvery agent, CPU samples of the workers by part ({span}, py-spy at 100 Hz):")
    print("| part | share |")
    print("|---|---|")
    for part, share in shares.items():
        print(f"| {part} | {share:.1%} |")
    print("\nThe same samples by the stage they worked for (the outermost frame of ours):")
    print("| stage | share |")
    print("|---|---|")
    for stage, share in stages.items():
        print(f"| {stage} | {share:.1%} |")
    print("\nWritten per post (every agent, incl. the paced posts):")
    print("| topic | records/post | bytes/post |")
    print("|---|---|---|")
    for topic, records, size in written:
        print(f"| {topic} | {records:.2f} | {size:.0f} |")
    p50, p90, p99 = (latency[("streams_end_to_end_seconds", "")][q] * 1000 for q in (0.5, 0.9, 0.99))
    print(f"\nLatency, every agent, paced at {rate / 2:.0f} posts/s for {args.paced_s} s after {args.warm_up_s} s "
          f"of the same ({paced} posts): "
          f"p50 {p50:.0f} ms, p90 {p90:.0f} ms, p99 {p99:.0f} ms")  # fmt: skip
    stage_ms = {stage: latency[("streams_enrich_stage_seconds", f'stage="{stage}"')] for stage in ENRICH_STAGES}
    steps = ", ".join(f"{name} {q[0.5] * 1000:.0f} / {q[0.99] * 1000:.0f} ms" for name, q in stage_ms.items())
    print(f"Each post's time in the enrich agent's steps, p50 / p99: {steps}")
    p50, p90, p99, worst = (latency[("streams_event_loop_lag_seconds", "")][q] * 1000 for q in (0.5, 0.9, 0.99, 1.0))
    print(f"Event-loop lag meanwhile (a 50 ms sleep's overshoot): p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
          f"p99 {p99:.1f} ms, longest <= {worst:.0f} ms")  # fmt: skip
    pauses = latency[("streams_gc_pause_seconds", "")]
    by_generation = {
        name: latency[("streams_gc_pause_seconds", f'generation="{g}"')] for g, name in GENERATIONS.items()
    }
    each = ", ".join(
        f"{name} {q['count']:.0f} (longest <= {q[1.0] * 1000:.0f} ms)" for name, q in by_generation.items()
    )
    print(f"Garbage collections meanwhile (both workers, every generation): {pauses['count']:.0f}, "
          f"p99 {pauses[0.99] * 1000:.1f} ms, longest <= {pauses[1.0] * 1000:.0f} ms; {each}")  # fmt: skip


if __name__ == "__main__":
    main()
