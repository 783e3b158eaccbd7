"""The dataflow runtime: step agents driven by a confluent-kafka worker loop."""
