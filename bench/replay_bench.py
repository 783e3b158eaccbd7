"""The "replay + diff" row: replaying and diffing recorded requests through the 1-step pipeline.

    .venv/bin/python -m bench.replay_bench [--n 50000 | --quick] [--rounds K]
        [--bootstrap HOST:PORT]

On one broker (embedded unless --bootstrap), in one run: N requests are
pre-produced to the 1-step pipeline and a worker is started; its rate is
timed from the first record its step writes to the N-th output (as `make
bench` times it). Then the N recorded requests are replayed into the same
pipeline with `--diff` (in this process: `engine.replay.run.replay`, what the
CLI calls), timed from the call to the report: selection, sending, waiting
for every answer, reading the originals and comparing them. Target: at least
50% of the pipeline's own rate. `--quick` is the row `python -m bench --quick`
ends with (N=12,500), run alone; `--rounds K` measures K times, each on a
fresh broker, and gives the median ratio.

Rates on a shared machine swing with its load; CPU seconds a request do not.
So beside the rates the row gives the CPU that the worker, the broker and this
process (the replay) spent per request in each phase (from /proc), and the
replay's stages (engine.replay.run.ReplayResult.seconds): what bounds it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from statistics import median

from bench import load
from bench.procstat import cpu_s
from engine.admin import TopicAdmin
from engine.broker import EmbeddedBroker
from engine.config import KafkaSettings
from engine.replay.diff import Tolerance
from engine.replay.run import ReplayRequest, replay
from engine.runtime.control import ControlPlane

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "bench" / "pipelines" / "onestep.yaml"
MODEL = ROOT / "examples" / "models" / "tfsimple1.yaml"
TARGET = 0.5
QUICK_N = 12_500
"""What `python -m bench --quick` replays (50,000 x its scale of 0.25)."""


class CpuMeter:
    """CPU seconds of the worker, the broker and this process between two points."""

    def __init__(self, worker: int, broker: int | None) -> None:
        self.pids = {"worker": worker, "broker": broker}
        self._at = self._now()

    def _now(self) -> dict[str, float]:
        now = {name: cpu_s(pid) for name, pid in self.pids.items()}
        now["replay"] = time.process_time()
        return now

    def lap(self) -> dict[str, float]:
        now = self._now()
        spent = {name: now[name] - self._at[name] for name in now}
        self._at = now
        return spent


def measure(bootstrap: str, n: int, log: Path, broker_pid: int | None = None) -> dict:
    settings = KafkaSettings(bootstrap=bootstrap, namespace=f"r{uuid.uuid4().hex[:8]}")
    topics = settings.topics()
    inputs, outputs = topics.pipeline_inputs("onestep"), topics.pipeline_outputs("onestep")
    start_topic = topics.step_inputs("onestep", "tfsimple1")
    admin = TopicAdmin(settings)
    admin.ensure([inputs, outputs, start_topic])
    plane = ControlPlane(settings)
    try:
        plane.load([str(MODEL), str(PIPELINE)])
    finally:
        plane.close()
    load.preproduce(bootstrap, inputs, "tfsimple", n)
    # Every partition (topics have four by default): reading one, the timing never ended.
    partitions = admin.existing()[outputs]
    receiver = load.Receiver(bootstrap, outputs, partitions, start_topic)
    receiver.start()
    argv = [str(Path(sys.executable).parent / "tensorflux"), "worker", "--bootstrap", bootstrap]
    argv += ["--namespace", settings.namespace, "--worker-id", "replay-bench"]
    # The specs come through the control topic: the worker may load only from the roots
    # it is given (none by default without -f).
    argv += ["--model-root", str(MODEL.resolve().parent)]
    with log.open("w") as sink:
        worker = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=os.environ)
    try:
        deadline = time.monotonic() + 120 + n / 1000
        while not receiver.began() and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.002)
        meter = CpuMeter(worker.pid, broker_pid)  # from its first step record: at work
        while receiver.count < n:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(_why_short(receiver, n, worker, log))
            time.sleep(0.01)
        pipeline_rate = receiver.rate()
        receiver.stop.set()  # it would read the replay's answers too, on this process's GIL
        receiver.join(5)
        pipeline_cpu = meter.lap()
        started = time.perf_counter()
        result = replay(settings, ReplayRequest("onestep", diff=Tolerance()), progress=False)
        elapsed = time.perf_counter() - started
        replay_cpu = meter.lap()
    finally:
        worker.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(30)
        worker.kill()
        receiver.stop.set()
        receiver.join(5)
        with contextlib.suppress(Exception):
            admin.delete([t for t in admin.existing() if f".{settings.namespace}." in t])
    report = result.report
    assert report.diff is not None
    if report.answered != n or report.diff.same != n:
        raise RuntimeError(
            f"replay of {n}: selected {report.selected}, sent {report.sent}, answered "
            f"{report.answered}, errors {report.errors}, timed out {report.timed_out}, same "
            f"{report.diff.same}, changed {report.diff.changed}; worker log {log}"
        )
    return {
        "pipeline": pipeline_rate,
        "replay": n / elapsed,
        "seconds": elapsed,
        "stages": result.seconds,
        "cpu": {"pipeline": pipeline_cpu, "replay": replay_cpu},
    }


def _why_short(receiver: load.Receiver, n: int, worker: subprocess.Popen, log: Path) -> str:
    """What stopped the pipeline's timing, in words, with the worker's last log lines."""
    code = worker.poll()
    if code is not None:
        cause = f"the worker exited with code {code}"
    elif not receiver.began():
        cause = "the worker wrote no step record (did it load the pipeline and its model?)"
    else:
        cause = "the outputs stopped coming before the deadline"
    try:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        tail = "(no log)"
    return f"{receiver.count}/{n} outputs: {cause}; worker log {log}: {tail}"


def section(bootstrap: str | None, n: int, logdir: Path) -> str:
    """The Markdown the bench report ends with."""
    try:
        found, where = _measured(bootstrap, n, logdir)
    except Exception as error:  # the bench goes on without this row
        return f"\n## Replay + diff\n\nfailed: {error}\n"
    return _markdown(found, n, where)


def _measured(bootstrap: str | None, n: int, logdir: Path) -> tuple[dict, str]:
    """One measurement, on its own embedded broker unless `bootstrap`; and where it ran."""
    broker = None if bootstrap else EmbeddedBroker().start()
    try:
        found = measure(
            bootstrap or broker.bootstrap,  # type: ignore[union-attr]
            n,
            logdir / "replay-bench-worker.log",
            None if broker is None else broker.pid,
        )
    finally:
        if broker is not None:
            broker.stop()
    return found, "its own broker" if broker else str(bootstrap)


def _ratio(found: dict) -> float:
    return found["replay"] / found["pipeline"]


def _markdown(found: dict, n: int, where: str) -> str:
    ratio = _ratio(found)
    verdict = "met" if ratio >= TARGET else "MISSED"
    load1, load5, load15 = os.getloadavg()
    cpu = found["cpu"]
    per_request = "\n".join(
        f"| {phase} | "
        + " | ".join(f"{cpu[phase][who] / n * 1e6:.1f}" for who in ("worker", "broker", "replay"))
        + " |"
        for phase in ("pipeline", "replay")
    )
    stages = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in found["stages"].items())
    return (
        f"\n## Replay + diff (bench/replay_bench.py, N={n}, {where})\n\n"
        "| what | req/s | × the pipeline |\n|---|---|---|\n"
        f"| tensorflux 1-step pipeline, 1 worker | {found['pipeline']:,.0f} | 1.00× |\n"
        f"| replay + diff through it ({found['seconds']:.2f} s) | {found['replay']:,.0f} "
        f"| {ratio:.2f}× |\n\n"
        f"| target | measured | verdict |\n|---|---|---|\n"
        f"| replay + diff ≥ 50% of the pipeline's rate | {ratio:.2f} | {verdict} |\n\n"
        "CPU µs a request (worker; broker, when embedded; this process, the replay):\n\n"
        "| phase | worker | broker | replay |\n|---|---|---|---|\n"
        f"{per_request}\n\n"
        f"Replay stages: {stages}. Load average {load1:.2f} {load5:.2f} {load15:.2f}.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_bench")
    parser.add_argument("--n", type=int, default=50_000, help="recorded requests (50000)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"N={QUICK_N:,}: the row `python -m bench --quick` ends with, alone",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measurements, each on a fresh broker (the median)"
    )
    parser.add_argument("--bootstrap", help="an existing broker (default: an embedded one)")
    args = parser.parse_args(argv)
    n = QUICK_N if args.quick else args.n
    logdir = ROOT / "bench" / "results"
    logdir.mkdir(parents=True, exist_ok=True)
    if args.rounds <= 1:
        print(section(args.bootstrap, n, logdir))
        return 0
    # The ratio's two rates swing with the machine's load between runs: several rounds,
    # each printed, and their median (what README "Performance" reports).
    ratios = []
    for _ in range(args.rounds):
        found, where = _measured(args.bootstrap, n, logdir)
        ratios.append(_ratio(found))
        print(_markdown(found, n, where), flush=True)
    shown = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    print(
        f"replay + diff / pipeline over {args.rounds} rounds: {shown}; median {median(ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
