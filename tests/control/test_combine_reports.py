"""Many workers' reports make one state per resource: Failed wins, then Ready, then Loading."""

from engine.runtime.control import combine_reports


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
