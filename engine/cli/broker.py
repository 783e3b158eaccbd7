"""`tensorflux broker`: the embedded Kafka-compatible broker in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading

from engine.broker import EmbeddedBroker


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="run the embedded Kafka-compatible broker (memory only)",
        description="Run the embedded tansu broker until Ctrl-C or SIGTERM. "
        "It keeps everything in memory and applies no retention.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9092, help="port (0 picks a free one)")
    parser.set_defaults(handler=run_broker)


def run_broker(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with EmbeddedBroker(args.host, args.port) as broker:
        print(
            f"tensorflux broker ready: bootstrap {broker.bootstrap} (embedded tansu, memory only)",
            flush=True,
        )
        while not stop.is_set():
            if not broker.running():
                print(f"tensorflux broker exited unexpectedly: {broker.log_tail()}", flush=True)
                return 1
            stop.wait(0.5)
    print("tensorflux broker stopped", flush=True)
    return 0
