"""Read Seldon Core 2 YAML (files, directories, text) into spec models.

Every problem of every file is collected; `load_files`/`load_text` raise one
`TopologyError` listing them all, so a file with any error loads nothing.
`read_files`/`read_text` return the problems instead (the CLI reports them
together with the compiler's).
"""

from __future__ import annotations

import copy
import difflib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from engine.topology.errors import Problem, TopologyError, TopologyWarning
from engine.topology.specs import ExperimentSpec, ModelSpec, PipelineSpec
from engine.topology.yamlsource import Document, parse_documents

API_VERSION = "mlops.seldon.io/v1alpha1"
Kind = Literal["Model", "Pipeline", "Experiment"]
SPEC_CLASSES: dict[str, type[ModelSpec | PipelineSpec | ExperimentSpec]] = {
    "Model": ModelSpec,
    "Pipeline": PipelineSpec,
    "Experiment": ExperimentSpec,
}
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class SpecSet:
    """The resources of one load, by kind and name, with where each came from."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    pipelines: dict[str, PipelineSpec] = field(default_factory=dict)
    experiments: dict[str, ExperimentSpec] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    """Empty after `load_*`; `read_*` leaves the problems here instead of raising."""
    invalid: set[tuple[str, str]] = field(default_factory=set)
    """(kind, name) of resources dropped for problems, so references to them are not
    reported a second time as unknown."""

    def origin(self, kind: Kind, name: str) -> tuple[str, int]:
        """(file, line) where a resource was declared."""
        table: dict[str, Any] = {
            "Model": self.models,
            "Pipeline": self.pipelines,
            "Experiment": self.experiments,
        }[kind]
        document: Document = table[name].origin
        return document.file, document.line

    def table(self, kind: str) -> dict[str, Any]:
        return {"Model": self.models, "Pipeline": self.pipelines, "Experiment": self.experiments}[
            kind
        ]

    def resources(self) -> list[tuple[str, str]]:
        """(kind, name) of every resource, in kind order."""
        return [(kind, name) for kind in SPEC_CLASSES for name in self.table(kind)]


def _hidden(path: Path, top: Path) -> bool:
    """Dot-files and anything under a dot-directory: editor swap files, `.git`, and the
    kubelet's `..<timestamp>/` copy of a ConfigMap, whose files the mount also shows by name."""
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def _yaml_files(paths: Iterable[str | Path], problems: list[Problem]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in YAML_SUFFIXES and p.is_file() and not _hidden(p, path)
            )
            if not found:
                problems.append(Problem(str(path), None, None, None, "no *.yaml or *.yml files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, None, None, "no such file or directory"))
    return files


def read_files(paths: Iterable[str | Path]) -> SpecSet:
    """Like `load_files`, but problems are returned in `SpecSet.problems`."""
    specs = SpecSet()
    for path in _yaml_files(paths, specs.problems):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            specs.problems.append(Problem(str(path), None, None, None, f"cannot read: {error}"))
            continue
        _read_into(specs, text, str(path), base_dir=path.resolve().parent)
    return specs


def read_text(text: str, source: str = "<string>") -> SpecSet:
    """Like `load_text`, but problems are returned in `SpecSet.problems`."""
    specs = SpecSet()
    _read_into(specs, text, source, base_dir=Path.cwd())
    return specs


def load_files(paths: Iterable[str | Path]) -> SpecSet:
    """Every resource in `paths` (directories recursively, *.yaml/*.yml sorted)."""
    return _checked(read_files(paths))


def load_text(text: str, source: str = "<string>") -> SpecSet:
    """Every resource in one YAML text (relative storageUri resolved from the cwd)."""
    return _checked(read_text(text, source))


def _checked(specs: SpecSet) -> SpecSet:
    if specs.problems:
        raise TopologyError(specs.problems)
    for problem in specs.warnings:
        warnings.warn(str(problem), TopologyWarning, stacklevel=3)
    return specs


def _read_into(specs: SpecSet, text: str, file: str, base_dir: Path) -> None:
    documents, problems = parse_documents(text, file)
    specs.problems.extend(problems)
    for document in documents:
        _read_document(specs, document, base_dir)


def _read_document(specs: SpecSet, doc: Document, base_dir: Path) -> None:
    data = doc.data
    if not isinstance(data, dict):
        specs.problems.append(
            Problem(
                doc.file,
                doc.line,
                None,
                None,
                "a document must be a mapping with kind, metadata and spec",
            )
        )
        return
    kind = data.get("kind")
    if kind is None:
        specs.problems.append(
            Problem(
                doc.file, doc.line, None, None, "missing 'kind'; use Model, Pipeline or Experiment"
            )
        )
        return
    api_version = data.get("apiVersion")
    if kind not in SPEC_CLASSES:
        _unread_kind(specs, doc, kind, api_version)
        return
    if api_version != API_VERSION:
        specs.warnings.append(
            Problem(
                doc.file,
                doc.line_of("apiVersion"),
                None,
                None,
                f"apiVersion '{api_version}' read as {API_VERSION}",
            )
        )
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        specs.problems.append(
            Problem(
                doc.file,
                doc.line_of("metadata"),
                kind.lower(),
                None,
                "missing metadata.name; every resource needs a name",
            )
        )
        return
    resource = f"{kind.lower()} '{name}'"
    for key in data:
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            specs.warnings.append(
                Problem(
                    doc.file, doc.line_of(key), resource, None, f"unknown field '{key}' ignored"
                )
            )
    spec = data.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        specs.problems.append(
            Problem(doc.file, doc.line_of("spec"), resource, None, "spec must be a mapping")
        )
        specs.invalid.add((kind, name))
        return
    table = specs.table(kind)
    if name in table:
        first_file, first_line = specs.origin(kind, name)
        specs.problems.append(
            Problem(
                doc.file,
                doc.line_of("metadata", "name"),
                resource,
                None,
                f"duplicate {kind} name; already declared at {first_file}:{first_line}; "
                "rename one of them",
            )
        )
        return
    parsed = _validate(specs, kind, name, spec, doc, resource)
    if parsed is None:
        return
    updates: dict[str, Any] = {"origin": doc}
    if isinstance(parsed, ModelSpec):
        updates["source_file"] = None if doc.file.startswith("<") else doc.file
        updates["storage_uri"] = resolve_storage_uri(parsed.storage_uri, base_dir)
    table[name] = parsed.model_copy(update=updates)
    specs.warnings.extend(_unknown_field_warnings(parsed, doc, resource, ("spec",)))


def _validate(
    specs: SpecSet, kind: str, name: str, spec: dict[str, Any], doc: Document, resource: str
) -> ModelSpec | PipelineSpec | ExperimentSpec | None:
    """The validated spec, or None. A spec with bad fields is reported, then validated
    again without them, so that the compiler still finds the resource's other problems
    (all problems in one run); it stays marked invalid and never compiles to a graph."""
    data: dict[str, Any] = copy.deepcopy({**spec, "name": name})
    for attempt in range(10):
        try:
            return SPEC_CLASSES[kind].model_validate(data)
        except ValidationError as error:
            if attempt == 0:  # later rounds only repeat what is already reported
                specs.problems.extend(_validation_problems(error, doc, resource, spec))
            specs.invalid.add((kind, name))
            if not _drop_bad_fields(data, error):
                return None
    return None


def _drop_bad_fields(data: dict[str, Any], error: ValidationError) -> bool:
    dropped = False
    # Deepest and highest index first, so deleting one list item keeps the others' indices.
    locs = sorted(
        (tuple(item["loc"]) for item in error.errors() if item["type"] != "missing"),
        key=lambda loc: [(0, part) if isinstance(part, int) else (1, part) for part in loc],
        reverse=True,
    )
    for loc in locs:
        parent: Any = data
        for part in loc[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = loc[-1] if loc else None
        if isinstance(parent, dict) and last in parent:
            del parent[last]
            dropped = True
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
            dropped = True
    return dropped


def resolve_storage_uri(uri: str | None, base_dir: Path) -> str | None:
    """Relative paths and file:// URIs become absolute paths; other schemes stay as written."""
    if uri is None:
        return None
    if uri.startswith("file://"):
        path = Path(uri.removeprefix("file://"))
    elif "://" in uri:
        return uri
    else:
        path = Path(uri).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def _step_of(spec: dict[str, Any], loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = spec.get("steps")
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            name = steps[loc[1]].get("name")
            return name if isinstance(name, str) else f"#{loc[1] + 1}"
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    text = "spec"
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _validation_problems(
    error: ValidationError, doc: Document, resource: str, spec: dict[str, Any]
) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        kind = item["type"]
        if kind == "missing":
            message = f"{_dotted(loc)}: required field missing"
        elif kind == "literal_error":
            message = f"{_dotted(loc)}: {item['msg'].replace('Input should be', 'must be')} (got {item['input']!r})"
        else:
            message = f"{_dotted(loc)}: {item['msg']} (got {item['input']!r})"
        problems.append(
            Problem(doc.file, doc.line_of("spec", *loc), resource, _step_of(spec, loc), message)
        )
    return problems


# Seldon Core 2's own kinds that tensorflux has no use for (servers are its own processes).
SELDON_OTHER_KINDS = ("Server", "ServerConfig", "SeldonRuntime", "SeldonConfig")


def _unread_kind(specs: SpecSet, doc: Document, kind: object, api_version: object) -> None:
    """A kind tensorflux does not read: an error when it looks like a typo of one it does
    (`Pipelin` would otherwise load nothing and say so only in a warning), else a warning
    (a directory of Kubernetes manifests may hold Secrets, Servers and such)."""
    wanted = "use Model, Pipeline or Experiment"
    close = difflib.get_close_matches(str(kind), list(SPEC_CLASSES), n=1, cutoff=0.75)
    seldon = isinstance(api_version, str) and api_version.startswith("mlops.seldon.io/")
    where = doc.line_of("kind")
    if close:
        message = f"unknown kind '{kind}'; did you mean '{close[0]}'? ({wanted})"
        specs.problems.append(Problem(doc.file, where, None, None, message))
    elif seldon and kind not in SELDON_OTHER_KINDS:
        message = f"unknown kind '{kind}' for {api_version}; {wanted}"
        specs.problems.append(Problem(doc.file, where, None, None, message))
    else:
        message = f"kind '{kind}' ignored; tensorflux reads Model, Pipeline and Experiment"
        specs.warnings.append(Problem(doc.file, where, None, None, message))


def _unknown_field_warnings(
    model: BaseModel, doc: Document, resource: str, path: tuple[Any, ...], step: str | None = None
) -> list[Problem]:
    found: list[Problem] = []
    known = [info.alias or name for name, info in type(model).model_fields.items()]
    for key in model.model_extra or {}:
        guess = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else ""
        found.append(
            Problem(
                doc.file,
                doc.line_of(*path, key),
                resource,
                step,
                f"unknown field '{key}' ignored{hint}",
            )
        )
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        alias = info.alias or name
        if isinstance(value, BaseModel):
            found.extend(_unknown_field_warnings(value, doc, resource, (*path, alias), step))
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    item_step = getattr(item, "name", None) if alias == "steps" else step
                    found.extend(
                        _unknown_field_warnings(
                            item, doc, resource, (*path, alias, index), item_step
                        )
                    )
    return found
