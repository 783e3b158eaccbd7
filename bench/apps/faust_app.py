"""The 1-step work as a faust-streaming agent, the way its docs teach.

An app, two topics, an `@app.agent` iterating `stream.items()` and awaiting
`topic.send`. Values are raw bytes; the agent decodes and encodes Avro with
fastavro. Run in .venv-bench:
python bench/apps/faust_app.py BOOTSTRAP GROUP INPUT OUTPUT MODEL DATADIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faust  # noqa: E402
from oip import Codec, infer, session  # noqa: E402

bootstrap, group, input_topic, output_topic, model, datadir = sys.argv[1:7]
sess = session(model)
codec = Codec()

app = faust.App(
    group,
    broker=f"kafka://{bootstrap}",
    datadir=datadir,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=False,
    producer_linger_ms=2,
)
requests = app.topic(input_topic, key_type=bytes, value_type=bytes, value_serializer="raw")
responses = app.topic(output_topic, key_type=bytes, value_type=bytes, value_serializer="raw")


@app.agent(requests)
async def tfsimple1(stream):
    async for key, value in stream.items():
        response = infer(sess, codec.decode(value), "tfsimple1")
        await responses.send(key=key, value=codec.encode(response))


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()
