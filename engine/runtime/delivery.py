"""Delivery: the worker's producer, and the rule that offsets follow what was delivered.

Agents return records to write; this writes them. A record Kafka refuses
(too large, a topic it will not take) becomes an error record naming why, so
the waiting caller hears of it and the stream goes on.

At least once: offsets are committed only after a flush shows everything
produced so far durable. A record that timed out (Kafka away for longer than
the delivery timeout), or could not be delivered even as an error record (an
answer, or an error record, to where a caller waits), is never skipped:
commits stop and `must_rewind` asks the worker to consume again from
the committed offsets, so the work is redone, not lost.

Exactly once: one transactional producer; each chunk's records and its
consumed offsets commit in one transaction (`send_offsets_to_transaction`
with the consumer's group metadata, as Kafka Streams does since KIP-447). A
transaction that fails is aborted and `must_rewind` set: the worker drops
what its agents hold and consumes again from the committed offsets. A record
the broker refused for good (too large, ...) aborts its transaction too; the
redo writes its error record instead. Another worker fencing this one
(`Fenced`) ends it.
"""

from __future__ import annotations

import logging
from collections import Counter
from operator import attrgetter

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from engine import headers as h
from engine.config import KafkaSettings
from engine.errors import TensorfluxError
from engine.messages import ErrorRecord
from engine.runtime import metrics
from engine.runtime.lineage import InFlightLineage
from engine.runtime.records import Outgoing, error_outgoing
from engine.runtime.settings import WorkerSettings
from engine.topology.topics import TopicNames

log = logging.getLogger("tensorflux.worker")

FLUSH_TIMEOUT_S = 30.0
TRANSACTION_TIMEOUT_S = 30.0
COMMIT_ATTEMPTS = 3
RETRIABLE_REFUSALS = frozenset(
    {KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}
)
"""Failures that say nothing about the record (Kafka was away): redone, never an error record."""


_topic_of = attrgetter("topic")


class Fenced(TensorfluxError):
    """Another worker took over this worker's transactional id: this one must stop."""


