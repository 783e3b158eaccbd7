"""What the compiled graph holds: sources, renames, topics, order, edge nodes."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from engine.topology import (
    DEFAULT_JOIN_WINDOW_MS,
    DEFAULT_MAX_STEP_REVISITS,
    TensorRef,
    TopicNames,
    TopicOwner,
    TopologyError,
    TopologyWarning,
    compile_topology,
    load_files,
    load_text,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_topology(topics: TopicNames | None = None):
    return compile_topology(
        load_files([EXAMPLES / "models", EXAMPLES / "pipelines"]), topics or TopicNames()
    )


def test_chain_sources_topics_and_renames() -> None:
    graph = example_topology().pipelines["tfsimples"]
    first, second = graph.steps
    assert [node.name for node in graph.steps] == ["tfsimple1", "tfsimple2"]
    # A step without inputs reads the pipeline's inputs, every tensor.
    (source,) = first.inputs
    assert source.ref == TensorRef("tfsimples", None, "inputs", None)
    assert source.topic == "tensorflux.default.pipeline.tfsimples.inputs"
    assert source.renames == ()
    # A bare step means its outputs; tensorMap keys with tensors rename a whole-message source.
    (source,) = second.inputs
    assert source.ref == TensorRef("tfsimples", "tfsimple1", "outputs", None)
    assert source.topic == "tensorflux.default.pipeline.tfsimples.step.tfsimple1.outputs"
    assert source.renames == (("OUTPUT0", "INPUT0"), ("OUTPUT1", "INPUT1"))
    assert source.rename("OUTPUT1") == "INPUT1" and source.rename("OTHER") == "OTHER"
    assert second.request_topic == "tensorflux.default.pipeline.tfsimples.step.tfsimple2.inputs"
    assert second.output_topic == "tensorflux.default.pipeline.tfsimples.step.tfsimple2.outputs"
    assert second.model == "tfsimple2"
    assert second.join_window_ms == DEFAULT_JOIN_WINDOW_MS
    assert graph.input_node is None
    assert graph.output_node.inputs[0].topic == second.output_topic
    assert graph.output_node.output_topic == "tensorflux.default.pipeline.tfsimples.outputs"
    assert [node.kind for node in graph.nodes()] == ["step", "step", "output"]
    assert graph.models() == {"tfsimple1", "tfsimple2"}


def test_owned_and_read_topics_follow_the_naming_scheme() -> None:
    topics = TopicNames(prefix="acme", namespace="prod")
    graph = example_topology(topics).pipelines["tfsimples-join"]
    assert graph.owned_topics() == {
        "acme.prod.pipeline.tfsimples-join.inputs",
        "acme.prod.pipeline.tfsimples-join.outputs",
        *(
            f"acme.prod.pipeline.tfsimples-join.step.{step}.{port}"
            for step in ("tfsimple1", "tfsimple2", "tfsimple3")
            for port in ("inputs", "outputs")
        ),
    }
    assert graph.read_topics() <= graph.owned_topics()
    assert graph.step("tfsimple3").join_window_ms == 5000


def test_topic_names() -> None:
    topics = TopicNames()
    assert topics.pipeline_inputs("p") == "tensorflux.default.pipeline.p.inputs"
    assert topics.pipeline_outputs("p") == "tensorflux.default.pipeline.p.outputs"
    assert topics.step_inputs("p", "s") == "tensorflux.default.pipeline.p.step.s.inputs"
    assert topics.step_outputs("p", "s") == "tensorflux.default.pipeline.p.step.s.outputs"
    assert topics.model_inputs("m") == "tensorflux.default.model.m.inputs"
    assert topics.model_outputs("m") == "tensorflux.default.model.m.outputs"
    assert topics.errors() == "tensorflux.default.errors"
    assert topics.control() == "tensorflux.default.control"
    assert topics.status() == "tensorflux.default.status"


def test_topic_names_parse_back_to_their_owner() -> None:
    topics = TopicNames("tf", "ns")
    assert topics.parse(topics.pipeline_inputs("p")) == TopicOwner(
        "pipeline", pipeline="p", port="inputs"
    )
    assert topics.parse(topics.step_outputs("p", "s")) == TopicOwner(
        "step", pipeline="p", step="s", port="outputs"
    )
    assert topics.parse(topics.model_inputs("m")) == TopicOwner("model", model="m", port="inputs")
    assert topics.parse(topics.errors()) == TopicOwner("errors")
    assert topics.parse(topics.status()) == TopicOwner("status")
    assert topics.parse("tf.other.pipeline.p.inputs") is None  # another namespace
    assert topics.parse("tf.ns.pipeline.p.step.s") is None
    assert topics.parse("tf.ns.pipeline.p.middle") is None


def test_pipeline_to_pipeline_input_node_reads_other_pipelines() -> None:
    topology = example_topology()
    graph = topology.pipelines["chain-triggered"]
    node = graph.input_node
    assert node is not None and node.kind == "input"
    assert node.output_topic == graph.input_topic
    (data,) = node.inputs
    assert data.topic == "tensorflux.default.pipeline.chain-extended.outputs"
    assert data.renames == (("OUTPUT0", "INPUT0"), ("OUTPUT1", "INPUT1"))
    (trigger,) = node.triggers
    assert trigger.topic == "tensorflux.default.pipeline.chain-extended-again.outputs"
    assert node.join_window_ms == 10000
    assert graph.external_topics() == {data.topic, trigger.topic}
    step_source = topology.pipelines["chain-from-step"].input_node.inputs[0]
    assert step_source.ref == TensorRef("chain-base", "tfsimple1", "outputs", None)
    assert step_source.topic == "tensorflux.default.pipeline.chain-base.step.tfsimple1.outputs"
    assert step_source.ref.prefix("chain-from-step") == "chain-base.step.tfsimple1.outputs"
    assert str(step_source.ref) == "chain-base.step.tfsimple1.outputs"


def test_pipeline_file_loaded_alone_resolves_known_pipelines() -> None:
    base = example_topology().pipelines
    alone = load_files([EXAMPLES / "pipelines" / "chain-from-step.yaml"])
    with pytest.raises(TopologyError, match="names no pipeline 'chain-base'"):
        compile_topology(alone)
    graph = compile_topology(alone, known_pipelines=base).pipelines["chain-from-step"]
    assert graph.input_node is not None


def test_known_models_are_checked_when_given() -> None:
    specs = load_files([EXAMPLES / "pipelines" / "tfsimples.yaml"])
    assert compile_topology(specs).pipelines  # no model set given: not checked
    with pytest.raises(TopologyError, match="no Model 'tfsimple2' is declared"):
        compile_topology(specs, known_models={"tfsimple1"})
    assert compile_topology(specs, known_models={"tfsimple1", "tfsimple2"}).pipelines


def test_conditional_output_any_and_tensor_sources() -> None:
    graph = example_topology().pipelines["conditional-routing"]
    mul10 = graph.step("mul10")
    (source,) = mul10.inputs
    assert source.ref.tensor == "OUTPUT0" and source.renames == (("OUTPUT0", "INPUT"),)
    assert graph.output_node.inputs_join == "any"
    with pytest.raises(TopologyError, match="no step 'nope'; steps are: conditional, mul10, add10"):
        graph.step("nope")


def test_triggers_and_batch() -> None:
    topology = example_topology()
    mul10 = topology.pipelines["trigger-joins"].step("mul10")
    assert [t.ref.tensor for t in mul10.triggers] == ["ok1", "ok2"]
    assert mul10.triggers_join == "any" and mul10.inputs_join == "inner"
    batch = topology.pipelines["add10-batch"].step("add10").batch
    assert batch is not None and (batch.size, batch.window_ms, batch.rolling) == (4, 50, False)


def test_cycles_allowed_with_revisit_bound() -> None:
    graph = example_topology().pipelines["counter"]
    assert graph.allow_cycles and graph.max_step_revisits == 20
    assert [node.name for node in graph.steps] == ["increment", "below-limit"]
    (done,) = graph.output_node.inputs
    assert done.ref.tensor == "DONE" and done.renames == (("DONE", "COUNT"),)
    text = textwrap.dedent("""
        kind: Pipeline
        metadata: {name: loop}
        spec:
          allowCycles: true
          steps:
          - {name: a, inputs: [loop.inputs, b], inputsJoinType: any}
          - {name: b, inputs: [a]}
          output: {steps: [b]}
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TopologyWarning)
        graph = compile_topology(load_text(text)).pipelines["loop"]
    assert graph.max_step_revisits == DEFAULT_MAX_STEP_REVISITS


