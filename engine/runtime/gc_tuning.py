"""The cyclic garbage collector set for a process that is a worker for the rest of its life.

Almost everything a worker allocates per request is freed by reference
counting: records, tensors, outgoing lists. The cyclic collector still runs
every 700 container allocations and walks the young objects, and every few
dozen runs also the objects that start-up left (modules, classes, the plan's
agents, the models): 10-20% of the agents' CPU in `bench.agent_bench`.
`settle` moves what start-up allocated out of its reach (`gc.freeze`) and lets
far more allocations pass between runs; cycles are still collected.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)
"""Allocations between young collections, and young (middle) collections between middle
(old) ones; Python's default is (700, 10, 10)."""


def settle() -> None:
    """Once start-up is done: collect, freeze what is left, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
