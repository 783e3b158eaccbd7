"""Render a compiled pipeline as text or as a Mermaid flowchart.

Golden tests pin both, so a YAML change shows up as a graph diff. The text's
`edges:` section is one line per source and is parsed back by the property
tests, so keep its shape: `  REF [OLD as NEW, ...] -> NODE[ (trigger)]`.
"""

from __future__ import annotations

import re

from engine.topology.graph import Node, PipelineGraph, Source


def _renames(source: Source) -> str:
    if not source.renames:
        return ""
    return " [" + ", ".join(f"{old} as {new}" for old, new in source.renames) + "]"


def _node_label(node: Node) -> str:
    return f"step {node.name}" if node.kind == "step" else node.kind


def _join(kind: str, node: Node, join: str, with_window: bool) -> str:
    window = f" within {node.join_window_ms} ms" if with_window else ""
    return f"  {kind}, {join} join{window}:"


def _source_line(graph: PipelineGraph, source: Source) -> str:
    selection = "" if source.ref.tensor is not None else " (all tensors)"
    return f"    {source.ref.spelled(graph.name)}{selection}{_renames(source)}  <- {source.topic}"


def _node_text(graph: PipelineGraph, node: Node) -> list[str]:
    if node.kind == "step":
        lines = [f"step {node.name} (model {node.model})"]
    elif node.kind == "input":
        lines = ["input (reads other pipelines into this pipeline's inputs)"]
    else:
        lines = ["output"]
    word = "steps" if node.kind == "output" else "inputs"
    # With one input there is nothing to join, but the window still bounds triggers.
    lines.append(_join(word, node, node.inputs_join, True))
    lines.extend(_source_line(graph, source) for source in node.inputs)
    if node.triggers:
        lines.append(_join("triggers", node, node.triggers_join, False))
        lines.extend(_source_line(graph, source) for source in node.triggers)
    if node.batch is not None:
        batch = node.batch
        lines.append(
            f"  batch: size {batch.size if batch.size is not None else '-'}, "
            f"window {f'{batch.window_ms} ms' if batch.window_ms is not None else '-'}, "
            f"{'rolling' if batch.rolling else 'not rolling'}"
        )
    if node.request_topic is not None:
        lines.append(f"  request  -> {node.request_topic}")
    lines.append(f"  {'response' if node.kind == 'step' else 'writes  '} -> {node.output_topic}")
    return lines


def describe_text(graph: PipelineGraph) -> str:
    """Steps, edges with tensor names, join and trigger semantics, windows, topics."""
    cycles = (
        f"allowed, at most {graph.max_step_revisits} visits of a step per request"
        if graph.allow_cycles
        else "not allowed"
    )
    lines = [
        f"pipeline {graph.name}",
        f"  inputs topic:  {graph.input_topic}",
        f"  outputs topic: {graph.output_topic}",
        f"  order: {' -> '.join(node.name for node in graph.steps)}",
        f"  cycles: {cycles}",
        f"  clean topics on delete: {'yes' if graph.clean_topics_on_delete else 'no'}",
    ]
    for node in graph.nodes():
        lines.append("")
        lines.extend(_node_text(graph, node))
    lines.extend(["", "edges:"])
    lines.extend(edge_lines(graph))
    return "\n".join(lines) + "\n"


def edge_lines(graph: PipelineGraph) -> list[str]:
    """One line per source of every node: `  REF [OLD as NEW] -> NODE[ (trigger)]`."""
    lines = []
    for node in graph.nodes():
        for source in node.inputs:
            lines.append(
                f"  {source.ref.spelled(graph.name)}{_renames(source)} -> {_node_label(node)}"
            )
        for source in node.triggers:
            lines.append(
                f"  {source.ref.spelled(graph.name)}{_renames(source)} -> {_node_label(node)} (trigger)"
            )
    return lines


