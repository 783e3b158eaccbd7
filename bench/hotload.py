"""Hot changes under traffic: how long one pipeline's answers stop while the engine changes.

    python -m bench.hotload [--bootstrap HOST:PORT | --kafka] [--rate 100]
    make bench BENCH_ARGS=--hotload

A steady stream of requests (`--rate`/s) goes to `tfsimples` (a 2-step chain on two
partitions) served by one worker process. Then, one after another, with a settling
pause each: another pipeline is loaded, then unloaded, a second worker joins, it
stops (SIGTERM), it joins again, it is killed (SIGKILL). For each event the table
gives the longest time without an answer after it, the worst latency of a request
sent around it, and the requests never answered. With nothing happening, the
longest gap is about 1/rate. Issue 13 asks for no stop longer than one hop's latency.
The last column gives, per partition of the answers, the longest gap between their
record timestamps (when the worker produced them): a stop of the worker itself,
partition by partition, free of this reader's fetches. `--unloads N` runs only
load-then-unload, N times (`--unload-after` s apart), to reproduce the unload stall.

On Apache Kafka 4.x the workers' group uses KIP-848 (`engine/group_protocol.py`):
only the partitions that move stop. The embedded broker speaks only the classic
protocol, where every change of subscription or membership revokes everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import load
from bench.contenders import MODELS, RESULTS, ROOT, VENV_BIN
from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.runtime.control import ControlPlane

SERVED = ROOT / "examples" / "pipelines" / "tfsimples.yaml"
LOADED = ROOT / "examples" / "pipelines" / "conditional.yaml"
PARTITIONS = 2


@dataclass(frozen=True)
class Event:
    name: str
    longest_gap_ms: float
    """Longest time without an answer from the event to the end of its window."""
    worst_ms: float
    """Worst latency of a request sent in the window."""
    p50_ms: float
    unanswered: int
    partition_gaps_ms: tuple[float, ...] = ()
    """Per partition of the answers, the longest time between two answers' record
    timestamps (when the worker produced them) in the window: the worker's own stop,
    free of the receiver's fetches. The smallest of them is how long a partition that
    did not move stopped."""


class StampedReceiver(load.Receiver):
    """A `load.Receiver` that keeps each answer's partition and record timestamp."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(bootstrap, topic, partitions, keep_stamps=True)

    def partition_gaps_ms(self, since: float, until: float) -> tuple[float, ...]:
        """Per partition, the longest gap between answer timestamps in [since, until]
        (wall-clock seconds), the window's ends included."""
        with self.lock:
            stamps = list(self.stamps)
        gaps = []
        for partition in sorted({p for p, _ in stamps}):
            times = sorted(t for p, t in stamps if p == partition and since <= t <= until)
            times = [since, *times, until]
            gaps.append(max(b - a for a, b in zip(times, times[1:], strict=False)) * 1000)
        return tuple(gaps)


