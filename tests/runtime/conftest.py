"""Fixtures for the integration tier: workers on threads against the session broker."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import KafkaSettings
from engine.topology import Topology

from .helpers import Kafka, RunningWorker, compile_specs


@pytest.fixture
def running_worker(
    kafka_settings: KafkaSettings,
) -> Iterator[Callable[..., RunningWorker]]:
    """Starts workers: `running_worker(paths_or_topology, settings=..., worker_settings=...)`;
    all are stopped after."""
    started: list[RunningWorker] = []

    def start(
        specs: Topology | Iterable[str | Path],
        *,
        settings: KafkaSettings | None = None,
        **worker_options: Any,
    ) -> RunningWorker:
        settings = settings or kafka_settings
        topology = specs if isinstance(specs, Topology) else compile_specs(settings, specs)
        worker = RunningWorker(settings, topology, **worker_options)
        started.append(worker)
        return worker

    yield start
    errors = []
    for worker in started:
        try:
            worker.stop()
        except AssertionError as error:
            errors.append(error)
    assert not errors, errors


@pytest.fixture
def kafka(kafka_settings: KafkaSettings) -> Iterator[Kafka]:
    client = Kafka(kafka_settings)
    yield client
    client.close()
