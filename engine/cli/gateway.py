"""`tensorflux gateway`: the Open Inference Protocol HTTP gateway alone (a scale-out unit)."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.options import (
    add_kafka_options,
    add_log_options,
    add_shutdown_option,
    configure_logging,
    settings_from,
)
from engine.cli.stopping import stop_on_signals
from engine.config import KafkaSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    gateway = subparsers.add_parser(
        "gateway",
        help="run the Open Inference Protocol HTTP gateway alone (a scale-out unit)",
        description="Serve OIP V2 over HTTP: requests go to the pipelines' and models' Kafka "
        "topics and replies come back from their outputs topics. What exists comes from the "
        "control topic, or from -f SPECS when given. Run as many as you like.",
    )
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on")
    gateway.add_argument("--port", type=int, default=9000, help="HTTP port (default 9000)")
    gateway.add_argument(
        "--grpc-port",
        type=int,
        metavar="PORT",
        help="also serve OIP gRPC (KServe V2) on this port, e.g. 9500 (default: no gRPC)",
    )
    gateway.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a reply (default 30)"
    )
    gateway.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="SPECS",
        help="serve these specs instead of following the control topic",
    )
    add_log_options(gateway)
    add_wire_option(gateway)
    add_limit_options(gateway)
    add_security_options(gateway)
    add_kafka_options(gateway)
    gateway.set_defaults(handler=run_gateway_command)


def add_security_options(parser: argparse.ArgumentParser) -> None:
    """The gateway's authentication and TLS flags (`gateway` and `up`)."""
    group = parser.add_argument_group("gateway security")
    group.add_argument(
        "--auth-token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer TOKEN' with a token of FILE (one per line) "
        "on everything but /v2/health/*; FILE is re-read when it changes",
    )
    group.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    group.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    group.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="mutual TLS: accept only clients with a certificate signed by this CA",
    )


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """The gateway's request size limit and shutdown grace (`gateway` and `up`)."""
    parser.add_argument(
        "--max-request-bytes",
        type=_positive_int,
        metavar="N",
        help="answer 413 (gRPC: RESOURCE_EXHAUSTED) to request bodies over N bytes, "
        "gzip ones once decompressed (default: the Kafka message limit, message.max.bytes, "
        "1000000 unless the Kafka config says otherwise)",
    )
    add_shutdown_option(parser)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes, got {text}")
    return value


def add_wire_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wire",
        choices=("tensorflux", "seldon"),
        default="tensorflux",
        help="seldon: also speak Seldon Core 2's Kafka interface (seldon.<ns>.pipeline.<p>."
        "inputs|outputs, OIP protobuf payloads) beside tensorflux's own topics",
    )


def seldon_wire(args: argparse.Namespace, settings: KafkaSettings) -> Any:
    """The Seldon Kafka bridge when `--wire seldon` asks for it (started), else None."""
    if getattr(args, "wire", "tensorflux") != "seldon":
        return None
    from engine.wire.seldon import SeldonBridge

    return SeldonBridge(settings).start()


def security_from(args: argparse.Namespace) -> tuple[Any, Any]:
    """(TokenFile or None, TlsFiles or None); SecurityConfigError names a bad file."""
    from engine.gateway.security import TlsFiles, TokenFile

    tokens = TokenFile(args.auth_token_file) if args.auth_token_file else None
    return tokens, TlsFiles.of(args.tls_cert, args.tls_key, args.tls_client_ca)


def run_gateway_command(args: argparse.Namespace) -> int:
    from engine.gateway import ControlCatalog, StaticCatalog, run_gateway
    from engine.topology import compile_topology, load_files

    configure_logging(args.verbose, args.log_format)
    settings = settings_from(args)
    tokens, tls = security_from(args)
    topics = settings.topics()
    if args.files:
        catalog: Any = StaticCatalog.from_topology(
            compile_topology(load_files(args.files), topics), topics
        )
    else:
        catalog = ControlCatalog(settings)
    stop = stop_on_signals()
    bridge = seldon_wire(args, settings)
    print(
        f"tensorflux gateway: {'https' if tls else 'http'}://{args.host}:{args.port}/v2 "
        f"(bootstrap {settings.bootstrap}, namespace {settings.namespace})",
        flush=True,
    )
    try:
        run_gateway(
            settings,
            catalog,
            args.host,
            args.port,
            stop,
            timeout_s=args.timeout,
            tokens=tokens,
            tls=tls,
            grpc_port=args.grpc_port,
            max_request_bytes=args.max_request_bytes,
            shutdown_grace_s=args.shutdown_grace,
        )
    finally:
        if bridge is not None:
            bridge.close()
        close = getattr(catalog, "close", None)
        if close is not None:
            close()
    return 0
