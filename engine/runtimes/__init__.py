"""Model runtimes: `load_model(spec)` gives a `ModelRuntime` the dataflow worker calls.

runtime = load_model(specs.models["tfsimple1"])
outputs = runtime.predict({"INPUT0": a, "INPUT1": b})
runtime.close()
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from engine.runtimes.base import DYNAMIC, ModelRuntime, TensorSpec
from engine.runtimes.errors import (
    MissingInputs,
    ModelError,
    ModelFailure,
    ModelInputError,
    ModelLoadError,
)
from engine.runtimes.onnx_model import OnnxModel
from engine.runtimes.python_model import PythonModel
from engine.runtimes.roots import ModelRoots
from engine.topology.specs import ModelSpec

Kind = Literal["onnx", "python"]
KINDS: Final[tuple[Kind, ...]] = ("onnx", "python")

__all__ = [
    "DYNAMIC",
    "KINDS",
    "MissingInputs",
    "ModelError",
    "ModelFailure",
    "ModelInputError",
    "ModelLoadError",
    "ModelRoots",
    "ModelRuntime",
    "OnnxModel",
    "PythonModel",
    "TensorSpec",
    "load_model",
    "resolve_artifact",
]


def load_model(spec: ModelSpec, roots: ModelRoots | None = None) -> ModelRuntime:
    """The runtime for `spec`, chosen by `requirements` ("onnx"/"python") or, when
    none of them is known, by what `storage_uri` holds. Raises ModelLoadError.

    With `roots`, a storageUri outside them fails before anything under it is
    looked at, and so does an artifact that a symlink leads out of them."""
    if roots is not None and spec.storage_uri and not _is_remote(spec.storage_uri):
        roots.check(spec, Path(spec.storage_uri.removeprefix("file://")))
    kind, path = resolve_artifact(spec)
    if roots is not None:
        roots.check(spec, path)
    if kind == "onnx":
        return OnnxModel(spec.name, path)
    return PythonModel(spec.name, path)


def resolve_artifact(spec: ModelSpec) -> tuple[Kind, Path]:
    """(runtime kind, model file) for `spec`, without loading anything."""
    name, uri = spec.name, spec.storage_uri
    if not uri:
        raise ModelLoadError(name, None, "the Model has no storageUri")
    if _is_remote(uri):
        raise ModelLoadError(
            name,
            uri,
            "only local paths and file:// URIs are supported (remote storage comes later)",
        )
    root = Path(uri.removeprefix("file://"))
    if not root.exists():
        raise ModelLoadError(name, str(root), "no such file or directory")
    wanted = [kind for kind in KINDS if kind in {r.lower() for r in spec.requirements}]
    if len(wanted) > 1:
        raise ModelLoadError(
            name, str(root), f"requirements name both {' and '.join(wanted)}; keep one"
        )
    if wanted:
        return wanted[0], _model_file(name, root, wanted[0])
    return _infer(name, root, spec.requirements)


def _model_file(name: str, root: Path, kind: Kind) -> Path:
    suffix = ".onnx" if kind == "onnx" else ".py"
    if root.is_file():
        if root.suffix != suffix:
            raise ModelLoadError(name, str(root), f"a {kind} model needs a {suffix} file")
        return root
    preferred = root / f"model{suffix}"
    if preferred.is_file():
        return preferred
    if kind == "onnx":
        found = sorted(p for p in root.glob("*.onnx") if p.is_file())
        if len(found) == 1:
            return found[0]
        if found:
            listed = ", ".join(p.name for p in found)
            raise ModelLoadError(
                name, str(root), f"several .onnx files ({listed}) and no model.onnx; name one"
            )
        raise ModelLoadError(name, str(root), "no model.onnx (nor any .onnx file) in the directory")
    raise ModelLoadError(name, str(root), "no model.py in the directory")


def _infer(name: str, root: Path, requirements: tuple[str, ...]) -> tuple[Kind, Path]:
    if root.is_file():
        kinds: list[Kind] = [k for k in KINDS if root.suffix == (".onnx" if k == "onnx" else ".py")]
    else:
        kinds = []
        if any(p.is_file() for p in root.glob("*.onnx")):
            kinds.append("onnx")
        if (root / "model.py").is_file():
            kinds.append("python")
    said = (
        f"requirements {list(requirements)} name no known runtime"
        if requirements
        else "no requirements"
    )
    if len(kinds) == 1:
        return kinds[0], _model_file(name, root, kinds[0])
    if kinds:
        raise ModelLoadError(
            name,
            str(root),
            f"{said} and it holds both an .onnx file and model.py; add requirements: [onnx] or [python]",
        )
    raise ModelLoadError(
        name,
        str(root),
        f"{said} and no model file found (expected model.onnx, a .onnx file or model.py); "
        f"known runtimes: {', '.join(KINDS)}",
    )


def _is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")
