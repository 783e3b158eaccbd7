"""The dashboard checked on a real Prometheus: every PromQL expression of
deploy/grafana/dashboards/tensorflux.json has data while an engine serves traffic.

The engine (a worker and the gateway) runs here on the embedded broker under a
stream of good, bad and unknown requests; Debian's `prometheus` scrapes it with
deploy/prometheus/prometheus.yml (only the targets swapped for the local ports),
and each expression is evaluated through Prometheus' HTTP API with the
dashboard's variables set to what they match. Skipped, saying why, where the
`prometheus` binary is not installed (`.ci/run` installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from engine.broker import free_port
from engine.config import KafkaSettings
from engine.gateway import StaticCatalog, run_gateway
from engine.health import HealthServer
from engine.runtime.worker import Worker
from engine.topology import TopicNames, compile_topology, load_files
from tests.gateway.conftest import ONES_TO_16, tensors, wait_ready

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tensorflux.json"
JOBS = {"tensorflux-gateway", "tensorflux-worker"}


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def shipped_namespace() -> str:
    """The namespace label the shipped scrape config gives every target."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    values = {
        rule["replacement"]
        for job in config["scrape_configs"]
        for rule in job.get("relabel_configs", ())
        if rule.get("target_label") == "namespace"
    }
    assert len(values) == 1, values
    return values.pop()


def with_local_targets(targets: dict[str, str]) -> dict:
    """The shipped config with each job's service discovery replaced by a local target."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == JOBS
    for job in config["scrape_configs"]:
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def test_the_dashboard_and_the_scrape_config_agree_on_jobs_and_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"namespace", "pipeline"}
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for needed in ("throughput", "p99", "error", "lag", "batch", "held", "gateway latency"):
        assert needed in titles, needed
    assert shipped_namespace() == "default"


def traffic(url: str, stop: threading.Event) -> None:
    """Good requests to a chain and a join, bad ones (error records) and an unknown name."""
    good = tensors(ONES_TO_16, ONES_TO_16)
    bad = {"inputs": [{"name": "INPUT0", "datatype": "FP64", "shape": [1, 1], "data": [1.5]}]}
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            for pipeline, body in (
                ("tfsimples", good),
                ("tfsimples-join", good),
                ("tfsimples", bad),
                ("nope", good),
            ):
                try:
                    client.post(f"{url}/v2/pipelines/{pipeline}/infer", json=body)
                except httpx.HTTPError:
                    pass
            stop.wait(0.05)


@pytest.fixture
def engine(kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    """A worker (metrics on its own port, as `worker --metrics-port` serves them) and the
    gateway, under traffic; returns the scrape target of each job."""
    settings = KafkaSettings(
        bootstrap=kafka_bootstrap, namespace=f"pm{uuid.uuid4().hex[:10]}", partitions=1
    )
    topics = TopicNames(settings.topic_prefix, settings.namespace)
    topology = compile_topology(load_files([str(ROOT / "examples")]), topics)
    worker = Worker(settings)
    worker.apply(topology)
    health = HealthServer(0, ready=worker.ready, host="127.0.0.1").start()
    stop, stop_traffic = threading.Event(), threading.Event()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    threads = [
        threading.Thread(target=worker.run, args=(stop,), daemon=True),
        threading.Thread(
            target=run_gateway,
            args=(settings, StaticCatalog.from_topology(topology, topics), "127.0.0.1", port, stop),
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    sender = threading.Thread(target=traffic, args=(url, stop_traffic), daemon=True)
    try:
        wait_ready(url)
        sender.start()
        yield {
            "tensorflux-gateway": f"127.0.0.1:{port}",
            "tensorflux-worker": f"127.0.0.1:{health.port}",
        }
    finally:
        stop_traffic.set()
        if sender.is_alive():
            sender.join(30)
        stop.set()
        for thread in threads:
            thread.join(15)
        health.stop()


@pytest.fixture
def prometheus(tmp_path: Path, engine: dict[str, str]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no `prometheus` binary: `apt-get install -y prometheus` (.ci/run does)")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(with_local_targets(engine)))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prometheus not ready after 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def query(url: str, expr: str) -> list:
    reply = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert reply["status"] == "success", (expr, reply)
    return reply["data"]["result"]


def concrete(expr: str, namespace: str) -> str:
    """The expression as Grafana sends it, its variables set to what they match."""
    return (
        expr.replace("$namespace", namespace)
        .replace("$pipeline", ".*")
        .replace("$__rate_interval", "1m")
    )


@pytest.mark.timeout(300)
def test_every_dashboard_expression_has_data_on_a_real_prometheus(prometheus: str) -> None:
    namespace = shipped_namespace()
    deadline = time.monotonic() + 120
    while {r["metric"]["job"] for r in query(prometheus, "up == 1")} != JOBS:
        assert time.monotonic() < deadline, query(prometheus, "up")
        time.sleep(1)
    pending = dashboard_expressions()
    while pending and time.monotonic() < deadline:
        pending = [(title, e) for title, e in pending if not query(prometheus, concrete(e, namespace))]  # fmt: skip
        if pending:
            time.sleep(2)
    assert not pending, f"no data for: {pending}"
    # The dashboard's variables list what the engine serves.
    pipelines = httpx.get(
        f"{prometheus}/api/v1/label/pipeline/values",
        params={"match[]": f'tensorflux_step_requests_total{{namespace="{namespace}"}}'},
        timeout=10,
    ).json()["data"]
    assert {"tfsimples", "tfsimples-join"} <= set(pipelines)
    lag = query(prometheus, f'tensorflux_consumer_lag{{namespace="{namespace}"}}')
    assert all(float(r["value"][1]) >= 0 for r in lag)
