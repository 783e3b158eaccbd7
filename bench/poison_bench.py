"""Poison storm (issue 18): the 1-step pipeline's rate with half of its input garbage, against
the same pipeline on clean traffic, side by side in one run.

Both runs pre-produce the same number of records to a fresh namespace: clean, all good
requests; poisoned, good requests and bad records interleaved (random bytes, truncated
Avro, broken JSON). A worker is then started and timed, from its first output to its
last, until every record has its answer or error record on the outputs topic. Target:
the poisoned rate within 2× of the clean one (tests/runtime/test_poison_storm.py proves
that every answer is right and every bad record is one error record).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from pathlib import Path

from bench import load
from bench.contenders import MODELS, PIPELINES, VENV_BIN
from bench.timing import _start, _stop
from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.topology.topics import TopicNames

JSON = [("content-type", b"application/json")]


def section(bootstrap: str, quick: bool, logdir: Path) -> str:
    try:
        return _measure(bootstrap, 5_000 if quick else 10_000, logdir)
    except Exception as error:  # one failing section does not stop the bench
        return f"\n## Poison storm\n\nfailed: {error}\n"


def _measure(bootstrap: str, good: int, logdir: Path) -> str:
    clean = _rate(bootstrap, good * 2, 0, logdir)
    poisoned = _rate(bootstrap, good, good, logdir)
    ratio = poisoned / clean if clean else float("nan")
    verdict = "met" if ratio >= 0.5 else "MISSED"
    return (
        f"\n## Poison storm: {good:,} good requests and {good:,} bad records interleaved\n\n"
        f"- 1-step pipeline, records answered or turned into error records a second: "
        f"{clean:,.0f} clean ({good * 2:,} good), {poisoned:,.0f} poisoned "
        f"({poisoned / clean if clean else float('nan'):.2f}×; target within 2×: {verdict})\n"
    )


def _rate(bootstrap: str, good: int, bad: int, logdir: Path) -> float:
    ns = f"p{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap=bootstrap, namespace=ns)
    topics = TopicNames(settings.topic_prefix, ns)
    inputs, outputs = topics.pipeline_inputs("onestep"), topics.pipeline_outputs("onestep")
    admin = TopicAdmin(settings)
    admin.ensure([inputs, outputs, topics.errors()])
    _produce(bootstrap, inputs, good, bad)
    argv = [str(VENV_BIN / "tensorflux"), "worker", "--bootstrap", bootstrap, "--namespace", ns]
    for spec in (MODELS / "tfsimple1.yaml", PIPELINES["1step"][0]):
        argv += ["-f", str(spec)]
    receiver = load.Receiver(bootstrap, outputs, settings.partitions)
    receiver.start()
    worker = _start(argv, dict(os.environ), logdir / f"poison-{ns}.log")
    total = good + bad
    try:
        deadline = time.monotonic() + 300
        while receiver.count < total and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        if receiver.count < total:
            raise RuntimeError(f"{receiver.count}/{total} answered (worker log: {worker.args})")
        return receiver.rate()
    finally:
        _stop([worker])
        receiver.stop.set()
        receiver.join(5)
        with contextlib.suppress(Exception):
            admin.delete([t for t in admin.existing() if f".{ns}." in t])


def _produce(bootstrap: str, topic: str, good: int, bad: int) -> None:
    """`good` requests and `bad` poison records, shuffled, keyed t-0, t-1, ..."""
    rng = random.Random(18)
    kinds = [True] * good + [False] * bad
    rng.shuffle(kinds)
    producer = load.producer(bootstrap)
    for index, is_good in enumerate(kinds):
        key = f"t-{index}"
        value = load.request_payload("tfsimple", key, index)
        headers = None
        if not is_good:
            kind = index % 3
            if kind == 0:
                value = rng.randbytes(rng.randrange(1, 200))
            elif kind == 1:
                value = value[: rng.randrange(1, len(value) - 1)]
            else:
                value, headers = b'{"inputs": [{"name": "INPUT0", "datatype": "INT32"', JSON
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError(f"could not pre-produce {good + bad} records to {topic}")
