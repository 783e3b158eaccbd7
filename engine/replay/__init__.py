"""Replay recorded requests into a pipeline or model, diff the answers, trace lineage.

`run.replay` drives one replay: `endpoints` (SOURCE and target to topics),
`selection` and `reading` (exact bounds on either broker), `requests` (new ids,
lineage headers), `sending` (pace, window, answers), `runs` (state on Kafka for
`--resume`), `diff` and `divergence` (what changed and where), `report`. `trace`
lists one request's records. Kafka-facing, unlike `engine.topology`.
"""