EDGE_PATTERN = re.compile(
    r"^  (?P<ref>\S+)(?: \[(?P<renames>[^\]]*)\])? -> (?P<node>step \S+|input|output)(?P<trigger> \(trigger\))?$"
)


def parse_edges(text: str) -> list[tuple[str, tuple[tuple[str, str], ...], str, bool]]:
    """The `edges:` section of `describe_text` as (ref, renames, node, is_trigger)."""
    edges = []
    section = text.split("\nedges:\n", 1)[1]
    for line in section.splitlines():
        match = EDGE_PATTERN.match(line)
        if match is None:
            raise ValueError(f"not an edge line: {line!r}")
        renames: tuple[tuple[str, str], ...] = ()
        if match["renames"]:
            pairs = [pair.split(" as ") for pair in match["renames"].split(", ")]
            renames = tuple((old, new) for old, new in pairs)
        edges.append((match["ref"], renames, match["node"], bool(match["trigger"])))
    return edges


# --- Mermaid -------------------------------------------------------------------------


def _mermaid_id(kind: str, name: str) -> str:
    # Mermaid ids allow few characters; escape the rest so distinct names stay distinct.
    safe = "".join(ch if ch.isascii() and ch.isalnum() else f"_{ord(ch):x}_" for ch in name)
    return f"{kind}_{safe}"


def _quote(text: str) -> str:
    return text.replace('"', "#quot;")


def describe_mermaid(graph: PipelineGraph) -> str:
    """A Mermaid flowchart: steps as boxes, triggers as dotted arrows, topics on the edges."""
    name = graph.name
    inputs_id, outputs_id = "pipeline_inputs", "pipeline_outputs"
    lines = [
        "flowchart LR",
        f'  {inputs_id}[/"{_quote(name)}.inputs"/]',
    ]
    external: dict[str, str] = {}
    if graph.input_node is not None:
        for source in graph.input_node.sources():
            prefix = source.ref.prefix(name)
            external.setdefault(prefix, _mermaid_id("external", prefix))
        for prefix, node_id in external.items():
            lines.append(f'  {node_id}[("{_quote(prefix)}")]')
    for node in graph.steps:
        details = [f"{node.inputs_join} join, {node.join_window_ms} ms"]
        if node.triggers:
            details.append(f"triggers: {node.triggers_join}")
        if node.batch is not None:
            details.append(f"batch {node.batch.size or '-'}/{node.batch.window_ms or '-'} ms")
        label = "<br/>".join([f"<b>{_quote(node.name)}</b>", *details])
        lines.append(f'  {_mermaid_id("step", node.name)}["{label}"]')
    output = graph.output_node
    lines.append(f'  {outputs_id}[/"{_quote(name)}.outputs<br/>{output.inputs_join} join"/]')

    def origin(source: Source) -> str:
        ref = source.ref
        if ref.pipeline != name:
            return external[ref.prefix(name)]
        if ref.step is None:
            return inputs_id
        return _mermaid_id("step", ref.step)

    def target(node: Node) -> str:
        if node.kind == "input":
            return inputs_id
        if node.kind == "output":
            return outputs_id
        return _mermaid_id("step", node.name)

    def label(source: Source) -> str:
        parts = []
        if source.ref.step is not None and source.ref.port == "inputs":
            parts.append("inputs")
        renamed = {old for old, _ in source.renames}
        if source.ref.tensor is not None and source.ref.tensor not in renamed:
            parts.append(source.ref.tensor)
        parts.extend(f"{old} as {new}" for old, new in source.renames)
        return f'|"{_quote(", ".join(parts))}"|' if parts else ""

    for node in graph.nodes():
        for source in node.inputs:
            lines.append(f"  {origin(source)} -->{label(source)} {target(node)}")
        for source in node.triggers:
            trigger_label = label(source) or '|"trigger"|'
            lines.append(f"  {origin(source)} -.->{trigger_label} {target(node)}")
    return "\n".join(lines) + "\n"
