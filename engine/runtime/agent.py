"""One node of a pipeline at work: join → trigger gate → tensor map → batch → model → topics.

An agent is fed the records of its source topics and returns what to write;
it never touches Kafka itself, so it runs the same under the worker and in
tests. Records it keeps across consumed chunks are held in the offset
tracker until their effects are written.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable

from engine import headers as h
from engine.codec import CodecError, encode_avro
from engine.codec.avro_wire import encode_string
from engine.codec.fast_avro import with_model_name
from engine.errors import TensorfluxError
from engine.messages import InferenceMessage, MessageKind
from engine.observability.spans import ms_to_ns, spans_for
from engine.operators import revisits
from engine.operators.batch import Batcher
from engine.operators.join import Emission, Join, JoinResult
from engine.operators.tensor_map import merge, select
from engine.runtime import metrics
from engine.runtime.arrivals import Arrival, Ready, kind_of
from engine.runtime.errors import JoinTimedOut, TooManyRevisits
from engine.runtime.failures import FailureWriter
from engine.runtime.join_lane import JoinLane, fits_join_lane
from engine.runtime.lane import FastLane, fits_lane, plain_avro
from engine.runtime.model_calls import INLINE, ModelCalls
from engine.runtime.node_headers import header_tail, headers_for, retailed
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Outgoing, Record, RecordRef
from engine.runtime.reply_format import as_reply, encode_reply
from engine.runtime.step_call import call_step_model
from engine.runtimes.base import ModelRuntime
from engine.topology.graph import Node


class NodeAgent:
    def __init__(
        self,
        node: Node,
        *,
        errors_topic: str,
        failure_topic: str,
        tracker: OffsetTracker,
        model: ModelRuntime | None = None,
        max_visits: int | None = None,
        fused_output: Node | None = None,
        lane: bool = False,
        join_lane: bool = False,
        reports_timeouts: bool = False,
        calls: ModelCalls = INLINE,
    ) -> None:
        """`calls`: where its model calls run (the worker's pool; at once by default).
        `fused_output`: the pipeline's output node when this step writes the output itself
        (see `answer`); `lane`: answer chunks on the fast lane (the planner asks `fits_lane`);
        `join_lane`: join and answer from the records' bytes (`fits_join_lane`; not traced);
        `reports_timeouts`: the pipeline's answer needs this node (`answer_needs`), so a
        join window closing unfinished tells the caller (an error record of kind timeout)."""
        self.node = node
        self.model = model
        self.calls = calls
        self.errors_topic = errors_topic
        self.failure_topic = failure_topic
        """Where a waiting caller learns of a failure: the pipeline's (or model's) outputs."""
        self.tracker = tracker
        self.max_visits = max_visits
        self.reports_timeouts = reports_timeouts
        """1 + maxStepRevisits in a cyclic pipeline; None when visits are not counted."""
        self.sources = node.sources()
        self.join: Join[Arrival] = Join(
            len(node.inputs),
            len(node.triggers),
            node.inputs_join,
            node.triggers_join,
            node.join_window_ms,
        )
        self.batcher: Batcher[Ready] = Batcher(node.batch)
        self.kinds = [kind_of(source) for source in self.sources]
        # A step writes the request it sends its model (to its inputs topic); only the
        # output node writes a response.
        self.output_kind: MessageKind = "response" if node.kind == "output" else "request"
        self._pipeline_avro = encode_string(node.pipeline)
        self.forwards_raw = (
            node.kind == "output"
            and self.join.passes_through()
            and self.sources[0].ref.tensor is None
            and not self.sources[0].renames
            and self.max_visits is None
        )
        # A step reading whole requests as they come passes their bytes on to its inputs
        # topic: the request its model gets is that one, unchanged (no re-encoding).
        self.forwards_request = (
            node.kind == "step"
            and self.join.passes_through()
            and self.sources[0].ref.tensor is None
            and not self.sources[0].renames
            and self.kinds[0] == "request"
            and self.max_visits is None
        )
        self.fused_node = fused_output
        self.fused_output: tuple[str, tuple[tuple[str, bytes], ...], bytes] | None = (
            None
            if fused_output is None
            else (
                fused_output.output_topic,
                header_tail(fused_output),
                encode_string(fused_output.pipeline),
            )
        )
        """(pipeline outputs topic, its headers' tail, the pipeline's name as Avro) when this
        step also writes the output (whose model_name is the pipeline, as over HTTP).

        An output node that passes one step's answers through unchanged costs a
        Kafka hop and a consume per request for a byte-for-byte copy; the step
        writes that copy itself instead (same value, the output node's headers).
        """
        self.label = (
            f"pipeline '{node.pipeline}' step '{node.name}'"
            if node.pipeline
            else f"model '{node.name}'"
        )
        # Hot path (bench/agent_bench.py): what every written record's headers end with, and
        # each source topic's label for merge's error messages, computed once, not per record.
        self._header_tail = header_tail(node)
        self._labels: dict[str, str] = {}
        for source in self.sources:  # the first source reading a topic names it
            self._labels.setdefault(source.topic, f"'{source.ref.spelled(node.pipeline)}'")
        # A chained pipeline's caller must learn why its upstream failed: error records on
        # another pipeline's outputs are passed on to this one's (once per topic read).
        self._passes_errors_of = frozenset(
            index
            for index, source in enumerate(self.sources)
            if source.ref.pipeline != node.pipeline
            and source.ref.step is None
            and source.ref.port == "outputs"
            and all(s.topic != source.topic for s in self.sources[:index])
        )
        writes_output = node.pipeline if node.kind == "output" else None
        if fused_output is not None:
            writes_output = fused_output.pipeline
        self.metrics = metrics.NodeMetrics(node.pipeline, node.name, writes_output)
        # Tracing (engine.observability): None when off, so no per-record cost then.
        self.spans = spans_for(node)
        self.output_spans = spans_for(fused_output)
        self.fail = self._error = FailureWriter(
            node,
            self.label,
            errors_topic=errors_topic,
            failure_topic=failure_topic,
            metrics=self.metrics,
            spans=self.spans,
            headers_for=self.headers_for,
        )
        self.screens: dict[int, Callable[[list[Record]], list[Record]]] = {}
        """Source index -> what the node keeps of a chunk (set by the planner: the default
        of an experiment over pipelines leaves the other candidates' share of its inputs)."""
        self.lane: FastLane | None = None
        if lane:
            if model is None or not fits_lane(node, model, max_visits):
                raise ValueError(f"{self.label} cannot take the fast lane")
            self.lane = FastLane(
                self,
                source=self.sources[0],
                kind=self.kinds[0],
                model=model,
                forwards_request=self.forwards_request,
            )
        self.join_lane: JoinLane | None = None
        if join_lane and self.spans is None:  # traced requests take the general path's spans
            if not fits_join_lane(node, model, max_visits):
                raise ValueError(f"{self.label} cannot take the join lane")
            self.join_lane = JoinLane(self, self.kinds, model, self._error)

    # -- records in --------------------------------------------------------------------

    def process(self, source_index: int, record: Record, now_ms: int, out: list[Outgoing]) -> None:
        if record.is_error():
            if source_index in self._passes_errors_of:  # the record names where it failed
                headers = self.headers_for(record.headers, record.request_id)
                headers.append((h.ERROR, record.header(h.ERROR) or b"internal"))
                out.append(Outgoing(self.failure_topic, record.request_id, record.value, headers))
            return  # failures are not data: no step consumes them
        if self.forwards_raw and plain_avro(record.headers):
            try:  # the bytes as they came, but the pipeline as model_name (as HTTP says)
                value = with_model_name(record.value, self._pipeline_avro)
            except CodecError:
                value = None  # not Avro after all: the general path makes the error record
            if value is not None:
                self.metrics.output()
                if self.spans is not None:
                    at = ms_to_ns(now_ms)
                    self.spans.step(
                        record.headers, record.request_id, record.partition, record.offset, (at, at)
                    )
                headers = self.headers_for(record.headers, record.request_id)
                value, headers = as_reply(value, headers)
                out.append(Outgoing(self.node.output_topic, record.request_id, value, headers))
                return
        source = self.sources[source_index]
        try:
            message = record.message(self.kinds[source_index])
        except CodecError as error:
            out.extend(self._error(record.request_id, "decode", error, "bad-input", record))
            return
        tensors = select(source, message.tensors)
        if tensors is None:
            return  # the tensor this edge reads is absent: conditional routing drops it here
        visits = revisits.parse(record.header(revisits.VISITS_HEADER)) if self.max_visits else {}
        # Joined by the record's request id (its key), the id every record of it is written with.
        key: Hashable = (record.partition, record.request_id, visits.get(self.node.name, 0))
        result = self.join.process(
            key, source_index, Arrival(record, tensors, visits, now_ms), now_ms, record.offset
        )
        if not self.join.passes_through():
            self.tracker.hold(record.ref)
        self.joined(result, now_ms, out)

    def process_chunk(
        self, source_index: int, records: list[Record], now_ms: int, out: list[Outgoing]
    ) -> None:
        """A consumed chunk's records of one source topic, in order."""
        if self.screens and source_index in self.screens:  # its default's share only
            records = self.screens[source_index](records)
        lane = self.lane or self.join_lane
        if lane is not None:
            lane.process(source_index, records, now_ms, out)
            return
        for record in records:
            self.process(source_index, record, now_ms, out)

    def tick(self, now_ms: int, out: list[Outgoing], *, end_of_chunk: bool) -> None:
        """Close join windows and send due batches."""
        if len(self.join):
            self.joined(self.join.expire(now_ms), now_ms, out)
        for batch in self.batcher.flush(now_ms, end_of_chunk=end_of_chunk):
            self._call(batch, out)

    def next_deadline_ms(self) -> int | None:
        deadlines = [
            d
            for d in (self.join.next_deadline_ms(), self.batcher.next_deadline_ms())
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    def drop_partitions(self, partitions: set[int]) -> None:
        """Revoked partitions: forget their half-joined and waiting requests."""
        self.join.drop(lambda key: key[0] in partitions)
        self.batcher.retain(lambda ready: ready.records[0].partition not in partitions)
        self.calls.drop(self, partitions)

    def abandon(self) -> list[RecordRef]:
        """The agent is discarded: release every record it holds and say which they were
        (the worker consumes them again for the agent that replaces it)."""
        refs: list[RecordRef] = []
        held = self.join.drop(lambda key: True)
        if not self.join.passes_through():
            refs += [arrival.record.ref for arrival in held]
        if self.batcher.holds():
            refs += [record.ref for ready in self.batcher.drain() for record in ready.records]
        for ref in refs:
            self.tracker.release(ref)
        return refs + self.calls.abandon(self)

    # -- joined requests ---------------------------------------------------------------

    def joined(
        self,
        result: JoinResult[Arrival],
        now_ms: int,
        out: list[Outgoing],
        unheld: Container[int] = (),
    ) -> None:
        """`unheld`: ids of arrivals never held (the join lane holds only what its chunk
        leaves in the join), which are not released either: a release would take a batch
        window's or a call's hold of the same record under this holder."""
        held = not self.join.passes_through()
        release = self.tracker.release
        for arrival in result.released:
            if held and id(arrival) not in unheld:
                release(arrival.record.ref)
        for emission in result.emitted:
            arrivals = emission.inputs + emission.triggers  # before the lane decodes them
            self._emitted(emission, now_ms, out)
            if held:
                for arrival in arrivals:
                    if id(arrival) not in unheld:
                        release(arrival.record.ref)
        if self.reports_timeouts:
            for arrivals in result.unfinished:
                self._timed_out(arrivals, out)

    def _timed_out(self, arrivals: dict[int, Arrival], out: list[Outgoing]) -> None:
        spelled = [f"'{s.ref.spelled(self.node.pipeline)}'" for s in self.sources]
        missing = [name for i, name in enumerate(spelled) if i not in arrivals]
        first = arrivals[min(arrivals)].record
        reason = JoinTimedOut(
            missing, [spelled[i] for i in sorted(arrivals)], self.node.join_window_ms
        )
        out.extend(self._error(first.request_id, "join", reason, "timeout", first))

    def _emitted(self, emission: Emission[Arrival], now_ms: int, out: list[Outgoing]) -> None:
        if self.join_lane is not None and self.join_lane.emitted(emission, now_ms, out):
            return  # laid out from its arrivals' bytes (else the lane decoded them for us)
        first = emission.inputs[0] if emission.inputs else emission.triggers[0]
        request_id = first.record.request_id
        records = [arrival.record for arrival in emission.inputs + emission.triggers]
        try:
            tensors = merge(
                ((self._source_label(a), a.tensors) for a in emission.inputs),
                unique=self.node.kind != "output",
            )
        except TensorfluxError as error:
            out.extend(self._error(request_id, "join", error, "bad-input", first.record))
            return
        headers = self.headers_for(first.record.headers, request_id)
        if self.max_visits is not None:
            visits = revisits.combine(a.visits for a in emission.inputs + emission.triggers)
            if self.node.kind == "step":
                count = visits.get(self.node.name, 0)
                if count >= self.max_visits:
                    reason = TooManyRevisits(self.node.name, count, self.max_visits - 1)
                    out.extend(
                        self._error(request_id, "revisits", reason, "bad-input", first.record)
                    )
                    return
                visits[self.node.name] = count + 1
            headers = h.with_headers(
                headers, **{revisits.VISITS_HEADER: revisits.format_visits(visits)}
            )
        message = InferenceMessage(
            request_id, tensors, self.output_kind, model_name=self.node.model or self.node.pipeline
        )
        arrived_ms = min(a.at_ms for a in emission.inputs + emission.triggers)
        if self.node.kind != "step":
            self.metrics.output()
            if self.spans is not None:
                at = (ms_to_ns(arrived_ms), ms_to_ns(now_ms))
                self.spans.step(
                    headers, request_id, first.record.partition, first.record.offset, at
                )
            value, headers = encode_reply(message, headers)
            out.append(Outgoing(self.node.output_topic, request_id, value, headers))
            return
        ready = Ready(message, headers, records, arrived_ms, now_ms)
        if self.node.request_topic is not None:
            if self.forwards_request and plain_avro(first.record.headers):
                value = first.record.value
            else:
                value = encode_avro(message)
            out.append(Outgoing(self.node.request_topic, request_id, value, headers))
        self.queue(ready, now_ms, out)

    def queue(self, ready: Ready, now_ms: int, out: list[Outgoing]) -> None:
        """A joined request to the batcher, and batches that are due to the model."""
        if self.batcher.holds():
            for record in ready.records:
                self.tracker.hold(record.ref)
        for batch in self.batcher.process(ready, now_ms):
            self._call(batch, out)

    def _call(self, batch: list[Ready], out: list[Outgoing]) -> None:
        if self.join_lane is not None:  # it answers its own requests; the rest are answered here
            batch = self.join_lane.call(batch, out)
            if not batch:
                return
        call_step_model(self, batch, out)

    def answer(
        self, request_id: str, value: bytes, headers: list[tuple[str, bytes]], out: list[Outgoing]
    ) -> None:
        """Write the model's answer; also as the pipeline's output when the output is fused here."""
        if not self.node.pipeline:  # a model's own topics: its outputs are the caller's
            value, headers = as_reply(value, headers)
        out.append(Outgoing(self.node.output_topic, request_id, value, headers))
        if self.fused_output is not None:
            topic, tail, pipeline = self.fused_output
            named = with_model_name(value, pipeline)
            reply, reply_headers = as_reply(named, retailed(headers, self._header_tail, tail))
            out.append(Outgoing(topic, request_id, reply, reply_headers))

    # -- helpers -----------------------------------------------------------------------

    def _source_label(self, arrival: Arrival) -> str:
        topic = arrival.record.topic
        return self._labels.get(topic) or f"'{topic}'"

    def headers_for(
        self, incoming: list[tuple[str, bytes]], request_id: str
    ) -> list[tuple[str, bytes]]:
        """What the node writes for a request carries (see `node_headers`)."""
        return headers_for(incoming, request_id, self._header_tail)
