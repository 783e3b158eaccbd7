"""Seldon Core 2 Experiments in the gateway: which candidate answers, who gets a mirror copy.

The choice is a pure function of the experiment and a random source, so tests
inject a seeded `random.Random` and production uses a fresh one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine import headers as h
from engine.topology.specs import ExperimentSpec, ResourceType

ROUTE_HEADER = h.SELDON_ROUTE
"""Seldon's header naming the candidate that answered; sent back, it pins the route."""


@dataclass(frozen=True)
class ExperimentInfo:
    """A loaded experiment: a traffic split over candidates by weight, an optional mirror."""

    name: str
    resource_type: ResourceType
    candidates: tuple[tuple[str, int], ...]
    """(name, weight); weight 0 keeps a candidate in the experiment without traffic."""
    default: str | None = None
    """The model or pipeline whose own endpoint is split while the experiment is active."""
    mirror: tuple[str, int] | None = None
    """(name, percent): that share of requests is copied to it, its answers dropped."""

    @classmethod
    def from_spec(cls, spec: ExperimentSpec) -> ExperimentInfo:
        mirror = (spec.mirror.name, spec.mirror.percent) if spec.mirror else None
        return cls(
            spec.name,
            spec.resource_type,
            tuple((c.name, c.weight) for c in spec.candidates),
            spec.default,
            mirror,
        )


def choose_candidate(
    experiment: ExperimentInfo, rng: random.Random, sticky: str | None = None
) -> str:
    """A candidate drawn with probability weight / sum of weights.

    `sticky` is the x-seldon-route a caller sent back, in tensorflux's spelling (`mul10`)
    or Seldon's (`:mul10_1:`): while it names a candidate with traffic, the caller stays
    on it (Seldon's sticky sessions).
    """
    weights = dict(experiment.candidates)
    sticky = h.route_candidate(sticky, weights)
    if sticky and weights.get(sticky, 0) > 0:
        return sticky
    point = rng.randrange(sum(weights.values()))
    for name, weight in experiment.candidates:
        if point < weight:
            return name
        point -= weight
    raise AssertionError("unreachable: the point lies below the sum of the weights")


def mirror_this_one(experiment: ExperimentInfo, rng: random.Random) -> str | None:
    """The mirror's name for `percent`% of calls, else None."""
    if experiment.mirror is None:
        return None
    name, percent = experiment.mirror
    return name if rng.randrange(100) < percent else None
