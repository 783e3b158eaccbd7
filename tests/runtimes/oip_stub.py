"""A tiny OIP V2 REST server for remote-model tests: models that answer, refuse, fail,
are slow or not ready, and a listening socket that only counts who connects."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StubModel:
    """`behaviour`: "double" (answers Y = X * 2 for FP32 X), "refuse" (400), "fail" (500),
    "slow" (sleeps `delay_s`, then doubles), "crash" (500 with a traceback as text); `ready` False answers 503 with `reason`."""

    behaviour: str = "double"
    ready: bool = True
    reason: str = ""
    delay_s: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    """The most calls it ever answered at once."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class OipStub:
    def __init__(
        self, models: dict[str, StubModel], tls: ssl.SSLContext | None = None, port: int = 0
    ) -> None:
        """`tls`: serve HTTPS with this server-side context; `port`: 0 for a free one."""
        self.models = models
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")  # v2 models NAME [ready]
                model = stub.models.get(parts[2]) if len(parts) >= 3 else None
                if model is None:
                    return self._answer(404, {"error": f"no model {self.path}"})
                if parts[-1] == "ready":
                    if model.ready:
                        return self._answer(200, {"name": parts[2], "ready": True})
                    return self._answer(503, {"error": model.reason})
                tensor = {"name": "X", "datatype": "FP32", "shape": [-1, 2]}
                return self._answer(200, {"name": parts[2], "platform": "stub", "inputs": [tensor]})

            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                model = stub.models.get(parts[2]) if len(parts) >= 3 else None
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if model is None:
                    return self._answer(404, {"error": "no such model"})
                model.calls.append(body)
                if model.behaviour == "refuse":
                    return self._answer(400, {"error": "shape [1, 3] does not fit [-1, 2]"})
                if model.behaviour == "fail":
                    return self._answer(500, {"error": "the model ran out of memory"})
                if model.behaviour == "crash":  # a server in debug mode: the traceback as text
                    text = 'Traceback (most recent call last):\n  File "m.py"\nValueError: 3 != 4\n'
                    return self._answer(500, text)
                with model.lock:
                    model.in_flight += 1
                    model.peak_in_flight = max(model.peak_in_flight, model.in_flight)
                time.sleep(model.delay_s)
                with model.lock:
                    model.in_flight -= 1
                item = body["inputs"][0]
                doubled = [2 * value for value in item["data"]]
                output = {"name": "Y", "datatype": "FP32", "shape": item["shape"], "data": doubled}
                return self._answer(200, {"model_name": parts[2], "outputs": [output]})

            def _answer(self, status: int, document: dict[str, Any] | str) -> None:
                text = isinstance(document, str)
                body = (document if text else json.dumps(document)).encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain" if text else "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port: later calls are refused (again: nothing)."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class Listener:
    """A listening socket that records every connection it accepts (and answers none)."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()
