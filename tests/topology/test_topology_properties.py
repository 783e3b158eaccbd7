"""Property tests: random DAG pipelines compile, and `describe` round-trips their edges.

The expected edges are computed from the generated spec, not from the compiled
graph, so the test checks reference normalisation, tensorMap resolution and
the renderer together.
"""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.topology import compile_topology, describe_mermaid, describe_text, load_text
from engine.topology.describe import parse_edges

PIPELINE = "random-pipe"
JOINS = st.sampled_from(["inner", "outer", "any"])
TENSORS = ["OUTPUT0", "OUTPUT1", "T"]


@st.composite
def dag_pipelines(draw: st.DrawFn) -> tuple[dict, set[tuple]]:
    count = draw(st.integers(min_value=1, max_value=7))
    names = [f"s{index}" for index in range(count)]
    steps: list[dict] = []
    edges: set[tuple] = set()
    for index, name in enumerate(names):
        step: dict = {"name": name}
        earlier = names[:index]
        chosen = (
            draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        )
        inputs, tensor_map = [], {}
        for source in chosen:
            form = draw(st.sampled_from(["bare", "port", "tensor", "renamed"]))
            if form == "bare":
                inputs.append(source)
                edges.add((f"{source}.outputs", (), f"step {name}", False))
            elif form == "port":
                inputs.append(f"{source}.outputs")
                edges.add((f"{source}.outputs", (), f"step {name}", False))
            else:
                tensor = draw(st.sampled_from(TENSORS))
                inputs.append(f"{source}.outputs.{tensor}")
                renames: tuple = ()
                if form == "renamed":
                    tensor_map[f"{source}.outputs.{tensor}"] = f"IN_{source}"
                    renames = ((tensor, f"IN_{source}"),)
                edges.add((f"{source}.outputs.{tensor}", renames, f"step {name}", False))
        if draw(st.booleans()):
            tensor = draw(st.sampled_from(TENSORS))
            inputs.append(f"{PIPELINE}.inputs.{tensor}")
            edges.add((f"{PIPELINE}.inputs.{tensor}", (), f"step {name}", False))
        if inputs:
            step["inputs"] = inputs
            step["inputsJoinType"] = draw(JOINS)
        else:
            edges.add((f"{PIPELINE}.inputs", (), f"step {name}", False))
        remaining = [s for s in earlier if s not in chosen]
        if remaining and draw(st.booleans()):
            trigger = draw(st.sampled_from(remaining))
            step["triggers"] = [f"{trigger}.outputs.OK"]
            step["triggersJoinType"] = draw(JOINS)
            edges.add((f"{trigger}.outputs.OK", (), f"step {name}", True))
        if tensor_map:
            step["tensorMap"] = tensor_map
        if draw(st.booleans()):
            step["joinWindowMs"] = draw(st.integers(min_value=0, max_value=120_000))
        steps.append(step)
    outputs = draw(st.lists(st.sampled_from(names), unique=True, min_size=1, max_size=3))
    edges.update((f"{name}.outputs", (), "output", False) for name in outputs)
    # Declare the steps in any order: the compiler must find the topological one.
    shuffled = draw(st.permutations(steps))
    spec = {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": PIPELINE},
        "spec": {"steps": list(shuffled), "output": {"steps": outputs, "stepsJoin": draw(JOINS)}},
    }
    return spec, edges


@settings(max_examples=150, deadline=None)
@given(dag_pipelines())
def test_random_dag_compiles_and_describe_round_trips_edges(case: tuple[dict, set[tuple]]) -> None:
    spec, expected_edges = case
    graph = compile_topology(load_text(yaml.safe_dump(spec))).pipelines[PIPELINE]
    order = [node.name for node in graph.steps]
    assert sorted(order) == sorted(step["name"] for step in spec["spec"]["steps"])
    position = {name: index for index, name in enumerate(order)}
    for node in graph.steps:
        for source in node.sources():
            if source.ref.step is not None:
                assert position[source.ref.step] < position[node.name]
    text = describe_text(graph)
    assert set(parse_edges(text)) == expected_edges
    assert len(parse_edges(text)) == len(expected_edges)
    mermaid = describe_mermaid(graph)
    arrows = sum(line.count("-->") + line.count("-.->") for line in mermaid.splitlines())
    assert arrows == len(expected_edges)
