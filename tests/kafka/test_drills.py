"""Failure drills: a join pipeline under steady traffic while the 3-node cluster fails.

Each drill breaks Kafka the way production does (the leader's broker killed,
leadership moved, every broker restarted in turn), or kills the worker, while
requests keep coming,
then checks that every acknowledged request was answered, with the right
values; duplicates are allowed (at-least-once) and counted. The figures (the
longest wait for an answer is the pause the failure caused) go to the
terminal summary.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import STDOUT, Popen

import pytest
from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient

from engine.config import KafkaSettings
from engine.kafka_cluster import KafkaCluster
from tests.kafka.traffic import DRILL_REPORT, SteadyTraffic, tally
from tests.runtime.helpers import MODELS, PIPELINES, ROOT, RunningWorker, compile_specs

PIPELINE = "tfsimples-join"
WARM_ANSWERS = 20
ANSWER_DEADLINE_S = 180.0

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def settings(kafka_cluster: KafkaCluster) -> KafkaSettings:
    return KafkaSettings(
        bootstrap=kafka_cluster.bootstrap,
        namespace=f"drill{uuid.uuid4().hex[:8]}",
        replication_factor=kafka_cluster.replication_factor,
    )


@pytest.fixture
def worker(settings: KafkaSettings) -> Iterator[RunningWorker]:
    specs = [
        *(MODELS / f"tfsimple{i}.yaml" for i in (1, 2, 3)),
        PIPELINES / f"{PIPELINE}.yaml",
    ]
    running = RunningWorker(settings, compile_specs(settings, specs))
    running.wait_ready("pipeline", PIPELINE)
    yield running
    running.stop()


def _drill(
    name: str,
    settings: KafkaSettings,
    worker: RunningWorker | None,
    failure: Callable[[], str],
) -> None:
    """Traffic before, during and after `failure()` (which says what it did); then the account."""
    traffic = SteadyTraffic(settings, PIPELINE).start()
    _wait_answering(settings, traffic)
    started = time.time()
    what = failure()
    failed_for = time.time() - started
    time.sleep(5)  # traffic goes on after the failure: the engine must have recovered
    traffic.stop()
    if worker is not None:
        worker.check_alive()
    assert not traffic.refused, f"Kafka refused requests: {traffic.refused[:5]}"
    result = tally(settings, PIPELINE, set(traffic.sent), ANSWER_DEADLINE_S)
    missing = sorted(set(traffic.sent) - set(result.answers))
    assert not missing, f"{len(missing)} of {len(traffic.sent)} requests unanswered: {missing[:10]}"
    assert not result.wrong, f"wrong answers or error records for {result.wrong[:10]}"
    healthy = result.latencies(traffic.sent, before=started)
    latencies = result.latencies(traffic.sent)
    DRILL_REPORT.append(
        f"{name}: {what}; {failed_for:.1f} s of failure; {len(traffic.sent)} requests, "
        f"all answered, {result.duplicates} duplicate answers; wait for an answer: "
        f"median {statistics.median(healthy) * 1000:.0f} ms before the failure, "
        f"{statistics.median(latencies) * 1000:.0f} ms overall, longest {max(latencies):.1f} s"
    )


def _wait_answering(settings: KafkaSettings, traffic: SteadyTraffic) -> None:
    deadline = time.monotonic() + 60
    while len(traffic.sent) < WARM_ANSWERS and time.monotonic() < deadline:
        time.sleep(0.1)
    early = set(list(traffic.sent)[:WARM_ANSWERS])
    result = tally(settings, PIPELINE, early, 60)
    assert early <= set(result.answers), "the pipeline never answered before the failure"


def _leader(cluster: KafkaCluster, settings: KafkaSettings) -> int:
    return cluster.leader_of(settings.topics().pipeline_inputs(PIPELINE))


def test_leader_broker_killed(kafka_cluster, settings, worker):
    def failure() -> str:
        leader = _leader(kafka_cluster, settings)
        kafka_cluster.kill_node(leader)
        deadline = time.monotonic() + 60
        while _leader(kafka_cluster, settings) in (leader, -1):
            assert time.monotonic() < deadline, "no new leader within 60 s"
            time.sleep(0.2)
        time.sleep(10)  # and the cluster goes on without it
        return f"node {leader} (leader of the inputs) SIGKILLed, not restarted"

    _drill("leader killed", settings, worker, failure)


def test_leadership_moves(kafka_cluster, settings, worker):
    def failure() -> str:
        leader = _leader(kafka_cluster, settings)
        kafka_cluster.stop_node(leader)  # controlled: hands its leaderships over
        moved_to = _leader(kafka_cluster, settings)
        kafka_cluster.start_node(leader)
        kafka_cluster.wait_in_sync()
        # Preferred-leader election hands leadership back while every broker runs.
        admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
        topics = admin.list_topics(timeout=10).topics
        partitions = [TopicPartition(name, p) for name, t in topics.items() for p in t.partitions]
        admin.elect_leaders(ElectionType.PREFERRED, partitions).result()
        back = _leader(kafka_cluster, settings)
        return f"leadership of the inputs {leader} -> {moved_to} -> {back}"

    _drill("leadership moved", settings, worker, failure)


def test_rolling_restart(kafka_cluster, settings, worker):
    def failure() -> str:
        for node in kafka_cluster.nodes:
            kafka_cluster.stop_node(node.node_id)
            kafka_cluster.start_node(node.node_id)
            kafka_cluster.wait_in_sync()
        return "nodes 1, 2, 3 restarted in turn, each back in sync before the next"

    _drill("rolling restart", settings, worker, failure)


@pytest.fixture
def worker_process(settings: KafkaSettings, tmp_path: Path) -> Iterator[Callable[[], Popen[bytes]]]:
    """Starts `tensorflux worker` processes serving the drill pipeline; all killed after."""
    started: list[Popen[bytes]] = []
    files = [*(MODELS / f"tfsimple{i}.yaml" for i in (1, 2, 3)), PIPELINES / f"{PIPELINE}.yaml"]
    environ = {**os.environ, "TENSORFLUX_REPLICATION_FACTOR": str(settings.replication_factor)}

    def start() -> Popen[bytes]:
        command = [sys.executable, "-m", "engine", "worker", "--bootstrap", settings.bootstrap]
        command += ["--namespace", settings.namespace]
        command += [arg for path in files for arg in ("-f", str(path))]
        with open(tmp_path / f"worker-{len(started)}.log", "wb") as log:
            started.append(Popen(command, cwd=ROOT, stdout=log, stderr=STDOUT, env=environ))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait(10)


def test_worker_killed(kafka_cluster, settings, worker_process):
    first = worker_process()

    def failure() -> str:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(1)  # requests keep coming while no worker runs
        worker_process()
        return "the worker SIGKILLed mid-stream, a new one started 1 s later"

    _drill("worker killed (at-least-once)", settings, None, failure)
