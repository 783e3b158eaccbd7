"""The worker health endpoint through real HTTP on a free port: what the kubelet's probes see."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from engine.health import LIVE_PATH, METRICS_PATH, READY_PATH, HealthServer


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def get(server: HealthServer, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=5)


def test_ready_follows_the_workers_answer_and_live_stays_up(registry: CollectorRegistry) -> None:
    assigned = False
    with HealthServer(0, ready=lambda: assigned, host="127.0.0.1", registry=registry) as server:
        response = get(server, READY_PATH)
        assert (response.status_code, response.json()) == (503, {"ready": False})
        assert get(server, LIVE_PATH).status_code == 200
        assigned = True
        response = get(server, READY_PATH)
        assert (response.status_code, response.json()) == (200, {"ready": True})
        # Probes may add a query string; the path alone decides.
        assert get(server, READY_PATH + "?probe=1").status_code == 200


def test_a_liveness_check_can_fail_the_probe(registry: CollectorRegistry) -> None:
    with HealthServer(
        0, ready=lambda: True, live=lambda: False, host="127.0.0.1", registry=registry
    ) as server:
        response = get(server, LIVE_PATH)
        assert (response.status_code, response.json()) == (503, {"live": False})


def test_a_check_that_raises_fails_the_probe_and_the_server_goes_on(
    registry: CollectorRegistry,
) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    with HealthServer(0, ready=broken, host="127.0.0.1", registry=registry) as server:
        assert get(server, READY_PATH).status_code == 503
        assert get(server, LIVE_PATH).status_code == 200


def test_metrics_are_the_prometheus_text_of_the_registry(registry: CollectorRegistry) -> None:
    served = Counter("tensorflux_test_probes", "probes in this test", registry=registry)
    served.inc(3)
    with HealthServer(0, ready=lambda: True, host="127.0.0.1", registry=registry) as server:
        response = get(server, METRICS_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "tensorflux_test_probes_total 3.0" in response.text


def test_an_unknown_path_is_404_naming_the_paths_served(registry: CollectorRegistry) -> None:
    with HealthServer(0, ready=lambda: True, host="127.0.0.1", registry=registry) as server:
        response = get(server, "/healthz")
    assert response.status_code == 404
    message = response.json()["error"]
    assert "/healthz" in message
    assert all(path in message for path in (LIVE_PATH, READY_PATH, METRICS_PATH))


def test_stop_frees_the_port(registry: CollectorRegistry) -> None:
    server = HealthServer(0, ready=lambda: True, host="127.0.0.1", registry=registry).start()
    port = server.port
    server.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # raises if the server still held it
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}{LIVE_PATH}", timeout=2)
