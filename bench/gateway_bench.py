"""Gateway throughput and latency with wrk, beside the HTTP ceiling and Kafka's round trip.

In one run, on this machine:
1. the HTTP ceiling: a bare ASGI app (bench/apps/http_ceiling.py) on uvicorn with
   httptools and uvloop that parses the same body and answers a fixed response,
   alone (before any broker starts);
2. the embedded broker, and the median of one produce->consume round trip on it
   (a producer with linger.ms=0, a consumer with the engine's fetch.wait.max.ms),
   before the gateway rows (on a new topic: the target's) and after them through
   partition 0 of chain-base's outputs topic, with the records the rows left there;
3. a worker and the gateway (`python -m engine.gateway`, each its own process)
   on the 1-step pipeline `chain-base` (tfsimple1, INT32 [1,16]) of `examples/`
   (the issue's setting: four chained pipelines read chain-base's topics), then
   the same with chain-base alone loaded (the targets are judged on examples/).
wrk (a C load generator, one thread) drives each at 1, 8 and 64 connections.

    .venv/bin/python bench/gateway_bench.py [--seconds 5] [--levels 1,8,64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import kafka_requests  # noqa: E402
from bench.procstat import cpu_s  # noqa: E402
from engine.broker import EmbeddedBroker, free_port  # noqa: E402
from engine.config import KafkaSettings  # noqa: E402

PIPELINE = "chain-base"
PATH = f"/v2/pipelines/{PIPELINE}/infer"
BODY = json.dumps(
    {
        "inputs": [
            {"name": name, "datatype": "INT32", "shape": [1, 16], "data": list(range(1, 17))}
            for name in ("INPUT0", "INPUT1")
        ]
    }
)
ROUND_TRIPS = 300
FETCH_WAIT_MS = 10
SETTLE_REQUESTS = 40
SETTLE_S = 0.25
"""Before the levels: that many requests in a row, each answered within that."""
"""The engine's fetch.wait.max.ms (worker and gateway) on the embedded broker."""

WORKER = """
import sys, signal
from engine.config import KafkaSettings
from engine.runtime.worker import Worker
from engine.topology import compile_topology, load_files
from engine.cli.stopping import stop_on_signals
settings = KafkaSettings(bootstrap=sys.argv[1], namespace=sys.argv[2])
worker = Worker(settings)
worker.apply(compile_topology(load_files([sys.argv[3]]), settings.topics()))
worker.run(stop_on_signals(signal.SIGTERM))
"""

# wrk prints its own summary in rounded units; this prints exact figures to parse.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Row:
    connections: int
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: dict[str, float] | None = None
    """CPU ms per request of each process (at the highest level only), from /proc."""
    sent: dict[str, dict[str, float]] | None = None
    """Kafka requests per HTTP request, by client and request type (--count-requests)."""


def per_request(
    before: dict[str, dict[str, Counter[str]]],
    after: dict[str, dict[str, Counter[str]]],
    requests: int,
) -> dict[str, dict[str, float]]:
    """What each client sent between the two readings, per HTTP request (`assigned`,
    a consumer's partitions, as it is at the end)."""
    out = {}
    for process, clients in after.items():
        for client, counts in clients.items():
            grew = counts - before.get(process, {}).get(client, Counter())
            if grew:
                sent = {k: v / requests for k, v in sorted(grew.items()) if k != "assigned"}
                if "assigned" in counts:
                    sent["assigned"] = counts["assigned"]
                out[f"{process} {client}"] = sent
    return out


def wrk(url: str, script: str, connections: int, seconds: float) -> Row:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    done = subprocess.run(
        [*argv, "-s", script, url], capture_output=True, text=True, timeout=seconds + 60
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]} {done.stderr[-500:]}")
    requests, duration_us, errors, p50_us, p99_us = map(int, line.split()[1:])
    return Row(
        connections,
        requests,
        requests / (duration_us / 1e6),
        p50_us / 1000,
        p99_us / 1000,
        errors,
    )


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port}")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ceiling(script: str, levels: list[int], seconds: float, env: dict[str, str]) -> list[Row]:
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.apps.http_ceiling:app", "--port", str(port)]
        + ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        cwd=REPO,
        env=env,
    )
    try:
        wait_for_port(port, app, "the ceiling app")
        url = f"http://127.0.0.1:{port}{PATH}"
        wrk(url, script, 8, 1)  # warm up
        return [wrk(url, script, c, seconds) for c in levels]
    finally:
        stop([app])


