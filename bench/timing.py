"""Timing the contenders: one run (throughput, latency, RSS, CPU) and the soak."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import load, model_stats
from bench.contenders import (
    BENCH_BIN,
    BENCH_MODELS,
    MODELS,
    PIPELINES,
    RESULTS,
    ROOT,
    VENV_BIN,
    Contender,
    model_spec,
)
from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.runtime.control import ControlPlane
from engine.topology.topics import TopicNames


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    rss_mb: float
    cpu_us_per_req: float
    errors: int
    answered: int
    calls: model_stats.Calls = model_stats.Calls()
    """The workers' model calls in the timed window (tensorflux only)."""
    alone: float = float("nan")
    """onnxruntime alone's req/s at this run's batch sizes, right after it (compute rows)."""
    alone_cpu_us: float = float("nan")
    """... and its CPU µs a request."""


@dataclass
class Result:
    contender: Contender
    runs: list[Run] = field(default_factory=list)
    failure: str = ""

    def median(self, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs]
        return statistics.median(values) if values else float("nan")


# -- processes ---------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[float, float]:
    """(cpu seconds, peak RSS in MB) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
        return cpu, hwm
    except (OSError, IndexError, ValueError):
        return float("nan"), float("nan")


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT
    )


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5  # measured already: a slow shutdown is not waited out
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, deadline - time.monotonic()))
        if process.poll() is None:
            process.kill()
            process.wait()


# -- one run -----------------------------------------------------------------------------


def run_once(
    contender: Contender, bootstrap: str, n: int, args: argparse.Namespace, logdir: Path
) -> Run:
    ns = f"b{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap=bootstrap, namespace=ns, partitions=contender.partitions)
    admin = TopicAdmin(settings)
    env = {**os.environ, **dict(contender.env)}
    log = logdir / f"{contender.name}-{ns}.log"
    group = f"bench-{ns}"
    ports: list[int] = []  # the workers' metrics ports: their model calls
    if contender.kind == "tensorflux":
        path, pipeline, models = PIPELINES[contender.pipeline]
        topics = TopicNames(settings.topic_prefix, ns)
        input_topic, output_topic = (
            topics.pipeline_inputs(pipeline),
            topics.pipeline_outputs(pipeline),
        )
        # The first step's inputs topic: written as the worker takes up the first chunk.
        first_step = {
            "1step": "tfsimple1",
            "join": "tfsimple1",
            "cond": "conditional",
            "mlp": "mlp256",
            "cnn": "cnn",
        }
        start_topic = topics.step_inputs(pipeline, first_step[contender.pipeline])
        admin.ensure([input_topic, output_topic, start_topic])
        ports = [model_stats.free_port() for _ in range(contender.workers)]
        plane = ControlPlane(settings)
        try:
            plane.load([str(model_spec(m)) for m in models] + [str(path)])
        finally:
            plane.close()
        argv_of = [
            [
                str(VENV_BIN / "tensorflux"),
                "worker",
                "--model-root",
                str(MODELS),
                "--model-root",
                str(BENCH_MODELS),
                "--bootstrap",
                bootstrap,
                "--namespace",
                ns,
                "--partitions",
                str(contender.partitions),
                "--worker-id",
                f"bench-{i}",
                "--metrics-port",
                str(port),
            ]
            for i, port in enumerate(ports)
        ]
    else:
        input_topic, output_topic, start_topic = f"bench.{ns}.in", f"bench.{ns}.out", None
        admin.ensure([input_topic, output_topic])
        model = str(MODELS / "tfsimple1" / "model.onnx")
        if contender.kind == "plain":
            argv = [sys.executable, str(ROOT / "bench/apps/plain_loop.py"), bootstrap, group]
            argv += [
                input_topic,
                output_topic,
                str(args.chunk),
                str(args.linger),
                str(args.fetch_wait),
            ]
        elif contender.kind == "quix":
            argv = [
                str(BENCH_BIN / "python"),
                str(ROOT / "bench/apps/quix_app.py"),
                bootstrap,
                group,
            ]
            argv += [input_topic, output_topic, model]
        else:
            datadir = tempfile.mkdtemp(prefix="bench-faust-")
            argv = [
                str(BENCH_BIN / "python"),
                str(ROOT / "bench/apps/faust_app.py"),
                bootstrap,
                group,
            ]
            argv += [input_topic, output_topic, model, datadir]
        argv_of = [argv]

    load.preproduce(bootstrap, input_topic, contender.workload, n)
    receiver = load.Receiver(bootstrap, output_topic, contender.partitions, start_topic)
    receiver.start()
    processes = [_start(argv, env, log) for argv in argv_of]
    try:
        deadline = time.monotonic() + args.startup_timeout + n / 1000
        cpu_at_first: float | None = None
        calls_at_first = model_stats.Calls()
        while receiver.count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{receiver.count}/{n} outputs before the deadline (log {log})")
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"contender exited early (log {log}): {_tail(log)}")
            if cpu_at_first is None and receiver.began():
                cpu_at_first = sum(_proc_stat(p.pid)[0] for p in processes)
                count_at_first = receiver.count
                calls_at_first = model_stats.scrape(ports)
            time.sleep(0.005)
        cpu_at_end = sum(_proc_stat(p.pid)[0] for p in processes)
        rate = receiver.rate()
        calls = model_stats.scrape(ports) - calls_at_first
        cpu_per_req = (
            (cpu_at_end - cpu_at_first) / max(1, n - count_at_first) * 1e6
            if cpu_at_first is not None
            else float("nan")
        )
        latencies = load.paced(
            bootstrap, input_topic, contender.workload, receiver, args.rate, args.latency_requests
        )
        rss = max(_proc_stat(p.pid)[1] for p in processes)
    finally:
        _stop(processes)
        receiver.stop.set()
        receiver.join(5)
        with contextlib.suppress(Exception):
            admin.delete(_run_topics(admin, ns))
    return Run(
        rate=rate,
        p50_ms=load.percentile(latencies, 50),
        p99_ms=load.percentile(latencies, 99),
        rss_mb=rss,
        cpu_us_per_req=cpu_per_req,
        errors=receiver.errors,
        answered=len(latencies),
        calls=calls,
    )


def _run_topics(admin: TopicAdmin, ns: str) -> list[str]:
    """The broker keeps everything in memory: drop a run's topics when it is done."""
    return [t for t in admin.existing() if f".{ns}." in t or t.endswith(f".{ns}")]


