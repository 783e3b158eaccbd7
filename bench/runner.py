"""`make bench`: tensorflux against the plain Kafka loop and its peers, in one run.

    make bench                      # full run (~10 min on 2 cores)
    make bench BENCH_ARGS=--quick   # smaller N, one repeat (~2 min)
    .venv/bin/python -m bench --bootstrap HOST:PORT --only tf-1step-1w,plain
    .venv/bin/python -m bench --sweep    # knob sweep of the 1-step pipeline
    .venv/bin/python -m bench --soak 300 # worker RSS at a constant rate for 5 minutes

Every contender runs on the same broker: the requests are produced to its
input topic before it starts, then it is started (a subprocess) and timed from
its first output to its N-th (requests/s); then 200 requests/s are paced
through it for a few seconds (p50/p99 end-to-end latency, from produce() in
this process to receipt here); then its peak RSS (VmHWM) is read and it is
stopped. Each contender runs `--repeat` times in fresh topics; medians are
quoted. The peers (Quix Streams, faust-streaming) run in .venv-bench.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import load, replay_bench
from engine.admin import TopicAdmin
from engine.broker import EmbeddedBroker
from engine.config import KafkaSettings
from engine.runtime.control import ControlPlane
from engine.topology.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BENCH_BIN = ROOT / ".venv-bench" / "bin"
RESULTS = ROOT / "bench" / "results"
MODELS = ROOT / "examples" / "models"
PIPELINES = {
    "1step": (ROOT / "bench" / "pipelines" / "onestep.yaml", "onestep", ["tfsimple1"]),
    "join": (
        ROOT / "examples" / "pipelines" / "tfsimples-join.yaml",
        "tfsimples-join",
        ["tfsimple1", "tfsimple2", "tfsimple3"],
    ),
    "cond": (
        ROOT / "examples" / "pipelines" / "conditional.yaml",
        "conditional-routing",
        ["conditional", "mul10", "add10"],
    ),
}

# Worker knobs the bench passes on (the defaults the worker ships, chosen by --sweep).
DEFAULT_CHUNK = 1000
DEFAULT_LINGER_MS = 2
DEFAULT_FETCH_WAIT_MS = 10


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # plain | quix | faust | tensorflux
    n: int
    """Requests in the throughput phase of a full run (about 2-4 s of work each)."""
    pipeline: str = "1step"
    workers: int = 1
    partitions: int = 1
    workload: str = "tfsimple"
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for the contender (knob sweep)."""
    label: str = ""


CONTENDERS = [
    Contender("plain", "plain", 400_000, label="plain consume→produce (ceiling)"),
    Contender("quix", "quix", 40_000, label="Quix Streams app (1 step)"),
    Contender("faust", "faust", 8_000, label="faust-streaming agent (1 step)"),
    Contender("tf-1step-1w", "tensorflux", 120_000, label="tensorflux 1-step, 1 worker"),
    Contender(
        "tf-1step-2w",
        "tensorflux",
        160_000,
        workers=2,
        partitions=2,
        label="tensorflux 1-step, 2 workers",
    ),
    Contender(
        "tf-join-1w",
        "tensorflux",
        30_000,
        pipeline="join",
        label="tensorflux 3-step join, 1 worker",
    ),
    Contender(
        "tf-join-2w",
        "tensorflux",
        40_000,
        pipeline="join",
        workers=2,
        partitions=2,
        label="tensorflux 3-step join, 2 workers",
    ),
    Contender(
        "tf-cond-1w",
        "tensorflux",
        20_000,
        pipeline="cond",
        workload="conditional",
        label="tensorflux conditional, 1 worker",
    ),
    Contender(
        "tf-cond-2w",
        "tensorflux",
        32_000,
        pipeline="cond",
        workload="conditional",
        workers=2,
        partitions=2,
        label="tensorflux conditional, 2 workers",
    ),
]


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    rss_mb: float
    cpu_us_per_req: float
    errors: int
    answered: int


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
    if contender.kind == "tensorflux":
        path, pipeline, models = PIPELINES[contender.pipeline]
        topics = TopicNames(settings.topic_prefix, ns)
        input_topic, output_topic = (
            topics.pipeline_inputs(pipeline),
            topics.pipeline_outputs(pipeline),
        )
        # The first step's inputs topic: written as the worker takes up the first chunk.
        first_step = {"1step": "tfsimple1", "join": "tfsimple1", "cond": "conditional"}
        start_topic = topics.step_inputs(pipeline, first_step[contender.pipeline])
        admin.ensure([input_topic, output_topic, start_topic])
        plane = ControlPlane(settings)
        try:
            plane.load([str(MODELS / f"{m}.yaml") for m in models] + [str(path)])
        finally:
            plane.close()
        argv_of = [
            [
                str(VENV_BIN / "tensorflux"),
                "worker",
                "--bootstrap",
                bootstrap,
                "--namespace",
                ns,
                "--partitions",
                str(contender.partitions),
                "--worker-id",
                f"bench-{i}",
            ]
            for i in range(contender.workers)
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
        while receiver.count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{receiver.count}/{n} outputs before the deadline (log {log})")
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"contender exited early (log {log}): {_tail(log)}")
            if cpu_at_first is None and receiver.began():
                cpu_at_first = sum(_proc_stat(p.pid)[0] for p in processes)
                count_at_first = receiver.count
            time.sleep(0.005)
        cpu_at_end = sum(_proc_stat(p.pid)[0] for p in processes)
        rate = receiver.rate()
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
    )


