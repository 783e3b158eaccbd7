"""The 1-step work as a Quix Streams app, the way its docs teach.

Application → topic with Avro (de)serializers → StreamingDataFrame.apply → to_topic.
Run in .venv-bench: python bench/apps/quix_app.py BOOTSTRAP GROUP INPUT OUTPUT MODEL
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oip import infer, schema, session  # noqa: E402
from quixstreams import Application  # noqa: E402
from quixstreams.models.serializers.avro import AvroDeserializer, AvroSerializer  # noqa: E402


def main() -> None:
    bootstrap, group, input_topic, output_topic, model = sys.argv[1:6]
    sess = session(model)
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        loglevel="WARNING",
    )
    requests = app.topic(
        input_topic,
        key_deserializer="str",
        value_deserializer=AvroDeserializer(schema("InferenceRequest")),
    )
    responses = app.topic(
        output_topic,
        key_serializer="str",
        value_serializer=AvroSerializer(schema("InferenceResponse")),
    )
    sdf = app.dataframe(requests)
    sdf = sdf.apply(lambda request: infer(sess, request, "tfsimple1"))
    sdf.to_topic(responses)
    app.run()


if __name__ == "__main__":
    main()
