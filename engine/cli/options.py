"""Options every command that talks to Kafka shares, and the settings they make."""

from __future__ import annotations

import argparse

from engine.config import KafkaSettings
from engine.observability import logs
from engine.observability.logs import LOG_FORMATS, LogFormat


def add_kafka_options(
    parser: argparse.ArgumentParser, *, bootstrap_default: str | None = None
) -> None:
    group = parser.add_argument_group("Kafka")
    group.add_argument(
        "--bootstrap",
        "--kafka-broker",  # Seldon's CLI name for it
        dest="bootstrap",
        default=bootstrap_default,
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (default: TENSORFLUX_BOOTSTRAP, else 127.0.0.1:9092)",
    )
    group.add_argument(
        "--namespace", help="topic namespace (default: TENSORFLUX_NAMESPACE, else 'default')"
    )
    group.add_argument("--topic-prefix", help="first segment of every topic (default 'tensorflux')")
    group.add_argument(
        "--partitions",
        type=int,
        help="partitions of topics tensorflux creates (default 4: up to 4 workers share them)",
    )
    group.add_argument(
        "--kafka-config", metavar="FILE", help="librdkafka properties file (key=value lines)"
    )


def settings_from(args: argparse.Namespace, **overrides: object) -> KafkaSettings:
    values = {
        "bootstrap": getattr(args, "bootstrap", None),
        "namespace": getattr(args, "namespace", None),
        "topic_prefix": getattr(args, "topic_prefix", None),
        "partitions": getattr(args, "partitions", None),
        **overrides,
    }
    return KafkaSettings.load(config_file=getattr(args, "kafka_config", None), **values)


def add_shutdown_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=10.0,
        metavar="S",
        help="on SIGINT/SIGTERM, give requests in flight up to S seconds to be answered "
        "(new ones get 503; what still waits then gets 503) before stopping (default 10)",
    )


def add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text lines, or one JSON object a line (with request id, pipeline and step "
        "on lines about a request)",
    )


def configure_logging(verbose: bool = False, log_format: LogFormat = "text") -> None:
    logs.configure_logging(verbose, log_format)
