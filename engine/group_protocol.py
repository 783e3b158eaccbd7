"""Which consumer-group protocol a worker's group uses: `consumer` (KIP-848) where the
broker speaks it, else `classic`.

Why it matters: under the classic protocol with the range assignor (needed so that
partition i of every topic of a pipeline sits on one worker, where its joins meet),
any change of a member's subscription or of the group's members revokes every
partition of every member until the group has formed again: loading an unrelated
pipeline stalls all traffic for seconds. Under KIP-848 the broker assigns, increment
by increment: a member whose subscription grows gets the new partitions and keeps
the old ones, and a member joining takes only the partitions that move to it. Its
`range` assignor keeps co-partitioning. Apache Kafka 4.0+ serves it by default; the
embedded broker (tansu) does not, so it keeps the classic protocol.

The broker is asked with one ApiVersions request (Kafka answers it before any
authentication, so SASL listeners answer it too): ConsumerGroupHeartbeat (API key 68)
in its answer means the broker serves KIP-848 groups. TLS listeners are not probed
(classic, unless the user's librdkafka settings say `group.protocol`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from typing import Literal

from engine.config import BrokerKind, KafkaSettings

log = logging.getLogger(__name__)

GroupProtocol = Literal["classic", "consumer"]

CLASSIC_ONLY_KEYS = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")
"""librdkafka refuses these with `group.protocol=consumer` (the broker decides them)."""

_API_VERSIONS = 18
_CONSUMER_GROUP_HEARTBEAT = 68
_PROBE_TIMEOUT_S = 3.0


def group_protocol(kafka: KafkaSettings, broker: BrokerKind) -> GroupProtocol:
    """The user's `group.protocol` when set; classic when they set a classic-only key,
    on tansu, or when the broker does not speak KIP-848; else consumer."""
    chosen = kafka.librdkafka.get("group.protocol")
    if chosen is not None:
        return "consumer" if str(chosen).lower() == "consumer" else "classic"
    if broker != "kafka" or any(key in kafka.librdkafka for key in CLASSIC_ONLY_KEYS):
        return "classic"
    security = str(kafka.librdkafka.get("security.protocol", "plaintext")).lower()
    if security not in ("plaintext", "sasl_plaintext"):
        return "classic"
    api_keys = broker_api_keys(kafka.bootstrap)
    return "consumer" if _CONSUMER_GROUP_HEARTBEAT in api_keys else "classic"


def broker_api_keys(bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S) -> set[int]:
    """The API keys the first answering bootstrap broker serves (empty: none answered)."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        with contextlib.suppress(OSError, ValueError, struct.error):
            return _ask_api_versions(host.strip("[]") or "localhost", int(port), timeout_s)
    log.info("no broker of %s answered ApiVersions: classic consumer groups", bootstrap)
    return set()


def _ask_api_versions(host: str, port: int, timeout_s: float) -> set[int]:
    client_id = b"tensorflux"
    # Request header v1: api_key, api_version, correlation_id, client_id; v0 has no body.
    body = struct.pack(">hhih", _API_VERSIONS, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout_s) as connection:
        connection.settimeout(timeout_s)
        connection.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read(connection, 4))[0]
        answer = _read(connection, size)
    correlation_id, error_code, count = struct.unpack_from(">ihi", answer)
    if correlation_id != 1 or error_code != 0:
        return set()
    return {struct.unpack_from(">h", answer, 10 + 6 * i)[0] for i in range(count)}


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = connection.recv(size - len(data))
        if not piece:
            raise OSError("the broker closed the connection")
        data += piece
    return data
