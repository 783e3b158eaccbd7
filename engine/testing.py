"""Unit-test pipelines and models without a broker: a topology run in memory, as the worker runs it.

    from engine.testing import TopologyTestDriver

    with TopologyTestDriver.from_files(["examples/"]) as driver:
        request_id = driver.infer("tfsimples", {"INPUT0": row, "INPUT1": row})
        driver.output("tfsimples", request_id).arrays()   # {"OUTPUT0": ..., "OUTPUT1": ...}

The driver plans its agents with the worker's own planner (`engine.runtime.plan`),
so the same agents, fast lane and fused outputs run as in production. A record
sent in is processed at once: what the agents write goes to the agents that
read its topic, chunk by chunk as the worker consumes them, until nothing more
moves. Every topic keeps what was written to it (records sent in included), at
offsets as on one partition. The clock is the driver's own: it stands still
until `advance` moves it, which closes join windows and sends batches whose
window ended. (Kafka Streams' `TopologyTestDriver`; Bytewax's `TestingSource`
and `TestingSink`.)
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import headers as h
from engine.codec import decode_error, decode_payload, encode_avro, encode_json
from engine.messages import ErrorRecord, InferenceMessage, MessageKind, Tensor
from engine.runtime.errors import NoRecord, ResourcesFailed, UnknownResource, UnknownTopic
from engine.runtime.models import Loaded, ModelPool
from engine.runtime.offsets import OffsetTracker
from engine.runtime.plan import plan
from engine.runtime.records import Outgoing, Record
from engine.runtime.settings import WorkerSettings
from engine.runtimes.base import ModelRuntime
from engine.topology import TopicNames, Topology, compile_topology, load_files

Headers = list[tuple[str, bytes]]
JSON_HEADERS: Headers = [(h.CONTENT_TYPE, b"application/json")]


@dataclass(frozen=True)
class TopicRecord:
    """A record on one of the driver's topics."""

    topic: str
    offset: int
    key: str
    value: bytes
    headers: Headers
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        return h.header_value(self.headers, name)

    @property
    def is_error(self) -> bool:
        return h.is_error(self.headers)

    def message(self) -> InferenceMessage:
        """The value decoded (Avro, or JSON where content-type says so: the answer to a JSON
        request is JSON); inputs topics carry requests, outputs topics responses."""
        if self.is_error:
            raise ValueError(f"{self.topic}@{self.offset} is an error record: {self.error()}")
        kind: MessageKind = "request" if self.topic.endswith(".inputs") else "response"
        return decode_payload(self.value, self.headers, kind)

    def arrays(self) -> dict[str, np.ndarray]:
        """Tensor name -> array."""
        return self.message().as_arrays()

    def error(self) -> ErrorRecord:
        return decode_error(self.value)


