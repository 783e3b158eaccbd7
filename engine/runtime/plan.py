"""The planner: which agents run a topology, which topics feed them, and how each resource stands.

A pure function of the topology, the loaded models, the topic names and the
previous plan: no Kafka. The worker and the test driver (`engine.testing`) both
run what it returns, so what a test drives is what production runs. An agent
whose node, model and wiring did not change is carried over from the previous
plan (its half-joined requests live on); the others are retired, and the
records they hold are consumed again for the agents that replace them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from engine.runtime.agent import NodeAgent
from engine.runtime.errors import ModelUnavailable
from engine.runtime.experiment_models import ExperimentModel, defaults, experiment_models
from engine.runtime.experiment_relays import ReturnRelay, SplitRelay, screen_for
from engine.runtime.join_lane import fits_join_lane
from engine.runtime.lane import fits_lane
from engine.runtime.model_calls import INLINE, ModelCalls
from engine.runtime.models import Loaded
from engine.runtime.offsets import OffsetTracker
from engine.runtimes.base import ModelRuntime
from engine.topology.graph import Node, PipelineGraph, Source, TensorRef, Topology
from engine.topology.specs import ExperimentSpec
from engine.topology.topics import TopicNames

ResourceKind = Literal["model", "pipeline", "experiment"]
"""What a status is about (an experiment's state is derived from its candidates')."""
State = Literal["Loading", "Ready", "Failed"]
Route = tuple[NodeAgent, int]
"""An agent reading a topic, and the index of the source it reads it as."""


@dataclass(frozen=True)
class Status:
    """What a worker says about one model or pipeline."""

    kind: ResourceKind
    name: str
    state: State
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    agents: tuple[NodeAgent, ...] = ()
    routes: Mapping[str, tuple[Route, ...]] = field(default_factory=dict)
    """Source topic → the agents that read it."""
    statuses: tuple[Status, ...] = ()
    """Each model and pipeline of the topology: Loading (until consumption starts) or Failed."""
    topics: frozenset[str] = frozenset()
    """Every topic the agents read or write, and the errors topic: to exist before they run."""
    retired: tuple[NodeAgent, ...] = ()
    """Agents of the previous plan that stop: what they hold is to be consumed again."""

    def subscription(self) -> list[str]:
        return sorted(self.routes)

    def readers(self, partitions: list[tuple[str, int]]) -> list[tuple[NodeAgent, set[int]]]:
        """Each agent reading one of `partitions`' topics, with their partition numbers."""
        numbers: dict[int, tuple[NodeAgent, set[int]]] = {}
        for topic, partition in partitions:
            for agent, _ in self.routes.get(topic, ()):
                numbers.setdefault(id(agent), (agent, set()))[1].add(partition)
        return list(numbers.values())

    def ready(self) -> list[Status]:
        """The statuses once the agents consume: what did not fail is Ready."""
        return [s if s.state == "Failed" else replace(s, state="Ready") for s in self.statuses]


def plan(
    topology: Topology,
    models: Mapping[str, Loaded],
    topics: TopicNames,
    tracker: OffsetTracker,
    previous: Plan | None = None,
    calls: ModelCalls = INLINE,
) -> Plan:
    """The agents running exactly the models and pipelines of `topology`.

    `models`: each model of the topology, loaded or the error that stopped it
    (`ModelPool.sync`). Every agent holds its records in `tracker`; new agents run
    their model calls on `calls` (at once by default).
    """
    build = _Builder(topics, tracker, previous.agents if previous else (), calls)
    # Experiments over models run here too: a step may name one, and a model that is an
    # experiment's default splits what is produced to its own inputs topic.
    experiments = experiment_models(
        topology.experiments, models, topics, (a.model for a in build.running)
    )
    split = defaults(experiments)
    callable_models: dict[str, Loaded | str] = {**models, **experiments}
    statuses: list[Status] = []
    for name in topology.models:
        runtime = models[name]
        if isinstance(runtime, Exception):
            statuses.append(Status("model", name, "Failed", str(runtime)))
            continue
        statuses.append(Status("model", name, "Loading"))
        node = model_node(name, topics)
        build.agent(node, node.output_topic, split.get(name, runtime))
        build.topics |= {node.inputs[0].topic, node.output_topic}
    for name, graph in topology.pipelines.items():
        missing = missing_models(graph, callable_models)
        if missing:
            statuses.append(Status("pipeline", name, "Failed", missing))
            continue
        fused = fused_output_step(graph)
        max_visits = graph.max_step_revisits + 1 if graph.allow_cycles else None
        needs = graph.answer_needs()
        for node in graph.nodes():
            if fused is not None and node is graph.output_node:
                continue  # the step writes the output itself (NodeAgent's fused_output)
            model = callable_models[node.model] if node.model else None
            assert not isinstance(model, Exception | str)  # missing_models said so
            fuses = node.kind == "step" and node.name == fused
            build.agent(
                node,
                graph.output_topic,
                model,
                max_visits,
                fused_output=graph.output_node if fuses else None,
                reports_timeouts=node in needs,
            )
        build.topics |= graph.owned_topics() | graph.read_topics()
        statuses.append(Status("pipeline", name, "Loading"))
    failed = {s.name for s in statuses if s.kind == "pipeline" and s.state == "Failed"}
    for agent in build.agents:
        agent.screens = {}  # a running agent may have split for an experiment now stopped
    for spec in pipeline_splits(topology, failed):
        build.split(spec, topics)
    kept = {id(agent) for agent in build.agents}
    return Plan(
        agents=tuple(build.agents),
        routes={topic: tuple(routes) for topic, routes in build.routes.items()},
        statuses=tuple(statuses),
        topics=frozenset(build.topics),
        retired=tuple(a for a in (previous.agents if previous else ()) if id(a) not in kept),
    )


