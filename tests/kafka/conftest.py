"""The real-Kafka tier: run only by `make test-kafka` (TENSORFLUX_TEST_KAFKA set).

These tests start Apache Kafka themselves (one node, or the 3-node cluster the
failure drills break), so they need Java 17+ and Kafka's jars; `make test` on a
machine with Python alone skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from engine.kafka_cluster import KafkaCluster
from tests.kafka.traffic import DRILL_REPORT


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TENSORFLUX_TEST_KAFKA"):
        return
    skip = pytest.mark.skip(reason="real Kafka tier: run with `make test-kafka`")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)


@pytest.fixture
def kafka_cluster() -> Iterator[KafkaCluster]:
    """A fresh 3-node cluster per test: drills break nodes, so none is shared."""
    with KafkaCluster(nodes=3) as cluster:
        yield cluster


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if DRILL_REPORT:
        terminalreporter.section("failure drills on the 3-node cluster")
        for line in DRILL_REPORT:
            terminalreporter.write_line(line)