class TopologyTestDriver:
    def __init__(
        self,
        topology: Topology,
        *,
        topics: TopicNames | None = None,
        models: Mapping[str, ModelRuntime] | None = None,
        settings: WorkerSettings | None = None,
        start_ms: int = 0,
    ) -> None:
        """Run `topology` (compiled with `topics`, by default tensorflux.default.*).

        The models of the topology are loaded from their specs unless `models`
        gives a runtime by name (those are not closed by the driver). Raises
        `ResourcesFailed` when a model does not load or a pipeline cannot run.
        """
        self.topology = topology
        self.topics = topics or TopicNames()
        self.tracker = OffsetTracker()
        """What the worker could commit: held records are those joins and batches keep."""
        self.now_ms = start_ms
        """The driver's clock: record timestamps and join and batch windows follow it."""
        self._chunk = (settings or WorkerSettings()).chunk
        self._pool = ModelPool()
        given = dict(models or {})
        loaded: dict[str, Loaded] = {
            **self._pool.sync({n: s for n, s in topology.models.items() if n not in given}),
            **given,
        }
        self._plan = plan(topology, loaded, self.topics, self.tracker)
        failed = [(s.kind, s.name, s.reason) for s in self._plan.statuses if s.state == "Failed"]
        if failed:
            self._pool.close()
            raise ResourcesFailed(failed)
        self._topics: dict[str, list[TopicRecord]] = defaultdict(list)
        self._request_count = 0

    @classmethod
    def from_files(
        cls, paths: Iterable[str | Path], *, topics: TopicNames | None = None, **options: Any
    ) -> TopologyTestDriver:
        """Compile the YAML files or directories (as `tensorflux validate` does) and run them."""
        names = topics or TopicNames()
        topology = compile_topology(load_files(paths), names)
        return cls(topology, topics=names, **options)

    # -- records in --------------------------------------------------------------------

    def send(
        self,
        topic: str,
        key: str,
        value: bytes | InferenceMessage | Mapping[str, Any],
        headers: Headers | None = None,
    ) -> TopicRecord:
        """Produce one record to `topic` and process everything it causes.

        `value`: the record's bytes, an `InferenceMessage` (written as Avro), or
        an OIP V2 JSON document (a dict, written with the JSON content-type).
        """
        return self.send_all([(topic, key, value, headers)])[0]

    def send_all(
        self,
        records: Iterable[
            tuple[str, str, bytes | InferenceMessage | Mapping[str, Any], Headers | None]
        ],
    ) -> list[TopicRecord]:
        """Produce several records (topic, key, value, headers) as one consumed chunk, so a step
        may answer them in one model call, and process everything they cause."""
        pending = [
            self._outgoing(topic, key, value, headers) for topic, key, value, headers in records
        ]
        for item in pending:
            if item.topic not in self._plan.routes:
                raise UnknownTopic(item.topic, self._plan.routes)
        written = self._run(pending)
        return written[: len(pending)]

    def infer(
        self,
        pipeline: str,
        inputs: Mapping[str, Any] | InferenceMessage,
        *,
        request_id: str | None = None,
        headers: Headers | None = None,
        as_json: bool = False,
    ) -> str:
        """Send a request to the pipeline's inputs topic; returns its request id.

        `inputs`: tensor name -> array (anything numpy takes; the datatype follows
        the dtype), or a whole `InferenceMessage`. `as_json`: write it as OIP JSON.
        """
        if pipeline not in self.topology.pipelines:
            raise UnknownResource("pipeline", pipeline, self.topology.pipelines)
        if request_id is None:
            self._request_count += 1
            request_id = f"request-{self._request_count}"
        if isinstance(inputs, InferenceMessage):
            message = inputs.replace(id=request_id)
        else:
            tensors = tuple(Tensor.from_array(name, array) for name, array in inputs.items())
            message = InferenceMessage(request_id, tensors, "request")
        value = encode_json(message) if as_json else encode_avro(message)
        extra = JSON_HEADERS if as_json else []
        self.send(
            self.topics.pipeline_inputs(pipeline), request_id, value, [*extra, *(headers or [])]
        )
        return request_id

    def advance(self, ms: int) -> None:
        """Move the clock on: join windows that end close, batches whose window ended go."""
        if ms < 0:
            raise ValueError(f"the clock only moves forward; got {ms} ms")
        self.now_ms += ms
        self._run([])

    # -- records out -------------------------------------------------------------------

    def records(self, topic: str) -> list[TopicRecord]:
        """Everything on `topic`, oldest first."""
        return list(self._topics.get(topic, ()))

    def outputs(self, pipeline: str) -> dict[str, TopicRecord]:
        """The pipeline's outputs by request id (the first record of each): answers and errors."""
        found: dict[str, TopicRecord] = {}
        for record in self.records(self.topics.pipeline_outputs(pipeline)):
            found.setdefault(record.key, record)
        return found

    def output(self, pipeline: str, request_id: str) -> TopicRecord:
        """The pipeline's answer (or error record) for one request."""
        if pipeline not in self.topology.pipelines:
            raise UnknownResource("pipeline", pipeline, self.topology.pipelines)
        outputs = self.outputs(pipeline)
        if request_id not in outputs:
            raise NoRecord(self.topics.pipeline_outputs(pipeline), request_id, outputs)
        return outputs[request_id]

    def errors(self) -> list[ErrorRecord]:
        """The error records written so far (the errors topic), oldest first."""
        return [record.error() for record in self.records(self.topics.errors())]

    def close(self) -> None:
        """Close the models the driver loaded."""
        self._pool.close()

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the loop, as the worker's -----------------------------------------------------

    def _outgoing(
        self,
        topic: str,
        key: str,
        value: bytes | InferenceMessage | Mapping[str, Any],
        headers: Headers | None,
    ) -> Outgoing:
        extra: Headers = []
        if isinstance(value, InferenceMessage):
            value = encode_avro(value)
        elif isinstance(value, Mapping):
            value, extra = json.dumps(value).encode(), JSON_HEADERS
        return Outgoing(topic, key, value, [*extra, *(headers or [])])

    def _run(self, pending: list[Outgoing]) -> list[TopicRecord]:
        """Write `pending`, feed the agents chunk by chunk until nothing more comes; at least
        one turn, so the agents' windows are looked at."""
        written: list[TopicRecord] = []
        first_turn = True
        while pending or first_turn:
            first_turn = False
            chunk, pending = pending[: self._chunk], pending[self._chunk :]
            pending += self._turn(chunk, written)
        return written

    def _turn(self, chunk: list[Outgoing], written: list[TopicRecord]) -> list[Outgoing]:
        """One turn of the worker's loop: `chunk` written (appended to `written`) and consumed
        by the agents that read its topics, then every agent's tick; what they wrote."""
        by_topic: dict[str, list[Record]] = {}
        for item in chunk:
            record = self._write(item)
            written.append(record)
            if item.topic in self._plan.routes:
                self.tracker.consumed(item.topic, 0, record.offset)
                by_topic.setdefault(item.topic, []).append(
                    Record(item.topic, 0, record.offset, item.key, item.value, item.headers)
                )
        out: list[Outgoing] = []
        for topic, records in by_topic.items():
            for agent, index in self._plan.routes[topic]:
                agent.process_chunk(index, records, self.now_ms, out)
        for agent in self._plan.agents:
            agent.tick(self.now_ms, out, end_of_chunk=True)
        return out

    def _write(self, item: Outgoing) -> TopicRecord:
        log = self._topics[item.topic]
        record = TopicRecord(
            item.topic, len(log), item.key, item.value, list(item.headers), self.now_ms
        )
        log.append(record)
        return record
