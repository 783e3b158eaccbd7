"""Micro-benchmark of the Avro codecs: plain fastavro vs the hand-written fast path.

Run: .venv/bin/python bench/codec_bench.py [--repeat N]
Prints microseconds per message (best of several timeit rounds) for a small
request (two INT32 [1, 16] tensors, the engine's typical step message) and a
few other shapes, encode and decode, plus OIP JSON for comparison.
"""

from __future__ import annotations

import argparse
import io
import timeit

import fastavro
import numpy as np

from engine.codec import avro, decode_json, encode_json, fast_avro
from engine.messages import InferenceMessage, Tensor


def _message(name: str) -> InferenceMessage:
    if name == "2x INT32[1,16]":
        tensors = (
            Tensor.from_array("INPUT0", np.arange(16, dtype=np.int32).reshape(1, 16)),
            Tensor.from_array("INPUT1", np.arange(16, dtype=np.int32).reshape(1, 16)),
        )
    elif name == "1x FP32[1,1024]":
        tensors = (Tensor.from_array("x", np.ones((1, 1024), dtype=np.float32)),)
    elif name == "8x FP32[1,16]":
        tensors = tuple(
            Tensor.from_array(f"t{i}", np.ones((1, 16), dtype=np.float32)) for i in range(8)
        )
    elif name == "BYTES[4]":
        tensors = (Tensor.from_array("text", np.array([b"hello", b"world", b"a", b"b"], object)),)
    else:
        raise KeyError(name)
    return InferenceMessage("3f2a9c1e-request-id", tensors, "request", model_name="model")


def _best_us(stmt, repeat: int, number: int) -> float:
    return min(timeit.repeat(stmt, repeat=repeat, number=number)) / number * 1e6


MESSAGES = ("2x INT32[1,16]", "8x FP32[1,16]", "1x FP32[1,1024]", "BYTES[4]")


def _row(name, n, r, fastavro_write, fastavro_read) -> tuple:
    message = _message(name)
    record = avro.message_to_record(message)
    payload = fast_avro.encode(message)
    assert payload == fastavro_write(record), "fast path must match fastavro byte for byte"
    text = encode_json(message)
    return (
        name,
        len(payload),
        _best_us(lambda: fastavro_write(record), r, n),
        _best_us(lambda: fastavro_read(payload), r, n),
        _best_us(lambda: avro.reference_encode(message), r, n // 4),
        _best_us(lambda: avro.reference_decode(payload, "request"), r, n // 4),
        _best_us(lambda: fast_avro.encode(message), r, n),
        _best_us(lambda: fast_avro.decode(payload, "request"), r, n),
        _best_us(lambda: encode_json(message), r, n // 4),
        _best_us(lambda: decode_json(text), r, n // 4),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    schema = avro.parsed_schema("request")

    def fastavro_write(record):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, record)
        return out.getvalue()

    def fastavro_read(payload):
        return fastavro.schemaless_reader(io.BytesIO(payload), schema, None)

    rows = [
        _row(name, args.number, args.repeat, fastavro_write, fastavro_read) for name in MESSAGES
    ]
    header = (
        "message",
        "bytes",
        "fastavro wr",
        "fastavro rd",
        "ref enc",
        "ref dec",
        "FAST enc",
        "FAST dec",
        "json enc",
        "json dec",
    )
    print(
        f"us per message (best of {args.repeat} x {args.number}); "
        "'fastavro wr/rd' = bare schemaless_writer/reader"
    )
    print("on the record dict; 'ref enc/dec' = fastavro + message<->record mapping")
    print(" | ".join(f"{h:>15}" if i == 0 else f"{h:>11}" for i, h in enumerate(header)))
    for row in rows:
        cells = [f"{row[0]:>15}", f"{row[1]:>11}"] + [f"{v:>11.2f}" for v in row[2:]]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
