"""The compiled topology: frozen data the runtime interprets. No Kafka here.

A pipeline compiles to an optional input node (when it reads other pipelines),
one node per step, and an output node. Every node reads `Source`s (a topic and
the tensors it wants from it, already renamed by the tensorMap) and writes one
topic; a step also writes the exact request it sent to its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.topology.errors import Problem, TopologyError

if TYPE_CHECKING:
    from engine.topology.specs import ExperimentSpec, ModelSpec

JoinType = Literal["inner", "outer", "any"]
NodeKind = Literal["input", "step", "output"]
Port = Literal["inputs", "outputs"]

INPUT_NODE = "input"
OUTPUT_NODE = "output"


@dataclass(frozen=True)
class TensorRef:
    """A normalised Seldon reference: whose topic, which port, which tensor."""

    pipeline: str
    """Pipeline that owns the referenced topic."""
    step: str | None
    """None: the pipeline's own inputs/outputs."""
    port: Port
    tensor: str | None
    """None: every tensor of the message."""

    def prefix(self, from_pipeline: str) -> str:
        """Seldon spelling without the tensor, as written inside `from_pipeline`."""
        if self.pipeline == from_pipeline:
            if self.step is None:
                return f"{self.pipeline}.{self.port}"
            return f"{self.step}.{self.port}"
        if self.step is None:
            return f"{self.pipeline}.{self.port}"
        return f"{self.pipeline}.step.{self.step}.{self.port}"

    def spelled(self, from_pipeline: str) -> str:
        """Seldon spelling with the tensor (if any), as written inside `from_pipeline`."""
        head = self.prefix(from_pipeline)
        return head if self.tensor is None else f"{head}.{self.tensor}"

    def whole(self) -> TensorRef:
        """The same topic, every tensor."""
        return TensorRef(self.pipeline, self.step, self.port, None)

    def __str__(self) -> str:
        if self.step is None:
            head = f"{self.pipeline}.{self.port}"
        else:
            head = f"{self.pipeline}.step.{self.step}.{self.port}"
        return head if self.tensor is None else f"{head}.{self.tensor}"


@dataclass(frozen=True)
class Source:
    """One edge into a node: a topic and the tensors taken from it."""

    ref: TensorRef
    topic: str
    """Kafka topic it is read from."""
    renames: tuple[tuple[str, str], ...]
    """tensorMap resolved for this source: (tensor name as on the topic, new name)."""

    def rename(self, tensor_name: str) -> str:
        """The name this tensor carries after the tensorMap (unchanged when not mapped)."""
        for old, new in self.renames:
            if old == tensor_name:
                return new
        return tensor_name


@dataclass(frozen=True)
class Batch:
    """Requests merged into one model call; each still gets its own response."""

    size: int | None
    window_ms: int | None
    rolling: bool


@dataclass(frozen=True)
class Node:
    """One topic-to-topic agent of a pipeline."""

    pipeline: str
    name: str
    """Step name; "input" / "output" for the pipeline's edge nodes."""
    kind: NodeKind
    model: str | None
    """Steps only: the model name (== step name in Seldon)."""
    inputs: tuple[Source, ...]
    triggers: tuple[Source, ...]
    inputs_join: JoinType
    triggers_join: JoinType
    join_window_ms: int
    batch: Batch | None
    request_topic: str | None
    """Steps: step inputs topic (the exact request sent to the model); else None."""
    output_topic: str
    """Steps: step outputs topic; input node: pipeline inputs; output node: pipeline outputs."""

    def sources(self) -> tuple[Source, ...]:
        """Inputs then triggers."""
        return self.inputs + self.triggers


@dataclass(frozen=True)
class PipelineGraph:
    """One compiled pipeline."""

    name: str
    input_topic: str
    output_topic: str
    input_node: Node | None
    """Only when spec.input has externalInputs/externalTriggers."""
    steps: tuple[Node, ...]
    """Topological order (declaration order breaks ties; with allowCycles a stable order)."""
    output_node: Node
    allow_cycles: bool
    max_step_revisits: int
    clean_topics_on_delete: bool

    def nodes(self) -> tuple[Node, ...]:
        head = (self.input_node,) if self.input_node is not None else ()
        return (*head, *self.steps, self.output_node)

    def step(self, name: str) -> Node:
        for node in self.steps:
            if node.name == name:
                return node
        known = ", ".join(node.name for node in self.steps) or "(none)"
        raise TopologyError(
            [
                Problem(
                    file="<topology>",
                    line=None,
                    resource=f"pipeline '{self.name}'",
                    step=None,
                    message=f"no step '{name}'; steps are: {known}",
                )
            ]
        )

    def owned_topics(self) -> frozenset[str]:
        """Topics this pipeline writes: its inputs/outputs and each step's inputs/outputs."""
        topics = {self.input_topic, self.output_topic}
        for node in self.steps:
            topics.add(node.output_topic)
            if node.request_topic is not None:
                topics.add(node.request_topic)
        return frozenset(topics)

    def read_topics(self) -> frozenset[str]:
        """Every topic any node reads, other pipelines' topics included."""
        return frozenset(source.topic for node in self.nodes() for source in node.sources())

    def external_topics(self) -> frozenset[str]:
        """Topics read from other pipelines (pipeline-to-pipeline chaining)."""
        return self.read_topics() - self.owned_topics()

    def models(self) -> frozenset[str]:
        return frozenset(node.model for node in self.steps if node.model is not None)

    def answer_needs(self) -> frozenset[Node]:
        """The nodes without which the pipeline never answers: the output node, and every
        step it (or another such node) needs: all sources of an inner join, the one
        source of a node that has one. An `outer` or `any` group of several sources
        needs none of them (another branch may answer: conditional routing). Nothing
        is certain in a cyclic pipeline: empty there."""
        if self.allow_cycles:
            return frozenset()
        needed: set[Node] = set()
        pending = [self.output_node]
        while pending:
            node = pending.pop()
            if node in needed:
                continue
            needed.add(node)
            for group, join in ((node.inputs, node.inputs_join), (node.triggers, node.triggers_join)):  # fmt: skip
                if join != "inner" and len(group) > 1:
                    continue
                for source in group:
                    ref = source.ref
                    if ref.pipeline == self.name and ref.step is not None:
                        pending.append(self.step(ref.step))
        return frozenset(needed)


@dataclass(frozen=True)
class Topology:
    """Everything a load compiled; mappings are read-only."""

    models: Mapping[str, ModelSpec]
    pipelines: Mapping[str, PipelineGraph]
    experiments: Mapping[str, ExperimentSpec]
