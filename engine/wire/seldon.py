"""`--wire seldon`: Seldon Core 2's Kafka interface beside tensorflux's own topics.

Seldon's Kafka clients produce OIP protobuf `ModelInferRequest`s to
`seldon.<ns>.pipeline.<p>.inputs` (or `seldon.<ns>.model.<m>.inputs`), keyed by
the request id, and consume `ModelInferResponse`s from the matching `.outputs`,
with the header `pipeline`. The bridge speaks exactly that at the edge: it turns
each Seldon request into the pipeline's (or model's) own Avro request, and each
answer on the pipeline's (or model's) outputs topic into a Seldon response, so
those clients work unmodified while the steps and their topics stay tensorflux's.

What passes: every answer on a bridged outputs topic goes to the Seldon outputs
topic, whoever asked (HTTP, gRPC, Kafka), as every answer of a Seldon pipeline
lands on its outputs topic. An error record becomes a response with no outputs
whose parameter `error` holds the reason (and the `tensorflux-error` header
stays); a Seldon request that is not a ModelInferRequest gets such an answer too.
The bridge is one consumer group per namespace (`<prefix>.<ns>.seldon-wire`),
so any number of workers may run it; it finds topics by pattern (new pipelines
included, within seconds) and creates the Seldon topics of every pipeline and
model whose tensorflux topics exist. Offsets are committed after the produced
records are delivered (at least once).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Message, Producer

from engine import headers as h
from engine.admin import TopicAdmin
from engine.codec import CodecError, avro_headers, decode_error, decode_payload, encode_avro
from engine.codec.oip_protobuf import request_from_proto, response_to_proto
from engine.codec.proto import grpc_predict_v2_pb2 as pb
from engine.config import KafkaSettings

log = logging.getLogger("tensorflux.wire")

SELDON_PREFIX = "seldon"
PIPELINE_HEADER = "pipeline"
DISCOVER_S = 2.0
"""How often the bridge looks for pipelines and models to give Seldon topics."""


class SeldonBridge:
    """Call `start()`; `close()` stops it. Runs on a thread of its own."""

    def __init__(self, settings: KafkaSettings, *, seldon_prefix: str = SELDON_PREFIX) -> None:
        self.settings = settings
        self.topics = settings.topics()
        ns = re.escape(settings.namespace)
        self._ours = f"{settings.topic_prefix}.{settings.namespace}"
        self._seldon = f"{seldon_prefix}.{settings.namespace}"
        self._our_pattern = re.compile(
            rf"^{re.escape(settings.topic_prefix)}\.{ns}\.(pipeline|model)\.([^.]+)\.(inputs|outputs)$"
        )
        self._seldon_inputs = (
            rf"^{re.escape(seldon_prefix)}\.{ns}\.(pipeline|model)\.[^.]+\.inputs$"
        )
        self._our_outputs = (
            rf"^{re.escape(settings.topic_prefix)}\.{ns}\.(pipeline|model)\.[^.]+\.outputs$"
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seldon-wire", daemon=True)

    def start(self) -> SeldonBridge:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)

    # -- names ---------------------------------------------------------------------------

    def seldon_topic(self, kind: str, name: str, end: str) -> str:
        return f"{self._seldon}.{kind}.{name}.{end}"

    def _ours_of(self, topic: str) -> tuple[str, str, str] | None:
        """(kind, name, end) of a topic of either family."""
        for base in (self._ours, self._seldon):
            if topic.startswith(base + "."):
                parts = topic[len(base) + 1 :].split(".")
                if len(parts) == 3 and parts[0] in ("pipeline", "model"):
                    return parts[0], parts[1], parts[2]
        return None

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        admin = TopicAdmin(self.settings)
        producer = Producer(self.settings.producer_config(**{"linger.ms": 1}))
        consumer = Consumer(
            self.settings.consumer_config(
                f"{self._ours}.seldon-wire",
                **{"topic.metadata.refresh.interval.ms": 1000, "fetch.wait.max.ms": 10},
            )
        )
        consumer.subscribe([self._seldon_inputs, self._our_outputs])
        discovered = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - discovered >= DISCOVER_S:
                    discovered = time.monotonic()
                    self._discover(admin)
                try:
                    self._pass_on(consumer, producer)
                except Exception:  # keep bridging: the broker may be away a moment
                    log.exception("seldon wire: a batch failed; going on")
                    self._stop.wait(1.0)
        finally:
            producer.flush(10)
            consumer.close()

    def _pass_on(self, consumer: Consumer, producer: Producer) -> None:
        """One batch: bridge its records, wait for their delivery, then commit."""
        bridged = False
        for record in consumer.consume(500, 0.1):
            if record.error() is not None:
                # Subscribed patterns that match nothing yet are reported, not fatal.
                if record.error().code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):  # fmt: skip
                    log.warning("seldon wire: %s", record.error())
                continue
            self._bridge(record, producer)
            bridged = True
        if bridged:
            producer.flush(30)
            consumer.commit(asynchronous=False)

    def _discover(self, admin: TopicAdmin) -> None:
        """Seldon topics for every pipeline and model whose own topics exist."""
        try:
            existing = admin.existing()
            wanted = []
            for topic, partitions in existing.items():
                found = self._our_pattern.match(topic)
                if found is None or found.group(3) != "inputs":
                    continue
                for end in ("inputs", "outputs"):
                    seldon = self.seldon_topic(found.group(1), found.group(2), end)
                    if seldon not in existing:
                        wanted.append((seldon, partitions))
            for topic, partitions in wanted:
                admin.ensure([topic], partitions=partitions)
        except Exception as error:  # the broker may be away a moment; try again later
            log.warning("seldon wire: cannot create Seldon topics: %s", error)

    def _bridge(self, record: Message, producer: Producer) -> None:
        where = self._ours_of(record.topic())
        if where is None:
            return
        kind, name, end = where
        if record.topic().startswith(self._seldon + "."):
            self._request(kind, name, record, producer)
        elif end == "outputs":
            self._answer(kind, name, record, producer)

    def _request(self, kind: str, name: str, record: Message, producer: Producer) -> None:
        """A Seldon request onto the pipeline's (or model's) own inputs topic."""
        key = record.key().decode("utf-8", "replace") if record.key() else ""
        headers = dict(record.headers() or ())
        request_id = key or _text(headers.get(h.REQUEST_ID)) or str(uuid.uuid4())
        try:
            request = pb.ModelInferRequest.FromString(record.value() or b"")
            message = request_from_proto(request, request_id=request_id)
            if not message.tensors:
                raise CodecError("the request has no inputs")
        except Exception as error:  # DecodeError or CodecError: answer, go on
            reason = f"not a valid ModelInferRequest: {error}"
            self._produce_error(kind, name, request_id, reason, producer)
            return
        message = message.replace(model_name=name)
        ours = self.topics.pipeline_inputs(name) if kind == "pipeline" else self.topics.model_inputs(name)  # fmt: skip
        out_headers = avro_headers(
            message,
            pipeline=name if kind == "pipeline" else None,
            traceparent=_text(headers.get(h.TRACEPARENT)),
        )
        producer.produce(ours, encode_avro(message), request_id, headers=out_headers)

    def _answer(self, kind: str, name: str, record: Message, producer: Producer) -> None:
        """An answer on our outputs topic onto the Seldon outputs topic."""
        key = record.key().decode("utf-8", "replace") if record.key() else ""
        headers = list(record.headers() or ())
        if h.is_error(headers):
            try:
                failure = decode_error(record.value())
                reason, error_kind = failure.reason, failure.kind
            except CodecError as error:
                reason, error_kind = f"an unreadable error record: {error}", "internal"
            self._produce_error(kind, name, key, reason, producer, error_kind)
            return
        try:
            message = decode_payload(record.value(), headers, "response")
        except CodecError as error:
            log.warning(
                "seldon wire: skipping an unreadable answer on %s: %s", record.topic(), error
            )
            return
        response = response_to_proto(message.replace(model_name=name))
        producer.produce(
            self.seldon_topic(kind, name, "outputs"),
            response.SerializeToString(),
            key,
            headers=self._seldon_headers(kind, name, key),
        )

    def _produce_error(
        self,
        kind: str,
        name: str,
        request_id: str,
        reason: str,
        producer: Producer,
        error_kind: str = "bad-input",
    ) -> None:
        response = pb.ModelInferResponse(id=request_id, model_name=name)
        response.parameters["error"].string_param = reason
        headers = self._seldon_headers(kind, name, request_id)
        headers.append((h.ERROR, error_kind.encode()))
        producer.produce(
            self.seldon_topic(kind, name, "outputs"),
            response.SerializeToString(),
            request_id,
            headers=headers,
        )

    def _seldon_headers(self, kind: str, name: str, request_id: str) -> list[tuple[str, bytes]]:
        headers = [(h.REQUEST_ID, request_id.encode())]
        if kind == "pipeline":
            headers.append((PIPELINE_HEADER, name.encode()))
        return headers


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
