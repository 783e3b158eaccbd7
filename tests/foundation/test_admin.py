"""Topic admin: idempotent creation with a partition count, visible at once."""

from __future__ import annotations

from engine.admin import TopicAdmin


def test_ensure_creates_with_partitions_and_is_idempotent(kafka_settings, namespace):
    admin = TopicAdmin(kafka_settings)
    names = [f"tensorflux.{namespace}.a", f"tensorflux.{namespace}.b"]
    admin.ensure(names, partitions=3)
    admin.ensure(names, partitions=3)  # second call: no error, nothing changes
    existing = admin.existing()
    assert {name: existing[name] for name in names} == {names[0]: 3, names[1]: 3}
    admin.delete(names)
    assert not set(names) & set(admin.existing())
