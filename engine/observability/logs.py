"""Log lines as text or as JSON objects, one a line (`--log-format json`).

A line about a request carries its request id, pipeline and step (null when
it has none, e.g. a model called by name), given by the caller as
`extra=request_fields(...)`; a JSON line has them as keys, so a log search by
request id finds every line about it, in every process.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
REQUEST_FIELDS: Final = ("request_id", "pipeline", "step")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def request_fields(
    request_id: str | None, pipeline: str | None = None, step: str | None = None
) -> dict[str, Any]:
    """The `extra` of a log call about a request."""
    return {"request_id": request_id, "pipeline": pipeline or None, "step": step or None}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the request's fields when the
    line is about one, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if any(hasattr(record, field) for field in REQUEST_FIELDS):
            for field in REQUEST_FIELDS:
                line[field] = getattr(record, field, None)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(verbose: bool = False, log_format: LogFormat = "text") -> None:
    """Log to stderr in `log_format` (as `logging.basicConfig`: not when the root logger
    has handlers already, e.g. under a test runner)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


_worker_log = logging.getLogger("tensorflux.worker")


def request_failed(
    label: str,
    request_id: str,
    pipeline: str,
    step: str,
    stage: str,
    kind: str,
    error: BaseException,
) -> None:
    """The line a step logs for a request it turned into an error record: a warning for the
    engine's and the model's failures, info for the caller's (bad input, a join timeout)."""
    level = logging.WARNING if kind in ("model-failure", "internal") else logging.INFO
    _worker_log.log(
        level,
        "%s: request %s failed at %s (%s): %s",
        label,
        request_id,
        stage,
        kind,
        error,
        extra=request_fields(request_id, pipeline, step),
    )
