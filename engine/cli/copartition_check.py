"""`validate --bootstrap`: the co-partitioning check the worker makes at load, made early.

A pipeline whose joining step reads topics of unequal partition counts loads as Failed
(`engine/runtime/copartition.py`); with a Kafka to ask, validate reports the same as a
problem at the step's file:line, so a script learns it before loading anything.
"""

from __future__ import annotations

from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.runtime.copartition import partition_counts, unjoinable
from engine.runtime.plan import topology_topics
from engine.topology.errors import Problem
from engine.topology.graph import Topology
from engine.topology.loader import SpecSet
from engine.topology.topics import TopicNames


def copartition_problems(
    specs: SpecSet, topology: Topology, topics: TopicNames, settings: KafkaSettings
) -> list[Problem]:
    """One problem per pipeline of `specs` the worker would refuse for its topics'
    partition counts as Kafka has them now (missing topics: `settings.partitions`, the
    count a worker with those settings makes them with). Raises TopicAdminError when
    Kafka does not answer."""
    existing = TopicAdmin(settings).existing()
    counts = partition_counts(topology_topics(topology, topics), existing, settings.partitions)
    problems = []
    for name, graph in topology.pipelines.items():
        if name not in specs.pipelines:
            continue  # a resource validated elsewhere
        found = unjoinable(graph, counts)
        if found is None:
            continue
        spec = specs.pipelines[name]
        document = spec.origin
        steps = [step.name for step in spec.steps]
        if found.step in steps:
            line, step, message = (
                document.line_of("spec", "steps", steps.index(found.step)),
                found.step,
                found.problem,
            )
        else:  # the pipeline's input or output node
            line, step = document.line_of("spec", found.step), None
            message = f"its {found.step} {found.problem}"
        problems.append(Problem(document.file, line, f"pipeline '{name}'", step, message))
    return problems
