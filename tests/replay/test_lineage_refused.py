"""A record of a replayed request that the broker refuses after produce() returned (a
delivery report, which carries no headers) still becomes an error record with the
request's lineage headers: every record written for a replayed request carries them."""

from __future__ import annotations

import time
from types import SimpleNamespace

from engine import headers as h
from engine.config import KafkaSettings
from engine.replay.reading import Recorded
from engine.replay.requests import RequestMaker, new_request_id
from engine.replay.runs import new_run_id
from engine.runtime.lineage import may_be_replayed
from engine.runtime.node_headers import header_tail, headers_for
from engine.runtime.records import Outgoing
from engine.runtime.worker import Worker
from tests.runtime.helpers import Kafka, new_id

PIPELINE = "somepipe"


def _original(offset: int = 417) -> Recorded:
    return Recorded(
        "tf.ns.pipeline.somepipe.inputs", 2, offset, 1_700_000_000_123, "orig-7", b"", []
    )


def _written_for(
    step: str, new_id: str, request_headers: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """The headers the worker gives a step's record for a request with these headers."""
    node = SimpleNamespace(pipeline=PIPELINE, name=step)  # all header_tail reads
    return headers_for(request_headers, new_id, header_tail(node))  # type: ignore[arg-type]


def test_an_error_record_from_a_delivery_report_carries_the_replay_headers(
    kafka_settings: KafkaSettings,
):
    kafka = Kafka(kafka_settings)
    worker = Worker(kafka_settings)
    try:
        topics = kafka_settings.topics()
        worker.admin.ensure([topics.errors(), topics.pipeline_outputs(PIPELINE)])
        run = new_run_id(time.time_ns() // 1_000_000)
        # librdkafka refuses a topic on the spot (with the full headers at hand) when its
        # metadata came first, else in a delivery report: the one tested here. Each try
        # takes another refused topic until a delivery report brought the refusals.
        for attempt in range(5):
            step = f"bad step {attempt}!"  # a name produce() takes and the broker refuses
            replayed_id, _, request_headers = RequestMaker(run, PIPELINE).make(
                _original(417 + attempt)
            )
            live_id = new_id("live")
            refused_topic = topics.step_outputs(PIPELINE, step)
            worker.delivery.produce(
                [
                    Outgoing(
                        refused_topic,
                        replayed_id,
                        b"answer of the replay",
                        _written_for(step, replayed_id, request_headers),
                    ),
                    Outgoing(
                        refused_topic,
                        live_id,
                        b"answer of live traffic",
                        _written_for(step, live_id, []),
                    ),
                ]
            )
            worker.delivery._producer.flush(10)  # the delivery reports, if any
            by_report = len(worker.delivery._refused) == 2
            worker.commit(force=True)  # writes their error records
            assert worker.delivery.lost == 0
            if by_report:
                break
        assert by_report, "every refusal came on the spot: the delivery reports untested"
        for topic in (topics.errors(), topics.pipeline_outputs(PIPELINE)):
            found = kafka.collect(topic, [replayed_id, live_id])
            replayed, live = found[replayed_id], found[live_id]
            assert replayed.is_error and live.is_error
            assert replayed.error().stage == "produce"
            got = dict(replayed.headers)
            assert got[h.REPLAY_RUN] == run.encode()
            assert got[h.REPLAY_OF] == b"orig-7"
            assert (
                got[h.REPLAY_SOURCE] == f"tf.ns.pipeline.somepipe.inputs:2:{417 + attempt}".encode()
            )
            assert got[h.ORIGINAL_TIMESTAMP] == b"1700000000123"
            assert (got[h.PIPELINE], got[h.STEP]) == (PIPELINE.encode(), step.encode())
            assert not {k for k, _ in live.headers} & set(h.REPLAY_HEADERS)
        assert len(worker.delivery._lineage) == 0  # nothing kept once flushed
    finally:
        worker.close()
        kafka.close()


def test_the_delivery_layer_recognises_every_replayed_id():
    # The delivery layer looks at keys first (engine.runtime.lineage): a replayed id
    # it did not recognise would lose its lineage on a refusal.
    for moment in (0, 1_700_000_000_123, time.time_ns() // 1_000_000):
        run = new_run_id(moment)
        assert may_be_replayed(new_request_id(run, _original())), run
