"""Model runtimes: `load_model(spec)` gives a `ModelRuntime` the dataflow worker calls.

runtime = load_model(specs.models["tfsimple1"])
outputs = runtime.predict({"INPUT0": a, "INPUT1": b})
runtime.close()
"""

from __future__ import annotations

from pathlib import Path

from engine.runtimes.artifacts import KINDS, Artifact, Kind, is_remote, resolve
from engine.runtimes.base import DYNAMIC, ModelRuntime, TensorSpec
from engine.runtimes.errors import (
    MissingInputs,
    ModelError,
    ModelFailure,
    ModelInputError,
    ModelLoadError,
    ModelUnreachable,
)
from engine.runtimes.hosts import ModelHosts, is_oip, remote_address
from engine.runtimes.onnx_model import OnnxModel
from engine.runtimes.python_model import PythonModel
from engine.runtimes.roots import ModelRoots
from engine.topology.specs import ModelSpec

__all__ = [
    "DYNAMIC",
    "KINDS",
    "Kind",
    "MissingInputs",
    "ModelError",
    "ModelFailure",
    "ModelInputError",
    "ModelHosts",
    "ModelLoadError",
    "ModelRoots",
    "ModelRuntime",
    "ModelUnreachable",
    "OnnxModel",
    "PythonModel",
    "TensorSpec",
    "load_model",
    "resolve_artifact",
]


def load_model(
    spec: ModelSpec, roots: ModelRoots | None = None, hosts: ModelHosts | None = None
) -> ModelRuntime:
    """The runtime for `spec`, chosen by a model-settings.json, `requirements` or what
    `storage_uri` holds (engine.runtimes.artifacts), or a remote model for an `oip+`
    URI. Raises ModelLoadError; a runtime whose library is not installed names the
    extra that installs it.

    With `roots`, a storageUri outside them fails before anything under it is
    looked at, and so does an artifact that a symlink (or a model-settings.json's
    `parameters.uri`) leads out of them. With `hosts`, a remote model on any other
    host fails before anything is connected."""
    if is_oip(spec.storage_uri):
        return _remote(spec, hosts)
    if roots is not None and spec.storage_uri and not is_remote(spec.storage_uri):
        roots.check(spec, Path(spec.storage_uri.removeprefix("file://")))
    artifact = resolve(spec)
    if roots is not None:
        roots.check(spec, artifact.path)
    return _open(spec.name, artifact)


def _remote(spec: ModelSpec, hosts: ModelHosts | None) -> ModelRuntime:
    from engine.runtimes.remote_model import RemoteModel, options_of

    address = remote_address(spec.name, spec.storage_uri or "")
    if hosts is not None:
        hosts.check(spec, address)
    options = options_of(spec)
    if address.transport == "grpc":
        from engine.runtimes.remote_grpc import GrpcTransport

        return RemoteModel(spec.name, address, options, GrpcTransport(address, options))
    from engine.runtimes.remote_http import HttpTransport

    return RemoteModel(spec.name, address, options, HttpTransport(address, options))


def resolve_artifact(spec: ModelSpec) -> tuple[Kind, Path]:
    """(runtime kind, model file or directory) for `spec`, without loading anything."""
    artifact = resolve(spec)
    return artifact.kind, artifact.path


def _open(name: str, artifact: Artifact) -> ModelRuntime:
    # Each MLServer runtime is imported only when a model needs it: its library
    # is an optional extra, and a model whose extra is missing fails alone.
    kind, path, settings = artifact.kind, artifact.path, artifact.settings
    if kind == "onnx":
        return OnnxModel(name, path)
    if kind == "python":
        return PythonModel(name, path)
    if kind == "sklearn":
        from engine.runtimes.sklearn_model import SklearnModel

        return SklearnModel(name, path, settings)
    if kind == "xgboost":
        from engine.runtimes.xgboost_model import XGBoostModel

        return XGBoostModel(name, path, settings)
    if kind == "lightgbm":
        from engine.runtimes.lightgbm_model import LightGBMModel

        return LightGBMModel(name, path, settings)
    if kind == "mlflow":
        from engine.runtimes.mlflow_model import MLflowModel

        return MLflowModel(name, path, settings)
    from engine.runtimes.alibi_detect_model import AlibiDetectModel

    return AlibiDetectModel(name, path, settings)
