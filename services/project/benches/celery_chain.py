#!/usr/bin/env python3
"""The Celery half of `benches/orchestration.rs`: the same measurement on an
equivalent chain of Celery tasks, on the same RabbitMQ.

    python celery_chain.py --transitions 500 --chains-at-once 100

Each "song" is a chain of six instant tasks (Cadenza's six stages). Every task
returns `time.time_ns()` taken just before it returns; Celery passes that to the
next task in the chain, which records `its start - that end`: the handoff
overhead (the worker publishing the next task with a publisher confirm, the
broker, the delivery, Celery's dispatch up to the task's first line), as
orchestration.rs times result-published to next-work-arrived. Wall-clock
nanoseconds are used because the two ends may be in different processes;
`perf_counter` is not comparable across processes.

Phases:
  latency     one chain at a time, after a few warm-up chains, until at least
              --transitions handoffs are recorded; median and p99 of those.
  throughput  --chains-at-once chains submitted at once; from the first
              submission to the last task's end; tasks / seconds.

Setup, chosen to match Cadenza and to give Celery its best fair showing:
  * broker: CELERY_BROKER_URL (default the local RabbitMQ), publisher confirms
    (`confirm_publish`) like Cadenza's confirmed publishes, persistent messages;
  * a durable *quorum* queue (`x-queue-type: quorum`), chosen because that is
    what Cadenza's queues are: a confirm then means the message is fsynced in
    the queue's Raft log, so both sides pay the same broker price per publish
    (Celery >= 5.5 supports it: it switches to per-consumer QoS by itself).
    `--queue-type classic` runs a classic durable queue instead, for
    comparison. The queue and its
    exchange are named for this run, expire 10 minutes after the run stops
    using them if it dies before deleting them, and are deleted at the end;
  * `task_acks_late=True`, `worker_prefetch_multiplier=1`, results ignored,
    JSON serializer;
  * the worker is `celery worker -P threads -c 8`, chosen by measuring on this
    2-core machine (500 handoffs, 100 chains, quorum queue, several runs):
      - `-P solo` is Celery's usual pick for the lowest latency, but with
        acks_late and prefetch 1 it stalls: a task that the event loop runs
        from its ready-callbacks queues its ack there too, and the loop then
        polls (up to 10 s, the hub's longest timer wait) before sending it,
        while the broker holds the next message back for that ack. Seen here
        as 10 s handoffs and 3-150 tasks/s; known upstream (celery/celery#7718,
        celery/kombu#1587, unfixed in 5.7). Not a fair showing of Celery;
      - `-P threads`: the ack comes from a pool thread, which wakes the loop,
        so no stall; latency matched solo's good runs (median 3-7 ms under
        load, p99 10-20 ms) and throughput grew with concurrency up to about
        8 (each task waits ~3 ms for its next task's publisher confirm, so
        threads overlap those waits): ~300 tasks/s at -c 2, ~450-600 at -c 8,
        no better at 16-64 (the GIL);
      - `-P prefork -c 2..8`: same latency, less throughput (~160-350 tasks/s:
        results go through pipes to the parent).
    Cadenza's instant worker keeps up to 64 deliveries in flight, so several
    tasks in flight is fair to Celery; prefetch is then 8 (multiplier 1 x
    concurrency 8). `--pool`/`--concurrency` try the others. Gossip, mingle,
    heartbeat, remote control, events and native delayed delivery (a set of
    broker-global `celery_delayed_*` queues that no chain here needs) are
    off, and it logs warnings only, so it does nothing but run tasks;
  * Redis (CELERY_CHAIN_REDIS_URL, default redis://127.0.0.1:6379/0) receives
    the handoff times and the chains' completion signals, under keys named for
    this run, which expire on their own and are deleted at the end.

Human-readable lines go first; the last line of stdout is one JSON object with
`median_ms`, `p99_ms` and `transitions_per_second`. Any failure (broker or Redis
unreachable, worker not coming up, a chain not finishing in time) prints why on
stderr and exits non-zero; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

try:
    import redis
    from celery import Celery, chain
    from celery.worker.consumer import Consumer as _Consumer
    from kombu import Connection, Exchange, Queue
except ImportError as error:  # pragma: no cover - the message is the point
    sys.exit(
        f"celery_chain.py: {error}; install the pinned packages first: "
        "pip install -r services/project/benches/requirements-celery.txt"
    )

BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("CELERY_CHAIN_REDIS_URL", "redis://127.0.0.1:6379/0")
# One name per run, for the queue, the exchange, the worker and the Redis keys.
# The worker inherits it from the script that starts it.
RUN = os.environ.get("CELERY_CHAIN_RUN") or f"celery-chain-{uuid.uuid4().hex[:10]}"
QUEUE_TYPE = os.environ.get("CELERY_CHAIN_QUEUE_TYPE", "quorum")
if QUEUE_TYPE not in ("quorum", "classic"):
    sys.exit(f"celery_chain.py: CELERY_CHAIN_QUEUE_TYPE must be quorum or classic, not {QUEUE_TYPE!r}")
STAGES = 6
# Safety nets if the run dies before cleaning up (it deletes both at the end).
QUEUE_EXPIRES_MS = 600_000
KEY_EXPIRES_S = 600


def queue_arguments(queue_type: str) -> dict:
    arguments = {"x-expires": QUEUE_EXPIRES_MS}
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
    return arguments


# auto_delete: the exchange goes away with its last binding, i.e. with the queue.
EXCHANGE = Exchange(RUN, type="direct", durable=True, auto_delete=True)
QUEUE = Queue(
    RUN,
    EXCHANGE,
    routing_key=RUN,
    durable=True,
    queue_arguments=queue_arguments(QUEUE_TYPE),
)


class Consumer(_Consumer):
    """Celery's consumer without native delayed delivery.

    With a quorum queue Celery >= 5.5 otherwise declares 28 broker-global
    `celery_delayed_*` quorum queues and exchanges (shared with every other
    Celery on the broker, never deleted) for countdown/ETA tasks; nothing here
    uses those, and this benchmark must leave nothing behind.
    """

    class Blueprint(_Consumer.Blueprint):
        default_steps = [
            step
            for step in _Consumer.Blueprint.default_steps
            if not step.endswith(":DelayedDelivery")
        ]


app = Celery("cadenza_celery_chain")
app.conf.update(
    broker_url=BROKER_URL,
    broker_transport_options={"confirm_publish": True},
    broker_connection_timeout=5,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=3,
    task_queues=[QUEUE],
    task_default_queue=RUN,
    task_default_exchange=RUN,
    task_default_routing_key=RUN,
    task_create_missing_queues=False,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    result_backend=None,
    task_serializer="json",
    accept_content=["json"],
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_consumer=f"{__name__}:Consumer",
    worker_hijack_root_logger=True,
)

_redis_client = None


def store() -> "redis.Redis":
    """This process's Redis client (made on first use: after a pool's fork)."""
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(
            REDIS_URL, socket_connect_timeout=5, socket_timeout=10
        )
    return _redis_client


def push(key: str, value: int) -> None:
    """Appends to a list, in one round trip with its expiry."""
    pipe = store().pipeline(transaction=False)
    pipe.rpush(key, value)
    pipe.expire(key, KEY_EXPIRES_S)
    pipe.execute()


@app.task(name="cadenza_bench.stage")
def stage(previous_end_ns, index, handoffs_key, done_key):
    """One instant stage: records the handoff from the previous stage's end."""
    started = time.time_ns()
    if handoffs_key is not None and previous_end_ns is not None:
        push(handoffs_key, started - previous_end_ns)
    if index == STAGES - 1:
        push(done_key, time.time_ns())
        return None
    # The next stage's clock starts here: everything after is Celery's.
    return time.time_ns()


