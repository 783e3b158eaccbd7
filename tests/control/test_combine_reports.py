"""Many workers' reports make one state per resource: Failed wins, then Ready, then Loading."""

from engine.runtime.reports import STALE_AFTER_S, combine_reports, heartbeat


def report(worker: str, state: str, reason: str = "", name: str = "p") -> dict:
    return {"worker": worker, "kind": "pipeline", "name": name, "state": state, "reason": reason}


def test_failed_wins_then_ready_then_loading():
    combined = combine_reports(
        [
            report("w1", "Ready"),
            report("w2", "Failed", "model 'm' failed to load"),
            report("w1", "Ready", name="q"),
            report("w2", "Loading", name="q"),
            report("w2", "Loading", name="r"),
        ]
    )
    assert combined["pipeline/p"] == ("Failed", "model 'm' failed to load", ("w1", "w2"))
    assert combined["pipeline/q"] == ("Ready", "", ("w1", "w2"))
    assert combined["pipeline/r"] == ("Loading", "", ("w2",))
    assert "pipeline/s" not in combined


def test_a_worker_whose_heartbeats_stopped_counts_for_nothing():
    now = 1_000_000.0
    live, dead = heartbeat("live", now - 1)[1], heartbeat("dead", now - STALE_AFTER_S - 5)[1]
    combined = combine_reports(
        [
            live,
            dead,
            report("live", "Ready"),
            report("dead", "Failed", "old news"),
            report("dead", "Ready", name="orphan"),
            report("never-beat", "Ready", name="legacy"),
        ],
        now=now,
    )
    assert combined["pipeline/p"] == ("Ready", "", ("live",))
    state, reason, workers = combined["pipeline/orphan"]
    assert (state, workers) == ("Pending", ())
    assert reason == "no live worker reports it; last heard of: dead (35 s ago)"
    assert combined["pipeline/legacy"] == ("Ready", "", ("never-beat",))
    assert "worker/live" not in combined
