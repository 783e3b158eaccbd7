"""The order a pipeline's steps run in: topological, declaration order breaking ties.

A cycle is reported naming its steps, unless the pipeline allows cycles.
"""

from __future__ import annotations

import graphlib

from engine.topology.report import Report
from engine.topology.specs import PipelineSpec


def dependencies(spec: PipelineSpec) -> dict[str, set[str]]:
    """Each step's name -> the steps of this pipeline it reads (inputs and triggers)."""
    step_names = [step.name for step in spec.steps]
    known = set(step_names)
    deps: dict[str, set[str]] = {name: set() for name in step_names}
    for step in spec.steps:
        for text in (*step.inputs, *step.triggers):
            head = (text or "").split(".")[0]
            if head in known:
                deps[step.name].add(head)
    return deps


def step_order(spec: PipelineSpec, report: Report) -> list[str] | None:
    """Topological order, declaration order breaking ties; None after a reported cycle."""
    names = list(dict.fromkeys(step.name for step in spec.steps))
    position = {name: index for index, name in enumerate(names)}
    sorter = graphlib.TopologicalSorter(dependencies(spec))
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        if spec.allow_cycles:
            return names
        cycle = " -> ".join(error.args[1])  # in data-flow order
        index = position[error.args[1][0]]
        report.error(
            ("spec", "steps", index),
            f"steps form a cycle {cycle}; remove one of these references or set "
            "'allowCycles: true' (with maxStepRevisits) if the loop is intended",
            error.args[1][0],
        )
        return None
    order: list[str] = []
    ready = sorted(sorter.get_ready(), key=position.__getitem__)
    while ready:
        name = ready.pop(0)
        order.append(name)
        sorter.done(name)
        ready = sorted([*ready, *sorter.get_ready()], key=position.__getitem__)
    return order
