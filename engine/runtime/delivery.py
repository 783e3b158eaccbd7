"""Delivery: the worker's producer, and the rule that offsets follow what was delivered.

Agents return records to write; this writes them. A record Kafka refuses
(too large, a topic it will not take, a delivery that timed out) becomes an
error record naming why, so the waiting caller hears of it and the stream goes
on. Offsets are committed only after a flush shows everything produced so far
durable; a record that could not be delivered even as an error record stops
commits (at least once: the work is redone, never lost).
"""

from __future__ import annotations

import logging
from collections import Counter

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from engine import headers as h
from engine.config import KafkaSettings
from engine.messages import ErrorRecord
from engine.runtime import metrics
from engine.runtime.records import Outgoing, error_outgoing
from engine.runtime.settings import WorkerSettings
from engine.topology.topics import TopicNames

log = logging.getLogger("tensorflux.worker")

FLUSH_TIMEOUT_S = 30.0


class Delivery:
    def __init__(self, kafka: KafkaSettings, settings: WorkerSettings, topics: TopicNames) -> None:
        self.topics = topics
        self._errors_topic = topics.errors()
        self._refused: list[tuple[Outgoing, KafkaError]] = []
        self.lost = 0
        """Records Kafka never took, not even as error records: commits stop (at least once)."""
        self._producer = Producer(
            settings.producer_config(
                kafka,
                # Only failures are reported: a successful delivery costs no callback.
                **{"delivery.report.only.error": True, "on_delivery": self._on_delivery},
            )
        )

    def produce(self, out: list[Outgoing]) -> None:
        """Hand the records to the producer (refusals on the spot become error records)."""
        producer = self._producer
        produce = producer.produce
        refused: set[int] = set()  # one answer written to two topics fails once, not twice
        for item in out:
            try:
                produce(item.topic, item.value, item.key, headers=item.headers)
            except BufferError:
                producer.poll(0.5)  # the local queue is full: let deliveries drain
                produce(item.topic, item.value, item.key, headers=item.headers)
            except KafkaException as error:
                if id(item.value) not in refused:
                    refused.add(id(item.value))
                    self._refused_now(item, error)
        producer.poll(0)
        produced = Counter(item.topic for item in out)
        metrics.count_by_topic(metrics.RECORDS_PRODUCED, produced)
        errors_topic = self._errors_topic
        for item in out if errors_topic in produced else ():
            if item.topic == errors_topic:
                metrics.ERROR_RECORDS.labels(
                    h.header_value(item.headers, h.PIPELINE) or "",
                    h.header_value(item.headers, h.STEP) or "",
                    h.header_value(item.headers, h.ERROR) or "",
                ).inc()

    def commit_when_delivered(self, consumer: Consumer, offsets: list[TopicPartition]) -> bool:
        """Flush, then commit `offsets`; True when they were committed.

        Everything produced so far must be durable before its inputs are
        committed (and deliveries refused meanwhile are reported here, even
        with nothing to commit).
        """
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if self._refused:
            # Refused after the fact (broker-side size limit, authorisation, timeout):
            # each becomes an error record, and only then are its inputs committed.
            refused, self._refused = self._refused, []
            for item, error in refused:
                self._refused_now(item, KafkaException(error))
            remaining = self._producer.flush(FLUSH_TIMEOUT_S)
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

    def close(self) -> None:
        self._producer.flush(10)

    def _refused_now(self, item: Outgoing, error: KafkaException) -> None:
        """A record Kafka refuses (too large, ...) becomes an error record; the stream goes on."""
        pipeline, step = self._writer_of(item)
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
            self._producer.produce(out.topic, out.value, out.key, headers=out.headers)

    def _writer_of(self, item: Outgoing) -> tuple[str, str]:
        """(pipeline, step or model) that wrote `item`: its headers say, else its topic. The
        same record is refused on the spot or only in its delivery report depending on
        what librdkafka knows of the topic yet, and its error must name the same writer."""
        pipeline = h.header_value(item.headers, h.PIPELINE)
        step = h.header_value(item.headers, h.STEP)
        if pipeline is None and step is None:
            owner = self.topics.parse(item.topic)
            if owner is not None:
                return owner.pipeline or "", owner.step or owner.model or ""
        return pipeline or "", step or ""

    def _on_delivery(self, error: KafkaError | None, message: object) -> None:
        """librdkafka reports a record it finally could not deliver."""
        if error is None:
            return
        topic = message.topic()  # type: ignore[attr-defined]
        log.error("record for %s not delivered: %s", topic, error.str())
        owner = self.topics.parse(topic)
        pipeline = owner.pipeline if owner else ""
        step = (owner.step or owner.model) if owner else ""
        if topic == self._errors_topic or (
            pipeline and topic == self.topics.pipeline_outputs(pipeline) and step == ""
        ):
            self.lost += 1  # where error records go failed: nothing left to tell anyone
            return
        # Delivery reports carry no headers: who wrote the record follows from its topic.
        headers = [(h.PIPELINE, pipeline.encode()), (h.STEP, step.encode())]
        key = (message.key() or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
        value = message.value() or b""  # type: ignore[attr-defined]
        self._refused.append((Outgoing(topic, key, value, headers), error))
