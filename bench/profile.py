"""Profile a tensorflux worker on the 1-step pipeline with py-spy (from .venv-bench).

    .venv/bin/python -m bench.profile [--n 300000] [--pipeline 1step] [--native] [--workload mlp16]

Pre-produces N requests, starts one `tensorflux worker`, attaches py-spy once
its first step writes and samples until the N-th; prints where the
worker's time goes (inclusive, by frame; then by stage of the loop) and the
per-request wall time, and leaves the collapsed stacks in bench/results/profile-<pipeline>.txt
(speedscope.app and flamegraph.pl read them).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import time
import uuid

from bench import load
from bench.contenders import (
    BENCH_BIN,
    BENCH_MODELS,
    MODELS,
    PIPELINES,
    RESULTS,
    VENV_BIN,
    model_spec,
)
from engine.admin import TopicAdmin
from engine.broker import EmbeddedBroker
from engine.config import KafkaSettings
from engine.runtime.control import ControlPlane
from engine.topology.topics import TopicNames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--pipeline", default="1step", choices=sorted(PIPELINES))
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument(
        "--workload", help="the requests (bench/load.py; default: the pipeline's own)"
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{args.pipeline}.txt"
    path, pipeline, models = PIPELINES[args.pipeline]
    own = {"cond": "conditional", "mlp": "mlp", "cnn": "cnn"}
    workload = args.workload or own.get(args.pipeline, "tfsimple")
    with EmbeddedBroker() as broker:
        ns = f"p{uuid.uuid4().hex[:8]}"
        settings = KafkaSettings(bootstrap=broker.bootstrap, namespace=ns)
        topics = TopicNames(settings.topic_prefix, ns)
        inputs, outputs = topics.pipeline_inputs(pipeline), topics.pipeline_outputs(pipeline)
        start_topic = topics.step_inputs(pipeline, models[0])  # the first step's
        TopicAdmin(settings).ensure([inputs, outputs, start_topic])
        plane = ControlPlane(settings)
        plane.load([str(model_spec(m)) for m in models] + [str(path)])
        plane.close()
        load.preproduce(broker.bootstrap, inputs, workload, args.n)
        receiver = load.Receiver(broker.bootstrap, outputs, settings.partitions, start_topic)
        receiver.start()
        worker = subprocess.Popen(
            [
                str(VENV_BIN / "tensorflux"),
                "worker",
                "--model-root",
                str(MODELS),
                "--model-root",
                str(BENCH_MODELS),
                "--bootstrap",
                broker.bootstrap,
            ]
            + ["--namespace", ns],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not receiver.began():  # the first step wrote: the worker is at work
            time.sleep(0.002)
        spy = [str(BENCH_BIN / "py-spy"), "record", "--pid", str(worker.pid), "--format", "raw"]
        spy += ["--rate", "250", "--output", str(out), "--nonblocking"]
        spy += ["--native"] if args.native else []
        profiler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started, at_start = time.perf_counter(), 0
        while receiver.count < args.n:
            time.sleep(0.01)
        elapsed, done = time.perf_counter() - started, receiver.count - at_start
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
        receiver.stop.set()
    print(f"{done:,} requests in {elapsed:.2f} s while sampled: {done / elapsed:,.0f} req/s, ")
    print(f"{elapsed / done * 1e6:.2f} µs wall per request (py-spy --nonblocking costs a little)")
    summarise(out, elapsed / done * 1e6, args.top)
    print("\nby stage (share of samples):")
    for label, share in stages(out):
        print(f"{share:6.1%}  {label}")
    return 0


def summarise(path: os.PathLike, us_per_request: float, top: int) -> None:
    """Inclusive share of samples per frame (function + file), busiest first."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = [_short(f) for f in stack.split(";")]
            total += n
            for frame in set(frames):
                inclusive[frame] += n
            leaf[frames[-1]] += n
    print(f"\n{total} samples; inclusive share and µs per request (of {us_per_request:.2f})")
    for frame, n in inclusive.most_common(top):
        print(f"{n / total:6.1%} {n / total * us_per_request:7.2f} µs  {frame}")
    print("\nself (leaf) time:")
    for frame, n in leaf.most_common(20):
        print(f"{n / total:6.1%} {n / total * us_per_request:7.2f} µs  {frame}")


STAGES = (
    ("Thread._bootstrap", "other threads (model calls, librdkafka callbacks)"),
    ("Delivery.produce", "produce (Delivery.produce)"),
    ("Condition.wait", "the loop waiting for quick calls (CallPool.turn, <= 5 ms)"),
    ("CallPool.turn", "answers written (CallPool.turn: each call's finish)"),
    ("JoinLane.process", "join lane in (match, join, lay out requests)"),
    ("FastLane.process", "fast lane in (columns, hand the call off)"),
    ("NodeAgent.process_chunk", "general path in"),
    ("NodeAgent.tick", "ticks (join windows, batches)"),
    ("chunk_by_topic", "chunk_by_topic (records wrapped)"),
    ("Worker.commit", "commit"),
    ("Worker.step", "rest of the loop (poll, consume)"),
)
"""Where a sample counts: the first of these frames in its stack (by function name)."""


def stages(path: os.PathLike) -> list[tuple[str, float]]:
    """Each stage's share of the samples (STAGES; "other" for the rest), in STAGES' order."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            names = {f.partition(" (")[0] for f in stack.split(";")}
            stage = next((label for frame, label in STAGES if frame in names), "other")
            counts[stage] += int(count)
            total += int(count)
    order = [label for _, label in STAGES] + ["other"]
    return [(label, counts[label] / total) for label in order if counts[label]]


def _short(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1] if where else ""
    return f"{name} ({file})" if file else name


if __name__ == "__main__":
    sys.exit(main())
