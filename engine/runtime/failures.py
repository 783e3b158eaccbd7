"""What an agent does with a request it cannot carry on.

It counts the failure, logs it with the request's fields, ends its trace span,
and writes an error record to the errors topic and to where the caller waits
for the answer (the pipeline's or model's outputs): failures are data.
"""

from __future__ import annotations

from collections.abc import Callable

from engine import headers as h
from engine.messages import ErrorKind, ErrorRecord
from engine.observability.logs import request_failed
from engine.observability.spans import NodeSpans
from engine.runtime.metrics import NodeMetrics
from engine.runtime.records import Outgoing, Record, error_outgoing
from engine.topology.graph import Node

Headers = list[tuple[str, bytes]]


class FailureWriter:
    """Called as `failure(request_id, stage, error, kind, record, headers)`: the error
    records to write for that request."""

    def __init__(
        self,
        node: Node,
        label: str,
        *,
        errors_topic: str,
        failure_topic: str,
        metrics: NodeMetrics,
        spans: NodeSpans | None,
        headers_for: Callable[[Headers, str], Headers],
    ) -> None:
        self.node = node
        self.label = label
        self.errors_topic = errors_topic
        self.failure_topic = failure_topic
        self.metrics = metrics
        self.spans = spans
        self.headers_for = headers_for

    def __call__(
        self,
        request_id: str,
        stage: str,
        error: BaseException,
        kind: ErrorKind,
        record: Record,
        headers: Headers | None = None,
    ) -> list[Outgoing]:
        self.metrics.failed(kind)
        request_failed(
            self.label, request_id, self.node.pipeline, self.node.name, stage, kind, error
        )
        if self.spans is not None and stage != "model":  # a model's failure is in its span
            at = (record.partition, record.offset)
            self.spans.failed(headers or record.headers, request_id, at, kind)
        error_record = ErrorRecord.from_exception(
            error,
            pipeline=self.node.pipeline,
            step=self.node.name,
            request_id=request_id,
            stage=stage,
            payload=record.value,
            kind=kind,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            payload_content_type=h.header_value(record.headers, h.CONTENT_TYPE) or "",
        )
        return error_outgoing(
            error_record,
            headers or self.headers_for(record.headers, request_id),
            self.errors_topic,
            self.failure_topic,
        )
