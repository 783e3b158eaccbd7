"""The reply router stops fetching while no caller waits, and a later request still
gets its reply (issue 17: an idle gateway costs the embedded broker nothing). Many
callers at once go through the lingering producer, a lone one does not (issue 14).

A thread stands in for the worker: it answers every request record on the
request topic with a record of the same key on the reply topic.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from engine.config import KafkaSettings
from engine.gateway.producing import BATCH_WHEN_WAITING
from engine.gateway.router import IDLE_AFTER_S, ReplyRouter

DEADLINE_S = 30.0


def _echo(settings: KafkaSettings, topic: str, reply_topic: str, stop: threading.Event) -> None:
    consumer = Consumer(settings.consumer_config(f"echo-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    producer = Producer(settings.producer_config())
    while not stop.is_set():
        message = consumer.poll(0.05)
        if message is not None and message.error() is None:
            producer.produce(reply_topic, b"answer:" + message.value(), message.key())
            producer.flush(10)
    consumer.close()


@dataclass
class Echoed:
    """A started reply router, and a stand-in worker answering on `reply_topic`."""

    router: ReplyRouter
    topic: str
    reply_topic: str

    async def ask(self, key: str) -> bytes:
        reply = await self.router.request(
            self.topic, self.reply_topic, key, key.encode(), [], DEADLINE_S
        )
        return reply.value


@pytest.fixture
def echoed(kafka_settings, topic_factory) -> Iterator[Echoed]:
    topic, reply_topic = topic_factory(), topic_factory()
    stop = threading.Event()
    echo = threading.Thread(target=_echo, args=(kafka_settings, topic, reply_topic, stop))
    echo.start()
    router = ReplyRouter(kafka_settings).start()
    try:
        yield Echoed(router, topic, reply_topic)
    finally:
        router.close()
        stop.set()
        echo.join(10)


def test_an_idle_router_pauses_and_still_routes_the_next_reply(echoed: Echoed):
    router = echoed.router
    assert asyncio.run(echoed.ask("first")) == b"answer:first"
    deadline = time.monotonic() + DEADLINE_S + IDLE_AFTER_S
    while router.fetching:
        assert time.monotonic() < deadline, "the router never paused"
        time.sleep(0.05)
    assert asyncio.run(echoed.ask("second")) == b"answer:second"
    assert router.fetching


def test_many_callers_at_once_are_batched_and_a_lone_one_goes_at_once(echoed: Echoed):
    router, ask = echoed.router, echoed.ask

    async def ask_many(keys: list[str]) -> list[bytes]:
        return await asyncio.gather(*(ask(key) for key in keys))

    assert asyncio.run(ask("lone")) == b"answer:lone"
    assert router.batched == 0
    keys = [f"many-{i}" for i in range(3 * BATCH_WHEN_WAITING)]
    assert asyncio.run(ask_many(keys)) == [b"answer:" + key.encode() for key in keys]
    # Each caller waits before it produces: from the BATCH_WHEN_WAITING-th on, they linger.
    assert router.batched == len(keys) - BATCH_WHEN_WAITING + 1
    assert asyncio.run(ask("lone again")) == b"answer:lone again"
    assert router.batched == len(keys) - BATCH_WHEN_WAITING + 1
