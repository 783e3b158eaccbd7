"""Seldon CLI habits that scripts rely on: `status -w STATE`, experiments as resources,
`--kafka-broker`, and usage errors that show the subcommand's usage."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .conftest import EXAMPLES, wait_for_status

MODELS = [str(EXAMPLES / "models" / name) for name in ("add10.yaml", "mul10.yaml")]
EXPERIMENT = str(EXAMPLES / "experiments" / "add-or-mul.yaml")


def test_status_waits_for_seldons_state_names(cli, worker_service):
    assert cli("model", "load", "-f", MODELS[0])[0] == 0
    code, out, err = cli("model", "status", "add10", "-w", "ModelAvailable", "-o", "json")
    assert code == 0, err
    assert '"state": "Ready"' in out
    spec = str(EXAMPLES / "pipelines" / "tfsimples.yaml")
    models = [str(EXAMPLES / "models" / f"tfsimple{i}.yaml") for i in (1, 2)]
    assert cli("model", "load", "-f", models[0], "-f", models[1])[0] == 0
    assert cli("pipeline", "load", "-f", spec)[0] == 0
    code, out, err = cli("pipeline", "status", "tfsimples", "-w", "PipelineReady")
    assert code == 0, err
    assert "Ready" in out

    assert cli("pipeline", "unload", "tfsimples")[0] == 0
    code, _, err = cli("pipeline", "status", "tfsimples", "-w", "PipelineTerminated")
    assert code == 0, err


def test_waiting_for_ready_stops_at_failed_with_the_reason(cli, worker_service, tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: broken\n"
        f"spec:\n  storageUri: {tmp_path}/nothing-here\n  requirements: [onnx]\n"
    )
    assert cli("model", "load", "-f", str(spec))[0] == 0
    code, _, err = cli("model", "status", "broken", "-w", "--timeout", "120")
    assert code == 1
    assert "model 'broken' Failed while waiting for Ready" in err


def test_an_unknown_state_names_the_ones_there_are(cli):
    code, _, err = cli("pipeline", "status", "-w", "Redy")
    assert code == 1
    assert "unknown state 'Redy'" in err and "PipelineReady" in err and "Ready" in err


def test_experiments_start_show_status_and_stop(cli, worker_service):
    assert cli("model", "load", "-f", MODELS[0], "-f", MODELS[1])[0] == 0
    code, out, err = cli("experiment", "start", "-f", EXPERIMENT)
    assert code == 0, err
    assert "loaded experiment/add-or-mul" in out
    assert cli("experiment", "list")[1].split() == ["add-or-mul"]
    code, out, err = cli("experiment", "status", "add-or-mul", "-w", "-o", "json")
    assert code == 0, err
    assert '"state": "Ready"' in out
    assert cli("model", "list")[1].split() == ["add10", "mul10"]  # not among the models

    code, _, err = cli("model", "status", "add-or-mul")
    assert code == 1
    assert "no model 'add-or-mul' is loaded; an experiment is: see" in err
    code, _, err = cli("model", "unload", "add-or-mul")
    assert code == 1 and "tensorflux experiment status add-or-mul` (experiment stop)" in err

    code, out, _ = cli("experiment", "stop", "add-or-mul")
    assert code == 0 and "stopped experiment/add-or-mul" in out
    assert cli("experiment", "list")[1].split() == []


def test_an_experiment_names_the_candidate_that_keeps_it_from_ready(cli, worker_service, tmp_path):
    broken = tmp_path / "mul10.yaml"
    broken.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: mul10\n"
        f"spec:\n  storageUri: {tmp_path}/nothing-here\n  requirements: [onnx]\n"
    )
    assert cli("model", "load", "-f", MODELS[0], "-f", str(broken))[0] == 0
    assert cli("experiment", "start", "-f", EXPERIMENT)[0] == 0
    wait_for_status(cli, "model", "mul10", "Failed")
    code, out, err = cli("experiment", "status", "add-or-mul", "-w")
    assert code == 1
    assert "experiment 'add-or-mul' Failed while waiting for Ready: model 'mul10' failed" in err


def test_kafka_broker_is_seldons_name_for_bootstrap(kafka_settings, capsys):
    from engine.cli import main

    code = main(
        [
            "pipeline",
            "list",
            "--kafka-broker",
            kafka_settings.bootstrap,
            "--namespace",
            kafka_settings.namespace,
        ]
    )
    assert code == 0, capsys.readouterr().err


def test_a_refused_flag_shows_the_subcommands_usage():
    result = subprocess.run(
        [sys.executable, "-m", "engine", "pipeline", "status", "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: tensorflux pipeline status")
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def test_status_forgets_a_worker_whose_heartbeats_stopped(cli, worker_service, kafka_settings):
    from confluent_kafka import Producer

    from engine.runtime.reports import STALE_AFTER_S, heartbeat

    assert cli("model", "load", "-f", MODELS[0])[0] == 0
    wait_for_status(cli, "model", "add10", "Ready")
    # What a worker killed with kill -9 a while ago left on the status topic.
    key, beat = heartbeat("killed-worker", time.time() - STALE_AFTER_S - 60)
    left = {
        "worker": "killed-worker",
        "kind": "model",
        "name": "add10",
        "state": "Failed",
        "reason": "an old failure",
        "time": beat["time"],
    }
    producer = Producer(kafka_settings.producer_config())
    status_topic = kafka_settings.topics().status()
    producer.produce(status_topic, json.dumps(beat).encode(), key)
    producer.produce(status_topic, json.dumps(left).encode(), "killed-worker|model/add10")
    assert producer.flush(10) == 0

    code, out, _ = cli("model", "status", "add10", "-o", "json")
    assert code == 0
    (status,) = json.loads(out)
    assert status["state"] == "Ready" and status["workers"] == ["test-worker"]
