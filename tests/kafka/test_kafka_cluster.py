"""`tensorflux broker --kafka`: a real Apache Kafka that serves, stops, and never outlives its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from engine.broker import free_port
from engine.kafka_cluster import KafkaCluster
from tests.processes import alive as _alive
from tests.processes import port_free as _port_free
from tests.processes import wait_gone as _wait_gone


def _java_children(pid: int) -> list[int]:
    """The java processes whose parent is `pid`."""
    result = subprocess.run(["ps", "-eo", "pid=,ppid=,comm="], capture_output=True, text=True)
    return [
        int(fields[0])
        for fields in (line.split() for line in result.stdout.splitlines())
        if len(fields) == 3 and int(fields[1]) == pid and fields[2] == "java"
    ]


def _round_trip(bootstrap: str, topic: str, count: int = 20) -> list[bytes]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=10).topics:  # no auto-creation on this Kafka
        admin.create_topics([NewTopic(topic, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    refused: list[KafkaError] = []
    for i in range(count):
        producer.produce(
            topic, key=f"r{i}", value=f"v{i}".encode(), on_delivery=lambda e, _: refused.append(e)
        )
    assert producer.flush(30) == 0
    assert [e for e in refused if e is not None] == []
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(values) < count and time.monotonic() < deadline:
        for message in consumer.consume(count, timeout=0.5):
            assert message.error() is None, message.error()
            values.append(message.value())
    consumer.close()
    return values


def test_one_node_serves_and_stops_leaving_nothing():
    cluster = KafkaCluster().start()
    pid, port, folder = cluster.nodes[0].process.pid, cluster.port, cluster.folder
    try:
        assert _round_trip(cluster.bootstrap, f"t-{uuid.uuid4().hex[:8]}") == [
            f"v{i}".encode() for i in range(20)
        ]
    finally:
        cluster.stop()
    assert not _alive(pid)
    assert _port_free(port)
    assert not folder.exists()


def test_three_nodes_replicate_every_topic_and_refuse_a_lone_replica(kafka_cluster):
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    assert sorted(admin.list_topics(timeout=10).brokers) == [1, 2, 3]
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 1)])[topic].result()  # broker defaults
    # The broker that answers may not know the new topic's partitions yet (metadata
    # settles per broker): ask until it does.
    deadline = time.monotonic() + 30
    while not (partitions := admin.list_topics(topic, timeout=10).topics[topic].partitions):
        assert time.monotonic() < deadline, f"no broker lists {topic}'s partition"
        time.sleep(0.2)
    assert sorted(partitions[0].replicas) == [1, 2, 3]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["min.insync.replicas"].value == "2"
    assert _round_trip(kafka_cluster.bootstrap, topic, 5) == [f"v{i}".encode() for i in range(5)]


def test_nodes_die_with_their_parent():
    script = (
        "import time\n"
        "from engine.kafka_cluster import KafkaCluster\n"
        "cluster = KafkaCluster(nodes=3).start()\n"
        "print(' '.join(str(n.process.pid) for n in cluster.nodes), cluster.folder, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        *pids, folder = parent.stdout.readline().split()
        assert len(pids) == 3 and all(_alive(int(pid)) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for pid in pids:
            assert _wait_gone(int(pid)), f"Kafka node {pid} outlived its killed parent"
    finally:
        parent.kill()
    # The next start sweeps the storage the killed run could not delete.
    with KafkaCluster():
        pass
    assert not Path(folder).exists()


def test_cli_prints_bootstrap_once_ready_and_stops_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "broker", "--kafka", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert f"bootstrap 127.0.0.1:{port} " in line
        assert "Apache Kafka" in line
        # Ready means served: a metadata request answers as soon as the line is out.
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        assert admin.list_topics(timeout=5).brokers
        children = _java_children(process.pid)
        assert len(children) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert not any(_alive(pid) for pid in children)
        assert _port_free(port)
    finally:
        process.kill()
