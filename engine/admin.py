"""Topic administration: create and delete topics idempotently, and wait until clients see it."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from engine.config import KafkaSettings
from engine.errors import TensorfluxError

VISIBLE_TIMEOUT_S = 15.0
# What a broker answers about a partition whose leadership it has not learnt yet
# (right after creation, or while a leader moves on a cluster): ask again.
_NOT_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class TopicAdminError(TensorfluxError):
    """A topic could not be created, found or deleted."""


class TopicAdmin:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._client = AdminClient(settings.client_config())

    def existing(self, timeout: float = 5.0) -> dict[str, int]:
        """Topic name → partition count, as the cluster reports it now."""
        try:
            metadata = self._client.list_topics(timeout=timeout)
        except KafkaException as error:
            raise TopicAdminError(
                f"cannot reach Kafka at {self.settings.bootstrap}: {error.args[0].str()}"
                + unreachable_hint(self.settings)
            ) from None
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if not topic.error
        }

    def cluster_id(self, timeout_s: float = 10.0) -> str | None:
        """The cluster's id (tansu's start with "tansu"), or None when Kafka does not answer."""
        try:
            return self._client.list_topics(timeout=timeout_s).cluster_id
        except KafkaException:
            return None

    def ensure(
        self,
        topics: Iterable[str],
        partitions: int | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Create whatever is missing; an existing topic is left as it is.

        Returns once every topic shows in metadata with its partitions, so a
        consumer subscribing right after sees them all.
        """
        wanted = sorted(set(topics))
        if not wanted:
            return
        partitions = partitions or self.settings.partitions
        existing = self.existing()
        missing = [name for name in wanted if name not in existing]
        if missing:
            futures = self._client.create_topics(
                [
                    NewTopic(
                        name,
                        partitions,
                        self.settings.replication_factor,
                        config=dict(config or {}),
                    )
                    for name in missing
                ]
            )
            for name, future in futures.items():
                try:
                    future.result()
                except KafkaException as error:
                    if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise TopicAdminError(
                            f"cannot create topic {name!r}: {error.args[0].str()}"
                        ) from None
        if missing or any(existing[name] == 0 for name in wanted):
            self._wait_visible(wanted)

    def _wait_visible(self, names: list[str]) -> None:
        deadline = time.monotonic() + VISIBLE_TIMEOUT_S
        while True:
            existing = self.existing()
            absent = [name for name in names if existing.get(name, 0) == 0]
            if not absent:
                return
            if time.monotonic() > deadline:
                raise TopicAdminError(
                    f"topics not visible after {VISIBLE_TIMEOUT_S}s: {', '.join(absent)}"
                )
            time.sleep(0.05)

    def _wait_deleted(self, names: list[str]) -> None:
        # Kafka answers a deletion once its controller took it; brokers drop the
        # topic from their metadata a moment later, and a topic recreated before
        # that would be refused as existing.
        deadline = time.monotonic() + VISIBLE_TIMEOUT_S
        while True:
            remaining = sorted(set(names) & set(self.existing()))
            if not remaining:
                return
            if time.monotonic() > deadline:
                raise TopicAdminError(
                    f"topics still listed {VISIBLE_TIMEOUT_S}s after deletion: "
                    f"{', '.join(remaining)}"
                )
            time.sleep(0.05)

    def delete(self, topics: Iterable[str]) -> None:
        names = sorted(set(topics) & set(self.existing()))
        if not names:
            return
        for name, future in self._client.delete_topics(names).items():
            try:
                future.result()
            except KafkaException as error:
                if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise TopicAdminError(
                        f"cannot delete topic {name!r}: {error.args[0].str()}"
                    ) from None
        self._wait_deleted(names)


def unreachable_hint(settings: KafkaSettings, timeout_s: float = 2.0) -> str:
    """Why Kafka may not have answered, told apart by one TCP connect: nothing listens,
    or something listens and closed our connection (a security mismatch, mostly)."""
    hosts = [server.strip() for server in settings.bootstrap.split(",") if server.strip()]
    listening = False
    for server in hosts:
        host, _, port = server.rpartition(":")
        with contextlib.suppress(OSError, ValueError):
            socket.create_connection((host.strip("[]") or server, int(port)), timeout_s).close()
            listening = True
            break
    if not listening:
        return " (nothing accepts connections there)"
    protocol = str(settings.librdkafka.get("security.protocol", "plaintext")).upper()
    if protocol.startswith("SASL"):
        return (
            " (the broker accepted the connection and closed it: check the SASL "
            "credentials, sasl.mechanism, sasl.username and sasl.password)"
        )
    return (
        " (the broker accepted the connection and closed it, as a listener that demands "
        "SASL or TLS does to a client that speaks plaintext: set security.protocol and "
        "the sasl.* or ssl.* settings, in a --kafka-config file or TENSORFLUX_KAFKA_* "
        "variables)"
    )


def watermark_offsets(
    consumer: Consumer, partition: TopicPartition, timeout_s: float = 10.0
) -> tuple[int, int]:
    """(low, high) of a partition from its leader, asking again while leadership settles."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(
                partition, timeout=max(0.5, deadline - time.monotonic()), cached=False
            )
        except KafkaException as error:
            kafka_error = error.args[0]
            settling = kafka_error.code() in _NOT_YET or kafka_error.retriable()
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
