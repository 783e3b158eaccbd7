"""Where a changed answer came from: the first step whose outputs diverge.

For each changed request the target's steps are walked in topological order,
each step's replayed outputs record (keyed by the new id) compared with the
recorded outputs of its partner step in the source pipeline (keyed by the
original id). A step that answered on one side only (conditional routing went
another way) diverges too; a step neither side ran is passed over. When every
step agrees, the outputs node made the change (a new tensorMap): `(output)`.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine import headers as h
from engine.codec import CodecError, decode_payload
from engine.replay.diff import Tolerance, compare_messages, same_bytes
from engine.replay.reading import RangeReader, Recorded, answer_for, by_key, first_by_key

OUTPUT_LABEL = "(output)"


def first_divergent_steps(
    reader: RangeReader,
    pairs: list[tuple[str, str, str]],
    changed: Mapping[str, tuple[str, int]],
    partitions: Mapping[str, int],
    tolerance: Tolerance,
    *,
    originals_since_ms: int | None,
    replays_since_ms: int | None,
    now_ms: int,
) -> dict[str, int]:
    """Counts of the first divergent step over the changed requests.

    `pairs`: (target step, its outputs topic, the source step's outputs topic);
    `changed`: new id → (original id, the original's timestamp); `partitions`: topic →
    partition count.
    """
    if not pairs or not changed:
        return {}
    target_topics = {t: partitions[t] for _, t, _ in pairs if t in partitions}
    source_topics = {s: partitions[s] for _, _, s in pairs if s in partitions}
    replays = first_by_key(
        reader, target_topics, set(changed), since_ms=replays_since_ms, now_ms=now_ms
    )
    originals = by_key(
        reader,
        source_topics,
        {original for original, _ in changed.values()},
        since_ms=originals_since_ms,
        now_ms=now_ms,
    )
    counts: dict[str, int] = {}
    for new_id, (original_id, asked_ms) in changed.items():
        step = OUTPUT_LABEL
        for name, target_topic, source_topic in pairs:
            ours = replays.get((target_topic, new_id))
            recorded = originals.get((source_topic, original_id))
            theirs = None if recorded is None else answer_for(recorded, asked_ms)
            if ours is None and theirs is None:
                continue
            if ours is None or theirs is None or _differ(ours, theirs, tolerance):
                step = name
                break
        counts[step] = counts.get(step, 0) + 1
    return counts


def _differ(ours: Recorded, theirs: Recorded, tolerance: Tolerance) -> bool:
    if h.is_error(ours.headers) or h.is_error(theirs.headers):
        return h.is_error(ours.headers) != h.is_error(theirs.headers)
    if same_bytes(ours.value, theirs.value):
        return False
    try:
        a = decode_payload(ours.value, ours.headers, "response")
        b = decode_payload(theirs.value, theirs.headers, "response")
    except CodecError:
        return True
    return any(d.changed for d in compare_messages(a, b, tolerance).values())
