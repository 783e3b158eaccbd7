"""`make bench BENCH_ARGS=--idle`: what an engine with nothing to do costs, from /proc.

`tensorflux up -f examples/` (its own embedded broker on a free port) is started,
waited for until its gateway says ready, asked one inference (an engine that has
served and now idles: the gateway listens to that pipeline's outputs from then
on) and given a settling pause, then
the CPU ticks of the engine process and of the broker (its child) are read from
/proc at the start and the end of a window with no traffic. The target (issue 17)
is both together at most 10% of one core. The engine's busiest threads are listed
too, since they say which client is still fetching.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
TARGET_PERCENT = 10.0
READY_TIMEOUT_S = 120.0
SETTLE_S = 10.0
"""After ready: the gateway's catalog, the first heartbeats and rebalances settle."""
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
WARM_UP_PIPELINE = "tfsimples"


@dataclass(frozen=True)
class IdleCost:
    seconds: float
    engine_percent: float
    broker_percent: float
    threads: list[tuple[str, float]]
    """The engine's threads by name (librdkafka names them rdk:...), % of a core."""

    @property
    def total_percent(self) -> float:
        return self.engine_percent + self.broker_percent


def _ticks(stat_path: Path) -> int:
    # Fields after the command name (which may hold spaces) start at ')'.
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _thread_ticks(pid: int) -> Counter[str]:
    by_name: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            by_name[name] += _ticks(task / "stat")
        except OSError:
            continue  # the thread ended between listing and reading
    return by_name


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@contextlib.contextmanager
def examples_engine(log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`tensorflux up -f examples/` (its own embedded broker on a free port, its output in
    `log_path`), once its gateway says ready: the process and its HTTP port; stopped after."""
    http_port = free_port()
    argv = [
        str(Path(sys.executable).parent / "tensorflux"),
        "up",
        "-f",
        str(ROOT / "examples"),
        "--broker-port",
        "0",
        "--http-port",
        str(http_port),
    ]
    with log_path.open("wb") as log:
        engine = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(engine, http_port, log_path)
        yield engine, http_port
    finally:
        engine.terminate()
        try:
            engine.wait(40)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()


def measure(seconds: float, log_path: Path) -> IdleCost:
    with examples_engine(log_path) as (engine, http_port):
        _infer_once(http_port)
        time.sleep(SETTLE_S)
        brokers = _children(engine.pid)
        if not brokers:
            raise RuntimeError("tensorflux up started no embedded broker")
        broker = brokers[0]
        start = time.monotonic()
        engine_0, broker_0 = (
            _ticks(Path(f"/proc/{engine.pid}/stat")),
            _ticks(Path(f"/proc/{broker}/stat")),
        )
        threads_0 = _thread_ticks(engine.pid)
        time.sleep(seconds)
        engine_1, broker_1 = (
            _ticks(Path(f"/proc/{engine.pid}/stat")),
            _ticks(Path(f"/proc/{broker}/stat")),
        )
        threads_1 = _thread_ticks(engine.pid)
        elapsed = time.monotonic() - start
        if engine.poll() is not None:
            raise RuntimeError(f"tensorflux up exited during the window (see {log_path})")

    def percent(ticks: int) -> float:
        return 100.0 * ticks / TICKS_PER_S / elapsed

    threads = sorted(
        ((name, percent(threads_1[name] - threads_0[name])) for name in threads_1),
        key=lambda item: -item[1],
    )
    return IdleCost(elapsed, percent(engine_1 - engine_0), percent(broker_1 - broker_0), threads)


def _wait_ready(engine: subprocess.Popen[bytes], http_port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://127.0.0.1:{http_port}/v2/health/ready"
    while time.monotonic() < deadline:
        if engine.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"tensorflux up exited at start: {tail}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"tensorflux up not ready after {READY_TIMEOUT_S:.0f} s (see {log_path})")


def _infer_once(http_port: int) -> None:
    row = list(range(1, 17))
    body = {
        "inputs": [
            {"name": name, "datatype": "INT32", "shape": [1, 16], "data": row}
            for name in ("INPUT0", "INPUT1")
        ]
    }
    url = f"http://127.0.0.1:{http_port}/v2/pipelines/{WARM_UP_PIPELINE}/infer"
    reply = httpx.post(url, json=body, timeout=60)
    if reply.status_code != 200:
        raise RuntimeError(f"the warm-up inference got {reply.status_code}: {reply.text[:300]}")


def section(cost: IdleCost) -> str:
    verdict = "met" if cost.total_percent <= TARGET_PERCENT else "MISSED"
    busiest = ", ".join(f"{name} {share:.1f}" for name, share in cost.threads[:6] if share > 0)
    return (
        f"\n## Idle (`tensorflux up -f examples/`, no traffic, {cost.seconds:.0f} s from /proc)\n\n"
        "| what | engine % of a core | broker % of a core | together | target |\n"
        "|---|---|---|---|---|\n"
        f"| idle, examples/ loaded | {cost.engine_percent:.1f} | {cost.broker_percent:.1f} "
        f"| {cost.total_percent:.1f} | ≤ {TARGET_PERCENT:.0f} ({verdict}) |\n\n"
        f"engine's busiest threads (% of a core): {busiest or 'none'}\n"
    )
