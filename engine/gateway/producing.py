"""The gateway's producers: at once while few callers wait, in bigger batches when many do.

A lone request goes at once: no linger, one produce request in flight (requests
arriving meanwhile wait and go as one batch). When `BATCH_WHEN_WAITING` callers or
more wait for replies, a request goes through a second producer that lingers
`BATCH_LINGER_MS`: a few ms on an answer that already waits behind dozens of others,
and far fewer, bigger record batches. The embedded broker's cost per fetch grows with
the batches a partition holds (issue 14: a follower of one partition took 23% of a
core after 1,200 one-record batches, 88% after 6,000, and 10% all along with 8-record
batches). At 64 connections on chain-base alone the gateway sent 0.23 produce requests
an HTTP request instead of 0.36 (`bench/gateway_bench.py --count-requests`).
Requests are independent (each has its own key and reply), so two producers
reorder nothing anyone relies on.

Delivery reports come only for failures (the reply thread runs them, `poll`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, Producer

from engine.config import KafkaSettings

BATCH_WHEN_WAITING = 8
"""Callers waiting (this one included) from which a request goes through the lingering
producer; below it the gateway's latency is one produce away."""
BATCH_LINGER_MS = 5
Delivered = Callable[[KafkaError | None, object], None]


class RequestProducer:
    """Two producers behind one `produce`; `renew` after Kafka came back."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._now, self._batching = self._new()
        self.batched = 0
        """Requests that went through the lingering producer (tests read it)."""

    def _new(self) -> tuple[Producer, Producer]:
        def producer(linger_ms: float, in_flight: int) -> Producer:
            config = {
                "linger.ms": linger_ms,
                "max.in.flight": in_flight,
                "delivery.report.only.error": True,
            }
            return Producer(self._settings.producer_config(**config))

        # One produce request in flight for both: what comes meanwhile joins the next
        # batch (with 5 in flight the lingering one sent 20% more requests).
        return producer(0, 1), producer(BATCH_LINGER_MS, 1)

    def produce(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, bytes]],
        on_delivery: Delivered,
        waiting: int = 1,
    ) -> None:
        """Queue one record; raises BufferError when the queue is full, KafkaException
        when refused on the spot."""
        if waiting >= BATCH_WHEN_WAITING:
            self.batched += 1
            producer = self._batching
        else:
            producer = self._now
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.1)
            producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)

    def poll(self) -> None:
        """Run the delivery reports that came (failures only)."""
        self._now.poll(0)
        self._batching.poll(0)

    def purge(self) -> None:
        """Drop everything queued or in flight (Kafka is gone: sent later, they would make
        a broker that kept nothing create their topics itself)."""
        for producer in (self._now, self._batching):
            producer.purge(in_queue=True, in_flight=True)

    def renew(self) -> None:
        """New producers: a broker that kept nothing no longer knows the idempotent
        producers' ids, and the old ones' next produce would fail them for good."""
        self._now, self._batching = self._new()

    def flush(self, timeout_s: float) -> None:
        """Send what is queued, within `timeout_s` for both."""
        deadline = time.monotonic() + timeout_s
        self._now.flush(timeout_s)
        self._batching.flush(max(0.0, deadline - time.monotonic()))
