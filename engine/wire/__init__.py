"""Other systems' Kafka wire formats beside tensorflux's own (`--wire seldon`)."""
