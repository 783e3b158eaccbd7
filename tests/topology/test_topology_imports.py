"""`engine.topology` is pure data: importing it must not load a Kafka client."""

from __future__ import annotations

import subprocess
import sys


def test_import_engine_topology_pulls_in_no_kafka_client() -> None:
    code = (
        "import sys, engine.topology\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('confluent_kafka', 'kafka', 'aiokafka'))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
