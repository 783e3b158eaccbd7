"""Kafka topic names, derived from pipeline/step/model names only (never counters).

Stable names mean adding a step never renames another step's topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_TOPIC_LENGTH = 249
"""Kafka rejects longer topic names."""

TopicKind = Literal["pipeline", "step", "model", "errors", "control", "status"]
Port = Literal["inputs", "outputs", ""]


@dataclass(frozen=True)
class TopicOwner:
    """Whom a topic belongs to, read back from its name (TopicNames.parse)."""

    kind: TopicKind
    pipeline: str = ""
    """The pipeline of a pipeline or step topic, else ""."""
    step: str = ""
    """The step of a step topic, else ""."""
    model: str = ""
    """The model of a model topic, else ""."""
    port: Port = ""
    """inputs or outputs for pipeline, step and model topics, else ""."""


@dataclass(frozen=True)
class TopicNames:
    """The topic naming scheme of PRODUCT.md for one prefix and namespace."""

    prefix: str = "tensorflux"
    """First component of every topic name."""
    namespace: str = "default"
    """Second component; lets several deployments share one cluster."""

    def _base(self) -> str:
        return f"{self.prefix}.{self.namespace}"

    def pipeline_inputs(self, pipeline: str) -> str:
        return f"{self._base()}.pipeline.{pipeline}.inputs"

    def pipeline_outputs(self, pipeline: str) -> str:
        return f"{self._base()}.pipeline.{pipeline}.outputs"

    def step_inputs(self, pipeline: str, step: str) -> str:
        return f"{self._base()}.pipeline.{pipeline}.step.{step}.inputs"

    def step_outputs(self, pipeline: str, step: str) -> str:
        return f"{self._base()}.pipeline.{pipeline}.step.{step}.outputs"

    def model_inputs(self, model: str) -> str:
        return f"{self._base()}.model.{model}.inputs"

    def model_outputs(self, model: str) -> str:
        return f"{self._base()}.model.{model}.outputs"

    def errors(self) -> str:
        return f"{self._base()}.errors"

    def control(self) -> str:
        return f"{self._base()}.control"

    def status(self) -> str:
        return f"{self._base()}.status"

    def parse(self, topic: str) -> TopicOwner | None:
        """The owner of one of this scheme's topics; None for any other topic.

        Names are dot-separated and pipeline, step and model names have no dots
        (the topology refuses them), so the shape of the name says what it is.
        """
        base = f"{self._base()}."
        if not topic.startswith(base):
            return None
        parts = topic[len(base) :].split(".")
        if len(parts) == 1 and parts[0] in ("errors", "control", "status"):
            return TopicOwner(parts[0])  # type: ignore[arg-type]
        port = parts[-1]
        if port not in ("inputs", "outputs"):
            return None
        if parts[0] == "pipeline" and len(parts) == 3:
            return TopicOwner("pipeline", pipeline=parts[1], port=port)  # type: ignore[arg-type]
        if parts[0] == "pipeline" and len(parts) == 5 and parts[2] == "step":
            return TopicOwner("step", pipeline=parts[1], step=parts[3], port=port)  # type: ignore[arg-type]
        if parts[0] == "model" and len(parts) == 3:
            return TopicOwner("model", model=parts[1], port=port)  # type: ignore[arg-type]
        return None
