"""Serving the gateway with uvicorn until a stop event is set, then draining it."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import uvicorn

from engine.config import KafkaSettings
from engine.gateway.app import DEFAULT_TIMEOUT_S, create_app
from engine.gateway.catalog import Catalog
from engine.gateway.draining import DEFAULT_GRACE_S, Drain
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
    max_request_bytes: int | None = None,
    shutdown_grace_s: float = DEFAULT_GRACE_S,
) -> None:
    """Serve the gateway on host:port until `stop` is set (blocks; any thread), then
    drain it for up to `shutdown_grace_s` (draining.py) and return.

    Uvicorn's own signal handlers are kept out, on the main thread too: whoever runs
    this sets `stop` on Ctrl-C/SIGTERM, so a signal drains rather than cuts.
    """
    grpc = None if grpc_port is None else GrpcServing(host, grpc_port, tls)  # OIP gRPC beside
    drain = Drain()
    app = create_app(
        settings,
        catalog,
        timeout_s=timeout_s,
        tokens=tokens,
        grpc=grpc,
        max_request_bytes=max_request_bytes,
        drain=drain,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        # Drained before uvicorn stops: only a request that came as the sockets closed
        # is left, and it is answered 503 by the drain's middleware.
        timeout_graceful_shutdown=2,
        **(tls.uvicorn_options() if tls is not None else {}),
    )
    server = _Server(config)

    def watch() -> None:
        stop.wait()
        try:
            drain.run(shutdown_grace_s)
        finally:
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


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (see `run_gateway`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