class Traffic(threading.Thread):
    """Sends `rate` requests a second to `topic`, each keyed `h-<i>`; `sent` their times."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        super().__init__(daemon=True, name="hotload-traffic")
        self.producer = load.producer(bootstrap, **{"linger.ms": 0})
        self.topic, self.rate = topic, rate
        self.sent: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        start, i = time.perf_counter(), 0
        while not self.stop.is_set():
            delay = start + i / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            key = f"h-{i}"
            self.sent[key] = time.perf_counter()
            self.producer.produce(self.topic, load.request_payload("tfsimple", key, i), key)
            self.producer.poll(0)
            i += 1
        self.producer.flush(10)


def measure(
    bootstrap: str,
    logdir: Path,
    rate: float,
    settle_s: float,
    *,
    unloads: int = 0,
    unload_after_s: float = 4.0,
    worker_env: dict[str, str] | None = None,
) -> list[Event]:
    """The events' table; with `unloads`, only load-then-unload, that many times, the
    unload `unload_after_s` after its load (the Kafka unload stall's repro)."""
    ns = f"hot{uuid.uuid4().hex[:6]}"
    settings = KafkaSettings(bootstrap=bootstrap, namespace=ns, partitions=PARTITIONS)
    topics = settings.topics()
    inputs, outputs = topics.pipeline_inputs("tfsimples"), topics.pipeline_outputs("tfsimples")
    TopicAdmin(settings).ensure([inputs, outputs])
    plane = ControlPlane(settings)
    plane.load([str(MODELS), str(SERVED)])
    receiver = StampedReceiver(bootstrap, outputs, PARTITIONS)
    receiver.start()
    traffic = Traffic(bootstrap, inputs, rate)
    workers: list[subprocess.Popen[bytes]] = []

    def start_worker(number: int) -> None:
        argv = [str(VENV_BIN / "tensorflux"), "worker", "--bootstrap", bootstrap]
        argv += ["--namespace", ns, "--partitions", str(PARTITIONS), "--model-root", str(MODELS)]
        argv += ["--worker-id", f"{ns}-{number}"]
        log = (logdir / f"hotload-{ns}-{number}.log").open("ab")
        env = {**os.environ, **(worker_env or {})}
        workers.append(
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        )

    def answers_since(at: float) -> list[float]:
        with receiver.lock:
            return sorted(t for t in receiver.arrivals.values() if t >= at)

    events: list[Event] = []

    def window(name: str, change, watch_s: float = settle_s) -> None:
        at, wall_at = time.perf_counter(), time.time()
        change()
        time.sleep(watch_s)
        end, wall_end = time.perf_counter(), time.time()
        arrivals = [at, *[t for t in answers_since(at) if t <= end], end]
        gap = max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
        sent = {k: t for k, t in list(traffic.sent.items()) if at - 1 <= t <= end - 2}
        with receiver.lock:
            latencies = [(receiver.arrivals[k] - t) * 1000 for k, t in sent.items()
                         if k in receiver.arrivals]  # fmt: skip
        events.append(Event(name, gap * 1000, max(latencies, default=float("nan")),
                            load.percentile(latencies, 50), len(sent) - len(latencies),
                            receiver.partition_gaps_ms(wall_at, wall_end)))  # fmt: skip

    try:
        start_worker(1)
        traffic.start()
        deadline = time.monotonic() + 120
        while not answers_since(0.0):
            if time.monotonic() > deadline or workers[0].poll() is not None:
                raise RuntimeError(f"tfsimples never answered (logs in {logdir})")
            time.sleep(0.1)
        time.sleep(settle_s)
        window("nothing happens", lambda: None)
        for n in range(unloads):
            window(f"load {n + 1}", lambda: plane.load([str(LOADED)]), unload_after_s)
            unload = lambda: plane.unload("pipeline", "conditional-routing")  # noqa: E731
            window(f"unload {n + 1} ({unload_after_s:g} s after)", unload)
        if unloads:
            return events
        window("another pipeline loaded", lambda: plane.load([str(LOADED)]))
        window("that pipeline unloaded", lambda: plane.unload("pipeline", "conditional-routing"))
        window("a second worker joins", lambda: start_worker(2))
        window("the second worker stops (SIGTERM)", lambda: _stop(workers[1], signal.SIGTERM))
        window("a second worker joins again", lambda: start_worker(3))
        window("the second worker is killed (SIGKILL)", lambda: _stop(workers[2], signal.SIGKILL))
    finally:
        traffic.stop.set()
        traffic.join(10)
        for worker in workers:
            _stop(worker, signal.SIGTERM)
        receiver.stop.set()
        receiver.join(5)
        plane.close()
    return events


def _stop(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(how)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(15)
    if process.poll() is None:
        process.kill()
        process.wait()


def section(events: list[Event], broker: str, rate: float) -> str:
    lines = [
        f"### Hot changes under traffic ({broker}, {rate:g} requests/s to tfsimples)",
        "",
        "| event | longest gap ms | worst latency ms | p50 ms | unanswered "
        "| per-partition gap ms (answer timestamps) |",
        "|---|---|---|---|---|---|",
    ]
    for e in events:
        lines.append(
            f"| {e.name} | {e.longest_gap_ms:,.0f} | {e.worst_ms:,.0f} | {e.p50_ms:,.1f} "
            f"| {e.unanswered} | {' / '.join(f'{g:,.0f}' for g in e.partition_gaps_ms)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotload", description=__doc__)
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting a broker")
    parser.add_argument("--kafka", action="store_true", help="start a local Apache Kafka node")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s to tfsimples")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds watched per event")
    parser.add_argument(
        "--unloads",
        type=int,
        default=0,
        metavar="N",
        help="only load and unload another pipeline, N times (the unload stall's repro)",
    )
    parser.add_argument(
        "--unload-after", type=float, default=4.0, metavar="S", help="with --unloads: S s"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="K=V",
        help="environment of the workers (repeatable), e.g. TENSORFLUX_KAFKA_DEBUG=fetch",
    )
    args = parser.parse_args(argv)
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        bootstrap, broker = args.bootstrap, "given Kafka"
        if bootstrap is None:
            bootstrap, broker = _start_broker(stack, args.kafka)
        events = measure(
            bootstrap,
            logdir,
            args.rate,
            args.settle,
            unloads=args.unloads,
            unload_after_s=args.unload_after,
            worker_env=worker_env,
        )
    text = section(events, broker, args.rate) + f"\nload average: {os.getloadavg()}\n"
    (RESULTS / "hotload.md").write_text(text)
    print(text)
    return 0


def _start_broker(stack: contextlib.ExitStack, kafka: bool) -> tuple[str, str]:
    if kafka:
        from engine.kafka_cluster import KafkaCluster

        cluster = stack.enter_context(KafkaCluster(nodes=1))
        return cluster.bootstrap, "Apache Kafka, 1 node"
    from engine.broker import EmbeddedBroker

    broker = stack.enter_context(EmbeddedBroker())
    return broker.bootstrap, "embedded tansu"


if __name__ == "__main__":
    sys.exit(main())
