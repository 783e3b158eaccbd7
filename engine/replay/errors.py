"""Replay's errors: a bad invocation (exit code 2) apart from a replay that went wrong."""

from __future__ import annotations

from engine.errors import TensorfluxError


class ReplayError(TensorfluxError):
    """A replay could not be carried out."""


class BadInvocation(ReplayError):
    """What was asked cannot be replayed (unknown pipeline, empty or impossible
    selection, unknown run): the command exits with code 2 and says why."""
