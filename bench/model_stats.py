"""The model calls a worker made, read from its Prometheus metrics (`--metrics-port`).

The compute section compares the pipeline with onnxruntime alone at the batch
sizes the worker actually hands its model: `tensorflux_model_call_requests`
(requests merged into one call) and `tensorflux_model_call_seconds` (a call's
time), read at the start and the end of a contender's timed window.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.request
from dataclasses import dataclass

CALLS = "tensorflux_model_call_requests_count"
REQUESTS = "tensorflux_model_call_requests_sum"
SECONDS = "tensorflux_model_call_seconds_sum"


@dataclass(frozen=True)
class Calls:
    """Model calls summed over a contender's workers and models."""

    calls: float = 0.0
    requests: float = 0.0
    seconds: float = 0.0
    """Time spent inside the model's calls (on the model threads)."""

    def __sub__(self, other: Calls) -> Calls:
        return Calls(
            self.calls - other.calls,
            self.requests - other.requests,
            self.seconds - other.seconds,
        )

    def per_call(self) -> float:
        """Requests a call (NaN: no call)."""
        return self.requests / self.calls if self.calls > 0 else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(ports: list[int]) -> Calls:
    """The workers' model-call counters now (a worker that does not answer counts 0)."""
    total = {CALLS: 0.0, REQUESTS: 0.0, SECONDS: 0.0}
    for port in ports:
        with contextlib.suppress(OSError, ValueError):
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (localhost)
                text = response.read().decode()
            for line in text.splitlines():
                name = line.split("{", 1)[0]
                if name in total:
                    total[name] += float(line.rsplit(" ", 1)[1])
    return Calls(total[CALLS], total[REQUESTS], total[SECONDS])
