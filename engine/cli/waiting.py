"""`status -w STATE`: wait until resources reach a state, named as tensorflux or Seldon names it.

Seldon Core 2's CLI waits with its own state names (`seldon pipeline status P -w
PipelineReady`, `seldon model status M -w ModelAvailable`); scripts written for it
run unchanged, and tensorflux's own names (Ready, Failed, ...) work too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from engine.cli.errors import CliError
from engine.runtime.control import ResourceStatus

STATES = ("Pending", "Loading", "Ready", "Failed", "Unloaded")
"""Ours; Unloaded means no longer loaded at all."""

SELDON_STATES = {
    "PipelineStatusUnknown": "Pending",
    "PipelineCreate": "Pending",
    "PipelineCreating": "Loading",
    "PipelineReady": "Ready",
    "PipelineFailed": "Failed",
    "PipelineTerminated": "Unloaded",
    "ModelStateUnknown": "Pending",
    "ModelProgressing": "Loading",
    "ModelAvailable": "Ready",
    "ModelFailed": "Failed",
    "ModelTerminated": "Unloaded",
}

POLL_S = 0.5


class UnknownState(CliError):
    def __init__(self, state: str) -> None:
        super().__init__(
            f"unknown state '{state}' for -w; use one of {', '.join(STATES)} "
            f"or Seldon's {', '.join(SELDON_STATES)}"
        )


class WaitTimedOut(CliError):
    def __init__(self, wanted: str, within_s: float, last: Sequence[ResourceStatus]) -> None:
        seen = ", ".join(f"{s.kind} '{s.name}' {s.state}" for s in last) or "nothing loaded"
        super().__init__(f"not {wanted} after {within_s:g}s: {seen}")


class WaitFailed(CliError):
    def __init__(self, wanted: str, failed: ResourceStatus) -> None:
        super().__init__(
            f"{failed.kind} '{failed.name}' Failed while waiting for {wanted}: {failed.reason}"
        )


def our_state(name: str) -> str:
    """`name` as one of STATES; raises UnknownState."""
    for state in STATES:
        if state.lower() == name.lower():
            return state
    if name in SELDON_STATES:
        return SELDON_STATES[name]
    raise UnknownState(name)


def wait_for(
    read: Callable[[], list[ResourceStatus]],
    wanted: str,
    *,
    name: str | None,
    timeout_s: float,
) -> list[ResourceStatus]:
    """Statuses once the resource `name` (or every one read, when None) is in `wanted`.

    Waiting for anything but Failed stops at the first Failed, with its reason: no script
    should sit out a timeout for a model that cannot load.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = read()
        if name is not None:
            statuses = [s for s in statuses if s.name == name]
        if wanted == "Unloaded":
            if not statuses:
                return statuses
        elif statuses and all(s.state == wanted for s in statuses):
            return statuses
        elif wanted != "Failed":
            failed = next((s for s in statuses if s.state == "Failed"), None)
            if failed is not None:
                raise WaitFailed(wanted, failed)
        if time.monotonic() >= deadline:
            raise WaitTimedOut(wanted, timeout_s, statuses)
        time.sleep(POLL_S)
