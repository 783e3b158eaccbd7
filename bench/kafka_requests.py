"""Count the Kafka requests each client of a process sends, from librdkafka's statistics.

    python bench/kafka_requests.py OUT.json -m engine.gateway --port ...
    python bench/kafka_requests.py OUT.json -c "<code>" ARGS...

runs the module or code as `python -m`/`python -c` would, with every confluent_kafka
Producer and Consumer built with `statistics.interval.ms` and a callback that rewrites
OUT.json each interval: per client (named by the engine function that built it) the
requests sent so far by type (Produce, Fetch, OffsetCommit, Metadata, Heartbeat, ...),
summed over brokers, with the messages it produced or consumed. The counts are
cumulative: `bench/gateway_bench.py --count-requests` reads the file before and after a
level and divides the difference by the HTTP requests wrk made. Bench-only: the engine
never imports it.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

INTERVAL_MS = 500

_lock = threading.Lock()
_clients: dict[str, dict[str, Any]] = {}
"""librdkafka client name -> {"label", "req": {...}, "msgs"} from its latest statistics."""


def _label() -> str:
    """The engine function that builds the client (the first frame outside this file)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None:
        return "?"
    module = frame.f_globals.get("__name__", "?")
    return f"{module}:{frame.f_code.co_name}"


def _stats_cb(label: str, out: Path):
    batches = 0  # a producer's record batches: librdkafka's window resets each interval

    def on_stats(raw: str) -> None:
        nonlocal batches
        stats = json.loads(raw)
        requests: Counter[str] = Counter()
        for broker in stats.get("brokers", {}).values():
            requests.update({k: v for k, v in broker.get("req", {}).items() if v})
        if stats.get("type") == "producer":
            batches += sum(t["batchcnt"]["cnt"] for t in stats.get("topics", {}).values())
            requests["batches"] = batches
        else:  # partitions assigned now (paused ones too: the statistics do not say)
            requests["assigned"] = sum(
                1
                for topic in stats.get("topics", {}).values()
                for number, part in topic.get("partitions", {}).items()
                if number != "-1" and part.get("fetch_state") == "active"
            )
        entry = {
            "label": label,
            "type": stats.get("type"),
            "req": dict(requests),
            "msgs": stats.get("txmsgs", 0) + stats.get("rxmsgs", 0),
        }
        with _lock:
            _clients[stats.get("name", label)] = entry
            snapshot = json.dumps(_clients)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(snapshot)
        os.replace(tmp, out)

    return on_stats


def install(out: Path) -> None:
    import confluent_kafka

    def counting(base: type) -> type:
        class Counting(base):  # type: ignore[misc, valid-type]
            def __init__(self, config: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                config = {
                    **config,
                    "statistics.interval.ms": INTERVAL_MS,
                    "stats_cb": _stats_cb(_label(), out),
                }
                super().__init__(config, *args, **kwargs)

        Counting.__name__ = base.__name__
        return Counting

    confluent_kafka.Producer = counting(confluent_kafka.Producer)
    confluent_kafka.Consumer = counting(confluent_kafka.Consumer)


def read(path: Path) -> dict[str, Counter[str]]:
    """Requests so far per client label (clients of one label summed), `msgs` included."""
    try:
        clients = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    totals: dict[str, Counter[str]] = {}
    for entry in clients.values():
        counter = totals.setdefault(f"{entry['label']} ({entry['type']})", Counter())
        counter.update(entry["req"])
        counter["msgs"] += entry["msgs"]
    return totals


def main() -> None:
    out = Path(sys.argv[1])
    mode, target, *rest = sys.argv[2:]
    install(out)
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif mode == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    else:
        raise SystemExit(f"usage: {Path(__file__).name} OUT.json (-m MODULE | -c CODE) ARGS...")


if __name__ == "__main__":
    main()
