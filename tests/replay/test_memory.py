"""A replay holds at most its value budget of selected values, and is as exact with a
tiny budget (values read back a chunk at a time as they are sent) as with room for all."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Producer

from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.replay.diff import Tolerance
from engine.replay.fetching import ValueBudget, ValueFetcher
from engine.replay.reading import RangeReader
from engine.replay.run import ReplayRequest, ReplayResult, replay
from engine.replay.selection import Selection, partition_ranges, select
from engine.replay.sending import Pace

from .conftest import STEP_MS, Engine, good_id, of_run, request

TINY = 2_000
"""Bytes: a few dozen of the recorded requests' values, of the hundreds replayed."""
VALUE = len(request(good_id(0), 0.0))


def _run(engine: Engine, budget: int, **options: object) -> ReplayResult:
    return replay(engine.settings, ReplayRequest(value_budget=budget, **options))  # type: ignore[arg-type]


def _window(engine: Engine, first: int, last: int) -> Selection:
    return Selection(from_ms=engine.t0 + first * STEP_MS, to_ms=engine.t0 + last * STEP_MS)


def _replayed(engine: Engine, run: str) -> list[str]:
    topic = engine.settings.topics().pipeline_inputs("scoring-v2")
    return sorted(s.headers["tensorflux-replay-of"] for s in of_run(engine.settings, topic, run))


def _without_run(result: ReplayResult) -> dict:
    report = result.report.to_json()
    del report["run"]
    return report


def test_a_tiny_budget_gives_the_same_report_and_holds_at_most_the_budget(engine: Engine):
    selection = _window(engine, 300, 700)  # 400 requests; v2 changes the 299 past 400
    common = {"source": "scoring", "into": "scoring-v2", "selection": selection}
    roomy = _run(engine, 64 << 20, diff=Tolerance(), **common)
    tiny = _run(engine, TINY, diff=Tolerance(), **common)
    assert tiny.report.exit_code() == roomy.report.exit_code()
    assert _without_run(tiny) == _without_run(roomy)
    assert tiny.report.selected == tiny.report.answered == 400
    assert tiny.report.diff is not None and len(tiny.report.diff.changed_ids) == 299
    assert roomy.values_held_peak == 400 * VALUE  # all of them fit: all were held
    assert 0 < tiny.values_held_peak <= TINY
    expected = [good_id(i) for i in range(300, 700)]
    assert _replayed(engine, tiny.report.run) == expected  # none twice, none missed


def test_a_value_larger_than_the_budget_is_still_sent(engine: Engine):
    result = _run(engine, 1, source="scoring", into="scoring-v2", selection=_window(engine, 0, 30))
    assert result.report.answered == 30
    assert result.values_held_peak == VALUE  # one at a time
    assert _replayed(engine, result.report.run) == [good_id(i) for i in range(30)]


def test_a_dry_run_counts_the_bytes_of_values_it_did_not_keep(engine: Engine):
    result = _run(engine, TINY, source="scoring", dry_run=True, selection=_window(engine, 0, 200))
    assert result.dry_run is not None and result.dry_run["bytes"] == 200 * VALUE
    assert result.values_held_peak <= TINY


def test_stopped_then_resumed_with_a_tiny_budget_replays_every_request_once(engine: Engine):
    selection = _window(engine, 100, 400)
    stop = threading.Event()
    results: list[ReplayResult] = []
    notices: list[str] = []
    options = {"source": "scoring", "into": "scoring-v2", "selection": selection}
    thread = threading.Thread(
        target=lambda: results.append(
            replay(
                engine.settings,
                ReplayRequest(value_budget=TINY, pace=Pace(rate=200), **options),  # type: ignore[arg-type]
                stop=stop,
                notice=notices.append,
            )
        )
    )
    thread.start()
    while not notices and thread.is_alive():  # the run is recorded once it says so
        time.sleep(0.01)
    time.sleep(0.5)  # paced at 200 a second: about 100 of the 300 sent
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    first = results[0]
    assert first.interrupted and first.report.sent < 300
    assert first.values_held_peak <= TINY
    resumed = _run(engine, TINY, source=None, resume=first.report.run)
    assert resumed.report.selected == resumed.report.sent == resumed.report.answered == 300
    assert resumed.values_held_peak <= TINY
    assert _replayed(engine, first.report.run) == [good_id(i) for i in range(100, 400)]


def test_values_of_several_partitions_come_back_in_sending_order(kafka_settings: KafkaSettings):
    # Three partitions, stamps interleaved across them: the sending order (by time) is
    # not any partition's order, and the values kept while reading are not its first.
    topic = kafka_settings.topics().pipeline_inputs("spread")
    TopicAdmin(kafka_settings).ensure([topic], partitions=3)
    producer = Producer(kafka_settings.producer_config(**{"linger.ms": 20}))
    t0 = time.time_ns() // 1_000_000 - 60_000
    values = {}
    for i in range(300):
        values[f"r-{i}"] = request(f"r-{i}", float(i))
        producer.produce(topic, values[f"r-{i}"], f"r-{i}", partition=i % 3, timestamp=t0 + i)
    assert producer.flush(30) == 0
    reader = RangeReader(kafka_settings)
    budget = ValueBudget(TINY)
    stop = threading.Event()
    try:
        ranges, _ = partition_ranges(reader, topic, 3, Selection(), time.time_ns() // 1_000_000)
        records = select(reader, topic, ranges, Selection(), budget)
        assert [r.key for r in records] == [f"r-{i}" for i in range(300)]
        fetcher = ValueFetcher(kafka_settings, records, records, budget, stop)
        made = fetcher.make(lambda record: (record.key, record.value))
        try:
            assert [made(record) for record in records] == list(values.items())
        finally:
            fetcher.close()
    finally:
        reader.close()
    assert budget.peak <= TINY and budget.held == 0
