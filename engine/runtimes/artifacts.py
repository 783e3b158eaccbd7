"""Which runtime a Model needs and which file (or directory) it loads, without loading it.

The runtime is, in order: the `implementation` of a model-settings.json, the
first runtime named in `requirements` whose artifact is there, or what the
storage holds (MLServer's well-known file names first). A requirement whose
artifact is missing falls back to the contents, so a Model saying
`requirements: [sklearn]` over an ONNX file still runs it; when the contents
say nothing either, the requirement's own error explains what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from engine.runtimes.errors import ModelLoadError
from engine.runtimes.settings import SETTINGS_FILE, ModelSettings, read_settings
from engine.topology.specs import ModelSpec

Kind = Literal["onnx", "python", "sklearn", "xgboost", "lightgbm", "mlflow", "alibi-detect"]
KINDS: Final[tuple[Kind, ...]] = (
    "onnx",
    "python",
    "sklearn",
    "xgboost",
    "lightgbm",
    "mlflow",
    "alibi-detect",
)

# Other spellings of `requirements` for the same runtime.
_ALIASES: Final[dict[str, Kind]] = {"scikit-learn": "sklearn", "alibi_detect": "alibi-detect"}


@dataclass(frozen=True)
class _Files:
    """How a runtime's artifact is found: suffixes of a file, well-known names in a directory."""

    suffixes: tuple[str, ...]
    wellknown: tuple[str, ...]
    markers: tuple[str, ...] = ()
    """Files whose presence makes the directory itself the artifact (MLmodel, config.toml)."""


_FILES: Final[dict[Kind, _Files]] = {
    "onnx": _Files((".onnx",), ("model.onnx",)),
    "python": _Files((".py",), ("model.py",)),
    "sklearn": _Files(
        (".joblib", ".pkl", ".pickle"), ("model.joblib", "model.pickle", "model.pkl")
    ),
    "xgboost": _Files((".json", ".ubj", ".bst"), ("model.bst", "model.json", "model.ubj")),
    "lightgbm": _Files((".txt", ".bst"), ("model.bst", "model.txt")),
    "mlflow": _Files((), (), ("MLmodel",)),
    # save_detector writes config.toml; detectors in its legacy format, meta.dill.
    "alibi-detect": _Files((), (), ("config.toml", "meta.dill")),
}


@dataclass(frozen=True)
class Artifact:
    kind: Kind
    path: Path
    """The file the runtime opens, or the directory (mlflow, alibi-detect)."""
    settings: ModelSettings


def resolve(spec: ModelSpec) -> Artifact:
    """The runtime and artifact for `spec`; raises ModelLoadError."""
    name, uri = spec.name, spec.storage_uri
    if not uri:
        raise ModelLoadError(name, None, "the Model has no storageUri")
    if is_remote(uri):
        raise ModelLoadError(
            name,
            uri,
            "only local paths, file:// URIs and remote model servers "
            "(oip+http(s)://HOST:PORT[/MODEL], oip+grpc(s)://...) are supported",
        )
    root = Path(uri.removeprefix("file://"))
    if not root.exists():
        raise ModelLoadError(name, str(root), "no such file or directory")
    settings = read_settings(name, root)
    storage = root
    if settings.uri is not None:
        storage = settings.uri
        if not storage.exists():
            raise ModelLoadError(
                name, str(storage), f"parameters.uri of {settings.path} names nothing that exists"
            )
    if settings.kind is not None:
        return Artifact(settings.kind, _artifact(name, storage, settings.kind), settings)
    wanted = requested_kinds(spec.requirements)
    if len(wanted) > 1:
        raise ModelLoadError(
            name, str(storage), f"requirements name both {' and '.join(wanted)}; keep one"
        )
    first_error: ModelLoadError | None = None
    if wanted:
        try:
            return Artifact(wanted[0], _artifact(name, storage, wanted[0]), settings)
        except ModelLoadError as error:
            first_error = error
    found = _contents(storage)
    if len(found) == 1:
        return Artifact(found[0], _artifact(name, storage, found[0]), settings)
    if first_error is not None and not found:
        raise first_error
    said = (
        f"requirements {list(spec.requirements)} name no runtime whose artifact is there"
        if spec.requirements
        else "no requirements"
    )
    if found:
        listed = " and ".join(found)
        choices = " or ".join(f"[{kind}]" for kind in found)
        raise ModelLoadError(
            name,
            str(storage),
            f"{said} and it holds artifacts of {listed}; add requirements: {choices}",
        )
    raise ModelLoadError(
        name,
        str(storage),
        f"{said} and no model file found (expected model.onnx, model.py, model.joblib, "
        f"model.json/.ubj, model.txt, an MLmodel or a saved detector's config.toml); "
        f"known runtimes: {', '.join(KINDS)}",
    )


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def requested_kinds(requirements: tuple[str, ...]) -> list[Kind]:
    """The runtimes `requirements` name, in their order ("mlserver" and others name none)."""
    kinds: list[Kind] = []
    for requirement in requirements:
        word = requirement.strip().lower()
        kind = _ALIASES.get(word) or next((k for k in KINDS if k == word), None)
        if kind is not None and kind not in kinds:
            kinds.append(kind)
    return kinds


def _contents(storage: Path) -> list[Kind]:
    """The runtimes whose artifacts `storage` holds (a file: by its suffix). A `.bst`
    is xgboost's or lightgbm's, so it alone names both (requirements decide)."""
    if storage.is_file():
        if storage.name == "MLmodel":
            return ["mlflow"]
        return [k for k, f in _FILES.items() if storage.suffix in f.suffixes]
    kinds: list[Kind] = []
    for kind, files in _FILES.items():
        if files.markers:
            if any((storage / marker).is_file() for marker in files.markers):
                return [kind]  # the directory is one artifact; what else it holds is its own
        elif _candidates(storage, files):
            kinds.append(kind)
    return kinds


def _candidates(directory: Path, files: _Files) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix in files.suffixes and p.name != SETTINGS_FILE
    )


def _artifact(name: str, storage: Path, kind: Kind) -> Path:
    files = _FILES[kind]
    if files.markers:
        if storage.is_file() and storage.name in files.markers:
            return storage.parent
        if storage.is_dir() and any((storage / m).is_file() for m in files.markers):
            return storage
        raise ModelLoadError(
            name,
            str(storage),
            f"a {kind} model needs a directory with {' or '.join(files.markers)}",
        )
    if storage.is_file():
        if storage.suffix not in files.suffixes:
            raise ModelLoadError(
                name, str(storage), f"a {kind} model needs a {' or '.join(files.suffixes)} file"
            )
        return storage
    for wellknown in files.wellknown:
        if (storage / wellknown).is_file():
            return storage / wellknown
    found = _candidates(storage, files)
    if len(found) == 1:
        return found[0]
    expected = " or ".join(files.wellknown)
    if found:
        listed = ", ".join(p.name for p in found)
        raise ModelLoadError(
            name, str(storage), f"several {kind} files ({listed}) and no {expected}; name one"
        )
    raise ModelLoadError(
        name,
        str(storage),
        f"no {expected} (nor any {'/'.join(files.suffixes)} file) in the directory",
    )
