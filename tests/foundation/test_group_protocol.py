"""Which consumer-group protocol the workers' group uses (engine/group_protocol.py)."""

from __future__ import annotations

import pytest

from engine.admin import TopicAdmin
from engine.config import KafkaSettings, broker_kind
from engine.group_protocol import CLASSIC_ONLY_KEYS, broker_api_keys, group_protocol
from engine.runtime.settings import WorkerSettings

API_VERSIONS, CONSUMER_GROUP_HEARTBEAT = 18, 68


def settings(**librdkafka: str) -> KafkaSettings:
    # Port 1: nothing listens, so a probe would find no KIP-848 broker.
    return KafkaSettings(bootstrap="127.0.0.1:1", librdkafka=librdkafka)


def test_the_users_own_group_protocol_wins() -> None:
    assert group_protocol(settings(**{"group.protocol": "classic"}), "kafka") == "classic"
    assert group_protocol(settings(**{"group.protocol": "consumer"}), "tansu") == "consumer"


@pytest.mark.parametrize("key", CLASSIC_ONLY_KEYS)
def test_a_classic_only_setting_keeps_the_classic_protocol(key: str) -> None:
    assert group_protocol(settings(**{key: "range"}), "kafka") == "classic"


def test_classic_on_the_embedded_broker_and_where_no_broker_answers() -> None:
    assert group_protocol(settings(), "tansu") == "classic"
    assert group_protocol(settings(), "kafka") == "classic"  # port 1: no answer
    assert broker_api_keys("127.0.0.1:1") == set()


def test_the_consumer_protocol_leaves_assignment_to_the_broker() -> None:
    worker = WorkerSettings()
    classic = worker.consumer_config(settings(), "g", "kafka", "classic")
    assert classic["partition.assignment.strategy"] == "range"
    assert "group.protocol" not in classic
    kip848 = worker.consumer_config(settings(), "g", "kafka", "consumer")
    assert not set(CLASSIC_ONLY_KEYS) & set(kip848)  # librdkafka refuses them there
    assert kip848["group.protocol"] == "consumer"
    assert kip848["group.remote.assignor"] == "range"  # co-partitioned, as joins need


def test_the_broker_is_asked_what_it_speaks(kafka_settings: KafkaSettings) -> None:
    keys = broker_api_keys(kafka_settings.bootstrap)
    assert API_VERSIONS in keys
    kind = broker_kind(TopicAdmin(kafka_settings).cluster_id())
    # Apache Kafka 4 serves KIP-848 groups; tansu does not.
    assert (CONSUMER_GROUP_HEARTBEAT in keys) == (kind == "kafka")
    assert group_protocol(kafka_settings, kind) == ("consumer" if kind == "kafka" else "classic")
