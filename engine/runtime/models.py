"""The model pool: the runtimes a worker has loaded, kept while their spec stays the same.

A model that fails to load fails alone: the pool keeps the error as its value,
so the planner marks the model and the pipelines using it Failed and every
other resource runs on. A failure that may pass with nothing changed (a
remote server not up or not ready yet: `ModelLoadError.transient`) is tried
again on a `sync` once `retry_s` have passed, then twice as long after each
failure up to `RETRY_MAX_S` (a load blocks the worker's loop while it waits
for the server); `retry_due` says when.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from engine.runtimes import ModelLoadError, load_model
from engine.runtimes.base import ModelRuntime
from engine.topology.specs import ModelSpec

log = logging.getLogger("tensorflux.worker")

Loaded = ModelRuntime | Exception
"""A running model, or why it could not load."""

RETRY_S = 5.0
"""How long a transient load failure stands before the model is tried again."""
RETRY_MAX_S = 60.0
"""The longest wait between two tries of a model that keeps failing."""


class ModelPool:
    def __init__(
        self,
        load: Callable[[ModelSpec], ModelRuntime] = load_model,
        *,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load_model = load
        self._retry_s = retry_s
        self._clock = clock
        self._loaded: dict[str, tuple[ModelSpec, Loaded]] = {}
        self._failed_at: dict[str, tuple[float, float]] = {}
        """Models whose load failed transiently: when (by `clock`), and the wait
        before the next try."""
        self._staged: dict[str, tuple[ModelSpec, ModelRuntime]] = {}
        """Loaded by `preload` (another thread), taken up by the next `sync`."""

    def preload(self, specs: Mapping[str, ModelSpec]) -> None:
        """Load, on the caller's thread, the models of `specs` that `sync` would load, so
        that the worker's loop only swaps them in. Failures are left to `sync`."""
        for name, spec in specs.items():
            known = self._loaded.get(name)
            if (known is not None and known[0] == spec) or name in self._failed_at:
                continue
            try:
                self._staged[name] = (spec, self._load_model(spec))
            except Exception:  # noqa: BLE001 - `sync` loads it again and reports why
                continue

    def retry_due(self) -> bool:
        """A transiently failed model is due to be tried again (call `sync`)."""
        return any(self._due(name) for name in self._failed_at)

    def sync(self, specs: Mapping[str, ModelSpec]) -> dict[str, Loaded]:
        """Exactly the models of `specs`: an unchanged spec keeps its runtime, a changed one is
        reloaded, a model no longer named is closed. Returns each model's runtime or error."""
        loaded = {name: self._load(name, spec) for name, spec in specs.items()}
        for name in set(self._loaded) - set(specs):
            _close(self._loaded.pop(name)[1])
            self._failed_at.pop(name, None)
        for name in set(self._staged) - set(specs):  # staged for a topology since replaced
            _close(self._staged.pop(name)[1])
        return loaded

    def _load(self, name: str, spec: ModelSpec) -> Loaded:
        known = self._loaded.get(name)
        if known is not None and known[0] == spec and not self._due(name):
            return known[1]
        if known is not None:
            _close(known[1])
        failed = self._failed_at.pop(name, None)
        staged = self._staged.pop(name, None)
        if staged is not None and staged[0] != spec:
            _close(staged[1])  # preloaded for a spec that changed again since
            staged = None
        try:
            runtime: Loaded = staged[1] if staged is not None else self._load_model(spec)
        except Exception as error:  # a model that fails to load fails alone
            if isinstance(error, ModelLoadError) and error.transient:
                wait = self._retry_s
                if failed is not None and known is not None and known[0] == spec:
                    wait = min(failed[1] * 2, RETRY_MAX_S)  # the same spec failed again
                self._failed_at[name] = (self._clock(), wait)
                log.warning("model %s failed to load (trying again in %g s): %s", name, wait, error)
            else:
                log.error("model %s failed to load: %s", name, error)
            runtime = error
        self._loaded[name] = (spec, runtime)
        return runtime

    def _due(self, name: str) -> bool:
        failed = self._failed_at.get(name)
        return failed is not None and self._clock() - failed[0] >= failed[1]

    def close(self) -> None:
        for _, runtime in [*self._loaded.values(), *self._staged.values()]:
            _close(runtime)
        self._loaded.clear()
        self._staged.clear()
        self._failed_at.clear()


def _close(runtime: Loaded) -> None:
    if not isinstance(runtime, Exception):
        runtime.close()
