"""WorkerSettings: loaded from an injectable environment, never read at import or parser build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError, KafkaSettings
from engine.runtime.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_measured_ones():
    settings = WorkerSettings()
    assert (settings.chunk, settings.max_wait_ms, settings.commit_interval_ms) == (1000, 100, 1000)
    assert settings.producer_defaults["linger.ms"] == 2
    assert settings.consumer_defaults["fetch.wait.max.ms"] == 10


def test_load_reads_the_given_environment_and_overrides_win():
    environ = {"TENSORFLUX_WORKER_CHUNK": "250", "TENSORFLUX_WORKER_MAX_WAIT_MS": "20"}
    settings = WorkerSettings.load(environ=environ, max_wait_ms=5)
    assert (settings.chunk, settings.max_wait_ms, settings.commit_interval_ms) == (250, 5, 1000)
    assert WorkerSettings.load(environ={}) == WorkerSettings()


def test_a_bad_value_names_the_variable_it_came_from():
    with pytest.raises(ConfigError, match="TENSORFLUX_WORKER_CHUNK='many'"):
        WorkerSettings.load(environ={"TENSORFLUX_WORKER_CHUNK": "many"})
    with pytest.raises(ConfigError, match="commit_interval_ms=-1"):
        WorkerSettings.load(environ={}, commit_interval_ms=-1)


def test_settings_are_frozen():
    with pytest.raises(ValueError):
        WorkerSettings().chunk = 5  # type: ignore[misc]


def test_client_defaults_yield_to_the_users_librdkafka_settings():
    kafka = KafkaSettings.load(environ={"TENSORFLUX_KAFKA_LINGER_MS": "0"})
    worker = WorkerSettings(producer_defaults={"linger.ms": 7, "batch.num.messages": 5})
    config = worker.producer_config(kafka)
    assert (config["linger.ms"], config["batch.num.messages"]) == ("0", 5)
    consumer = WorkerSettings(consumer_defaults={"fetch.wait.max.ms": 3}).consumer_config(
        KafkaSettings(), "group"
    )
    assert (consumer["fetch.wait.max.ms"], consumer["group.id"]) == (3, "group")


SPY = """
import os, sys
read = []
class Spy(dict):
    def get(self, key, default=None):
        read.append(key)
        return super().get(key, default)
    def __getitem__(self, key):
        read.append(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        read.append(key)
        return super().__contains__(key)
os.environ = Spy(os.environ)
import argparse
import engine.runtime.worker, engine.runtime.service, engine.testing
from engine.cli import runtime
runtime.register(argparse.ArgumentParser().add_subparsers())
print(sorted({key for key in read if str(key).startswith("TENSORFLUX_")}))
"""


def test_nothing_is_read_from_the_environment_at_import_or_parser_build():
    result = subprocess.run(
        [sys.executable, "-c", SPY], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
