"""A worker's health endpoint: liveness, readiness and Prometheus metrics on one port.

Kubernetes probes a worker here (deploy/k8s): `/health/live` answers 200 while
the process serves at all, `/health/ready` asks the worker (ready once its
consumer has an assignment, or when it has nothing to run) and answers 200 or
503, and `/metrics` is what `--metrics-port` serves. The stdlib server runs on
a daemon thread, so a worker stuck in its loop still answers `live` (the loop's
own liveness is the callable's business) and stopping never waits on a probe.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger("tensorflux.health")

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
METRICS_PATH = "/metrics"
DEFAULT_PORT = 8080
"""The port the Kubernetes manifests probe (`tensorflux worker --health-port 8080`)."""

Check = Callable[[], bool]


def _always() -> bool:
    return True


class HealthServer:
    """Serves LIVE_PATH, READY_PATH and METRICS_PATH on `host:port` until `stop()`.

    `ready` and `live` are called on every probe, from the server's thread: they
    must be cheap and must not touch the worker's Kafka clients. A check that
    raises counts as "no" and is logged, so a bug there fails the probe instead
    of killing the server.
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        ready: Check,
        live: Check = _always,
        host: str = "0.0.0.0",
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._checks = {LIVE_PATH: ("live", live), READY_PATH: ("ready", ready)}
        self._registry = registry
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port bound (the one asked for, or the OS's pick for port 0)."""
        return self._server.server_address[1]

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health on port %d (%s, %s, %s)", self.port, LIVE_PATH, READY_PATH, METRICS_PATH)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answer(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        if path == METRICS_PATH:
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path not in self._checks:
            known = ", ".join([LIVE_PATH, READY_PATH, METRICS_PATH])
            body = {"error": f"no such path {path!r}; this server serves {known}"}
            return 404, "application/json", json.dumps(body).encode()
        name, check = self._checks[path]
        try:
            ok = bool(check())
        except Exception:
            log.exception("%s check failed", name)
            ok = False
        return (200 if ok else 503), "application/json", json.dumps({name: ok}).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        answer = self._answer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                status, content_type, body = answer(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # Probes come every few seconds: keep them out of the worker's log.
                log.debug(format, *args)

        return Handler