@app.task(name="cadenza_bench.ping")
def ping(key):
    push(key, time.time_ns())


def song(handoffs_key, done_key):
    """A chain of STAGES instant tasks, each fed the previous one's end time."""
    first = stage.s(None, 0, handoffs_key, done_key)
    rest = [stage.s(index, handoffs_key, done_key) for index in range(1, STAGES)]
    return chain(first, *rest)


# ---------------------------------------------------------------------------
# The driver: everything below runs only in the script, not in the worker.


class BenchError(Exception):
    pass


def percentile(sorted_values, p):
    """As in orchestration.rs: the value at round((n - 1) * p)."""
    index = round((len(sorted_values) - 1) * p)
    return sorted_values[min(index, len(sorted_values) - 1)]


def check_redis() -> None:
    try:
        store().ping()
    except Exception as error:
        raise BenchError(f"Redis is unreachable at {REDIS_URL}: {error}") from error


def declare_queue() -> None:
    """Checks the broker and declares the run's queue (as the worker will)."""
    try:
        with Connection(BROKER_URL, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
            QUEUE(connection.default_channel).declare()
    except Exception as error:
        raise BenchError(
            f"RabbitMQ at {BROKER_URL} is unreachable or refused the "
            f"{QUEUE_TYPE} queue {RUN!r}: {error}"
        ) from error


def delete_queue() -> list[str]:
    problems = []
    try:
        with Connection(BROKER_URL, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
            channel = connection.default_channel
            channel.queue_delete(RUN)
            channel.exchange_delete(RUN)
    except Exception as error:  # the queue still expires on its own
        problems.append(f"could not delete queue/exchange {RUN!r}: {error}")
    return problems


def delete_keys() -> list[str]:
    try:
        keys = list(store().scan_iter(match=f"{RUN}:*", count=100))
        if keys:
            store().delete(*keys)
    except Exception as error:  # the keys still expire on their own
        return [f"could not delete Redis keys {RUN}:*: {error}"]
    return []


class Worker:
    """The Celery worker, as a child process logging to a temporary file."""

    def __init__(self, pool: str, concurrency: int):
        here = os.path.dirname(os.path.abspath(__file__))
        module = os.path.splitext(os.path.basename(__file__))[0]
        env = dict(os.environ)
        env.update(
            CELERY_CHAIN_RUN=RUN,
            CELERY_BROKER_URL=BROKER_URL,
            CELERY_CHAIN_REDIS_URL=REDIS_URL,
            CELERY_CHAIN_QUEUE_TYPE=QUEUE_TYPE,
            PYTHONPATH=os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")])),
            # No __pycache__ in the source tree.
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"{RUN}-worker-", suffix=".log", delete=False
        )
        command = [
            sys.executable, "-m", "celery", "-A", module, "worker",
            "-P", pool, "-c", str(concurrency),
            "-Q", RUN, "-n", f"{RUN}@%h",
            "--loglevel=WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=tempfile.gettempdir(),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"the Celery worker exited with {code}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            with open(self.log.name, encoding="utf-8", errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return "(no worker log)"

    def stop(self) -> list[str]:
        """A warm shutdown (SIGTERM), then SIGKILL after 30 s."""
        problems = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append("the Celery worker ignored SIGTERM for 30 s: killed")
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        if not problems:
            os.unlink(self.log.name)
        else:
            problems.append(f"worker log kept at {self.log.name}")
        return problems


def wait_for(key: str, count: int, timeout: float, worker: Worker, what: str) -> list[int]:
    """Pops `count` values from a Redis list, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    values = []
    while len(values) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(
                f"timed out after {timeout:g} s waiting for {what} "
                f"({len(values)}/{count} arrived); worker log:\n{worker.tail()}"
            )
        popped = store().blpop([key], timeout=min(1.0, max(left, 0.01)))
        if popped is None:
            worker.check_alive()
            continue
        values.append(int(popped[1]))
    return values


def run(args) -> dict:
    check_redis()
    declare_queue()
    cleanup_problems: list[str] = []
    worker = Worker(args.pool, args.concurrency)
    try:
        # Ready: a task sent through the queue has run.
        ready_key = f"{RUN}:ready"
        started = time.monotonic()
        ping.apply_async((ready_key,))
        wait_for(ready_key, 1, args.startup_timeout, worker, "the worker to come up")
        startup = time.monotonic() - started

        with app.producer_or_acquire() as producer:
            # Warm-up: connections, the pool's processes, the queue's leader.
            warm_handoffs, warm_done = f"{RUN}:warmup:handoffs", f"{RUN}:warmup:done"
            for _ in range(args.warmup):
                song(warm_handoffs, warm_done).apply_async(producer=producer)
                wait_for(warm_done, 1, args.chain_timeout, worker, "a warm-up chain")

            # Latency: one chain at a time until enough handoffs are recorded.
            handoffs_key, done_key = f"{RUN}:handoffs", f"{RUN}:done"
            chains = 0
            while store().llen(handoffs_key) < args.transitions:
                song(handoffs_key, done_key).apply_async(producer=producer)
                wait_for(done_key, 1, args.chain_timeout, worker, "a chain to finish")
                chains += 1
            handoffs = sorted(int(v) for v in store().lrange(handoffs_key, 0, -1))

            # Throughput: all the chains at once; the clock runs from the first
            # submission to the last stage's end. Handoffs are not recorded
            # here: the tasks do nothing but the final completion signal.
            through_done = f"{RUN}:throughput:done"
            submitted_ns = time.time_ns()
            for _ in range(args.chains_at_once):
                song(None, through_done).apply_async(producer=producer)
            submit_seconds = (time.time_ns() - submitted_ns) / 1e9
            ends = wait_for(
                through_done, args.chains_at_once, args.throughput_timeout, worker,
                "the throughput chains to finish",
            )
        elapsed = (max(ends) - submitted_ns) / 1e9
    finally:
        cleanup_problems += worker.stop()
        cleanup_problems += delete_queue()
        cleanup_problems += delete_keys()
    for problem in cleanup_problems:
        print(f"celery_chain.py: warning: {problem}", file=sys.stderr)

    tasks = args.chains_at_once * STAGES
    median_ms = percentile(handoffs, 0.5) / 1e6
    p99_ms = percentile(handoffs, 0.99) / 1e6
    per_second = tasks / elapsed
    import celery
    import kombu

    print(
        f"celery {celery.__version__} (kombu {kombu.__version__}), pool {args.pool} "
        f"-c {args.concurrency}, {QUEUE_TYPE} queue, acks_late, prefetch multiplier 1, "
        f"publisher confirms; worker up in {startup:.2f} s"
    )
    print(
        f"celery: {len(handoffs)} handoffs over {chains} chains, one at a time: "
        f"median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms, max {handoffs[-1] / 1e6:.2f} ms"
    )
    print(
        f"celery: {args.chains_at_once} chains at once: {tasks} tasks in {elapsed:.2f} s "
        f"(submitting took {submit_seconds:.2f} s) = {per_second:.0f} tasks/s"
    )
    return {
        "median_ms": median_ms,
        "p99_ms": p99_ms,
        "max_ms": handoffs[-1] / 1e6,
        "transitions_per_second": per_second,
        "handoffs": len(handoffs),
        "chains": chains,
        "tasks": tasks,
        "seconds": elapsed,
        "pool": args.pool,
        "concurrency": args.concurrency,
        "queue_type": QUEUE_TYPE,
        "celery": celery.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=500,
                        help="handoffs to measure one chain at a time (default 500)")
    parser.add_argument("--chains-at-once", type=int, default=100,
                        help="chains submitted at once for throughput (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up chains (default 5)")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"],
                        help="Celery worker pool (default threads: see the module doc)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="worker concurrency (default 8; solo is always 1)")
    parser.add_argument("--queue-type", default=None, choices=["quorum", "classic"],
                        help="RabbitMQ queue type (default quorum, like Cadenza)")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--chain-timeout", type=float, default=30.0)
    parser.add_argument("--throughput-timeout", type=float, default=300.0)
    args = parser.parse_args()
    if min(args.transitions, args.chains_at_once, args.concurrency) < 1 or args.warmup < 0:
        parser.error("--transitions, --chains-at-once and --concurrency must be >= 1, --warmup >= 0")
    if args.queue_type is not None and args.queue_type != QUEUE_TYPE:
        # The worker reads the type from the environment: re-exec with it set.
        os.environ["CELERY_CHAIN_QUEUE_TYPE"] = args.queue_type
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])

    # SIGTERM (e.g. from a timeout) still stops the worker and cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        figures = run(args)
    except BenchError as error:
        print(f"celery_chain.py: {error}", file=sys.stderr)
        return 1
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
