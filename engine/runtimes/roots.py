"""Which directories a worker may load model artifacts from.

Anyone who can write the control topic can name any path as a Model's
`storageUri`, and a python model's `model.py` is imported: code execution.
So a worker loads only from roots its operator named (`--model-root`,
`TENSORFLUX_MODEL_ROOTS`) or, by default, from the storage directories of the
specs given on its own command line. A spec pointing anywhere else fails to
load before anything under that path is opened.

Paths are compared after `Path.resolve()`, so `..` and symlinks (in the
storageUri and in the artifact a directory holds) cannot leave a root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.runtimes.errors import ModelLoadError
from engine.topology.specs import ModelSpec

ROOTS_VARIABLE = "TENSORFLUX_MODEL_ROOTS"
"""Environment variable: allowed roots separated by os.pathsep (':' on Linux)."""


@dataclass(frozen=True)
class ModelRoots:
    """The allowed model roots, resolved; an empty set allows nothing."""

    roots: tuple[Path, ...]

    @classmethod
    def of(cls, paths: Iterable[str | Path]) -> ModelRoots:
        resolved: list[Path] = []
        for path in paths:
            root = Path(path).expanduser().resolve()
            if root not in resolved:
                resolved.append(root)
        return cls(tuple(resolved))

    @classmethod
    def configured(
        cls,
        flags: Iterable[str],
        specs: Iterable[ModelSpec] = (),
        *,
        environ: Mapping[str, str] | None = None,
        include_cwd: bool = False,
    ) -> ModelRoots:
        """The roots a worker runs with: `--model-root` flags and TENSORFLUX_MODEL_ROOTS
        when either names any; else the storage directories of `specs` (those on the
        worker's own command line), plus the working directory when `include_cwd` (`up`)."""
        env = os.environ if environ is None else environ
        named = [*flags, *(p for p in env.get(ROOTS_VARIABLE, "").split(os.pathsep) if p)]
        if named:
            return cls.of(named)
        defaults = [storage_directory(spec) for spec in specs]
        if include_cwd:
            defaults.append(Path.cwd())
        return cls.of(p for p in defaults if p is not None)

    def allows(self, path: Path) -> bool:
        resolved = path.resolve()
        return any(resolved == root or resolved.is_relative_to(root) for root in self.roots)

    def check(self, spec: ModelSpec, path: Path) -> None:
        """Raise ModelLoadError unless `path` (of `spec`) lies inside a root."""
        if self.allows(path):
            return
        allowed = ", ".join(str(root) for root in self.roots) or "none"
        raise ModelLoadError(
            spec.name,
            str(path),
            f"outside the allowed model roots ({allowed}); nothing was read. "
            "Start the worker with --model-root DIR (or TENSORFLUX_MODEL_ROOTS) to allow it",
        )


def storage_directory(spec: ModelSpec) -> Path | None:
    """The directory a spec's artifacts live in (a file's parent); None for remote URIs."""
    uri = spec.storage_uri
    if not uri or ("://" in uri and not uri.startswith("file://")):
        return None
    path = Path(uri.removeprefix("file://"))
    return path if not path.suffix or path.is_dir() else path.parent