def round_trip_ms(bootstrap: str, topic: str | None = None) -> float:
    """Median ms from produce() to the consumer's poll() returning that record, through
    partition 0 of `topic` (default: a new topic of one partition)."""
    from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

    from engine.admin import TopicAdmin
    from engine.config import KafkaSettings

    settings = KafkaSettings(bootstrap=bootstrap, namespace="rtt")
    if topic is None:
        topic = f"rtt-{uuid.uuid4().hex[:8]}"
        TopicAdmin(settings).ensure([topic], partitions=1)
    producer = Producer(settings.producer_config(**{"linger.ms": 0}))
    consumer = Consumer(
        settings.consumer_config(
            f"rtt-{uuid.uuid4().hex[:8]}",
            **{"fetch.wait.max.ms": FETCH_WAIT_MS, "fetch.min.bytes": 1},
        )
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
    samples = []
    try:
        for i in range(ROUND_TRIPS + 20):
            key = str(i).encode()
            started = time.perf_counter()
            # Partition 0 named: keys would hash across a topic's partitions.
            producer.produce(topic, b"x" * 200, key, partition=0)
            producer.poll(0)
            while True:
                message = consumer.poll(1.0)
                if message is not None and message.error() is None and message.key() == key:
                    break
            if i >= 20:  # the first ones find connections and metadata
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        producer.flush(5)
        consumer.close()
    return statistics.median(samples)


def gateway_rows(
    bootstrap: str,
    script: str,
    levels: list[int],
    seconds: float,
    env: dict[str, str],
    specs: str,
    namespace: str,
    profile: str | None = None,
    broker_pid: int | None = None,
    counts: Path | None = None,
) -> list[Row]:
    examples = specs
    port = free_port()
    worker = [sys.executable, "-c", WORKER, bootstrap, namespace, examples]
    gateway = [sys.executable, "-m", "engine.gateway", "--port", str(port), "-f", examples]
    gateway += ["--bootstrap", bootstrap, "--namespace", namespace]
    stats = {}
    if counts is not None:  # each process under bench/kafka_requests.py, counting
        stats = {name: counts / f"{namespace}-{name}.json" for name in ("worker", "gateway")}
        counter = [sys.executable, str(REPO / "bench" / "kafka_requests.py")]
        worker = [*counter, str(stats["worker"]), *worker[1:]]
        gateway = [*counter, str(stats["gateway"]), *gateway[1:]]
    processes = [
        subprocess.Popen(worker, env=env),
        subprocess.Popen(gateway, env=env, stdout=subprocess.DEVNULL),
    ]
    try:
        wait_for_port(port, processes[1], "the gateway")
        url = f"http://127.0.0.1:{port}{PATH}"
        deadline = time.monotonic() + 60
        while True:  # ready when a request went all the way through
            try:
                if httpx.post(url, content=BODY, timeout=5).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gateway or worker did not come up")
            time.sleep(0.2)
        _settled(url, time.monotonic() + 60)
        wrk(url, script, 8, 2)  # warm up
        rows = []
        for connections in levels:
            spy = None
            if profile and connections == max(levels):
                spy = py_spy(processes[1].pid, f"{profile}-{connections}.txt")
            pids = {"gateway": processes[1].pid, "worker": processes[0].pid}
            if broker_pid is not None:
                pids["broker"] = broker_pid
            before = {name: cpu_s(pid) for name, pid in pids.items()}
            sent_before = {name: kafka_requests.read(path) for name, path in stats.items()}
            row = wrk(url, script, connections, seconds)
            if connections == max(levels) and row.requests:
                used = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
                row = replace(row, cpu_ms={n: 1000 * s / row.requests for n, s in used.items()})
                if stats:
                    time.sleep(2 * kafka_requests.INTERVAL_MS / 1000)  # the last figures
                    sent = {n: kafka_requests.read(path) for n, path in stats.items()}
                    row = replace(row, sent=per_request(sent_before, sent, row.requests))
            rows.append(row)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
        return rows
    finally:
        stop(processes[::-1])  # the gateway first: its callers' replies come from the worker


def _settled(url: str, deadline: float) -> None:
    """Wait until SETTLE_REQUESTS requests in a row (new ids: every partition) each took
    under SETTLE_S. On Apache Kafka the first answer comes while the group still hands
    the worker its 168 partitions one increment at a time: a 1-connection level started
    then measured the start (p50 136 ms at one connection, then 24 ms in the next level)."""
    with httpx.Client(timeout=10) as client:
        while True:
            slowest = 0.0
            for _ in range(SETTLE_REQUESTS):
                started = time.monotonic()
                client.post(url, content=BODY).raise_for_status()
                slowest = max(slowest, time.monotonic() - started)
            if slowest < SETTLE_S:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"requests still took {slowest:.1f}s after the start")