class Delivery:
    def __init__(
        self,
        kafka: KafkaSettings,
        settings: WorkerSettings,
        topics: TopicNames,
        *,
        transactional_id: str | None = None,
    ) -> None:
        """`transactional_id`: exactly once, with this stable id (None: at least once)."""
        self.topics = topics
        self._errors_topic = topics.errors()
        self._refused: list[tuple[Outgoing, KafkaError]] = []
        self._lineage = InFlightLineage()
        """At least once: replayed records' lineage, for error records from delivery reports."""
        self._refusals: dict[tuple[str, str], KafkaError] = {}
        """Exactly once: records refused for good, by (topic, key): the redo writes error records."""
        self.lost = 0
        """Records Kafka never took, not even as error records: commits stop (at least once)."""
        self.must_rewind = False
        """What was produced since the last commit is not all written: consume it again."""
        self.exactly_once = transactional_id is not None
        self._in_transaction = False
        self._fatal: KafkaError | None = None
        extra: dict[str, object] = {
            # Only failures are reported: a successful delivery costs no callback.
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        }
        if transactional_id is not None:
            extra["transactional.id"] = transactional_id
        self._config = settings.producer_config(kafka, **extra)
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        producer = Producer(self._config)
        if self.exactly_once:
            # Fences any earlier producer of this id, and aborts what it left open.
            producer.init_transactions(TRANSACTION_TIMEOUT_S)
        return producer

    def produce(self, out: list[Outgoing]) -> None:
        """Hand the records to the producer (refusals on the spot become error records)."""
        if not out:
            self._producer.poll(0)
            return
        self._check_fatal()
        if self.exactly_once and not self._in_transaction:
            self._producer.begin_transaction()
            self._in_transaction = True
        elif not self.exactly_once:
            self._lineage.note(out)  # before any poll can report one of these refused
        producer = self._producer
        produce = producer.produce
        refused: set[int] = set()  # one answer written to two topics fails once, not twice
        sent = self._without_refused(out, refused) if self._refusals else out
        # Hot path (three records a request on the 1-step pipeline): the arguments go by
        # position, as the C signature orders them (topic, value, key, partition, callback,
        # on_delivery, timestamp, headers), which skips matching keywords on every call;
        # partition -1 (librdkafka's UA: the partitioner picks), no callback (the
        # producer's on_delivery) and timestamp 0 (now) are produce()'s own defaults.
        for item in sent:
            try:
                produce(item.topic, item.value, item.key, -1, None, None, 0, item.headers)
            except BufferError:
                producer.poll(0.5)  # the local queue is full: let deliveries drain
                produce(item.topic, item.value, item.key, -1, None, None, 0, item.headers)
            except KafkaException as error:
                if id(item.value) not in refused:
                    refused.add(id(item.value))
                    self._refused_now(item, error)
        producer.poll(0)
        produced = Counter(map(_topic_of, out))  # counted in C: no generator frame a record
        metrics.count_by_topic(metrics.RECORDS_PRODUCED, produced)
        errors_topic = self._errors_topic
        for item in out if errors_topic in produced else ():
            if item.topic == errors_topic:
                metrics.ERROR_RECORDS.labels(
                    h.header_value(item.headers, h.PIPELINE) or "",
                    h.header_value(item.headers, h.STEP) or "",
                    h.header_value(item.headers, h.ERROR) or "",
                ).inc()

    def _without_refused(self, out: list[Outgoing], refused: set[int]) -> list[Outgoing]:
        """Exactly once, redoing an aborted transaction: a record the broker refused for
        good is not sent again; its error record is (once for an answer sent twice: the
        values in `refused` have had theirs)."""
        refusals = self._refusals
        kept: list[Outgoing] = []
        for item in out:
            error = refusals.get((item.topic, item.key))
            if error is None:
                kept.append(item)
            elif id(item.value) not in refused:
                refused.add(id(item.value))
                self._refused_now(item, KafkaException(error))
        return kept

    def commit_when_delivered(self, consumer: Consumer, offsets: list[TopicPartition]) -> bool:
        """Make what was produced durable and commit `offsets`; True when they were committed.

        At least once: everything produced so far must be durable before its
        inputs are committed (and deliveries refused meanwhile are reported
        here, even with nothing to commit). Exactly once: the open transaction
        commits with the offsets, or is aborted (then `must_rewind`).
        """
        if self.exactly_once:
            return self._commit_transaction(consumer, offsets)
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if self._refused:
            # Refused after the fact (broker-side size limit, authorisation):
            # each becomes an error record, and only then are its inputs committed.
            refused, self._refused = self._refused, []
            for item, error in refused:
                self._refused_now(item, KafkaException(error))
            remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if not remaining:
            self._lineage.clear()
        if self._fatal is not None:
            # The idempotent producer cannot go on (a gap it cannot close): a new one
            # redoes the work from the committed offsets.
            log.error("producer failed (%s): consuming again from committed offsets", self._fatal)
            self._fatal = None
            self._producer = self._new_producer()
            self.must_rewind = True
            return False
        if remaining or self.lost:
            log.warning(
                "%d records not delivered, %d lost; offsets not committed", remaining, self.lost
            )
            return False
        if not offsets:
            return False
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            log.warning("commit failed (will retry): %s", error)
            return False
        return True

    def renew(self) -> None:
        """A new producer, the old one's queue dropped (Kafka came back after an outage):
        a broker that kept nothing no longer knows the old one's producer id, which is
        fatal to it at its next produce. What was dropped is redone from the committed
        offsets by whoever consumes them next."""
        self._producer.purge(in_queue=True, in_flight=True)
        self._producer = self._new_producer()
        self._fatal = None
        self._in_transaction = False
        self.rewound()

    def rewound(self) -> None:
        """The worker consumes again from the committed offsets: what failed is redone."""
        self.lost = 0
        self.must_rewind = False
        self._refused = []
        self._lineage.clear()

    def close(self) -> None:
        if self.exactly_once:
            if self._in_transaction and self._fatal is None:
                # Not committed: the next owner of the partitions redoes it.
                try:
                    self._producer.abort_transaction(TRANSACTION_TIMEOUT_S)
                except KafkaException as error:
                    log.warning("abort on close failed: %s", error)
            return
        self._producer.flush(10)

    # -- exactly once ------------------------------------------------------------------

    def _commit_transaction(self, consumer: Consumer, offsets: list[TopicPartition]) -> bool:
        self._check_fatal()
        if not self._in_transaction:
            if not offsets:
                return False
            self._producer.begin_transaction()
            self._in_transaction = True
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                if offsets:
                    self._producer.send_offsets_to_transaction(
                        offsets, consumer.consumer_group_metadata(), TRANSACTION_TIMEOUT_S
                    )
                    offsets = []  # sent: a retry only commits
                self._producer.commit_transaction(TRANSACTION_TIMEOUT_S)
            except KafkaException as error:
                kafka_error: KafkaError = error.args[0]
                self._check_fatal(kafka_error)
                if kafka_error.retriable() and attempt < COMMIT_ATTEMPTS:
                    log.warning("transaction commit failed (retrying): %s", kafka_error.str())
                    continue
                self._abort(kafka_error)
                return False
            self._in_transaction = False
            self._refusals.clear()
            return True
        return False  # unreachable: the last attempt returns or aborts

    def _abort(self, error: KafkaError) -> None:
        log.warning("transaction aborted (%s): consuming again from committed offsets", error.str())
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self._producer.abort_transaction(TRANSACTION_TIMEOUT_S)
                break
            except KafkaException as abort_error:
                # The coordinator's broker died with it: its successor answers the retry.
                self._check_fatal(abort_error.args[0])
                if not abort_error.args[0].retriable() or attempt == COMMIT_ATTEMPTS:
                    raise
                log.warning("transaction abort failed (retrying): %s", abort_error.args[0].str())
        self._in_transaction = False
        self.must_rewind = True

    def _check_fatal(self, error: KafkaError | None = None) -> None:
        fatal = self._fatal or (error if error is not None and error.fatal() else None)
        if fatal is not None and self.exactly_once:
            self._in_transaction = False
            raise Fenced(
                f"the transactional producer cannot go on ({fatal.str()}): another worker "
                "with the same id took over, or the broker fenced this one"
            )

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error

    # -- refusals ----------------------------------------------------------------------

    def _refused_now(self, item: Outgoing, error: KafkaException) -> None:
        """A record Kafka refuses (too large, ...) becomes an error record; the stream goes on."""
        pipeline, step = self._owner(item.topic)
        # Headers name the writer when it set them; else the topic does (refused on the
        # spot or later, the error record must say the same).
        pipeline = h.header_value(item.headers, h.PIPELINE) or pipeline
        step = h.header_value(item.headers, h.STEP) or step
        record = ErrorRecord(
            pipeline=pipeline,
            step=step,
            request_id=item.key,
            stage="produce",
            reason=f"cannot write to {item.topic}: {error.args[0].str()} ({len(item.value)} bytes)",
            kind="bad-input"
            if error.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
            else "internal",
            error_type="KafkaException",
        )
        failure_topic = (
            self.topics.pipeline_outputs(pipeline) if pipeline else self.topics.model_outputs(step)
        )
        for out in error_outgoing(record, item.headers, self._errors_topic, failure_topic):
            try:
                self._producer.produce(out.topic, out.value, out.key, headers=out.headers)
            except KafkaException as refusal:
                # The error record itself is refused on the spot (librdkafka already
                # knows its topic is unknown): as when its delivery fails later, commits
                # stop and the work is redone, rather than the worker crashing.
                log.error("error record for %s not written: %s", out.topic, refusal)
                self.lost += 1
                self.must_rewind = True

    def _owner(self, topic: str) -> tuple[str, str]:
        """The pipeline and step (or model) a topic belongs to, "" where it names none."""
        owner = self.topics.parse(topic)
        return (owner.pipeline or "", owner.step or owner.model or "") if owner else ("", "")

    def _on_delivery(self, error: KafkaError | None, message: object) -> None:
        """librdkafka reports a record it finally could not deliver."""
        if error is None:
            return
        topic = message.topic()  # type: ignore[attr-defined]
        log.error("record for %s not delivered: %s", topic, error.str())
        key = (message.key() or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
        if self.exactly_once:
            # The transaction aborts; the redo writes an error record for a lasting refusal.
            if error.code() not in RETRIABLE_REFUSALS and topic != self._errors_topic:
                self._refusals[(topic, key)] = error
            return
        pipeline, step = self._owner(topic)
        if (
            error.code() in RETRIABLE_REFUSALS
            or topic == self._errors_topic
            or (pipeline and topic == self.topics.pipeline_outputs(pipeline) and step == "")
        ):
            # Kafka was away for longer than the delivery timeout (nothing wrong with the
            # record: no error record for the caller), or this was an answer or an error
            # record to where a caller waits, and nobody else would tell them. Commits
            # stop, and the worker redoes the work (`must_rewind`).
            self.lost += 1
            self.must_rewind = True
            return
        # Delivery reports carry no headers: who wrote the record follows from its topic,
        # a replayed request's lineage was kept aside when it was produced.
        headers = [
            *self._lineage.lineage(key),
            (h.PIPELINE, pipeline.encode()),
            (h.STEP, step.encode()),
        ]
        value = message.value() or b""  # type: ignore[attr-defined]
        self._refused.append((Outgoing(topic, key, value, headers), error))
