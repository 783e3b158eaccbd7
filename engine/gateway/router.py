"""Produce a request, await its reply: one producer and one reply consumer per process.

Every gateway process reads the outputs topics it waits on with its own
consumer, outside any consumer group (`assign`, never `subscribe`), starting
at the end as it was when it began listening, and resolves only the request
ids its own callers wait for; replies for other processes' callers pass by.
So any number of gateway processes can serve one namespace, and a reply
always reaches the process whose caller waits for it.

While Kafka is unreachable (engine/kafka_watch.py) a request is answered 503 at
once, and those waiting when it went are answered so too, their records purged
from the producer's queue. When it is back, every outputs topic is listened to
anew on its next request (created again, from its end): a broker that kept
nothing has new, empty topics by the same names.

While no caller waits, the router's partitions are paused: a paused partition
keeps its position, so replies to a request made later are still read.

The start offset is the high watermark the broker reports when a topic is
first listened to. The embedded broker reports a value at or below the true
end (the base offset of the last batch + 1), so a few old records may be read
again and ignored; nothing produced after listening began can be missed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from engine.admin import TopicAdmin, watermark_offsets
from engine.config import KafkaSettings
from engine.gateway.errors import (
    BrokerUnavailable,
    DeliveryFailed,
    GatewayError,
    RequestInFlight,
)
from engine.gateway.producing import RequestProducer
from engine.kafka_watch import KafkaWatch
from engine.runtime.idling import resume_now

log = logging.getLogger("tensorflux.gateway")

POLL_S = 0.05
"""Longest the router thread blocks in one consume call."""
IDLE_AFTER_S = 1.0
"""Fetching stops this long after the last caller stopped waiting (tansu's cost grows
with every fetch, and no reply is wanted); a new caller resumes it at once."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The record that answered a request."""

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]]


_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[Reply]]
_Assignment = tuple[list[TopicPartition], concurrent.futures.Future[None]] | None
"""Partitions to add to the reply consumer; None: drop every assignment (Kafka came back)."""


