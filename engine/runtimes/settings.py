"""MLServer's `model-settings.json`, where a model directory has one.

Seldon users' artifacts often come with the file MLServer reads beside them:
`name`, `implementation` (which runtime), `parameters.uri` (the artifact,
relative to the file), `max_batch_size`, `parameters.content_type` (how a
request is decoded: "np" or "pd") and `parameters.extra` (runtime options such
as sklearn's `predict_fn` or alibi-detect's `predict_parameters`). Other keys
are MLServer's own business and are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from engine.runtimes.errors import ModelLoadError

SETTINGS_FILE: Final = "model-settings.json"

IMPLEMENTATIONS: Final[dict[str, str]] = {
    "mlserver_sklearn.SKLearnModel": "sklearn",
    "mlserver_xgboost.XGBoostModel": "xgboost",
    "mlserver_lightgbm.LightGBMModel": "lightgbm",
    "mlserver_mlflow.MLflowRuntime": "mlflow",
    "mlserver_alibi_detect.AlibiDetectRuntime": "alibi-detect",
}
"""MLServer runtime classes -> the tensorflux runtime that does the same."""


@dataclass(frozen=True)
class ModelSettings:
    """What tensorflux uses of a model-settings.json; every field may be absent."""

    path: Path | None = None
    """The file read; None when the model directory has none."""
    name: str | None = None
    implementation: str | None = None
    """MLServer's runtime class, e.g. "mlserver_sklearn.SKLearnModel"."""
    uri: Path | None = None
    """`parameters.uri`, resolved against the file's directory."""
    max_batch_size: int | None = None
    """At most this many requests merged into one model call."""
    content_type: str | None = None
    """How requests are decoded: "np" (one tensor) or "pd" (a DataFrame of the inputs)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """`parameters.extra`: options of the runtime."""

    @property
    def kind(self) -> str | None:
        """The runtime `implementation` names, if it names one tensorflux has."""
        if self.implementation is None:
            return None
        return IMPLEMENTATIONS.get(self.implementation)


NO_SETTINGS: Final = ModelSettings()


def read_settings(model: str, storage: Path) -> ModelSettings:
    """The settings beside `storage` (a directory, or a file's directory); NO_SETTINGS without."""
    directory = storage if storage.is_dir() else storage.parent
    path = directory / SETTINGS_FILE
    if not path.is_file():
        return NO_SETTINGS
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(model, str(path), f"not readable JSON: {error}") from error
    if not isinstance(document, dict):
        raise ModelLoadError(model, str(path), "must hold a JSON object")
    parameters = _object(model, path, document.get("parameters"), "parameters")
    extra = _object(model, path, parameters.get("extra"), "parameters.extra")
    uri = _text(model, path, parameters.get("uri"), "parameters.uri")
    size = document.get("max_batch_size")
    if size is not None and (type(size) is not int or size < 1):
        raise ModelLoadError(
            model, str(path), f"max_batch_size must be a positive integer, got {size!r}"
        )
    implementation = _text(model, path, document.get("implementation"), "implementation")
    if implementation is not None and implementation not in IMPLEMENTATIONS:
        known = ", ".join(IMPLEMENTATIONS)
        raise ModelLoadError(
            model,
            str(path),
            f"implementation {implementation!r} is not one tensorflux runs; known: {known}",
        )
    content_type = _text(model, path, parameters.get("content_type"), "parameters.content_type")
    if content_type not in (None, "np", "pd"):
        raise ModelLoadError(
            model,
            str(path),
            f"parameters.content_type {content_type!r}: tensorflux reads 'np' or 'pd'",
        )
    return ModelSettings(
        path=path,
        name=_text(model, path, document.get("name"), "name"),
        implementation=implementation,
        uri=None if uri is None else (directory / uri.removeprefix("file://")),
        max_batch_size=size,
        content_type=content_type,
        extra=extra,
    )


def _object(model: str, path: Path, value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelLoadError(
            model, str(path), f"{key} must be an object, got {type(value).__name__}"
        )
    return value


def _text(model: str, path: Path, value: Any, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ModelLoadError(model, str(path), f"{key} must be a string, got {type(value).__name__}")
