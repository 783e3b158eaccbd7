"""Whether Kafka answers now: a metadata request every second, on a thread of its own.

librdkafka reconnects by itself and says nothing a caller can act on: a produce
to a broker that is down waits in its queue for `message.timeout.ms` (five
minutes), so a gateway would answer 504 after its timeout, and a worker would
not know that the broker it comes back to may have kept nothing (the embedded
broker keeps its topics in memory only). The gateway and the worker read this
watch instead: the gateway answers 503 while Kafka is unreachable, and both
recover their topics when it is back (README, "Broker outage").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from engine.config import KafkaSettings

log = logging.getLogger("tensorflux.kafka")

INTERVAL_S = 1.0
"""How often Kafka is asked for its metadata."""
TIMEOUT_S = 3.0
"""How long one metadata request may take before it counts as unanswered."""
MISSES_TO_LOSE = 2
"""Unanswered requests in a row that make Kafka unreachable: a broker slow to answer
once (a loaded machine) is not an outage; a refused connection fails at once."""

OnChange = Callable[[bool, float], None]
"""Called with (reachable now, seconds since the last change) on every change."""


class KafkaWatch:
    """`start()`, read `reachable`, `close()`; `on_change` hears every transition."""

    def __init__(
        self,
        settings: KafkaSettings,
        on_change: OnChange | None = None,
        *,
        interval_s: float = INTERVAL_S,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.reachable = True
        """False from MISSES_TO_LOSE unanswered metadata requests until one is answered."""
        self.outages = 0
        self.last_outage_s = 0.0
        """How long the last outage lasted (once it is over)."""
        self.changed_at = time.monotonic()
        self._on_change = on_change or (lambda reachable, after_s: None)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._misses = 0
        self._admin = AdminClient(settings.client_config())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-watch", daemon=True)

    def start(self) -> KafkaWatch:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout_s + 1)

    def unreachable_for_s(self) -> float:
        """Seconds since Kafka stopped answering (0 while it answers)."""
        return 0.0 if self.reachable else time.monotonic() - self.changed_at

    def _answers(self) -> bool:
        try:
            return bool(self._admin.list_topics(timeout=self._timeout_s).brokers)
        except KafkaException:
            return False

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            answered = self._answers()
            self._misses = 0 if answered else self._misses + 1
            reachable = answered or self._misses < MISSES_TO_LOSE
            if reachable == self.reachable or self._stop.is_set():
                continue
            now = time.monotonic()
            after_s, self.changed_at = now - self.changed_at, now
            self.reachable = reachable
            if reachable:
                self.last_outage_s = after_s
            else:
                self.outages += 1
            try:
                self._on_change(reachable, after_s)
            except Exception:  # a listener's bug must not stop the watching
                log.exception("a Kafka reachability listener failed")
