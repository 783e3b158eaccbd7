"""The embedded broker: it serves Kafka clients, stops cleanly, and never outlives its parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from confluent_kafka import TopicPartition

from engine.broker import EmbeddedBroker, free_port
from tests.processes import alive as _alive
from tests.processes import port_free as _port_free
from tests.processes import wait_gone as _wait_gone


def test_group_consumer_resumes_from_committed_offsets(
    topic_factory, producer_factory, consumer_factory
):
    topic = topic_factory()
    producer = producer_factory()
    for i in range(10):
        producer.produce(topic, key=f"r{i}", value=f"v{i}".encode())
    producer.flush(10)

    first = consumer_factory(group_id=f"{topic}-group")
    first.subscribe([topic])
    seen = _consume(first, 10)
    assert [m.value() for m in seen] == [f"v{i}".encode() for i in range(10)]
    first.commit(asynchronous=False)
    committed = first.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == 10
    first.close()

    for i in range(10, 13):
        producer.produce(topic, key=f"r{i}", value=f"v{i}".encode())
    producer.flush(10)
    second = consumer_factory(group_id=f"{topic}-group")
    second.subscribe([topic])
    resumed = _consume(second, 3)
    assert [m.value() for m in resumed] == [b"v10", b"v11", b"v12"]


def _consume(consumer, count: int, within_s: float = 30.0):
    messages = []
    deadline = time.monotonic() + within_s
    while len(messages) < count and time.monotonic() < deadline:
        for message in consumer.consume(count - len(messages), timeout=0.5):
            assert message.error() is None, message.error()
            messages.append(message)
    return messages


def test_stopped_broker_is_gone_and_frees_its_port():
    broker = EmbeddedBroker().start()
    pid, port = broker.pid, broker.port
    assert _alive(pid)
    broker.stop()
    assert not _alive(pid)
    assert _port_free(port)


def test_broker_dies_with_its_parent(tmp_path):
    script = (
        "import sys, time\n"
        "from engine.broker import EmbeddedBroker\n"
        "broker = EmbeddedBroker().start()\n"
        "print(broker.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        broker_pid = int(parent.stdout.readline())
        assert _alive(broker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_gone(broker_pid), f"broker {broker_pid} outlived its killed parent"
    finally:
        parent.kill()


def test_cli_names_a_taken_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "engine", "broker", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert str(port) in result.stderr
    assert "in use" in result.stderr


def test_cli_prints_bootstrap_and_stops_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert _port_free(port)
    finally:
        process.kill()


def test_missing_binary_is_one_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", "engine", "broker", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CALF_TANSU_BIN": "/nonexistent/tansu"},
    )
    assert result.returncode == 1
    assert "no embedded broker binary" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
