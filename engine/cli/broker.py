"""`tensorflux broker`: the embedded broker, or a real Apache Kafka, in the foreground."""

from __future__ import annotations

import argparse

from engine.broker import EmbeddedBroker
from engine.cli.errors import CliError
from engine.cli.stopping import stop_on_signals
from engine.kafka_cluster import KafkaCluster
from engine.kafka_jars import find_java, jars_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="run the embedded Kafka-compatible broker (memory only), or a real Kafka",
        description="Run the embedded tansu broker until Ctrl-C or SIGTERM. "
        "It keeps everything in memory and applies no retention. With --kafka, run "
        "Apache Kafka (KRaft) instead, from jars Maven fetches into ~/.cache/tensorflux "
        "(needs Java 17+ and Maven), its storage in a temporary folder deleted on stop.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=9092, help="port (of the first node; 0 picks a free one)"
    )
    parser.add_argument("--kafka", action="store_true", help="run Apache Kafka, not tansu")
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="with --kafka: how many nodes (3: replication factor 3, min.insync.replicas=2)",
    )
    parser.add_argument(
        "--sasl-scram",
        metavar="USER:PASSWORD",
        help="with --kafka: clients must authenticate with SASL/SCRAM-SHA-512 as USER "
        "(a SASL_PLAINTEXT listener; the user is created when the storage is formatted)",
    )
    parser.add_argument(
        "--fetch-only",
        action="store_true",
        help="with --kafka: fetch Kafka's jars into the cache, print where, and exit",
    )
    parser.set_defaults(handler=run_broker)


def run_broker(args: argparse.Namespace) -> int:
    if args.fetch_only:
        java = find_java()  # what the jars are for: say now if it is missing
        print(f"tensorflux broker: Kafka jars in {jars_dir()}, run by {java}", flush=True)
        return 0
    if args.sasl_scram and not args.kafka:
        raise CliError("--sasl-scram needs --kafka: the embedded broker has no SASL")
    scram = None
    if args.sasl_scram:
        user, sep, password = args.sasl_scram.partition(":")
        if not sep:
            raise CliError(f"--sasl-scram takes USER:PASSWORD, got {user!r} (no ':')")
        scram = (user, password)
    stop = stop_on_signals()
    if args.kafka:
        broker: EmbeddedBroker | KafkaCluster = KafkaCluster(
            args.nodes, args.host, args.port, sasl_scram=scram
        )
    else:
        broker = EmbeddedBroker(args.host, args.port)
    with broker:
        if isinstance(broker, KafkaCluster):
            what = (
                f"Apache Kafka {broker.version}, {broker.size} KRaft node(s), "
                f"replication factor {broker.replication_factor}, storage deleted on stop"
            )
        else:
            what = "embedded tansu, memory only"
        print(f"tensorflux broker ready: bootstrap {broker.bootstrap} ({what})", flush=True)
        if scram is not None:
            # The password is the caller's own; it is never printed back.
            print(
                "clients authenticate with: security.protocol=SASL_PLAINTEXT "
                f"sasl.mechanism=SCRAM-SHA-512 sasl.username={scram[0]} sasl.password=...",
                flush=True,
            )
        while not stop.is_set():
            if not broker.running():
                print(f"tensorflux broker exited unexpectedly: {broker.log_tail()}", flush=True)
                return 1
            stop.wait(0.5)
    print("tensorflux broker stopped", flush=True)
    return 0
