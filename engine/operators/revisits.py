"""Count how often a request has visited each step, for cyclic pipelines.

The counts travel with the request in the `tensorflux-visits` header as
`step=count,step=count`; a step joins arrivals of one visit together, and a
step asked to run more than `maxStepRevisits` times turns the request into an
error record instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

VISITS_HEADER = "tensorflux-visits"


def parse(value: bytes | None) -> dict[str, int]:
    if not value:
        return {}
    visits: dict[str, int] = {}
    for part in value.decode("utf-8", "replace").split(","):
        step, _, count = part.rpartition("=")
        if step and count.isdigit():
            visits[step] = int(count)
    return visits


def format_visits(visits: Mapping[str, int]) -> bytes:
    return ",".join(f"{step}={count}" for step, count in sorted(visits.items())).encode()


def combine(all_visits: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Joined arrivals carry the highest count each step reached on any path."""
    combined: dict[str, int] = {}
    for visits in all_visits:
        for step, count in visits.items():
            if count > combined.get(step, 0):
                combined[step] = count
    return combined
