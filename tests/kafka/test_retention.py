"""Inspect and replay on a topic whose oldest records Kafka deleted by `retention.ms`.

tansu never deletes anything, so only real Kafka shows whether reading "from
offset 0", "the last N" or "from a time" copes with a log that starts later.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from engine.admin import TopicAdmin
from engine.cli import main
from engine.codec import encode_avro
from engine.config import KafkaSettings
from engine.kafka_cluster import KafkaCluster
from engine.messages import InferenceMessage
from tests.runtime.helpers import int32, tensors

HOUR_MS = 3_600_000
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _request(rid: str) -> bytes:
    return encode_avro(InferenceMessage(rid, tensors(INPUT=int32(1, 2, 3)), "request"))


def test_inspect_and_replay_read_what_retention_left(capsys, tmp_path):
    # The broker checks retention every second, not every 5 minutes.
    config = {"log.retention.check.interval.ms": 1000, "log.segment.delete.delay.ms": 1000}
    with KafkaCluster(broker_config=config) as cluster:
        settings = KafkaSettings(
            bootstrap=cluster.bootstrap, namespace=f"r{uuid.uuid4().hex[:8]}", partitions=1
        )
        topic = settings.topics().pipeline_inputs("kept")
        # Records older than 10 minutes go; a segment per second lets them go alone.
        TopicAdmin(settings).ensure(
            [topic], config={"retention.ms": "600000", "segment.ms": "1000"}
        )
        producer = Producer(settings.producer_config())
        old_ms = int(time.time() * 1000) - HOUR_MS
        for i in range(5):
            producer.produce(topic, _request(f"old-{i}"), f"old-{i}", timestamp=old_ms + i)
        producer.flush(30)
        time.sleep(1.5)  # the next record rolls a new segment: the old one may go
        new = [f"new-{i}" for i in range(3)]
        for rid in new:
            producer.produce(topic, _request(rid), rid)
        producer.flush(30)

        probe = Consumer(settings.consumer_config("probe"))
        deadline = time.monotonic() + 60
        while probe.get_watermark_offsets(TopicPartition(topic, 0), cached=False)[0] < 5:
            assert time.monotonic() < deadline, "retention never deleted the old records"
            time.sleep(0.5)
        probe.close()

        def inspect(*position: str) -> list[dict]:
            capsys.readouterr()
            kafka = ["--bootstrap", settings.bootstrap, "--namespace", settings.namespace]
            assert (
                main(["pipeline", "inspect", "kept.inputs", *position, "-o", "json", *kafka]) == 0
            )
            return json.loads(capsys.readouterr().out)

        assert [r["key"] for r in inspect("--from-offset", "0")] == new
        assert [r["key"] for r in inspect("-n", "10")] == new
        assert [r["key"] for r in inspect("--from-time", "2h")] == new
        assert [r["offset"] for r in inspect("--from-offset", "0")] == [5, 6, 7]
        assert inspect("--request-id", "old-1") == []
        assert [r["key"] for r in inspect("--request-id", "new-1")] == ["new-1"]

        # A replay of a window that starts before what is left says how much is gone.
        spec = tmp_path / "kept.yaml"
        spec.write_text(
            (EXAMPLES / "models" / "add10.yaml")
            .read_text()
            .replace("storageUri: ./add10", f"storageUri: {EXAMPLES / 'models' / 'add10'}")
            + "---\napiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\n"
            "metadata:\n  name: kept\nspec:\n  steps:\n  - name: add10\n"
            "  output:\n    steps:\n    - add10\n"
        )
        kafka = ["--bootstrap", settings.bootstrap, "--namespace", settings.namespace]
        assert main(["pipeline", "load", "-f", str(spec), *kafka]) == 0
        capsys.readouterr()
        replay = ["pipeline", "replay", "kept", "--from-offset", "0", "--dry-run", "-o", "json"]
        assert main([*replay, *kafka]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["selected"] == 3
        assert f"{topic}[0]: offsets 0-4 are gone (deleted by retention): 5 record(s)" in err
