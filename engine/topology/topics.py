"""Kafka topic names, derived from pipeline/step/model names only (never counters).

Stable names mean adding a step never renames another step's topics.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TOPIC_LENGTH = 249
"""Kafka rejects longer topic names."""


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