def _run_topics(admin: TopicAdmin, ns: str) -> list[str]:
    """The broker keeps everything in memory: drop a run's topics when it is done."""
    return [t for t in admin.existing() if f".{ns}." in t or t.endswith(f".{ns}")]


def _tail(path: Path, lines: int = 8) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# -- the report --------------------------------------------------------------------------


def _fmt_rate(value: float) -> str:
    return "—" if value != value else f"{value:,.0f}"


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "—" if not (a == a and b == b and b > 0) else f"{a / b:.2f}×"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def report(results: list[Result], args: argparse.Namespace, loads: tuple[str, str]) -> str:
    by_name = {r.contender.name: r for r in results}

    def rate(name: str) -> float:
        r = by_name.get(name)
        return r.median("rate") if r and r.runs else float("nan")

    ceiling, quix, faust = rate("plain"), rate("quix"), rate("faust")
    header = (
        "| contender | req/s (median) | range | × ceiling | × Quix | × faust | p50 ms | p99 ms "
        "| peak RSS MB | worker CPU µs/req |"
    )
    lines = [
        f"# tensorflux bench — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"- machine: {machine()}",
        f"- command: `{' '.join(['python -m bench', *sys.argv[1:]])}`; repeats: {args.repeat}; "
        f"latency: {args.rate:.0f} req/s paced, {args.latency_requests} requests",
        f"- load average before / after: {loads[0]} / {loads[1]}",
        f"- worker knobs: chunk {args.chunk}, linger.ms {args.linger}, fetch.wait.max.ms "
        f"{args.fetch_wait}; receiver fetch.wait.max.ms {load.RECEIVER_FETCH_WAIT_MS}",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for r in results:
        c = r.contender
        if not r.runs:
            lines.append(f"| {c.label or c.name} | failed: {r.failure[:120]} |" + " |" * 8)
            continue
        rates = [run.rate for run in r.runs]
        errors = sum(run.errors for run in r.runs)
        note = f" ({errors} error records)" if errors else ""
        rss = max(run.rss_mb for run in r.runs)
        lines.append(
            f"| {c.label or c.name}{note} | {_fmt_rate(r.median('rate'))} "
            f"| {_fmt_rate(min(rates))}–{_fmt_rate(max(rates))} "
            f"| {_ratio(r.median('rate'), ceiling)} | {_ratio(r.median('rate'), quix)} "
            f"| {_ratio(r.median('rate'), faust)} | {_fmt(r.median('p50_ms'))} "
            f"| {_fmt(r.median('p99_ms'))} | {_fmt(rss, 0)} | {_fmt(r.median('cpu_us_per_req'))} |"
        )
    one = rate("tf-1step-1w")
    targets = [
        ("1-step ≥ 25% of the ceiling", one / ceiling if ceiling else float("nan"), 0.25),
        ("1-step ≥ 2× Quix Streams", one / quix if quix else float("nan"), 2.0),
        ("1-step ≥ 10× faust", one / faust if faust else float("nan"), 10.0),
        ("3-step join ≥ 40% of 1-step", rate("tf-join-1w") / one if one else float("nan"), 0.40),
        (
            "2 workers ≥ 1.6× 1 worker (1-step)",
            rate("tf-1step-2w") / one if one else float("nan"),
            1.6,
        ),
    ]
    plain_p50 = by_name["plain"].median("p50_ms") if "plain" in by_name else float("nan")
    tf_p50 = by_name["tf-1step-1w"].median("p50_ms") if "tf-1step-1w" in by_name else float("nan")
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for name, value, goal in targets:
        verdict = "—" if value != value else ("met" if value >= goal else "MISSED")
        lines.append(f"| {name} | {_fmt(value, 2)} | {verdict} |")
    # Kafka hops to the receiver: plain 2 (loop, receiver); 1-step 2 as well (the step,
    # which writes the pipeline's output itself, and the receiver).
    hop = tf_p50 / 2 - plain_p50 / 2
    verdict = "—" if hop != hop else ("met" if hop <= 2.0 else "MISSED")
    lines.append(
        f"| 1-step p50 per Kafka hop within 2 ms of the plain loop's | {_fmt(hop, 2)} ms "
        f"({_fmt(tf_p50 / 2, 1)} vs {_fmt(plain_p50 / 2, 1)}) | {verdict} |"
    )
    lines += [
        "",
        "req/s: N requests pre-produced, contender started, timed from its first output "
        "(tensorflux: the first record its first step writes) to its N-th output. Latency: produce() to receipt in the bench process (the receiver's "
        "own fetch wait included for everyone). RSS: peak (VmHWM), the larger of two workers. "
        "CPU µs/req: the contender's processes' CPU time over the timed window / requests.",
    ]
    return "\n".join(lines) + "\n"


def print_table(text: str) -> None:
    try:
        from rich.console import Console
        from rich.markdown import Markdown

        Console(width=200).print(Markdown(text))
    except Exception:  # rich is a convenience; the markdown is the result
        print(text)


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--bootstrap", help="use this Kafka instead of an embedded broker")
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
    parser.add_argument("--soak-rate", type=float, default=2000.0, help="req/s during --soak")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--output", default=str(RESULTS / "latest.md"))
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.latency_requests is None:
        args.latency_requests = 200 if args.quick else 600
    if args.quick:
        args.scale *= 0.25
    return args


def knob_env(chunk: int, linger: int, fetch_wait: int) -> tuple[tuple[str, str], ...]:
    return (
        ("TENSORFLUX_WORKER_CHUNK", str(chunk)),
        ("TENSORFLUX_KAFKA_LINGER_MS", str(linger)),
        ("TENSORFLUX_KAFKA_FETCH_WAIT_MAX_MS", str(fetch_wait)),
    )


def contenders(args: argparse.Namespace) -> list[Contender]:
    if args.sweep:
        base = next(c for c in CONTENDERS if c.name == "tf-1step-1w")
        chosen = [next(c for c in CONTENDERS if c.name == "plain")]
        for chunk, linger, fetch_wait, parts in [
            (1000, 2, 10, 1),
            (250, 2, 10, 1),
            (4000, 2, 10, 1),
            (1000, 0, 10, 1),
            (1000, 10, 10, 1),
            (1000, 2, 1, 1),
            (1000, 2, 50, 1),
            (1000, 2, 10, 2),
        ]:
            name = f"tf-1step c{chunk} l{linger} f{fetch_wait} p{parts}"
            chosen.append(
                Contender(
                    name,
                    "tensorflux",
                    base.n,
                    partitions=parts,
                    env=knob_env(chunk, linger, fetch_wait),
                    label=name,
                )
            )
        return chosen
    chosen = CONTENDERS
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {c.name for c in CONTENDERS}
        if unknown:
            raise SystemExit(
                f"unknown contenders {sorted(unknown)}; known: {[c.name for c in CONTENDERS]}"
            )
        chosen = [c for c in CONTENDERS if c.name in names]
    if not BENCH_BIN.joinpath("python").exists():
        print("no .venv-bench (make bench creates it): skipping Quix and faust", file=sys.stderr)
        chosen = [c for c in chosen if c.kind not in ("quix", "faust")]
    knobs = knob_env(args.chunk, args.linger, args.fetch_wait)
    return [
        Contender(**{**c.__dict__, "env": knobs + c.env}) if c.kind == "tensorflux" else c
        for c in chosen
    ]


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
    receiver = load.Receiver(args.bootstrap, outputs, 1)
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    logdir = RESULTS / "logs"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir()
    loads = [_loadavg(), ""]
    broker = None
    if not args.bootstrap:
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
    try:
        for contender in contenders(args):
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
                print(
                    f"  {contender.name} run {i + 1}/{args.repeat}: {run.rate:,.0f} req/s, "
                    f"p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, RSS {run.rss_mb:.0f} MB, "
                    f"{run.cpu_us_per_req:.1f} CPU µs/req (N={n}, load {_loadavg()})",
                    flush=True,
                )
    finally:
        if broker is not None:
            broker.stop()
    gateway = _gateway(args)
    gateway += replay_bench.section(None if broker else args.bootstrap, max(1000, int(50_000 * args.scale)), logdir)  # fmt: skip
    loads[1] = _loadavg()
    text = report(results, args, (loads[0], loads[1])) + gateway
    Path(args.output).write_text(text)
    print_table(text)
    print(f"written to {args.output}")
    return 0


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
