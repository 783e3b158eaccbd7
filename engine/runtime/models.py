"""The model pool: the runtimes a worker has loaded, kept while their spec stays the same.

A model that fails to load fails alone: the pool keeps the error as its value,
so the planner marks the model and the pipelines using it Failed and every
other resource runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from engine.runtimes import load_model
from engine.runtimes.base import ModelRuntime
from engine.topology.specs import ModelSpec

log = logging.getLogger("tensorflux.worker")

Loaded = ModelRuntime | Exception
"""A running model, or why it could not load."""


class ModelPool:
    def __init__(self, load: Callable[[ModelSpec], ModelRuntime] = load_model) -> None:
        self._load_model = load
        self._loaded: dict[str, tuple[ModelSpec, Loaded]] = {}

    def sync(self, specs: Mapping[str, ModelSpec]) -> dict[str, Loaded]:
        """Exactly the models of `specs`: an unchanged spec keeps its runtime, a changed one is
        reloaded, a model no longer named is closed. Returns each model's runtime or error."""
        loaded = {name: self._load(name, spec) for name, spec in specs.items()}
        for name in set(self._loaded) - set(specs):
            _close(self._loaded.pop(name)[1])
        return loaded

    def _load(self, name: str, spec: ModelSpec) -> Loaded:
        known = self._loaded.get(name)
        if known is not None and known[0] == spec:
            return known[1]
        if known is not None:
            _close(known[1])
        try:
            runtime: Loaded = self._load_model(spec)
        except Exception as error:  # a model that fails to load fails alone
            log.error("model %s failed to load: %s", name, error)
            runtime = error
        self._loaded[name] = (spec, runtime)
        return runtime

    def close(self) -> None:
        for _, runtime in self._loaded.values():
            _close(runtime)
        self._loaded.clear()


def _close(runtime: Loaded) -> None:
    if not isinstance(runtime, Exception):
        runtime.close()