def _tail(path: Path, lines: int = 8) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def soak(args: argparse.Namespace) -> str:
    """Worker RSS over a long run at a constant rate (issue #7: flat within 10%)."""
    ns = f"s{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap=args.bootstrap, namespace=ns)
    path, pipeline, models = PIPELINES["1step"]
    topics = TopicNames(settings.topic_prefix, ns)
    inputs, outputs = topics.pipeline_inputs(pipeline), topics.pipeline_outputs(pipeline)
    TopicAdmin(settings).ensure([inputs, outputs])
    plane = ControlPlane(settings)
    plane.load([str(MODELS / f"{m}.yaml") for m in models] + [str(path)])
    plane.close()
    receiver = load.Receiver(args.bootstrap, outputs, settings.partitions)
    receiver.start()
    worker = _start(
        [str(VENV_BIN / "tensorflux"), "worker", "--bootstrap", args.bootstrap, "--namespace", ns],
        dict(os.environ),
        RESULTS / "logs" / f"soak-{ns}.log",
    )
    producer = load.producer(args.bootstrap, **{"linger.ms": 2})
    samples: list[tuple[float, float]] = []
    sent = 0
    try:
        start = time.perf_counter()
        next_sample = start
        while (elapsed := time.perf_counter() - start) < args.soak:
            due = int(elapsed * args.soak_rate)
            while sent < due:
                key = f"l-{sent}"
                producer.produce(inputs, load.request_payload("tfsimple", key, sent), key)
                sent += 1
            producer.poll(0)
            if time.perf_counter() >= next_sample:
                rss = Path(f"/proc/{worker.pid}/status").read_text().split("VmRSS:")[1]
                samples.append((elapsed, int(rss.split()[0]) / 1024))
                next_sample += 10
            time.sleep(0.005)
        producer.flush(10)
        deadline = time.monotonic() + 30
        while len(receiver.arrivals) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        _stop([worker])
        receiver.stop.set()
    warm = min(60.0, args.soak / 3)  # start-up (model load, first chunks) is not growth
    settled = [rss for t, rss in samples if t >= warm] or [rss for _, rss in samples]
    growth = (settled[-1] - settled[0]) / settled[0] * 100 if settled else float("nan")
    verdict = "met" if abs(growth) <= 10 else "MISSED"
    trace = ", ".join(f"{t:.0f}s {rss:.0f}" for t, rss in samples[:: max(1, len(samples) // 10)])
    return (
        f"## Soak: 1-step pipeline, 1 worker, {args.soak_rate:.0f} req/s for {args.soak:.0f} s\n\n"
        f"- answered {len(receiver.arrivals):,} of {sent:,} requests\n"
        f"- worker RSS MB from {warm:.0f} s to the end: {settled[0]:.0f} → {settled[-1]:.0f} "
        f"({growth:+.1f}%; target within 10%: {verdict})\n"
        f"- RSS MB over time: {trace}\n"
    )
