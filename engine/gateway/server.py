"""Serving the gateway with uvicorn until a stop event is set."""

from __future__ import annotations

import logging
import threading

import uvicorn

from engine.config import KafkaSettings
from engine.gateway.app import DEFAULT_TIMEOUT_S, create_app
from engine.gateway.catalog import Catalog
from engine.gateway.grpc_service import GrpcServing
from engine.gateway.security import TlsFiles, TokenFile

log = logging.getLogger("tensorflux.gateway")


def run_gateway(
    settings: KafkaSettings,
    catalog: Catalog,
    host: str,
    port: int,
    stop: threading.Event,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    log_level: str = "warning",
    tokens: TokenFile | None = None,
    tls: TlsFiles | None = None,
    grpc_port: int | None = None,
) -> None:
    """Serve the gateway on host:port until `stop` is set (blocks; any thread).

    Uvicorn installs no signal handlers outside the main thread: whoever runs
    this sets `stop` on Ctrl-C/SIGTERM.
    """
    grpc = None if grpc_port is None else GrpcServing(host, grpc_port, tls)  # OIP gRPC beside
    app = create_app(settings, catalog, timeout_s=timeout_s, tokens=tokens, grpc=grpc)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **(tls.uvicorn_options() if tls is not None else {}),
    )
    server = uvicorn.Server(config)

    def watch() -> None:
        stop.wait()
        server.should_exit = True

    watcher = threading.Thread(target=watch, name="gateway-stop", daemon=True)
    watcher.start()
    scheme = "https" if tls is not None else "http"
    log.info(
        "gateway on %s://%s:%d/v2 (namespace %s%s%s)",
        scheme,
        host,
        port,
        settings.namespace,
        ", bearer tokens required" if tokens is not None else "",
        ", client certificates required" if tls is not None and tls.client_ca else "",
    )
    server.run()
    if not stop.is_set() and not server.should_exit:
        log.error("gateway on %s:%d stopped on its own", host, port)
