"""`make bench`: tensorflux against the plain Kafka loop and its peers (see bench/runner.py)."""
