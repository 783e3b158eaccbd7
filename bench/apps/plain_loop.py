"""The ceiling: a plain confluent-kafka consume → produce loop, no decoding.

Same client knobs as the tensorflux worker (chunk, linger, fetch wait), so
the gap to it is what tensorflux does per request, not client tuning.
Run: python bench/apps/plain_loop.py BOOTSTRAP GROUP INPUT OUTPUT CHUNK LINGER_MS FETCH_WAIT_MS
"""

from __future__ import annotations

import signal
import sys

from confluent_kafka import Consumer, Producer


def main() -> None:
    bootstrap, group, input_topic, output_topic = sys.argv[1:5]
    chunk, linger_ms, fetch_wait_ms = (int(v) for v in sys.argv[5:8])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": fetch_wait_ms,
            "fetch.min.bytes": 1,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": linger_ms,
            "batch.num.messages": 10000,
            "enable.idempotence": False,
        }
    )
    consumer.subscribe([input_topic])
    produce, poll, consume = producer.produce, consumer.poll, consumer.consume
    while not stop:
        # Wait for the first record only, then take what is already fetched (up to a chunk):
        # consume(chunk, timeout) alone would sit out its timeout at light load.
        first = poll(0.1)
        if first is None:
            continue
        for message in [first, *consume(chunk - 1, timeout=0)]:
            if message.error() is None:
                while True:
                    try:
                        produce(output_topic, message.value(), message.key())
                        break
                    except BufferError:  # local queue full: let deliveries drain
                        producer.poll(0.05)
        producer.poll(0)
    producer.flush(5)
    consumer.close()


if __name__ == "__main__":
    main()
