"""What a replay reads and where it sends: SOURCE and target resolved to topics.

SOURCE `P` means the requests recorded on P's inputs topic, with the original
answers on P's outputs; `P.step.S` the requests step S sent its model, with the
model's answers on the step's outputs. The target is a loaded pipeline or
model (from the control topic): by default the source pipeline itself, and for
a step source the step's model (a step's inputs topic is a record, not
something an agent consumes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from engine.replay.errors import BadInvocation
from engine.topology import PipelineGraph, TopicNames, Topology


@dataclass(frozen=True)
class Source:
    spelled: str
    """As the user wrote it: 'P' or 'P.step.S'."""
    pipeline: str
    step: str | None
    requests: str
    """The topic the recorded requests are read from."""
    originals: str
    """The topic their original answers are on."""


@dataclass(frozen=True)
class Target:
    kind: Literal["pipeline", "model"]
    name: str
    requests: str
    """Where replayed requests are produced."""
    answers: str
    """Where their answers and error records come back."""

    @property
    def spelled(self) -> str:
        return self.name if self.kind == "pipeline" else f"model/{self.name}"


def parse_source(text: str, topics: TopicNames, existing: Mapping[str, int]) -> Source:
    """SOURCE checked against the topics on the broker."""
    parts = text.split(".")
    if len(parts) == 1 and parts[0]:
        pipeline = parts[0]
        source = Source(
            text,
            pipeline,
            None,
            topics.pipeline_inputs(pipeline),
            topics.pipeline_outputs(pipeline),
        )
    elif len(parts) == 3 and parts[1] == "step" and parts[0] and parts[2]:
        pipeline, step = parts[0], parts[2]
        source = Source(
            text,
            pipeline,
            step,
            topics.step_inputs(pipeline, step),
            topics.step_outputs(pipeline, step),
        )
    else:
        raise BadInvocation(
            f"cannot read SOURCE {text!r}: give a pipeline 'P' or a step 'P.step.S'"
        )
    if source.requests not in existing:
        known = _pipelines_on_broker(topics, existing)
        if source.step is not None and source.pipeline in known:
            steps = _steps_on_broker(topics, existing, source.pipeline)
            raise BadInvocation(
                f"pipeline '{source.pipeline}' has no step '{source.step}' on the broker; "
                f"steps: {', '.join(steps) or 'none'}"
            )
        raise BadInvocation(
            f"no pipeline '{source.pipeline}' on the broker (namespace '{topics.namespace}'); "
            f"pipelines: {', '.join(known) or 'none'}"
        )
    return source


def resolve_target(
    source: Source,
    topology: Topology,
    topics: TopicNames,
    *,
    into: str | None = None,
    into_model: str | None = None,
) -> Target:
    """The loaded pipeline or model the replayed requests go to."""
    if into and into_model:
        raise BadInvocation("give --into or --into-model, not both")
    if into_model is None and into is None and source.step is not None:
        into_model = source.step  # a Seldon step calls the model of its own name
    if into_model is not None:
        if into_model not in topology.models:
            loaded = ", ".join(sorted(topology.models)) or "none"
            raise BadInvocation(f"no model '{into_model}' is loaded; models: {loaded}")
        return Target(
            "model", into_model, topics.model_inputs(into_model), topics.model_outputs(into_model)
        )
    name = into or source.pipeline
    if name not in topology.pipelines:
        loaded = ", ".join(sorted(topology.pipelines)) or "none"
        raise BadInvocation(f"no pipeline '{name}' is loaded; pipelines: {loaded}")
    graph = topology.pipelines[name]
    return Target("pipeline", name, graph.input_topic, graph.output_topic)


def step_pairs(
    source: Source,
    target: Target,
    topology: Topology,
    topics: TopicNames,
    existing: Mapping[str, int],
) -> list[tuple[str, str, str]]:
    """(target step, its outputs topic, the source step's outputs topic) in the
    target's topological order, for finding where a changed answer diverged.

    Steps pair by name; a target step with no namesake (a renamed model, as in
    `fraud-v2` calling `scorer-v2`) pairs with the source's unpaired steps in
    order. Only pipeline-to-pipeline replays have steps to compare.
    """
    if source.step is not None or target.kind != "pipeline":
        return []
    target_steps = [node.name for node in topology.pipelines[target.name].steps]
    graph: PipelineGraph | None = topology.pipelines.get(source.pipeline)
    if graph is not None:
        source_steps = [node.name for node in graph.steps]
    else:  # unloaded since: its step topics are still there, in name order
        source_steps = _steps_on_broker(topics, existing, source.pipeline)
    unpaired = [s for s in source_steps if s not in target_steps]
    pairs = []
    for step in target_steps:
        if step in source_steps:
            partner: str | None = step
        else:
            partner = unpaired.pop(0) if unpaired else None
        if partner is None:
            continue
        pairs.append(
            (
                step,
                topics.step_outputs(target.name, step),
                topics.step_outputs(source.pipeline, partner),
            )
        )
    return pairs


def _pipelines_on_broker(topics: TopicNames, existing: Mapping[str, int]) -> list[str]:
    owners = (topics.parse(topic) for topic in existing)
    return sorted({o.pipeline for o in owners if o is not None and o.kind == "pipeline"})


def _steps_on_broker(topics: TopicNames, existing: Mapping[str, int], pipeline: str) -> list[str]:
    owners = (topics.parse(topic) for topic in existing)
    return sorted(
        {o.step for o in owners if o is not None and o.kind == "step" and o.pipeline == pipeline}
    )
