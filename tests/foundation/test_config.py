"""Kafka settings: environment, properties file and overrides, secrets kept secret."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from engine.config import ConfigError, KafkaSettings


def test_defaults_suit_the_embedded_broker():
    settings = KafkaSettings.load(environ={})
    consumer = settings.consumer_config("g")
    assert settings.bootstrap == "127.0.0.1:9092"
    assert consumer["session.timeout.ms"] == 6000
    assert consumer["enable.auto.commit"] is False
    assert consumer["group.id"] == "g"


def test_environment_sets_fields_and_librdkafka_pass_through():
    settings = KafkaSettings.load(
        environ={
            "TENSORFLUX_BOOTSTRAP": "kafka:9093",
            "TENSORFLUX_NAMESPACE": "prod",
            "TENSORFLUX_PARTITIONS": "6",
            "TENSORFLUX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "TENSORFLUX_KAFKA_SASL_PASSWORD": "hunter2",
        }
    )
    assert (settings.bootstrap, settings.namespace, settings.partitions) == (
        "kafka:9093",
        "prod",
        6,
    )
    config = settings.producer_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "hunter2"
    assert isinstance(settings.librdkafka["sasl.password"], SecretStr)
    assert "hunter2" not in repr(settings)


def test_properties_file_is_overridden_by_environment_and_arguments(tmp_path):
    properties = tmp_path / "client.properties"
    properties.write_text(
        "# comment\nbootstrap.servers=file:9092\nsasl.mechanism=PLAIN\nclient.id=from-file\n"
    )
    settings = KafkaSettings.load(
        config_file=properties,
        environ={"TENSORFLUX_KAFKA_CLIENT_ID": "from-env"},
        namespace="ns1",
    )
    assert settings.bootstrap == "file:9092"
    assert settings.client_config()["sasl.mechanism"] == "PLAIN"
    assert settings.client_config()["client.id"] == "from-env"
    assert settings.namespace == "ns1"


def test_malformed_properties_line_names_file_and_line(tmp_path):
    properties = tmp_path / "bad.properties"
    properties.write_text("a=1\nthis line has no equals\n")
    with pytest.raises(ConfigError, match=r"bad.properties:2"):
        KafkaSettings.load(config_file=properties, environ={})


@pytest.mark.parametrize(
    "field,value", [("namespace", "has.dot"), ("topic_prefix", ""), ("partitions", "0")]
)
def test_bad_values_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=field):
        KafkaSettings.load(environ={}, **{field: value})
