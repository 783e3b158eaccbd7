"""The replay lineage of records in flight, for the error records made from delivery reports.

A record the broker refuses after produce() returned comes back in a delivery
report, and confluent-kafka's delivery reports give `headers()` as None. The
error record made from it must still carry a replayed request's lineage
headers (PRODUCT.md "Replay and lineage": every record written for a replayed
request carries them), so the delivery layer keeps them here between produce
and the flush that shows the records delivered, only for records of replayed
requests: live traffic pays one look at each record's key.
"""

from __future__ import annotations

from engine import headers as h
from engine.runtime.records import Outgoing

Headers = list[tuple[str, bytes]]
_LINEAGE = frozenset(h.REPLAY_HEADERS)


def may_be_replayed(key: str) -> bool:
    """Whether `key` has the shape of a replayed request's id, `rYYYYMMDD-HHMMSS-…`
    (engine.replay.runs.new_run_id, then partition and offset): a cheap first look, the
    headers decide. tests/replay/test_lineage_refused.py keeps the two in step."""
    return key[:1] == "r" and key[9:10] == "-"


class InFlightLineage:
    """Key → the headers of a replayed request's record produced and not yet known
    delivered (every record of one request carries the same lineage)."""

    def __init__(self) -> None:
        self._by_key: dict[str, Headers] = {}

    def note(self, out: list[Outgoing]) -> None:
        by_key = self._by_key
        for item in out:
            key = item.key
            if key[:1] == "r" and key[9:10] == "-":  # may_be_replayed, inlined: every record
                by_key[key] = item.headers  # the list itself: looked into only on a refusal

    def lineage(self, key: str) -> Headers:
        """The lineage headers of a refused record of request `key` ([] for live traffic)."""
        headers = self._by_key.get(key)
        return [pair for pair in headers if pair[0] in _LINEAGE] if headers else []

    def clear(self) -> None:
        """Everything produced so far is delivered (or reported refused): nothing to keep."""
        self._by_key.clear()

    def __len__(self) -> int:
        return len(self._by_key)
