"""A worker process: follows the control topic, runs what it names, reports status."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import Producer

from engine.admin import TopicAdminError
from engine.config import KafkaSettings
from engine.kafka_watch import KafkaWatch
from engine.runtime.control import compile_documents, new_worker_id
from engine.runtime.copartition import partition_counts, without_unjoinable
from engine.runtime.plan import Status, topology_topics
from engine.runtime.reports import HEARTBEAT_S, heartbeat, resource_key
from engine.runtime.settings import WorkerSettings
from engine.runtime.worker import Worker
from engine.runtimes import ModelHosts, ModelRoots
from engine.topic_reader import COMPACTED, TopicReader
from engine.topology.graph import Topology

log = logging.getLogger("tensorflux.worker")


@dataclass(frozen=True)
class Prepared:
    """A control-topic state made ready to apply: compiled, its topics made (`topics`:
    those known to exist now) and its new models loaded."""

    documents: dict[str, str]
    topology: Topology
    failures: dict[str, str]
    topics: frozenset[str]


class WorkerService:
    def __init__(
        self,
        settings: KafkaSettings,
        worker_id: str | None = None,
        *,
        model_roots: ModelRoots,
        model_hosts: ModelHosts | None = None,
        worker_settings: WorkerSettings | None = None,
    ) -> None:
        """`model_roots` is required: the control topic names the models, and anyone who
        can write it could otherwise make this worker import any file on its disk.
        `model_hosts`: the hosts remote models may call (None: none), else the
        control topic could send requests' data anywhere."""
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        self.topics = settings.topics()
        self._status_producer = Producer(settings.producer_config())
        self._reported: set[str] = set()
        self._last_heartbeat = 0.0
        self.control = TopicReader(settings, self.topics.control())
        self.watch = KafkaWatch(settings)
        self._reachable = True
        """What the loop last saw of `watch` (it acts on each change once, between chunks)."""
        self._outages_seen = 0
        """`watch.outages` when the loop last looked: one that began and ended while the
        loop was busy (a delivery flush waits up to 30 s) is recovered from all the same."""
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        self._preparing: Future[Prepared] | None = None
        """The control topic's latest change being made ready off the loop (`_prepare`)."""
        self.worker = Worker(
            settings,
            worker_settings=worker_settings,
            on_status=self._report,
            model_roots=model_roots,
            model_hosts=model_hosts if model_hosts is not None else ModelHosts(()),
            worker_id=self.worker_id,
            kafka_reachable=lambda: self.watch.reachable,
        )

    def run(self, stop: threading.Event, *, grace_s: float = 0.0) -> None:
        """Serve until `stop` is set, then give held work up to `grace_s` (Worker.run)."""
        self.control.read_to_end()
        self._apply()
        self.watch.start()
        try:
            self.worker.run(stop, between_chunks=self._follow_control, grace_s=grace_s)
        finally:
            self._preparer.shutdown(wait=False, cancel_futures=True)
            self.watch.close()
            if self.watch.reachable:  # else the withdrawals would wait for nobody
                self._withdraw(stopping=True)
            self.control.close()

    def _follow_control(self) -> None:
        if self.watch.reachable != self._reachable or self.watch.outages != self._outages_seen:
            self._kafka_changed()
        if not self._reachable:
            return
        self._beat()
        if self._preparing is not None:
            if not self._preparing.done():
                return
            preparing, self._preparing = self._preparing, None
            try:
                prepared: Prepared | None = preparing.result()
            except Exception:  # noqa: BLE001 - compiled and made on the loop instead
                log.exception("worker %s: preparing the control topic's changes", self.worker_id)
                prepared = None
            self._apply(prepared)
        elif self.control.poll():
            # Reading the whole change, compiling it, loading new models and creating
            # topics take from tens of ms to seconds: done off the loop, so the other
            # pipelines' traffic goes on meanwhile. The loop leaves `control` alone then.
            self._preparing = self._preparer.submit(self._prepare)
        elif self.worker.models.retry_due():
            self._apply()  # a remote model's server may be up (or ready) now

    def _prepare(self) -> Prepared:
        """On the preparer's thread: what `_apply` then does quickly on the loop."""
        self.control.read_to_end()  # take a multi-resource load whole, not half of it
        documents, topology, failures = self._compiled()
        topics = topology_topics(topology, self.topics)
        try:
            self.worker.admin.ensure(topics)
        except TopicAdminError as error:  # the loop's own ensure says it again
            log.warning("worker %s: preparing topics: %s", self.worker_id, error)
            topics = frozenset()
        self.worker.models.preload(topology.models)
        return Prepared(documents, topology, failures, topics)

    def _compiled(self) -> tuple[dict[str, str], Topology, dict[str, str]]:
        """The control topic as read so far: its documents, their topology, what failed
        (pipelines whose existing topics could not join included: `copartition.py`)."""
        documents = {key: value.decode() for key, value in self.control.values.items()}
        topology, failures = compile_documents(documents, self.topics)
        try:
            existing = self.worker.admin.existing()
        except TopicAdminError:
            return documents, topology, failures  # Kafka away: its recovery compiles again
        counts = partition_counts(
            topology_topics(topology, self.topics), existing, self.settings.partitions
        )
        topology, unjoinable = without_unjoinable(topology, counts)
        return documents, topology, {**failures, **unjoinable}

    def _apply(self, prepared: Prepared | None = None) -> None:
        if prepared is None:  # at start, or a model retried: compiled here, made by apply
            prepared = Prepared(*self._compiled(), frozenset())
        documents, topology, failures = prepared.documents, prepared.topology, prepared.failures
        statuses = self.worker.apply(topology, ensured=prepared.topics)
        known = {resource_key(s.kind, s.name) for s in statuses}
        failed = [
            Status(*key.split("/", 1), "Failed", reason)
            for key, reason in failures.items()
            if key not in known and key in documents
        ]
        if failed:
            self._report(failed)
        # Resources no longer loaded: withdraw this worker's word on them.
        self._withdraw(keep=known | {resource_key(s.kind, s.name) for s in failed})

    def _kafka_changed(self) -> None:
        """Say so when Kafka goes or comes back; when back, recover (Worker.recover) and
        report again: a broker that kept nothing has an empty status topic."""
        self._reachable = self.watch.reachable
        self._outages_seen = self.watch.outages
        if not self._reachable:
            log.warning(
                "worker %s: Kafka at %s unreachable; waiting for it",
                self.worker_id,
                self.settings.bootstrap,
            )
            return
        log.warning(
            "worker %s: Kafka at %s reachable again after %.0fs; recreating topics, rejoining",
            self.worker_id,
            self.settings.bootstrap,
            self.watch.last_outage_s,
        )
        self.worker.admin.ensure(
            [self.topics.control(), self.topics.status()], partitions=1, config=COMPACTED
        )  # as the control plane makes them: one compacted partition each
        self._status_producer.purge(in_queue=True, in_flight=True)
        self._status_producer = Producer(self.settings.producer_config())  # see Delivery.renew
        self.worker.recover()
        self._last_heartbeat = 0.0  # at once, then every HEARTBEAT_S
        self._reported.clear()  # the statuses go again once the group assigns

    def _beat(self) -> None:
        """Say this worker is alive, every HEARTBEAT_S: `status` stops counting a worker
        whose heartbeats stop (killed), rather than showing its last reports forever."""
        now = time.monotonic()
        if now - self._last_heartbeat < HEARTBEAT_S:
            return
        self._last_heartbeat = now
        key, value = heartbeat(self.worker_id)
        self._status_producer.produce(self.topics.status(), json.dumps(value).encode(), key)
        self._status_producer.poll(0)

    def _report(self, statuses: list[Status]) -> None:
        for status in statuses:
            key = resource_key(status.kind, status.name)
            value = {
                "worker": self.worker_id,
                "kind": status.kind,
                "name": status.name,
                "state": status.state,
                "reason": status.reason,
                "time": time.time(),
            }
            self._status_producer.produce(
                self.topics.status(), json.dumps(value).encode(), f"{self.worker_id}|{key}"
            )
            self._reported.add(key)
            if status.state == "Failed":
                log.error("%s %s failed: %s", status.kind, status.name, status.reason)
        self._status_producer.flush(10)

    def _withdraw(self, keep: set[str] = frozenset(), *, stopping: bool = False) -> None:
        for key in sorted(self._reported - set(keep)):
            self._status_producer.produce(self.topics.status(), None, f"{self.worker_id}|{key}")
            self._reported.discard(key)
        if stopping:
            self._status_producer.produce(self.topics.status(), None, heartbeat(self.worker_id)[0])
        self._status_producer.flush(10)
