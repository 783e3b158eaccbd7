"""The "replay + diff" row: replaying and diffing recorded requests through the 1-step pipeline.

    .venv/bin/python -m bench.replay_bench [--n 50000] [--bootstrap HOST:PORT]

On one broker (embedded unless --bootstrap), in one run: N requests are
pre-produced to the 1-step pipeline and a worker is started; its rate is
timed from the first record its step writes to the N-th output (as `make
bench` times it). Then the N recorded requests are replayed into the same
pipeline with `--diff` (in this process: `engine.replay.run.replay`, what the
CLI calls), timed from the call to the report: selection, sending, waiting
for every answer, reading the originals and comparing them. Target: at least
50% of the pipeline's own rate.
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

from bench import load
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


def measure(bootstrap: str, n: int, log: Path) -> dict[str, float]:
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
    receiver = load.Receiver(bootstrap, outputs, 1, start_topic)
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
        while receiver.count < n:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"{receiver.count}/{n} outputs; see {log}")
            time.sleep(0.01)
        pipeline_rate = receiver.rate()
        receiver.stop.set()  # it would read the replay's answers too, on this process's GIL
        receiver.join(5)
        started = time.perf_counter()
        result = replay(settings, ReplayRequest("onestep", diff=Tolerance()), progress=False)
        elapsed = time.perf_counter() - started
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
        raise RuntimeError(f"replay answered {report.answered}, same {report.diff.same} of {n}")
    return {"pipeline": pipeline_rate, "replay": n / elapsed, "seconds": elapsed}


def section(bootstrap: str | None, n: int, logdir: Path) -> str:
    """The Markdown the bench report ends with."""
    broker = None if bootstrap else EmbeddedBroker().start()
    try:
        found = measure(bootstrap or broker.bootstrap, n, logdir / "replay-bench-worker.log")  # type: ignore[union-attr]
    except Exception as error:  # the bench goes on without this row
        return f"\n## Replay + diff\n\nfailed: {error}\n"
    finally:
        if broker is not None:
            broker.stop()
    ratio = found["replay"] / found["pipeline"]
    verdict = "met" if ratio >= TARGET else "MISSED"
    return (
        f"\n## Replay + diff (bench/replay_bench.py, N={n}, {'its own broker' if broker else bootstrap})\n\n"
        "| what | req/s | × the pipeline |\n|---|---|---|\n"
        f"| tensorflux 1-step pipeline, 1 worker | {found['pipeline']:,.0f} | 1.00× |\n"
        f"| replay + diff through it ({found['seconds']:.2f} s) | {found['replay']:,.0f} "
        f"| {ratio:.2f}× |\n\n"
        f"| target | measured | verdict |\n|---|---|---|\n"
        f"| replay + diff ≥ 50% of the pipeline's rate | {ratio:.2f} | {verdict} |\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_bench")
    parser.add_argument("--n", type=int, default=50_000, help="recorded requests (50000)")
    parser.add_argument("--bootstrap", help="an existing broker (default: an embedded one)")
    args = parser.parse_args(argv)
    logdir = ROOT / "bench" / "results"
    logdir.mkdir(parents=True, exist_ok=True)
    print(section(args.bootstrap, args.n, logdir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