def test_topological_order_ignores_declaration_order() -> None:
    text = textwrap.dedent("""
        apiVersion: mlops.seldon.io/v1alpha1
        kind: Pipeline
        metadata: {name: p}
        spec:
          steps:
          - {name: last, inputs: [middle]}
          - {name: middle, inputs: [first]}
          - {name: first}
          - {name: free}
          output: {steps: [last, free]}
    """)
    graph = compile_topology(load_text(text)).pipelines["p"]
    assert [node.name for node in graph.steps] == ["first", "middle", "last", "free"]


def test_storage_uri_resolved_relative_to_the_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "models.yml").write_text(
        textwrap.dedent("""
            apiVersion: mlops.seldon.io/v1alpha1
            kind: Model
            metadata: {name: rel}
            spec: {storageUri: ./rel, requirements: [onnx], memory: 100Ki}
            ---
            apiVersion: mlops.seldon.io/v1alpha1
            kind: Model
            metadata: {name: uri}
            spec: {storageUri: "file://uri/model.onnx"}
            ---
            apiVersion: mlops.seldon.io/v1alpha1
            kind: Model
            metadata: {name: remote}
            spec: {storageUri: "gs://bucket/model"}
        """)
    )
    specs = load_files([tmp_path])
    assert specs.models["rel"].storage_uri == str(tmp_path / "sub" / "rel")
    assert specs.models["rel"].requirements == ("onnx",)
    assert specs.models["rel"].memory == "100Ki"
    assert specs.models["rel"].source_file == str(tmp_path / "sub" / "models.yml")
    assert specs.models["uri"].storage_uri == str(tmp_path / "sub" / "uri" / "model.onnx")
    assert specs.models["remote"].storage_uri == "gs://bucket/model"
    assert specs.origin("Model", "uri") == (str(tmp_path / "sub" / "models.yml"), 7)