def holder_name(agent: NodeAgent) -> str:
    """What an agent's holds are called in committed metadata: the same on every worker."""
    return f"{agent.node.pipeline}/{agent.node.name}"


def topology_topics(topology: Topology, topics: TopicNames) -> frozenset[str]:
    """Every topic a plan of `topology` may read or write (whatever fails to load)."""
    names = {topics.errors()}
    for name in topology.models:
        names |= {topics.model_inputs(name), topics.model_outputs(name)}
    for graph in topology.pipelines.values():
        names |= graph.owned_topics() | graph.read_topics()
    return frozenset(names)


def model_node(model: str, topics: TopicNames) -> Node:
    """Direct inference over Kafka: a one-step node reading the model's inputs topic."""
    source = Source(TensorRef("", model, "inputs", None), topics.model_inputs(model), ())
    return Node(
        pipeline="",
        name=model,
        kind="step",
        model=model,
        inputs=(source,),
        triggers=(),
        inputs_join="inner",
        triggers_join="inner",
        join_window_ms=0,
        batch=None,
        request_topic=None,
        output_topic=topics.model_outputs(model),
    )


def fused_output_step(graph: PipelineGraph) -> str | None:
    """The step whose answers the pipeline's output passes on unchanged, if that is all it does."""
    output = graph.output_node
    if graph.allow_cycles or len(output.inputs) != 1 or output.triggers:
        return None
    source = output.inputs[0]
    ref = source.ref
    if ref.pipeline != graph.name or ref.step is None or ref.port != "outputs":
        return None
    if ref.tensor is not None or source.renames:
        return None
    return ref.step


def pipeline_splits(topology: Topology, failed: set[str]) -> list[ExperimentSpec]:
    """The experiments over pipelines whose default's Kafka inputs are split: every
    candidate (and the mirror) running; the first by name where two share a default."""
    found: dict[str, ExperimentSpec] = {}
    for _, spec in sorted(topology.experiments.items(), key=lambda item: item[0]):
        if spec.resource_type != "pipeline" or spec.default is None:
            continue
        names = [c.name for c in spec.candidates] + ([spec.mirror.name] if spec.mirror else [])
        if all(n in topology.pipelines and n not in failed for n in names):
            found.setdefault(spec.default, spec)
    return list(found.values())


def missing_models(graph: PipelineGraph, models: Mapping[str, Loaded | str]) -> str:
    """Why the pipeline cannot run ("" when every model it calls is loaded). A step naming
    an experiment needs its candidates (a str: why they cannot run)."""
    reasons = []
    for model in sorted(graph.models()):
        runtime = models.get(model)
        if runtime is None:
            reasons.append(str(ModelUnavailable(model)))
        elif isinstance(runtime, str):
            reasons.append(runtime)
        elif isinstance(runtime, Exception):
            reasons.append(str(ModelUnavailable(model, runtime)))
    return "; ".join(reasons)


class _Builder:
    def __init__(
        self,
        topics: TopicNames,
        tracker: OffsetTracker,
        running: tuple[NodeAgent, ...],
        calls: ModelCalls,
    ) -> None:
        self.calls = calls
        self.errors_topic = topics.errors()
        self.tracker = tracker
        self.running = running
        self.agents: list[NodeAgent] = []
        self.routes: dict[str, list[Route]] = {}
        self.topics: set[str] = {self.errors_topic}

    def split(self, spec: ExperimentSpec, topics: TopicNames) -> None:
        """Relays splitting what reaches the default's inputs (engine.runtime.experiment_relays);
        the default's own agents keep only their share."""
        default = spec.default
        assert default is not None
        for agent, index in self.routes.get(topics.pipeline_inputs(default), ()):
            if agent.node.pipeline == default:
                agent.screens[index] = screen_for(spec, default)
        for relay in (SplitRelay(spec, topics), ReturnRelay(spec, topics)):
            self.agents.append(relay)  # type: ignore[arg-type]  # an agent in all the worker asks
            for index, source in enumerate(relay.sources):
                self.routes.setdefault(source.topic, []).append((relay, index))  # type: ignore[arg-type]

    def agent(
        self,
        node: Node,
        failure_topic: str,
        model: ModelRuntime | None,
        max_visits: int | None = None,
        *,
        fused_output: Node | None = None,
        reports_timeouts: bool = False,
    ) -> None:
        """The running agent when nothing about it changed (its join state lives on), else a new one."""
        agent = next(
            (
                running
                for running in self.running
                if running.node == node
                and running.model is model
                and running.failure_topic == failure_topic
                and running.max_visits == max_visits
                and running.fused_node == fused_output
                and running.reports_timeouts == reports_timeouts
            ),
            None,
        )
        if agent is None:
            agent = NodeAgent(
                node,
                errors_topic=self.errors_topic,
                failure_topic=failure_topic,
                tracker=self.tracker,
                model=model,
                max_visits=max_visits,
                fused_output=fused_output,
                lane=fits_lane(node, model, max_visits),
                join_lane=fits_join_lane(node, model, max_visits)
                and not isinstance(model, ExperimentModel),  # it routes each request alone
                reports_timeouts=reports_timeouts,
                calls=self.calls,
            )
        self.agents.append(agent)
        for index, source in enumerate(agent.sources):
            self.routes.setdefault(source.topic, []).append((agent, index))
