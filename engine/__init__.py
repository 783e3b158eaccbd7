"""tensorflux: a Kafka-native engine for ML inference pipelines (Seldon Core 2 YAML)."""

__version__ = "0.1.0"
