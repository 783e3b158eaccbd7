"""Pydantic models of Seldon Core 2's Model, Pipeline and Experiment resources.

They hold what the user wrote (references still unparsed); `compiler.py` turns
pipelines into graphs. Field names are snake_case with Seldon's camelCase as
aliases. Unknown fields are kept (`model_extra`) so the loader can warn about
them instead of crashing on YAML written for a newer Seldon.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

JoinTypeName = Literal["inner", "outer", "any"]
ResourceType = Literal["model", "pipeline"]


def _none_is_empty(value: Any) -> Any:
    # `inputs:` with nothing after it is YAML null; Seldon reads it as "no inputs".
    return () if value is None else value


def _none_is_empty_map(value: Any) -> Any:
    return {} if value is None else value


References = Annotated[tuple[str | None, ...], BeforeValidator(_none_is_empty)]
"""Reference strings as written; None is an empty `-` item, reported with its line."""
TensorMap = Annotated[dict[str, str], BeforeValidator(_none_is_empty_map)]
"""Full reference with tensor -> new tensor name."""


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )


class _Resource(_Spec):
    name: str
    origin: Any = Field(default=None, exclude=True, repr=False)
    """The `yamlsource.Document` it was read from (file and line of every item)."""


# --- Model -----------------------------------------------------------------------------


class ModelParameter(_Spec):
    name: str
    value: str | int | float | bool | None = None


class ModelLogger(_Spec):
    uri: str | None = None
    percent: int | None = None


class ModelExplainer(_Spec):
    type: str | None = None
    model_ref: str | None = None
    pipeline_ref: str | None = None


class ModelSpec(_Resource):
    """A Seldon `Model`; `storage_uri` is absolute when the YAML gave a relative path."""

    storage_uri: str | None = None
    artifact_version: int | None = None
    schema_uri: str | None = None
    secret_name: str | None = None
    requirements: Annotated[tuple[str, ...], BeforeValidator(_none_is_empty)] = ()
    memory: str | int | None = None
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    server: str | None = None
    preloaded: bool = False
    dedicated: bool = False
    logger: ModelLogger | None = None
    explainer: ModelExplainer | None = None
    parameters: Annotated[tuple[ModelParameter, ...], BeforeValidator(_none_is_empty)] = ()
    llm: dict[str, Any] | None = None
    source_file: str | None = Field(default=None, exclude=True)
    """The YAML file the model came from (None for text loaded from a string)."""

    def timeout_s(self) -> float | None:
        """`parameters: [{name: timeout, value: SECONDS}]`: how long one call of the model
        may run before its requests become timeout error records (None: no limit).
        Raises ValueError naming the value when it is not a positive number of seconds."""
        for parameter in self.parameters:
            if parameter.name != TIMEOUT_PARAMETER:
                continue
            value = parameter.value
            try:
                seconds = float(value) if not isinstance(value, bool) and value is not None else 0
            except ValueError:
                seconds = 0
            if not 0 < seconds < float("inf"):
                raise ValueError(
                    f"parameter timeout is {value!r}; give a positive number of seconds, "
                    'e.g. value: "2.5"'
                )
            return seconds
        return None

    def max_in_flight(self) -> int | None:
        """`parameters: [{name: max_in_flight, value: N}]`: how many calls of the model may
        run at once (None: the worker's `TENSORFLUX_WORKER_MODEL_THREADS`). More than one
        needs a model that may be called from several threads at once, as remote models
        are. Raises ValueError naming the value when it is not a positive integer."""
        for parameter in self.parameters:
            if parameter.name != MAX_IN_FLIGHT_PARAMETER:
                continue
            value = parameter.value
            text = str(value).strip() if not isinstance(value, bool) else ""
            if not text.isdigit() or int(text) < 1:
                raise ValueError(
                    f"parameter max_in_flight is {value!r}; give a positive integer, "
                    'e.g. value: "8"'
                )
            return int(text)
        return None


TIMEOUT_PARAMETER = "timeout"
"""The Model parameter bounding one model call, in seconds."""
MAX_IN_FLIGHT_PARAMETER = "max_in_flight"
"""The Model parameter: how many calls of the model may run at once (its threads)."""


# --- Pipeline --------------------------------------------------------------------------


class BatchSpec(_Spec):
    size: int | None = None
    window_ms: int | None = None
    rolling: bool = False


class PipelineStepSpec(_Spec):
    name: str
    inputs: References = ()
    triggers: References = ()
    tensor_map: TensorMap = Field(default_factory=dict)
    inputs_join_type: JoinTypeName = "inner"
    triggers_join_type: JoinTypeName = "inner"
    join_window_ms: int | None = None
    batch: BatchSpec | None = None


class PipelineInputSpec(_Spec):
    external_inputs: References = ()
    external_triggers: References = ()
    join_type: JoinTypeName = "inner"
    triggers_join_type: JoinTypeName = "inner"
    join_window_ms: int | None = None
    tensor_map: TensorMap = Field(default_factory=dict)


class PipelineOutputSpec(_Spec):
    steps: References = ()
    steps_join: JoinTypeName = "inner"
    join_window_ms: int | None = None
    tensor_map: TensorMap = Field(default_factory=dict)


class DataflowSpec(_Spec):
    clean_topics_on_delete: bool = False


class PipelineSpec(_Resource):
    """A Seldon `Pipeline` (metadata.name plus the fields of its spec)."""

    input: PipelineInputSpec | None = None
    steps: Annotated[tuple[PipelineStepSpec, ...], BeforeValidator(_none_is_empty)] = ()
    output: PipelineOutputSpec | None = None
    allow_cycles: bool = False
    max_step_revisits: int | None = None
    dataflow: DataflowSpec | None = None


# --- Experiment ------------------------------------------------------------------------


class ExperimentCandidate(_Spec):
    name: str
    weight: int


class ExperimentMirror(_Spec):
    name: str
    percent: int


class ExperimentSpec(_Resource):
    """A Seldon `Experiment`: weighted candidates, an optional default and mirror."""

    default: str | None = None
    candidates: Annotated[tuple[ExperimentCandidate, ...], BeforeValidator(_none_is_empty)] = ()
    mirror: ExperimentMirror | None = None
    resource_type: ResourceType = "model"
