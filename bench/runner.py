"""`make bench`: tensorflux against the plain Kafka loop and its peers, in one run.

    make bench                      # full run (~10 min on 2 cores)
    make bench BENCH_ARGS=--quick   # smaller N, one repeat (~2 min)
    make bench BENCH_ARGS=--gateway-only  # the HTTP gateway's rows alone (~1.5 min)
    .venv/bin/python -m bench --bootstrap HOST:PORT --only tf-1step-1w,plain
    .venv/bin/python -m bench --sweep    # knob sweep of the 1-step pipeline
    .venv/bin/python -m bench --soak 300 # worker RSS at a constant rate for 5 minutes
    make bench BENCH_ARGS=--idle    # CPU of `tensorflux up -f examples/` with no traffic (60 s)
    make bench BENCH_ARGS=--hotload # answers' longest gap while the engine changes (add --kafka)
    .venv/bin/python -m bench --compute --quick  # the real-model rows and section alone
    .venv/bin/python -m bench --compute --only tf-cnn-1w,tf-cnn-4p-1w,tf-cnn-4p-2w
    .venv/bin/python -m bench.remote_bench --quick  # the remote-model section alone (MLServer)
    .venv/bin/python -m bench.cli_latency   # control commands' wall time on an idle engine

Every contender runs on the same broker: the requests are produced to its
input topic before it starts, then it is started (a subprocess) and timed from
its first output to its N-th (requests/s); then 200 requests/s are paced
through it for a few seconds (p50/p99 end-to-end latency, from produce() in
this process to receipt here); then its peak RSS (VmHWM) is read and it is
stopped. Each contender runs `--repeat` times in fresh topics; medians are
quoted. The peers (Quix Streams, faust-streaming) run in .venv-bench. After the
contenders come the real-model section (`compute_bench.py`: the cnn and mlp256 rows
against onnxruntime alone at the worker's batch sizes) and, unless `--only` is given without `--overload`,
the overload section (`overload_bench.py`: a 20k flood of a 50 ms python model), and,
unless `--only` is given without `--remote`, the remote-model section (`remote_bench.py`:
a real MLServer called directly and from pipeline steps, and the in-process sklearn step).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

from bench import (
    compute_bench,
    hotload,
    idle,
    overload_bench,
    poison_bench,
    remote_bench,
    replay_bench,
)
from bench.contenders import (
    CONTENDERS,
    DEFAULT_CHUNK,
    DEFAULT_FETCH_WAIT_MS,
    DEFAULT_LINGER_MS,
    RESULTS,
    ROOT,
    Contender,
    contenders,
)
from bench.otlp_sink import PLACEHOLDER, OtlpSink
from bench.table import print_table, report
from bench.timing import Result, run_once, soak
from engine.broker import EmbeddedBroker
from engine.kafka_cluster import KafkaCluster


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--bootstrap", help="use this Kafka instead of an embedded broker")
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="start a local Apache Kafka node (tensorflux broker --kafka) and run on it",
    )
    parser.add_argument("--quick", action="store_true", help="N/4, one repeat, short latency phase")
    parser.add_argument("--repeat", type=int, help="runs per contender (default 3, quick 1)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every N by this")
    parser.add_argument(
        "--only", help="comma-separated contender names: " + ",".join(c.name for c in CONTENDERS)
    )
    parser.add_argument("--rate", type=float, default=200.0, help="paced latency rate, req/s")
    parser.add_argument("--latency-requests", type=int, help="requests in the latency phase (600)")
    parser.add_argument(
        "--chunk", type=int, default=DEFAULT_CHUNK, help="consume chunk (plain loop and workers)"
    )
    parser.add_argument("--linger", type=int, default=DEFAULT_LINGER_MS, help="producer linger.ms")
    parser.add_argument(
        "--fetch-wait", type=int, default=DEFAULT_FETCH_WAIT_MS, help="fetch.wait.max.ms"
    )
    parser.add_argument(
        "--sweep", action="store_true", help="sweep the worker knobs on the 1-step pipeline"
    )
    parser.add_argument(
        "--soak",
        type=float,
        metavar="SECONDS",
        help="instead: one worker on the 1-step pipeline at --soak-rate for SECONDS, RSS sampled",
    )
    parser.add_argument(
        "--idle",
        type=float,
        nargs="?",
        const=60.0,
        metavar="SECONDS",
        help="instead: CPU of `tensorflux up -f examples/` with no traffic (default 60 s)",
    )
    parser.add_argument(
        "--hotload",
        action="store_true",
        help="instead: answers' longest gap while pipelines load and workers come and go",
    )
    parser.add_argument("--soak-rate", type=float, default=2000.0, help="req/s during --soak")
    parser.add_argument(
        "--gateway-only", action="store_true", help="only the HTTP gateway's rows (wrk)"
    )
    parser.add_argument(
        "--compute",
        action="store_true",
        help="only the real-model rows (tf-cnn-*, tf-mlp*) and their section, or those of --only",
    )
    parser.add_argument(
        "--overload",
        action="store_true",
        help="run the overload section even with --only (it runs by default without --only)",
    )
    parser.add_argument(
        "--remote",
        action="store_true",
        help="run the remote-model section even with --only (it runs by default without --only)",
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--output", default=str(RESULTS / "latest.md"))
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.latency_requests is None:
        args.latency_requests = 200 if args.quick else 600
    if args.quick:
        args.scale *= 0.25
    if args.compute and not args.only:
        args.only = ",".join(compute_bench.ROWS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    logdir = RESULTS / "logs"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir()
    if args.idle:
        before = _loadavg()
        cost = idle.measure(args.idle, logdir / "idle-up.log")
        text = idle.section(cost) + f"\nload average before / after: {before} / {_loadavg()}\n"
        (RESULTS / "idle.md").write_text(text)
        print(text + f"written to {RESULTS / 'idle.md'}")
        return 0
    if args.hotload:
        flags = ["--bootstrap", args.bootstrap] if args.bootstrap else []
        return hotload.main(flags + (["--kafka"] if args.kafka else []))
    loads = [_loadavg(), ""]
    broker: EmbeddedBroker | KafkaCluster | None = None
    if args.kafka and not args.bootstrap:
        broker = KafkaCluster().start()
        args.bootstrap = broker.bootstrap
    elif not args.bootstrap and not args.gateway_only:
        broker = EmbeddedBroker().start()
        args.bootstrap = broker.bootstrap
    results: list[Result] = []
    if args.soak:
        try:
            text = soak(args)
        finally:
            if broker is not None:
                broker.stop()
        (RESULTS / "soak.md").write_text(text)
        print(text + f"written to {RESULTS / 'soak.md'}")
        return 0
    compute_bench.ensure_models()
    extra = ""
    alone: dict[str, float] = {}
    sink = OtlpSink().__enter__()  # the traced contender's spans go here
    try:
        for contender in [] if args.gateway_only else contenders(args):
            contender = with_sink(contender, sink.url)
            result = Result(contender)
            results.append(result)
            n = max(1000, int(contender.n * args.scale))
            for i in range(args.repeat):
                try:
                    run = run_once(contender, args.bootstrap, n, args, logdir)
                except Exception as error:  # one failing contender does not stop the bench
                    result.failure = str(error)
                    print(f"  {contender.name} run {i + 1}: FAILED {error}", flush=True)
                    break
                result.runs.append(run)
                # onnxruntime alone at this run's batch sizes, right after it (same load)
                compute_bench.alone_after(contender, run, args)
                model = compute_bench.describe(run)
                print(
                    f"  {contender.name} run {i + 1}/{args.repeat}: {run.rate:,.0f} req/s, "
                    f"p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, RSS {run.rss_mb:.0f} MB, "
                    f"{run.cpu_us_per_req:.1f} CPU µs/req{model} (N={n}, load {_loadavg()})",
                    flush=True,
                )
        alone = compute_bench.alone_for(results)
        extra = compute_bench.section(results, args, alone)
        if args.compute:
            pass  # the compute rows alone
        elif not args.gateway_only and (args.overload or not args.only):
            print("  overload section ...", flush=True)
            extra += overload_bench.section(args.bootstrap, args.quick, logdir)
            print("  poison storm section ...", flush=True)
            extra += poison_bench.section(args.bootstrap, args.quick, logdir)
        if not (args.gateway_only or args.compute) and (args.remote or not args.only):
            print("  remote models section ...", flush=True)
            extra += remote_bench.section(args.bootstrap, args.quick, logdir)
    finally:
        sink.__exit__()
        if broker is not None:
            broker.stop()
    if args.compute:
        loads[1] = _loadavg()
        text = report(results, args, (loads[0], loads[1]), alone) + extra
        Path(args.output).write_text(text)
        print_table(text)
        print(f"written to {args.output}")
        return 0
    gateway = _gateway(args)
    if args.gateway_only:
        Path(args.output).write_text(gateway)
        print(gateway + f"written to {args.output}")
        return 0
    # Replay + diff through the 1-step pipeline, on its own broker unless --bootstrap.
    replays = max(1000, int(50_000 * args.scale))
    gateway += replay_bench.section(None if broker else args.bootstrap, replays, logdir)
    loads[1] = _loadavg()
    text = report(results, args, (loads[0], loads[1]), alone) + extra + gateway
    Path(args.output).write_text(text)
    print_table(text)
    print(f"written to {args.output}")
    return 0


def with_sink(contender: Contender, url: str) -> Contender:
    """The contender with the OTLP sink's URL where its env names the sink."""
    env = tuple((key, url if value == PLACEHOLDER else value) for key, value in contender.env)
    return dataclasses.replace(contender, env=env)


def _gateway(args: argparse.Namespace) -> str:
    """The HTTP gateway's own bench (bench/gateway_bench.py), when it exists."""
    script = ROOT / "bench" / "gateway_bench.py"
    if not script.exists():
        return "\n## HTTP gateway\n\nnot measured: bench/gateway_bench.py does not exist yet.\n"
    # It starts its own embedded broker, worker and gateway (not the broker above).
    argv = [sys.executable, str(script), "--seconds", "2" if args.quick else "5"]
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "\n## HTTP gateway\n\nbench/gateway_bench.py ran past 300 s.\n"
    body = done.stdout.strip() or done.stderr.strip()[-2000:]
    return (
        f"\n## HTTP gateway (bench/gateway_bench.py, its own broker; exit {done.returncode})"
        f"\n\n```\n{body}\n```\n"
    )


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"
