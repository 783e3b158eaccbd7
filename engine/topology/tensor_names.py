"""Tensor names a node will receive, where the specs (and the known models' outputs) say them.

Two tensors of one name in a model's request fail every request: an error at load
when the model's signature is known (validate reads ONNX files), else a warning. At a
pipeline's output they are answered both, in order, as Seldon Core 2 answers them: a
warning, since a caller reading tensors by name sees only one.
A source whose names are unknown (a whole message of a model nobody described, the
pipeline's own inputs) is left out: nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.topology.graph import Node, Source
from engine.topology.report import Report

Signatures = Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
"""Model name -> (its input names, its output names), as its signature declares them."""


def known_names(source: Source, pipeline: str, signatures: Signatures) -> tuple[str, ...] | None:
    """The names this source delivers after its tensorMap, or None when they are unknown."""
    ref = source.ref
    if ref.tensor is not None:
        return (source.rename(ref.tensor),)
    if ref.pipeline == pipeline and ref.step is not None and ref.port == "outputs":
        signature = signatures.get(ref.step)  # a step's name is its model's name
        if signature is not None:
            return tuple(source.rename(name) for name in signature[1])
    return None


def check_node_names(
    node: Node, report: Report, path: Sequence[Any], signatures: Signatures
) -> None:
    """Report the names that two of the node's inputs both deliver (triggers pass nothing on).
    Only an inner join is sure to bring them together: `outer` and `any` joins (a cycle's
    alternatives, say) may never do so."""
    if node.inputs_join != "inner":
        return
    origin: dict[str, str] = {}
    for source in node.inputs:
        names = known_names(source, node.pipeline, signatures)
        label = f"'{source.ref.spelled(node.pipeline)}'"
        for name in names or ():
            first = origin.setdefault(name, label)
            if first == label:
                continue
            if node.kind == "step":
                says = report.error if node.model in signatures else report.warn
                says(
                    path,
                    f"tensor '{name}' would reach model '{node.model}' from both {first} and "
                    f"{label}, and a model's inputs need distinct names, so every request "
                    "would fail; rename one of them with tensorMap",
                    node.name,
                )
            elif node.kind == "output":
                report.warn(
                    path,
                    f"the pipeline answers two tensors named '{name}' (from {first} and "
                    f"{label}), in that order, as Seldon does; a caller reading tensors by name "
                    "sees only one: rename them with an output tensorMap to tell them apart",
                )
