"""Checks of the resources that are not graphs: Models and Experiments."""

from __future__ import annotations

from engine.topology.report import Report, check_name
from engine.topology.specs import (
    MAX_IN_FLIGHT_PARAMETER,
    TIMEOUT_PARAMETER,
    ExperimentSpec,
    ModelSpec,
)


def check_model(model: ModelSpec, report: Report) -> None:
    check_name(model.name, "model", report, ("metadata", "name"))
    if not model.storage_uri:
        report.error(
            ("spec",),
            "spec.storageUri is missing; point it at the model's directory or file, "
            "e.g. 'storageUri: ./my-model'",
        )
    for field_name in ("replicas", "min_replicas", "max_replicas"):
        value = getattr(model, field_name)
        if value is not None and value < 0:
            alias = ModelSpec.model_fields[field_name].alias
            report.error(("spec", alias), f"spec.{alias} is {value}; it cannot be negative")
    for name, check in (
        (TIMEOUT_PARAMETER, model.timeout_s),
        (MAX_IN_FLIGHT_PARAMETER, model.max_in_flight),
    ):
        try:
            check()
        except ValueError as error:
            index = next(i for i, p in enumerate(model.parameters) if p.name == name)
            report.error(("spec", "parameters", index, "value"), str(error))


def check_experiment(
    experiment: ExperimentSpec,
    report: Report,
    declared_models: set[str] | None,
    pipelines: set[str],
) -> None:
    check_name(experiment.name, "experiment", report, ("metadata", "name"))
    kind = experiment.resource_type
    if not experiment.candidates:
        report.error(
            ("spec", "candidates"), "spec.candidates is empty; list at least one {name, weight}"
        )
    seen: set[str] = set()
    names = [candidate.name for candidate in experiment.candidates]

    def exists(name: str) -> bool:
        if kind == "pipeline":
            return name in pipelines
        return declared_models is None or name in declared_models

    def known_listing() -> str:
        known = pipelines if kind == "pipeline" else (declared_models or set())
        return ", ".join(sorted(known)) or "(none)"

    for index, candidate in enumerate(experiment.candidates):
        path = ("spec", "candidates", index)
        if candidate.name in seen:
            report.error((*path, "name"), f"candidate '{candidate.name}' is listed twice; keep one")
        seen.add(candidate.name)
        # Weight 0 keeps a candidate loaded but sends it nothing (Seldon allows it too).
        if candidate.weight < 0:
            report.error(
                (*path, "weight"),
                f"candidate '{candidate.name}' has weight {candidate.weight}; weights cannot be "
                "negative (0 sends a candidate no traffic)",
            )
        if not exists(candidate.name):
            report.error(
                (*path, "name"),
                f"candidate '{candidate.name}' is not a declared {kind}; declare it or fix the "
                f"name ({kind}s known: {known_listing()})",
            )
    if experiment.candidates and all(c.weight == 0 for c in experiment.candidates):
        report.error(
            ("spec", "candidates"),
            "every candidate has weight 0, so no request could be routed; give one a positive weight",
        )
    if experiment.default is not None and experiment.default not in names:
        report.error(
            ("spec", "default"),
            f"default '{experiment.default}' is not among the candidates ({', '.join(names) or 'none'}); "
            "add it as a candidate",
        )
    mirror = experiment.mirror
    if mirror is not None:
        if not 0 < mirror.percent <= 100:
            report.error(
                ("spec", "mirror", "percent"),
                f"mirror percent is {mirror.percent}; it must be between 1 and 100",
            )
        if not exists(mirror.name):
            report.error(
                ("spec", "mirror", "name"),
                f"mirror '{mirror.name}' is not a declared {kind} ({kind}s known: {known_listing()})",
            )