def test_unknown_fields_warn_and_never_crash() -> None:
    text = textwrap.dedent("""
        apiVersion: mlops.seldon.io/v1alpha1
        kind: Model
        metadata: {name: m}
        spec:
          storageUri: ./m
          futureField: 1
          logger: {uri: http://x, extra: 2}
        ---
        apiVersion: mlops.seldon.io/v1alpha1
        kind: Server
        metadata: {name: mlserver}
    """)
    with pytest.warns(TopologyWarning) as caught:
        specs = load_text(text, "w.yaml")
    messages = [str(w.message) for w in caught]
    assert "w.yaml:7: model 'm': unknown field 'futureField' ignored" in messages
    assert any("w.yaml:8" in m and "'extra'" in m for m in messages)
    assert any("kind 'Server' ignored" in m for m in messages)
    assert set(specs.models) == {"m"}


def test_experiment_spec() -> None:
    text = textwrap.dedent("""
        apiVersion: mlops.seldon.io/v1alpha1
        kind: Experiment
        metadata: {name: ab}
        spec:
          default: add10
          candidates:
          - {name: add10, weight: 50}
          - {name: mul10, weight: 50}
          mirror: {name: tfsimple1, percent: 25}
    """)
    specs = load_files([EXAMPLES / "models"])
    experiment_specs = load_text(text)
    specs.experiments.update(experiment_specs.experiments)
    topology = compile_topology(specs)
    experiment = topology.experiments["ab"]
    assert [c.weight for c in experiment.candidates] == [50, 50]
    assert experiment.mirror is not None and experiment.mirror.percent == 25
    assert experiment.resource_type == "model"


def test_load_errors_name_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="no such file or directory"):
        load_files([tmp_path / "missing.yaml"])


def test_topology_mappings_are_read_only() -> None:
    topology = example_topology()
    with pytest.raises(TypeError):
        topology.pipelines["x"] = topology.pipelines["tfsimples"]  # type: ignore[index]


def test_answer_needs_follows_inner_joins_and_single_sources_only() -> None:
    topology = example_topology()
    join = topology.pipelines["tfsimples-join"]
    assert {n.name for n in join.answer_needs() if n.kind == "step"} == {
        "tfsimple1",
        "tfsimple2",
        "tfsimple3",
    }
    # An `any` output over two branches needs neither: either may answer.
    routing = topology.pipelines["conditional-routing"]
    assert {n.kind for n in routing.answer_needs()} == {"output"}
    assert topology.pipelines["counter"].answer_needs() == frozenset()  # cyclic
