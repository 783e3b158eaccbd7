"""Seldon's reference grammar, normalised exactly as Seldon does it.

Inside a pipeline (step inputs/triggers, output steps, their tensorMap keys):
    s            -> s.outputs            (a bare step means its outputs)
    p            -> p.inputs             (the pipeline's own name means its inputs)
    s.(inputs|outputs)[.TENSOR]
    p.inputs[.TENSOR]
From `spec.input.externalInputs/externalTriggers` (other pipelines):
    q            -> q.outputs
    q.(inputs|outputs)[.TENSOR]
    q.step.s     -> q.step.s.outputs
    q.step.s.(inputs|outputs)[.TENSOR]
Everything after the port is the tensor name (it may itself contain dots).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

from engine.topology.graph import TensorRef

PORTS = ("inputs", "outputs")


class ReferenceProblem(Exception):
    """A reference that does not parse or names something that does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _listing(names: Collection[str]) -> str:
    return ", ".join(sorted(names)) if names else "(none)"


def _split(text: str) -> list[str]:
    parts = text.strip().split(".")
    if not text.strip() or any(not part for part in parts):
        raise ReferenceProblem(
            f"malformed reference '{text}': empty part between dots; "
            "write 'step', 'step.outputs' or 'step.outputs.TENSOR'"
        )
    return parts


def _port(text: str, owner: str, word: str) -> str:
    if word in PORTS:
        return word
    guess = difflib.get_close_matches(word, PORTS, n=1)
    hint = (
        f"did you mean '{owner}.{guess[0]}'?"
        if guess
        else f"did you mean '{owner}.outputs.{word}'?"
    )
    raise ReferenceProblem(
        f"malformed reference '{text}': after '{owner}' comes 'inputs' or 'outputs', "
        f"not '{word}'; {hint}"
    )


def _tensor(parts: list[str]) -> str | None:
    return ".".join(parts) if parts else None


def parse_internal(text: str, pipeline: str, steps: Collection[str]) -> TensorRef:
    """A reference written inside `pipeline`, whose steps are `steps`."""
    parts = _split(text)
    head = parts[0]
    if len(parts) >= 2 and parts[1] == "step":
        raise ReferenceProblem(
            f"'{text}' reads another pipeline's step; steps read only their own pipeline, "
            f"so list it under spec.input.externalInputs and read '{pipeline}.inputs'"
        )
    if head == pipeline and head not in steps:
        port = _port(text, head, parts[1]) if len(parts) >= 2 else "inputs"
        if port == "outputs":
            raise ReferenceProblem(
                f"'{text}' reads the pipeline's own outputs; a step can read "
                f"'{pipeline}.inputs' or another step ('step.outputs')"
            )
        return TensorRef(pipeline, None, "inputs", _tensor(parts[2:]))
    if head not in steps:
        guess = difflib.get_close_matches(head, list(steps), n=1)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        raise ReferenceProblem(
            f"'{text}' names no step '{head}'; {hint}steps are: {_listing(steps)} "
            f"(the pipeline's inputs are '{pipeline}.inputs')"
        )
    port = _port(text, head, parts[1]) if len(parts) >= 2 else "outputs"
    return TensorRef(pipeline, head, port, _tensor(parts[2:]))  # type: ignore[arg-type]


def parse_external(
    text: str,
    pipeline: str,
    pipelines: Mapping[str, Collection[str]],
    unchecked: Collection[str] = (),
) -> TensorRef:
    """A reference to another pipeline, from `spec.input` of `pipeline`.

    `pipelines` maps every known pipeline to its step names; names in
    `unchecked` exist but failed validation, so their steps are not checked.
    """
    parts = _split(text)
    other = parts[0]
    if other == pipeline:
        raise ReferenceProblem(
            f"'{text}' is this pipeline itself; externalInputs read other pipelines "
            f"(steps read '{pipeline}.inputs' directly)"
        )
    if other not in pipelines and other not in unchecked:
        guess = difflib.get_close_matches(other, [p for p in pipelines if p != pipeline], n=1)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        raise ReferenceProblem(
            f"'{text}' names no pipeline '{other}'; {hint}load its YAML too "
            f"(pipelines known: {_listing(pipelines)})"
        )
    if len(parts) >= 2 and parts[1] == "step":
        if len(parts) < 3:
            raise ReferenceProblem(
                f"malformed reference '{text}': write '{other}.step.STEP[.outputs[.TENSOR]]'"
            )
        step = parts[2]
        steps = pipelines.get(other)
        if steps is not None and step not in steps:
            raise ReferenceProblem(
                f"'{text}': pipeline '{other}' has no step '{step}'; its steps are: "
                f"{_listing(steps)}"
            )
        port = _port(text, f"{other}.step.{step}", parts[3]) if len(parts) >= 4 else "outputs"
        return TensorRef(other, step, port, _tensor(parts[4:]))  # type: ignore[arg-type]
    port = _port(text, other, parts[1]) if len(parts) >= 2 else "outputs"
    return TensorRef(other, None, port, _tensor(parts[2:]))  # type: ignore[arg-type]
