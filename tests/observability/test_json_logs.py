"""`--log-format json`: one JSON object a line, and the request's id, pipeline and step on
every line about a request."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.cli import build_parser
from engine.observability.logs import JsonFormatter
from engine.testing import TopologyTestDriver

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("command", ["up", "worker", "gateway"])
def test_the_serving_commands_take_a_log_format(command: str) -> None:
    assert build_parser().parse_args([command, "--log-format", "json"]).log_format == "json"
    assert build_parser().parse_args([command]).log_format == "text"
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--log-format", "xml"])


def test_a_failed_request_logs_its_id_pipeline_and_step(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tensorflux.worker")
    with TopologyTestDriver.from_files([EXAMPLES]) as driver:
        driver.infer(
            "tfsimples", {"INPUT0": np.array([[1.5]])}, request_id="json-log-1"
        )  # float64, one tensor: tfsimple1 refuses it
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    about = [line for line in lines if line.get("request_id") == "json-log-1"]
    assert about, lines
    assert about[0]["pipeline"] == "tfsimples"
    assert about[0]["step"] == "tfsimple1"
    assert about[0]["level"] == "INFO" and "bad-input" in about[0]["message"]


def test_the_cli_writes_one_json_object_a_line() -> None:
    script = (
        "import logging\n"
        "from engine.cli.options import configure_logging\n"
        "from engine.observability.logs import request_fields\n"
        "configure_logging(False, 'json')\n"
        "log = logging.getLogger('tensorflux.worker')\n"
        "log.info('started')\n"
        "log.warning('request %s failed', 'r-1', extra=request_fields('r-1', 'p', 's'))\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('boom\\nwith a newline')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert len(lines) == 3  # the traceback and the newline stay inside their line
    assert lines[0]["message"] == "started" and "request_id" not in lines[0]
    assert lines[1] | {"time": None} == {
        "time": None,
        "level": "WARNING",
        "logger": "tensorflux.worker",
        "message": "request r-1 failed",
        "request_id": "r-1",
        "pipeline": "p",
        "step": "s",
    }
    assert "ZeroDivisionError" in lines[2]["exception"]
