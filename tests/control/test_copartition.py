"""A pipeline whose joining step reads topics of different partition counts fails to load
with the reason, instead of answering nothing (its requests' parts would never meet)."""

from __future__ import annotations

import json

from engine.admin import TopicAdmin
from engine.cli import main
from engine.runtime.copartition import mismatch
from engine.topology import compile_topology, load_files

from .conftest import EXAMPLES, wait_for_status

MODELS = [str(EXAMPLES / "models" / f"tfsimple{n}.yaml") for n in (1, 2, 3)]


def test_a_join_over_topics_of_unequal_partitions_fails_and_says_which(
    cli, worker_service, kafka_settings
):
    topics = kafka_settings.topics()
    # Made by someone else with two partitions; the worker makes the rest with one.
    odd = topics.step_outputs("tfsimples-join", "tfsimple1")
    TopicAdmin(kafka_settings).ensure([odd], partitions=2)
    code, _, err = cli("model", "load", *[a for m in MODELS for a in ("-f", m)])
    assert code == 0, err
    code, _, err = cli(
        "pipeline",
        "load",
        "-f",
        str(EXAMPLES / "pipelines" / "tfsimples-join.yaml"),
        "-f",
        str(EXAMPLES / "pipelines" / "tfsimples.yaml"),
    )
    assert code == 0, err

    out = wait_for_status(cli, "pipeline", "tfsimples-join", "Failed")
    reason = json.dumps(json.loads(out))
    assert "tfsimple3" in reason and f"{odd} has 2" in reason
    assert topics.step_outputs("tfsimples-join", "tfsimple2") + " has 1" in reason
    # The other pipeline, whose topics agree, loads as usual.
    wait_for_status(cli, "pipeline", "tfsimples", "Ready")


def test_equal_counts_and_single_topic_steps_pass():
    specs = load_files([EXAMPLES / "pipelines" / "tfsimples-join.yaml", *MODELS])
    topology = compile_topology(specs)
    graph = topology.pipelines["tfsimples-join"]
    every = {t: 4 for t in graph.owned_topics() | graph.read_topics()}
    assert mismatch(graph, every) is None
    # Only the joining step's topics must agree: the pipeline's inputs may differ.
    assert mismatch(graph, {**every, graph.input_topic: 1}) is None


def test_validate_with_bootstrap_reports_the_join_the_worker_would_refuse(
    cli, kafka_settings, capsys
):
    topics = kafka_settings.topics()
    odd = topics.step_outputs("tfsimples-join", "tfsimple1")
    TopicAdmin(kafka_settings).ensure([odd], partitions=2)
    join = str(EXAMPLES / "pipelines" / "tfsimples-join.yaml")
    files = [*MODELS, join, str(EXAMPLES / "pipelines" / "tfsimples.yaml")]
    # Without a Kafka to ask, validate cannot know the counts, and says OK.
    assert main(["validate", *files, "--namespace", kafka_settings.namespace]) == 0
    capsys.readouterr()

    code, out, err = cli("validate", *files, "--partitions", "1")
    assert code == 1, out + err
    # Where, which pipeline and step, which topics with which counts: as the worker says.
    assert f"{join}:11: pipeline 'tfsimples-join' step 'tfsimple3': joins topics" in err
    assert f"{odd} has 2" in err
    assert topics.step_outputs("tfsimples-join", "tfsimple2") + " has 1" in err
    assert "1 problem:" in err
    assert "OK Pipeline tfsimples " in out and "OK Pipeline tfsimples-join" not in out
    # A worker made to create missing topics with 2 partitions could join them.
    code, out, err = cli("validate", *files, "--partitions", "2")
    assert code == 0, err
