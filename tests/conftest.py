"""Shared fixtures: one broker per session, a fresh namespace per test.

The broker is the embedded tansu by default. `TENSORFLUX_TEST_KAFKA=1` starts a
real Apache Kafka node for the session (`=cluster`: three nodes, topics with
replication factor 3), as `make test-kafka` does; `TENSORFLUX_BOOTSTRAP=host:port`
points the suite at an external Kafka, and `TENSORFLUX_TEST_DOCKER=1` starts
Kafka with testcontainers where a Docker engine works (skipped where none does).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Producer
from hypothesis import settings

from engine.admin import TopicAdmin
from engine.broker import EmbeddedBroker
from engine.config import KafkaSettings
from engine.kafka_cluster import KafkaCluster

# No per-example deadline (hypothesis' default is 200 ms): on a loaded machine an
# example's time says nothing, and tests never assert on timing. Two full runs here
# failed on it (tests/codec/test_roundtrip.py, 284 ms and 543 ms, 5 ms when rerun).
settings.register_profile("tensorflux", deadline=None)
settings.load_profile("tensorflux")

# The suite's topics keep one partition (lean on the broker, and the tests reading one
# partition were written so): the fixtures below say so, and the CLI processes tests
# start read it from here, so a pipeline's topics never mix counts. The default (4)
# runs in tests/runtime/test_scale_out.py.
os.environ.setdefault("TENSORFLUX_PARTITIONS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Any test that needs the broker is a broker test: `-m "not broker"` runs the fast tier.
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("TENSORFLUX_BOOTSTRAP")
    if external:
        yield external
        return
    if os.environ.get("TENSORFLUX_TEST_DOCKER") == "1":
        yield from _docker_kafka()
        return
    real_kafka = os.environ.get("TENSORFLUX_TEST_KAFKA")
    if real_kafka:
        # A missing Java or Maven errors every broker test: this tier never passes silently.
        with KafkaCluster(nodes=3 if real_kafka == "cluster" else 1) as cluster:
            # Workers the tests start as processes create their topics replicated too.
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("TENSORFLUX_REPLICATION_FACTOR", str(cluster.replication_factor))
                yield cluster.bootstrap
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


def _docker_kafka() -> Iterator[str]:
    try:
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer().with_kraft()
        container.start()
    except Exception as error:  # no Docker engine: skip, don't fail
        pytest.skip(f"TENSORFLUX_TEST_DOCKER=1 but Kafka in Docker could not start: {error}")
    try:
        yield container.get_bootstrap_server()
    finally:
        container.stop()


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _settings(bootstrap: str, namespace: str) -> KafkaSettings:
    replicas = int(os.environ.get("TENSORFLUX_REPLICATION_FACTOR") or 1)
    return KafkaSettings(
        bootstrap=bootstrap, namespace=namespace, replication_factor=replicas, partitions=1
    )


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, namespace: str) -> KafkaSettings:
    return _settings(kafka_bootstrap, namespace)


@pytest.fixture(scope="module")
def module_kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """One namespace for a whole module: for modules that share one worker between tests."""
    return _settings(kafka_bootstrap, f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def topic_factory(kafka_settings: KafkaSettings) -> Callable[..., str]:
    """Creates a fresh uuid-named topic and returns its name."""
    admin = TopicAdmin(kafka_settings)

    def create(partitions: int = 1, name: str | None = None) -> str:
        topic = (
            name
            or f"{kafka_settings.topic_prefix}.{kafka_settings.namespace}.{uuid.uuid4().hex[:8]}"
        )
        admin.ensure([topic], partitions=partitions)
        return topic

    return create


@pytest.fixture
def producer_factory(kafka_settings: KafkaSettings) -> Iterator[Callable[..., Producer]]:
    producers: list[Producer] = []

    def create(**extra: object) -> Producer:
        producer = Producer(kafka_settings.producer_config(**extra))
        producers.append(producer)
        return producer

    yield create
    for producer in producers:
        producer.flush(10)


@pytest.fixture
def consumer_factory(kafka_settings: KafkaSettings) -> Iterator[Callable[..., Consumer]]:
    consumers: list[Consumer] = []

    def create(group_id: str | None = None, **extra: object) -> Consumer:
        consumer = Consumer(
            kafka_settings.consumer_config(group_id or f"g-{uuid.uuid4().hex[:8]}", **extra)
        )
        consumers.append(consumer)
        return consumer

    yield create
    for consumer in consumers:
        consumer.close()
