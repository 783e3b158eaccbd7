"""What the workers say of each resource, on the status topic, made into one state.

Each worker reports every resource it runs (key `<worker>|<kind>/<name>`) and a
heartbeat (`<worker>|worker`) every HEARTBEAT_S. A resource's state is what its
live workers say; an experiment's, which no worker runs (the gateways do), is
derived from its candidates'.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.topology import ExperimentSpec


def resource_key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


PENDING = ("Pending", "no worker has reported", ())

HEARTBEAT_S = 5.0
"""How often a worker says it is alive on the status topic."""
STALE_AFTER_S = 30.0
"""A worker silent for this long (killed, or stuck) no longer counts for any resource."""
WORKER_KIND = "worker"
"""The `kind` of a heartbeat record on the status topic."""


def heartbeat(worker_id: str, now: float | None = None) -> tuple[str, dict]:
    """The status-topic key and value that say `worker_id` is alive."""
    value = {"worker": worker_id, "kind": WORKER_KIND, "name": worker_id, "state": "Alive"}
    return f"{worker_id}|{WORKER_KIND}", value | {"time": time.time() if now is None else now}


def combine_reports(
    reports: Iterable[Mapping], now: float | None = None
) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """One state per resource from every worker's report: (state, reason, workers).

    Any worker's Failed wins (with its reason), else any Ready, else Loading. A worker
    whose heartbeat is older than STALE_AFTER_S counts for nothing (a `kill -9` leaves
    its last reports behind); one that never sent a heartbeat counts.
    """
    now = time.time() if now is None else now
    reports = list(reports)
    last_seen = {r["worker"]: r.get("time", 0.0) for r in reports if r["kind"] == WORKER_KIND}
    stale = {w for w, seen in last_seen.items() if now - seen > STALE_AFTER_S}
    by_resource: dict[str, list[Mapping]] = {}
    for report in reports:
        if report["kind"] != WORKER_KIND:
            key = resource_key(report["kind"], report["name"])
            by_resource.setdefault(key, []).append(report)
    combined = {}
    for key, every in by_resource.items():
        found = [r for r in every if r["worker"] not in stale]
        if not found:
            gone = ", ".join(
                f"{r['worker']} ({now - last_seen[r['worker']]:.0f} s ago)" for r in every
            )
            combined[key] = ("Pending", f"no live worker reports it; last heard of: {gone}", ())
            continue
        workers = tuple(sorted(r["worker"] for r in found))
        failed = [r for r in found if r["state"] == "Failed"]
        if failed:
            combined[key] = ("Failed", failed[0].get("reason", ""), workers)
        elif any(r["state"] == "Ready" for r in found):
            combined[key] = ("Ready", "", workers)
        else:
            combined[key] = ("Loading", "", workers)
    return combined


def experiment_state(
    spec: ExperimentSpec, states: Mapping[str, tuple[str, str, tuple[str, ...]]]
) -> tuple[str, str, tuple[str, ...]]:
    """An experiment is Ready when every candidate and its mirror are; it names the first
    that is not (Failed before not loaded before still loading)."""
    names = [candidate.name for candidate in spec.candidates]
    if spec.mirror is not None:
        names.append(spec.mirror.name)
    found = {name: states.get(resource_key(spec.resource_type, name)) for name in names}
    for name, state in found.items():
        if state is not None and state[0] == "Failed":
            return ("Failed", f"{spec.resource_type} '{name}' failed: {state[1]}", ())
    for name, state in found.items():
        if state is None:
            return ("Pending", f"{spec.resource_type} '{name}' has not reported Ready", ())
    for name, state in found.items():
        if state[0] != "Ready":
            return ("Loading", f"waiting for {spec.resource_type} '{name}' ({state[0]})", ())
    return ("Ready", "", ())


@dataclass(frozen=True)
class ResourceStatus:
    kind: str
    name: str
    state: str
    reason: str
    workers: tuple[str, ...]
