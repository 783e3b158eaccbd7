"""The engine's own per-request CPU on a pipeline, without Kafka: agents fed in memory.

    .venv/bin/python -m bench.agent_bench [--pipeline 1step] [--n 20000] [--chunk 1000]
        [--lineage] [--pool] [--gc on|freeze|high|off]

Builds the worker's agents for the pipeline, feeds chunks of pipeline-input
records as the worker does (each topic's records of a chunk together, then tick
at the end of the chunk), routes what they write to the agents that read it, and reports µs per
request: the Python cost tensorflux adds on top of consume/produce. `--lineage` gives
every request the headers a replayed one carries (engine.replay.requests). Best of
several rounds, in process CPU time (robust to a busy machine); stable enough to compare a hot-path change before and after.
`--pool` runs the model calls on the worker's call pool (`CallPool`, as the
worker does by default) instead of inline; `--gc` sets the cyclic collector as
a worker could, once started.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Mapping

from bench import load
from bench.contenders import MODELS, PIPELINES
from engine import headers as h
from engine.runtime import gc_tuning
from engine.runtime.agent import NodeAgent, Outgoing
from engine.runtime.model_calls import INLINE, CallPool, InlineCalls
from engine.runtime.models import ModelPool
from engine.runtime.offsets import OffsetTracker
from engine.runtime.plan import Route, plan
from engine.runtime.records import Record
from engine.runtime.settings import WorkerSettings
from engine.topology import TopicNames, compile_collecting, read_files


def build(
    pipeline: str, pool: bool = False
) -> tuple[Mapping[str, tuple[Route, ...]], tuple[NodeAgent, ...], str, CallPool | InlineCalls]:
    """The worker's agents for the pipeline, planned as the worker plans them."""
    path, name, models = PIPELINES[pipeline]
    topics = TopicNames("tensorflux", "agentbench")
    specs = read_files([str(MODELS / f"{m}.yaml") for m in models] + [str(path)])
    topology, problems, _ = compile_collecting(specs, topics)
    assert not problems, problems
    runtimes = ModelPool().sync(topology.models)
    tracker = OffsetTracker()
    calls = CallPool(tracker) if pool else INLINE
    planned = plan(topology, runtimes, topics, tracker, calls=calls)
    return planned.routes, planned.agents, topics.pipeline_inputs(name), calls


def lineage(run: str, index: int, inputs: str) -> list[tuple[str, bytes]]:
    """The headers of a replayed request (as engine.replay.requests writes them)."""
    return [
        (h.REQUEST_ID, f"{run}-0-{index}".encode()),
        (h.REPLAY_RUN, run.encode()),
        (h.REPLAY_OF, f"t-{index}".encode()),
        (h.REPLAY_SOURCE, f"{inputs}:0:{index}".encode()),
        (h.ORIGINAL_TIMESTAMP, b"1764614400000"),
        (h.PIPELINE, b"onestep"),
    ]


GC_MODES = ("on", "freeze", "high", "settle", "off")


def run(
    pipeline: str,
    n: int,
    chunk: int,
    pool: bool = False,
    gc_mode: str = "on",
    with_lineage: bool = False,
) -> tuple[float, int]:
    """µs of process CPU per request, and records written. `gc_mode`, the cyclic collector
    once the agents are built: on (Python's default), freeze (what start-up allocated out
    of its reach), high (thresholds raised as `gc_tuning` raises them), settle (both: what
    `tensorflux worker` does, `gc_tuning.settle`), off."""
    routes, agents, inputs, calls = build(pipeline, pool)
    workload = "conditional" if pipeline == "cond" else "tfsimple"
    values = [(f"r-{i}", load.request_payload(workload, f"r-{i}", i)) for i in range(n)]
    run_id = "20261201T184000-0123abcd"
    headers = [lineage(run_id, i, inputs) if with_lineage else [] for i in range(n)]
    thresholds = gc.get_threshold()
    gc.collect()
    if gc_mode == "freeze":
        gc.freeze()
    elif gc_mode == "high":
        gc.set_threshold(*gc_tuning.THRESHOLDS)
    elif gc_mode == "settle":
        gc_tuning.settle()
    elif gc_mode == "off":
        gc.disable()
    offsets: dict[str, int] = {}
    written = 0
    started = time.process_time()
    pending: list[tuple[str, str, bytes, list]] = [
        (inputs, k, v, hs) for (k, v), hs in zip(values, headers, strict=True)
    ]
    while pending or calls.in_flight():
        batch, pending = pending[:chunk], pending[chunk:]
        out: list[Outgoing] = []
        now_ms = time.time_ns() // 1_000_000
        by_topic: dict[str, list[Record]] = {}
        for topic, key, value, headers in batch:
            offset = offsets.get(topic, 0)
            offsets[topic] = offset + 1
            by_topic.setdefault(topic, []).append(Record(topic, 0, offset, key, value, headers))
        for topic, records in by_topic.items():  # as the worker does: a topic's records at once
            for agent, index in routes.get(topic, ()):
                agent.process_chunk(index, records, now_ms, out)
        for agent in agents:
            agent.tick(now_ms, out, end_of_chunk=True)
        calls.turn(out)  # answers of calls that returned (the pool's; inline: none)
        written += len(out)
        # What a step writes comes back to the agents that read it (as the broker would).
        pending += [(o.topic, o.key, o.value, o.headers) for o in out if o.topic in routes]
    used = time.process_time() - started
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.enable()
    calls.close()
    return used / n * 1e6, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="1step", choices=sorted(PIPELINES))
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--chunk", type=int, default=WorkerSettings().chunk)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lineage", action="store_true", help="requests carry replay headers")
    parser.add_argument("--pool", action="store_true", help="model calls on a CallPool")
    parser.add_argument("--gc", choices=GC_MODES, default="on", help="the cyclic collector")
    args = parser.parse_args()
    results = [
        run(args.pipeline, args.n, args.chunk, args.pool, args.gc, args.lineage)
        for _ in range(args.rounds)
    ]
    best = min(us for us, _ in results)
    print(
        f"{args.pipeline}: {best:.2f} µs per request (best of {args.rounds} x {args.n}, "
        f"chunk {args.chunk}, calls {'pool' if args.pool else 'inline'}, gc {args.gc}"
        f"{', lineage headers' if args.lineage else ''}); "
        f"{results[0][1] / args.n:.1f} records written per request"
    )


if __name__ == "__main__":
    main()