class ReplyRouter:
    """Call `start()`, then `await request(...)` from any event loop; `close()` at the end."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.group_id = (
            f"{settings.topic_prefix}.{settings.namespace}.gateway.{uuid.uuid4().hex[:12]}"
        )
        """Never joined (partitions are assigned by hand, nothing is committed)."""
        self._admin = TopicAdmin(settings)
        self._producer = RequestProducer(settings)
        """At once while few callers wait, lingering for bigger batches when many do."""
        self._consumer = Consumer(
            settings.consumer_config(
                self.group_id,
                **{
                    "enable.auto.commit": False,
                    "auto.offset.reset": "latest",
                    "fetch.wait.max.ms": 10,
                    "fetch.min.bytes": 1,
                },
            )
        )
        self._probe = Consumer(settings.consumer_config(self.group_id + ".probe"))
        self._lock = threading.Lock()
        self._waiting: dict[tuple[str, str], list[_Waiter]] = {}
        self._listening: dict[str, concurrent.futures.Future[None]] = {}
        self._assignments: queue.SimpleQueue[_Assignment] = queue.SimpleQueue()
        self._assigned = False
        self._paused = False
        self._last_waited = time.monotonic()
        self._wake = threading.Event()
        """Set when a caller starts waiting: the paused router thread resumes at once."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-replies", daemon=True)
        self._executor = concurrent.futures.ThreadPoolExecutor(2, "gateway-listen")
        self._watch = KafkaWatch(settings, self._on_kafka)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ReplyRouter:
        self._thread.start()
        self._watch.start()
        return self

    @property
    def fetching(self) -> bool:
        """False while its partitions are paused (no caller waited for a while)."""
        return not self._paused

    @property
    def batched(self) -> int:
        """Requests sent through the lingering producer so far (producing.py)."""
        return self._producer.batched

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def reachable(self) -> bool:
        """Kafka answers (as of the last check, at most a second or two ago)."""
        return self._watch.reachable

    def _unreachable(self) -> BrokerUnavailable:
        return BrokerUnavailable(
            f"Kafka at {self.settings.bootstrap} is unreachable from this gateway "
            f"(for {self._watch.unreachable_for_s():.0f}s); try again once it is back"
        )

    def _on_kafka(self, reachable: bool, after_s: float) -> None:
        if not reachable:
            log.warning(
                "Kafka at %s unreachable: answering 503 until it is back", self.settings.bootstrap
            )
            self.abandon(self._unreachable())
            # Sent later, they would make a broker that kept nothing create their
            # topics itself, with its own partition count, before we can.
            self._producer.purge()
            return
        log.warning("Kafka at %s reachable again after %.0fs", self.settings.bootstrap, after_s)
        self._producer.renew()
        with self._lock:
            self._listening.clear()  # each outputs topic is listened to anew (ensured)
        self._assignments.put(None)

    def waiting(self) -> int:
        """How many requests wait for their reply now."""
        with self._lock:
            return sum(len(waiters) for waiters in self._waiting.values())

    def abandon(self, failure: GatewayError) -> None:
        """Answer every request waiting now with `failure` (shutdown; any thread)."""
        with self._lock:
            waiters = [w for ws in self._waiting.values() for w in ws]
            self._waiting.clear()
        for waiter in waiters:
            _settle(waiter, failure)

    def close(self) -> None:
        self._watch.close()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._producer.flush(5)
        self._consumer.close()
        self._probe.close()

    # -- listening ---------------------------------------------------------------------

    def listen(self, reply_topic: str, *also_ensure: str) -> concurrent.futures.Future[None]:
        """Start reading `reply_topic` from its end (creating it and `also_ensure` if
        missing). Done once per topic; the future is done when records produced
        from then on are sure to be seen."""
        with self._lock:
            future = self._listening.get(reply_topic)
            if future is not None and not (future.done() and future.exception()):
                return future
            future = concurrent.futures.Future()
            self._listening[reply_topic] = future
        self._executor.submit(self._prepare, reply_topic, also_ensure, future)
        return future

    def _prepare(
        self, topic: str, also_ensure: tuple[str, ...], future: concurrent.futures.Future[None]
    ) -> None:
        try:
            self._admin.ensure([topic, *also_ensure])
            # Metadata from the admin client and offsets from an idle consumer: the
            # consuming one answers metadata requests only after seconds.
            partitions = range(self._admin.existing()[topic])
            starts = []
            for partition in partitions:
                _, high = watermark_offsets(self._probe, TopicPartition(topic, partition))
                starts.append(TopicPartition(topic, partition, max(high, 0)))
        except Exception as error:
            _finish(future, GatewayError(f"cannot listen on {topic}: {error}"))
            return
        self._assignments.put((starts, future))

    # -- requests ----------------------------------------------------------------------

    async def request(
        self,
        topic: str,
        reply_topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, bytes]],
        timeout_s: float,
    ) -> Reply:
        """Produce to `topic` and return the first record keyed `key` on `reply_topic`.

        Raises TimeoutError after `timeout_s`, DeliveryFailed if Kafka refuses it.
        """
        if not self._watch.reachable:
            raise self._unreachable()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s  # one budget for listening and answering
        listening = self.listen(reply_topic, topic)
        if not listening.done():
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(listening)), timeout_s)
        listening.result()
        future: asyncio.Future[Reply] = loop.create_future()
        waiter = (loop, future)
        slot = (reply_topic, key)
        with self._lock:
            if self._waiting.get(slot):
                # Two requests of one id would share a Kafka key, a join and a reply.
                raise RequestInFlight(key)
            self._waiting[slot] = [waiter]
        self._wake.set()
        # A timer on the future itself: wait_for would wrap every request in a task.
        expiry = loop.call_at(deadline, _expire, future)
        try:
            self._produce(topic, key, value, headers, waiter)
            return await future
        finally:
            expiry.cancel()
            with self._lock:
                waiters = self._waiting.get(slot)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiting[slot]

    def send(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """Produce and wait for nothing (an experiment's mirror copy): a failure is
        logged, never raised, so it cannot reach the caller."""

        def delivered(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                log.warning("copy for %s not delivered: %s", topic, error)

        try:
            self._producer.produce(topic, key, value, headers, delivered)
        except (BufferError, KafkaException) as error:
            log.warning("copy for %s dropped: %s", topic, error)

    def _produce(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]], waiter: _Waiter
    ) -> None:
        def delivered(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                _settle(waiter, DeliveryFailed(f"Kafka refused the request for {topic}: {error}"))

        try:
            self._producer.produce(
                topic, key, value, headers, delivered, waiting=len(self._waiting)
            )
        except KafkaException as error:
            raise DeliveryFailed(
                f"Kafka refused the request for {topic}: {error.args[0].str()}"
            ) from None

    # -- the reply thread --------------------------------------------------------------

    def _run(self) -> None:
        consumer = self._consumer  # the producer is renewed after an outage: read it each time
        while not self._stop.is_set():
            try:
                self._take_assignments()
                self._producer.poll()
                if not self._assigned:
                    self._stop.wait(0.01)
                    continue
                if not self._fetching():
                    self._wake.wait(POLL_S)
                    continue
                # poll() returns on the first record; consume() would wait out
                # its whole timeout unless the batch filled.
                first = consumer.poll(POLL_S)
                if first is None:
                    continue
                messages = [first, *consumer.consume(1000, 0)]
            except Exception:
                log.exception("gateway reply consumer failed; retrying")
                self._stop.wait(0.5)
                continue
            self._route(messages)

    def _fetching(self) -> bool:
        """Fetch while a caller waits and a moment after; pause the partitions otherwise."""
        self._wake.clear()
        now = time.monotonic()
        if self._waiting:
            self._last_waited = now
        wanted = now - self._last_waited < IDLE_AFTER_S
        if wanted == self._paused:
            partitions = self._consumer.assignment()
            if wanted:
                resume_now(self._consumer, partitions)  # a reply is due within ms
            elif partitions:
                self._consumer.pause(partitions)
            self._paused = not wanted
        return wanted

    def _route(self, messages: list[Message]) -> None:
        """Hand each awaited reply of `messages` to its waiter: one wake-up per event
        loop for the whole batch, not one per reply."""
        found: list[tuple[str, str, Message]] = []
        for message in messages:
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("reply consumer: %s", message.error())
                continue
            raw_key = message.key()
            if raw_key:
                found.append((message.topic(), raw_key.decode("utf-8", "replace"), message))
        if not found:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Reply], Reply]]] = {}
        with self._lock:
            claimed = [(self._waiting.pop((t, k), None), m) for t, k, m in found]
        for waiters, message in claimed:
            if not waiters:
                continue
            reply = Reply(
                message.topic(),
                message.partition(),
                message.offset(),
                message.value() or b"",
                message.headers() or [],
            )
            for loop, future in waiters:
                by_loop.setdefault(loop, []).append((future, reply))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, settled)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _take_assignments(self) -> None:
        while True:
            try:
                assignment = self._assignments.get_nowait()
            except queue.Empty:
                return
            if assignment is None:
                try:
                    self._consumer.unassign()
                except KafkaException as error:
                    log.warning("reply consumer: cannot drop its assignment: %s", error)
                self._assigned = False
                continue
            partitions, future = assignment
            try:
                self._consumer.incremental_assign(partitions)
                self._assigned = True
            except Exception as error:
                _finish(future, GatewayError(f"cannot assign {partitions}: {error}"))
            else:
                _finish(future, None)


def _finish(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _resolve_all(settled: list[tuple[asyncio.Future[Reply], Reply]]) -> None:
    for future, reply in settled:
        if not future.done():
            future.set_result(reply)


def _expire(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _settle(waiter: _Waiter, outcome: Reply | BaseException) -> None:
    loop, future = waiter

    def settle() -> None:
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass
