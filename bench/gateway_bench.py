"""Gateway throughput and latency: requests/s, p50 and p99 at concurrency 1, 8 and 64.

Starts the embedded broker, a worker and a gateway (each its own process, so
the load generator does not share their interpreter), then drives the
1-step pipeline `chain-base` (tfsimple1, INT32 [1,16]) over HTTP with httpx.

    .venv/bin/python bench/gateway_bench.py [--seconds 5] [--levels 1,8,64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.broker import EmbeddedBroker, free_port  # noqa: E402

PIPELINE = "chain-base"
BODY = {
    "inputs": [
        {"name": name, "datatype": "INT32", "shape": [1, 16], "data": list(range(1, 17))}
        for name in ("INPUT0", "INPUT1")
    ]
}

WORKER = """
import sys, threading, signal
from engine.config import KafkaSettings
from engine.runtime.worker import Worker
from engine.topology import TopicNames, compile_topology, load_files
settings = KafkaSettings(bootstrap=sys.argv[1], namespace=sys.argv[2])
topology = compile_topology(load_files([sys.argv[3]]), settings.topics())
worker = Worker(settings)
worker.apply(topology)
from engine.cli.stopping import stop_on_signals
worker.run(stop_on_signals(signal.SIGTERM))
"""


async def level(url: str, concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def caller() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                reply = await client.post(f"/v2/pipelines/{PIPELINE}/infer", json=BODY)
                if reply.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    failures += 1

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(latencies), latencies, failures


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    parser.add_argument("--levels", default="1,8,64")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with EmbeddedBroker() as broker:
        namespace = "bench"
        examples = str(REPO / "examples")
        port = free_port()
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, broker.bootstrap, namespace, examples], env=env
            ),
            subprocess.Popen(
                [sys.executable, "-m", "engine.gateway", "--port", str(port), "-f", examples]
                + ["--bootstrap", broker.bootstrap, "--namespace", namespace],
                env=env,
                stdout=subprocess.DEVNULL,
            ),
        ]
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:  # ready when a request went all the way through
                try:
                    if httpx.post(f"{url}/v2/pipelines/{PIPELINE}/infer", json=BODY).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("gateway or worker did not come up")
                time.sleep(0.2)
            asyncio.run(level(url, 8, 1.0))  # warm up
            print(f"gateway -> Kafka -> worker -> Kafka -> gateway, pipeline {PIPELINE} (1 step)")
            print(
                f"{'concurrency':>11} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
            )
            for concurrency in levels:
                started = time.perf_counter()
                done, latencies, failures = asyncio.run(level(url, concurrency, args.seconds))
                elapsed = time.perf_counter() - started
                print(
                    f"{concurrency:>11} {done:>9} {done / elapsed:>9.1f} "
                    f"{percentile(latencies, 0.5) * 1000:>8.1f} "
                    f"{percentile(latencies, 0.99) * 1000:>8.1f} {failures:>7}",
                    flush=True,
                )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