def py_spy(pid: int, out: str) -> subprocess.Popen:
    """py-spy sampling `pid` into `out` (collapsed stacks, native frames off) until SIGINT."""
    binary = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if binary is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy==0.4.3)")
    argv = [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    return subprocess.Popen(
        [*argv, "--nonblocking", "--output", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    parser.add_argument("--levels", default="1,8,64")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="py-spy the gateway at the highest level into PREFIX-<conns>.txt (collapsed stacks)",
    )
    parser.add_argument(
        "--only",
        choices=("examples", "alone"),
        help="run one of the two gateway settings (default both)",
    )
    parser.add_argument(
        "--count-requests",
        action="store_true",
        help="print the Kafka requests each client sent per HTTP request at the highest level",
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="a running broker (a Kafka node: `tensorflux broker --kafka`) instead of the "
        "embedded one; its CPU is not counted",
    )
    parser.add_argument(
        "--specs",
        metavar="DIR",
        default=str(REPO / "examples"),
        help="the specs of the 'examples/' setting (default examples/; it must hold chain-base)",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare ASGI app")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("not measured: wrk is not installed (apt-get install -y wrk)")
        return 1
    levels = [int(x) for x in args.levels.split(",")]
    load_before = _loadavg()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(WRK_SCRIPT % BODY)
    counts = Path(tempfile.mkdtemp(prefix="gw-counts-")) if args.count_requests else None
    gateways: list[Row] = []
    alones: list[Row] = []
    try:
        ceilings = [] if args.no_ceiling else ceiling(lua.name, levels, args.seconds, env)
        with contextlib.ExitStack() as stack:
            if args.bootstrap:
                bootstrap, broker_pid = args.bootstrap, None
                # Each run its own namespace: topics of an earlier run hold records.
                run = uuid.uuid4().hex[:6]
                namespaces = (f"bench-{run}", f"alone-{run}")
            else:
                broker = stack.enter_context(EmbeddedBroker())
                bootstrap, broker_pid = broker.bootstrap, broker.pid
                namespaces = ("bench", "alone")
            rtt = round_trip_ms(bootstrap)
            if args.only in (None, "examples"):
                gateways = gateway_rows(
                    bootstrap, lua.name, levels, args.seconds, env, args.specs,
                    namespaces[0], args.profile, broker_pid, counts,
                )  # fmt: skip
            if args.only in (None, "alone"):
                alone = stack.enter_context(tempfile.TemporaryDirectory())
                _chain_base_alone(Path(alone))
                alones = gateway_rows(
                    bootstrap, lua.name, levels, args.seconds, env, alone, namespaces[1],
                    broker_pid=broker_pid, counts=counts,
                )  # fmt: skip
            # Again through chain-base's outputs topic as the examples/ rows left it
            # (workers stopped): the embedded broker's fetches cost more with the
            # batches a partition holds, so this is what its replies' hop costs then.
            rtt_after = None
            if gateways:
                outputs = KafkaSettings(bootstrap=bootstrap, namespace=namespaces[0]).topics()
                rtt_after = round_trip_ms(bootstrap, outputs.pipeline_outputs(PIPELINE))
    finally:
        os.unlink(lua.name)
        if counts is not None:
            shutil.rmtree(counts, ignore_errors=True)
    where = args.bootstrap or "the embedded broker"
    print(f"POST {PATH} (1 step, INT32 [1,16] x2) with wrk -t1; {args.seconds:g} s a level")
    print(f"broker: {where}")
    print(f"load average before / after: {load_before} / {_loadavg()}")
    print(f"{'server':<28} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, rows in (
        ("HTTP ceiling (bare ASGI)", ceilings),
        ("gateway, examples/", gateways),
        ("gateway, chain-base alone", alones),
    ):
        for row in rows:
            print(
                f"{name:<28} {row.connections:>5} {row.rate:>9,.0f} {row.p50_ms:>8.2f} "
                f"{row.p99_ms:>8.2f} {row.errors:>7}"
            )
    for name, rows in (("examples/", gateways), ("chain-base alone", alones)):
        for row in rows:
            if row.cpu_ms:
                split = ", ".join(f"{n} {ms:.2f}" for n, ms in row.cpu_ms.items())
                print(f"CPU ms a request at {row.connections} connections, {name}: {split}")
            for client, sent in (row.sent or {}).items():
                split = ", ".join(f"{kind} {n:.3f}" for kind, n in sent.items())
                print(f"Kafka requests an HTTP request, {name}, {client}: {split}")
    print(f"produce->consume round trip on this broker: p50 {rtt:.2f} ms (x2: {2 * rtt:.2f} ms)")
    if rtt_after is not None:
        print(
            f"... through {PIPELINE}'s outputs topic after the examples/ rows: p50 {rtt_after:.2f} ms"
        )
    by_level = {row.connections: row for row in gateways}
    top = {row.connections: row for row in ceilings}
    if 64 in by_level and 64 in top:
        share = by_level[64].rate / top[64].rate
        print(f"64 connections: {share:.0%} of the ceiling (target >= 40%), "
              f"{by_level[64].rate / 315:.1f}x the 315 req/s before (target >= 10x)")  # fmt: skip
    if 1 in by_level:
        over = by_level[1].p50_ms - 2 * rtt
        print(f"1 connection: p50 {over:+.2f} ms over two round trips (target <= +2 ms)")
    print(f"errors: {sum(row.errors for row in gateways + alones)} (target 0)")
    return 0


def _chain_base_alone(into: Path) -> None:
    """examples/ reduced to chain-base and its model: the worker then fetches a handful
    of partitions instead of every topic of twelve pipelines."""
    (into / "pipelines").mkdir()
    shutil.copy(REPO / "examples" / "pipelines" / "chain-base.yaml", into / "pipelines")
    shutil.copytree(REPO / "examples" / "models" / "tfsimple1", into / "models" / "tfsimple1")
    shutil.copy(REPO / "examples" / "models" / "tfsimple1.yaml", into / "models")


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
