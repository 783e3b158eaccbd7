"""What `inspect` shows: the topics it reads, one decoded record, as JSON or a table."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from engine import headers as h

if TYPE_CHECKING:
    from engine.messages import MessageKind


@dataclass(frozen=True)
class Target:
    """One topic to read and, optionally, the one tensor to show from it."""

    topic: str
    label: str
    """How the table names it: 'inputs', 'step.s.outputs', ..."""
    order: int
    tensor: str | None = None

    @property
    def kind(self) -> MessageKind:
        """Requests on inputs topics, responses on outputs topics."""
        return "request" if self.label.endswith("inputs") else "response"


@dataclass
class Row:
    """One record of a target, decoded (or the reason it could not be)."""

    target: Target
    partition: int
    offset: int
    timestamp_ms: int
    key: str
    headers: list[tuple[str, bytes]]
    message: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def decode_row(
    target: Target, message: Any, from_ms: int | None, request_id: str | None
) -> Row | None:
    """The row of a Kafka record, or None when it is before `from_ms`, of another
    request, or lacks the one tensor the target shows."""
    from engine.codec import CodecError, decode_error, decode_payload
    from engine.codec.oip_json import message_to_document

    _, timestamp = message.timestamp()
    if from_ms is not None and timestamp < from_ms:
        return None
    headers = message.headers() or []
    raw_key = message.key()
    key = raw_key.decode("utf-8", "replace") if raw_key else ""
    if request_id is not None and request_id not in (key, h.header_value(headers, h.REQUEST_ID)):
        return None
    row = Row(target, message.partition(), message.offset(), timestamp, key, headers)
    value = message.value() or b""
    try:
        if h.is_error(headers):
            record = decode_error(value)
            row.error = {k: v for k, v in asdict(record).items() if k != "payload"}
        else:
            kind = target.kind
            document = message_to_document(decode_payload(value, headers, kind))
            tensors_key = "inputs" if kind == "request" else "outputs"
            if target.tensor is not None:
                document[tensors_key] = [
                    t for t in document[tensors_key] if t["name"] == target.tensor
                ]
                if not document[tensors_key]:
                    return None
            row.message = document
    except CodecError as error:
        row.problem = f"cannot decode: {error}"
    return row


def row_json(row: Row, verbose: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "topic": row.target.topic,
        "ref": row.target.label,
        "partition": row.partition,
        "offset": row.offset,
        "timestamp_ms": row.timestamp_ms,
        "key": row.key,
    }
    if verbose:
        out["headers"] = {k: (v or b"").decode("utf-8", "replace") for k, v in row.headers}
    if row.message is not None:
        out["message"] = row.message
    if row.error is not None:
        out["error"] = row.error
    if row.problem is not None:
        out["problem"] = row.problem
    return out


TRUNCATED_VALUES = 8
"""What `inspect -t` keeps of each tensor's data."""


class RowPrinter:
    """Prints rows in one of inspect's formats: all at once, or a line at a time (follow)."""

    def __init__(self, output: str, *, verbose: bool, truncate: bool) -> None:
        self.output = output
        self.verbose = verbose
        self.truncate = truncate

    def all(self, rows: list[Row], ref: str) -> None:
        if self.output == "json":
            print(json.dumps([self._json(row) for row in rows], indent=2))
        elif self.output == "raw":
            for row in rows:
                self.line(row)
        else:
            print_table(rows, self.verbose, ref)

    def line(self, row: Row) -> None:
        """One row on one line, flushed (a pipe reader sees it at once)."""
        document = self._json(row)
        if self.output == "json":
            print(json.dumps(document), flush=True)
        elif self.output == "raw":
            body = document.get("message", document.get("error", document.get("problem")))
            print(f"{row.target.topic}\t{row.key}\t{json.dumps(body)}", flush=True)
        else:
            when = dt.datetime.fromtimestamp(row.timestamp_ms / 1000).isoformat(
                timespec="milliseconds"
            )
            place = f"{row.target.label} {row.partition}:{row.offset} {when} {row.key}"
            print(
                f"{place} {json.dumps(document.get('message') or document.get('error'))}",
                flush=True,
            )

    def _json(self, row: Row) -> dict[str, Any]:
        document = row_json(row, self.verbose)
        if self.truncate and row.message is not None:
            document["message"] = _truncated(row.message)
        return document


def _truncated(message: dict[str, Any]) -> dict[str, Any]:
    """The message with each tensor's data cut to TRUNCATED_VALUES values (its shape and
    `data_length` still say how much there was)."""
    out = dict(message)
    for key in ("inputs", "outputs"):
        if key in out:
            out[key] = [
                tensor
                if len(tensor.get("data", ())) <= TRUNCATED_VALUES
                else {
                    **tensor,
                    "data": tensor["data"][:TRUNCATED_VALUES],
                    "data_length": len(tensor["data"]),
                }
                for tensor in out[key]
            ]
    return out


def print_table(rows: list[Row], verbose: bool, ref: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{ref}: {len(rows)} record(s)", show_lines=False)
    for column in ("ref", "p:offset", "time", "request id", "tensor", "datatype", "shape"):
        table.add_column(column, no_wrap=True)
    table.add_column("data", overflow="fold")
    if verbose:
        table.add_column("headers", overflow="fold")
    for row in rows:
        when = dt.datetime.fromtimestamp(row.timestamp_ms / 1000).isoformat(timespec="milliseconds")
        head = [row.target.label, f"{row.partition}:{row.offset}", when, row.key]
        header_text = (
            ", ".join(f"{k}={(v or b'').decode('utf-8', 'replace')}" for k, v in row.headers)
            if verbose
            else None
        )
        lines: list[list[str]] = []
        if row.message is not None:
            tensors = row.message.get("inputs") or row.message.get("outputs") or []
            for tensor in tensors:
                data = json.dumps(tensor["data"])
                lines.append(
                    [tensor["name"], tensor["datatype"], str(tensor["shape"]), _clip(data)]
                )
        elif row.error is not None:
            lines.append(["ERROR", row.error["kind"], row.error["stage"], row.error["reason"]])
        else:
            lines.append(["?", "", "", row.problem or ""])
        for index, line in enumerate(lines or [["", "", "", "(no tensors)"]]):
            cells = (head if index == 0 else [""] * 4) + line
            if verbose:
                cells.append(header_text if index == 0 else "")
            table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # piped: don't squeeze the table into 80 columns
        console = Console(width=250)
    console.print(table)


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
