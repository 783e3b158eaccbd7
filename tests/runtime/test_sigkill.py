"""At-least-once: a `tensorflux worker` killed with SIGKILL mid-stream loses no request.

The pipeline joins (tfsimples-join), so the kill also catches half-joined
requests whose offsets must not have been committed. A restarted worker
consumes from the last committed offsets and answers every request id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.codec import encode_avro
from engine.config import KafkaSettings
from engine.messages import InferenceMessage

from .helpers import EXAMPLES, ROOT, Kafka, int32, new_id, tensors

ROW = int32(*range(1, 17), shape=(1, 16))
DOUBLED = [[2 * v for v in range(1, 17)]]
MAX_REQUESTS = 5000


@pytest.fixture
def worker_process(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `python -m engine worker` processes; every one is killed after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine",
                "worker",
                "-f",
                str(EXAMPLES),
                "--bootstrap",
                kafka_settings.bootstrap,
                "--namespace",
                kafka_settings.namespace,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_sigkill_mid_stream_loses_no_request(
    kafka: Kafka, worker_process: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    planned = [new_id(f"k{i}") for i in range(MAX_REQUESTS)]
    sent: list[str] = []
    stop_sending = threading.Event()

    def produce() -> None:
        # A steady stream until told to stop, so the kill lands in the middle of it.
        sender = Kafka(kafka.settings)
        topic = sender.topics.pipeline_inputs("tfsimples-join")
        for rid in planned:
            if stop_sending.is_set():
                break
            message = InferenceMessage(rid, tensors(INPUT0=ROW, INPUT1=ROW), "request")
            sender.producer.produce(topic, encode_avro(message), rid)
            sender.producer.poll(0)
            sent.append(rid)
            time.sleep(0.005)
        sender.close()

    first = worker_process()
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    kafka.outputs("tfsimples-join", planned, at_least=10)  # the worker is answering
    assert producer.is_alive(), "the stream ended before the kill"
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    time.sleep(0.3)  # requests keep coming while no worker runs
    worker_process()
    stop_sending.set()
    producer.join(30)

    answers = kafka.outputs("tfsimples-join", sent, deadline_s=60)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("worker-*.log"))
    assert set(answers) == set(sent), logs
    for rid, answer in answers.items():
        assert answer.arrays() == {"OUTPUT0": DOUBLED, "OUTPUT1": DOUBLED}, rid
