"""Pipelines whose joins could never meet: a joining step's topics with unequal partition counts.

A step that joins several topics matches records by request id within one partition
number (the worker's agents hold their state per partition, and the range assignor
gives partition i of every topic to one member). The key decides the partition, so a
request lands on partition `hash % n` of each topic: with two topics of 1 and 4
partitions, most requests' parts are never in the same partition and the join waits
for ever. That happens when something other than the worker made some of the topics
(a client with another `--partitions`, a broker auto-creating on produce). Such a
pipeline fails to load, with a reason naming the topics and their counts, instead of
silently answering nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from engine.runtime.reports import resource_key
from engine.topology.graph import PipelineGraph, Topology


@dataclasses.dataclass(frozen=True)
class Unjoinable:
    """A joining step whose topics have unequal partition counts: `counts` names each."""

    step: str
    counts: Mapping[str, int]

    @property
    def problem(self) -> str:
        """What is wrong and how to fix it, the step left out (for a message naming it apart)."""
        listed = ", ".join(f"{topic} has {n}" for topic, n in self.counts.items())
        return (
            f"joins topics with different partition counts ({listed}): "
            "a request's parts would land in different partitions and never meet; "
            "recreate those topics with one count (the worker's --partitions)"
        )

    def __str__(self) -> str:
        return f"step '{self.step}' {self.problem}"


def partition_counts(
    topics: Iterable[str], existing: Mapping[str, int], default: int
) -> dict[str, int]:
    """Each of `topics`' partition count once the worker has made it: as `existing` has
    it, else `default` (the count the worker creates missing topics with)."""
    return {topic: existing.get(topic, default) for topic in topics}


def unjoinable(graph: PipelineGraph, counts: Mapping[str, int]) -> Unjoinable | None:
    """The first step of `graph` whose joins cannot meet with these counts, or None."""
    for node in graph.nodes():
        topics = sorted({source.topic for source in node.sources()})
        if len(topics) < 2:
            continue  # one topic: nothing to meet
        found = {topic: counts[topic] for topic in topics if topic in counts}
        if len(set(found.values())) > 1:
            return Unjoinable(node.name, MappingProxyType(found))
    return None


def mismatch(graph: PipelineGraph, counts: Mapping[str, int]) -> str | None:
    """Why `graph`'s joins cannot meet with these partition counts, or None."""
    found = unjoinable(graph, counts)
    return None if found is None else str(found)


def without_unjoinable(
    topology: Topology, counts: Mapping[str, int]
) -> tuple[Topology, dict[str, str]]:
    """`topology` less the pipelines `mismatch` refuses (and experiments over them), and
    each refused resource's reason, keyed as the status topic keys them."""
    reasons = {name: mismatch(graph, counts) for name, graph in topology.pipelines.items()}
    dropped = {name for name, reason in reasons.items() if reason is not None}
    if not dropped:
        return topology, {}
    failures = {resource_key("pipeline", name): str(reasons[name]) for name in dropped}
    pipelines = {n: g for n, g in topology.pipelines.items() if n not in dropped}
    experiments = {}
    for name, spec in topology.experiments.items():
        over = {c.name for c in spec.candidates} | {spec.default, spec.mirror and spec.mirror.name}
        gone = sorted(over & dropped) if spec.resource_type == "pipeline" else []
        if gone:
            failures[resource_key("experiment", name)] = f"its pipeline '{gone[0]}' failed to load"
        else:
            experiments[name] = spec
    kept = dataclasses.replace(
        topology,
        pipelines=MappingProxyType(pipelines),
        experiments=MappingProxyType(experiments),
    )
    return kept, failures
