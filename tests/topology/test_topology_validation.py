"""Every validation rule, table-driven: the message and the line it points at.

Each case's YAML marks the expected line with `# <-`; the case passes when a
problem on that line contains the expected words.
"""

from __future__ import annotations

import textwrap

import pytest

from engine.topology import TopologyError, compile_topology, load_text

from .helpers import compile_text, marked_lines, model, pipeline

CASES: list[tuple[str, str, str]] = [
    # --- references ---------------------------------------------------------------------
    (
        "unknown step in inputs",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs:
              - nope.outputs  # <-
            output: {steps: [b]}
        """,
        ),
        "names no step 'nope'; steps are: a, b",
    ),
    (
        "unknown step in triggers",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              triggers:
              - ghost.outputs.OK  # <-
            output: {steps: [b]}
        """,
        ),
        "names no step 'ghost'",
    ),
    (
        "output step that is not a step",
        pipeline(
            "p",
            """
            steps:
            - name: a
            output:
              steps:
              - iris  # <-
        """,
        ),
        "names no step 'iris'; steps are: a",
    ),
    (
        "misspelt step suggests the close name",
        pipeline(
            "p",
            """
            steps:
            - name: tfsimple1
            - name: tfsimple2
              inputs: [tfsimpel1.outputs]  # <-
            output: {steps: [tfsimple2]}
        """,
        ),
        "did you mean 'tfsimple1'?",
    ),
    (
        "port that is neither inputs nor outputs",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs:
              - a.OUTPUT0  # <-
            output: {steps: [b]}
        """,
        ),
        "did you mean 'a.outputs.OUTPUT0'?",
    ),
    (
        "misspelt port",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs:
              - a.output.X  # <-
            output: {steps: [b]}
        """,
        ),
        "did you mean 'a.outputs'?",
    ),
    (
        "empty part between dots",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs:
              - a..X  # <-
            output: {steps: [b]}
        """,
        ),
        "malformed reference 'a..X'",
    ),
    (
        "empty input item",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs:
              -  # <-
            output: {steps: [b]}
        """,
        ),
        "empty reference in inputs",
    ),
    (
        "empty trigger item",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs: [a]
              triggers:
              -  # <-
            output: {steps: [b]}
        """,
        ),
        "empty reference in triggers",
    ),
    (
        "reference listed twice",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs:
              - a.outputs
              - a  # <-
            output: {steps: [b]}
        """,
        ),
        "listed twice",
    ),
    (
        "step reads the pipeline's own outputs",
        pipeline(
            "p",
            """
            steps:
            - name: a
              inputs: [p.outputs]  # <-
            output: {steps: [a]}
        """,
        ),
        "reads the pipeline's own outputs",
    ),
    (
        "step reads another pipeline's step directly",
        pipeline(
            "p",
            """
            steps:
            - name: a
              inputs: [q.step.x.outputs]  # <-
            output: {steps: [a]}
        """,
        ),
        "spec.input.externalInputs",
    ),
    (
        "step reads another pipeline directly",
        pipeline(
            "q",
            """
            steps: [{name: x}]
            output: {steps: [x]}
        """,
        )
        + "---\n"
        + pipeline(
            "p",
            """
            steps:
            - name: a
              inputs: [q.outputs]  # <-
            output: {steps: [a]}
        """,
        ),
        "reads pipeline 'q'",
    ),
    (
        "output lists the pipeline's inputs",
        pipeline(
            "p",
            """
            steps: [{name: a}]
            output:
              steps:
              - p.inputs  # <-
        """,
        ),
        "is the pipeline's inputs, not a step",
    ),
    # --- external references (pipeline-to-pipeline) ------------------------------------
    (
        "external input of an unknown pipeline",
        pipeline(
            "p",
            """
            input:
              externalInputs:
              - elsewhere.outputs  # <-
            steps: [{name: a}]
            output: {steps: [a]}
        """,
        ),
        "names no pipeline 'elsewhere'",
    ),
    (
        "external input of an unknown step of a known pipeline",
        pipeline(
            "q",
            """
            steps: [{name: x}]
            output: {steps: [x]}
        """,
        )
        + "---\n"
        + pipeline(
            "p",
            """
            input:
              externalInputs:
              - q.step.y.outputs  # <-
            steps: [{name: a}]
            output: {steps: [a]}
        """,
        ),
        "pipeline 'q' has no step 'y'; its steps are: x",
    ),
    (
        "external input of the pipeline itself",
        pipeline(
            "p",
            """
            input:
              externalInputs:
              - p.outputs  # <-
            steps: [{name: a}]
            output: {steps: [a]}
        """,
        ),
        "is this pipeline itself",
    ),
    (
        "external triggers without external inputs",
        pipeline(
            "q",
            """
            steps: [{name: x}]
            output: {steps: [x]}
        """,
        )
        + "---\n"
        + pipeline(
            "p",
            """
            input:
              externalTriggers:  # <-
              - q.outputs
            steps: [{name: a}]
            output: {steps: [a]}
        """,
        ),
        "externalTriggers without externalInputs",
    ),
    (
        "input tensorMap without external inputs",
        pipeline(
            "p",
            """
            input:
              tensorMap:  # <-
                p.inputs.X: Y
            steps: [{name: a}]
            output: {steps: [a]}
        """,
        ),
        "renames nothing",
    ),
    # --- names --------------------------------------------------------------------------
    (
        "step named like its pipeline",
        pipeline(
            "iris",
            """
            steps:
            - name: iris  # <-
            output: {steps: [iris]}
        """,
        ),
        "step is named like its pipeline 'iris'",
    ),
    (
        "duplicate step names",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: a  # <-
            output: {steps: [a]}
        """,
        ),
        "two steps have this name",
    ),
    (
        "duplicate pipeline names",
        pipeline(
            "p",
            """
            steps: [{name: a}]
            output: {steps: [a]}
        """,
        )
        + "---\n"
        + pipeline(
            "p",
            """
            steps: [{name: b}]
            output: {steps: [b]}
        """,
        ).replace("  name: p", "  name: p  # <-"),
        "duplicate Pipeline name; already declared at case.yaml:1",
    ),
    (
        "duplicate model names",
        model("m").replace("  name: m", "  name: m")
        + model("m").replace("  name: m\n", "  name: m  # <-\n"),
        "duplicate Model name",
    ),
    (
        "name with a dot",
        pipeline(
            "p",
            """
            steps:
            - name: a.b  # <-
            output: {steps: [a]}
        """,
        ),
        "step name 'a.b' is not allowed",
    ),
    (
        "missing metadata.name",
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:  # <-\n  labels: {}\nspec:\n  steps: [{name: a}]\n",
        "missing metadata.name",
    ),
    (
        "missing kind",
        "apiVersion: mlops.seldon.io/v1alpha1  # <-\nmetadata:\n  name: x\n",
        "missing 'kind'",
    ),
    (
        "step without a name",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - inputs: [a]  # <-
            output: {steps: [a]}
        """,
        ),
        "spec.steps[1].name: required field missing",
    ),
    (
        "duplicate YAML key",
        pipeline(
            "p",
            """
            steps: [{name: a}]
            output: {steps: [a]}
            output: {steps: [a]}  # <-
        """,
        ),
        "key 'output' appears twice",
    ),
    (
        "not YAML",
        "kind: Pipeline\nmetadata: {name: p\nspec: [  # <-\n",
        "not valid YAML",
    ),
    # --- cycles -------------------------------------------------------------------------
    (
        "cycle without allowCycles",
        pipeline(
            "p",
            """
            steps:
            - name: a  # <-
              inputs: [p.inputs, b]
              inputsJoinType: any
            - name: b
              inputs: [a]
            output: {steps: [b]}
        """,
        ),
        "steps form a cycle",
    ),
    (
        "three-step cycle named in data-flow order",
        pipeline(
            "p",
            """
            steps:
            - name: a  # <-
              inputs: [c]
            - name: b
              inputs: [a]
            - name: c
              inputs: [b]
            output: {steps: [c]}
        """,
        ),
        "steps form a cycle a -> b -> c -> a",
    ),
    (
        "step reading itself",
        pipeline(
            "p",
            """
            steps:
            - name: a  # <-
              inputs: [a.outputs.X]
            output: {steps: [a]}
        """,
        ),
        "cycle a -> a",
    ),
    (
        "negative maxStepRevisits",
        pipeline(
            "p",
            """
            allowCycles: true
            maxStepRevisits: -1  # <-
            steps: [{name: a}]
            output: {steps: [a]}
        """,
        ),
        "maxStepRevisits is -1",
    ),
    # --- tensorMap ----------------------------------------------------------------------
    (
        "tensorMap key that matches no input",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs: [a.outputs.X]
              tensorMap:
                a.outputs.Y: Z  # <-
            output: {steps: [b]}
        """,
        ),
        "tensorMap key 'a.outputs.Y' matches no input or trigger (it reads: a.outputs.X)",
    ),
    (
        "tensorMap key without a tensor",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs: [a]
              tensorMap:
                a.outputs: Z  # <-
            output: {steps: [b]}
        """,
        ),
        "names no tensor; write 'a.outputs.TENSOR'",
    ),
    (
        "tensorMap key naming an unknown step",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              inputs: [a]
              tensorMap:
                c.outputs.X: Z  # <-
            output: {steps: [b]}
        """,
        ),
        "tensorMap key: 'c.outputs.X' names no step 'c'",
    ),
    (
        "misspelt inputs field leaves a tensorMap dangling",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b
              input: [a.outputs.X]
              tensorMap:
                a.outputs.X: Z  # <-
            output: {steps: [b]}
        """,
        ),
        "unknown field 'input': did you mean 'inputs'?",
    ),
    (
        "output tensorMap key that matches no output step",
        pipeline(
            "p",
            """
            steps: [{name: a}, {name: b}]
            output:
              steps: [a]
              tensorMap:
                b.outputs.X: Y  # <-
        """,
        ),
        "matches no input or trigger",
    ),
    # --- join types and windows ---------------------------------------------------------
    (
        "bad inputsJoinType",
        pipeline(
            "p",
            """
            steps:
            - name: a
              inputsJoinType: all  # <-
            output: {steps: [a]}
        """,
        ),
        "must be 'inner', 'outer' or 'any' (got 'all')",
    ),
    (
        "bad triggersJoinType",
        pipeline(
            "p",
            """
            steps:
            - name: a
              triggersJoinType: left  # <-
            output: {steps: [a]}
        """,
        ),
        "triggersJoinType: must be 'inner', 'outer' or 'any'",
    ),
    (
        "bad stepsJoin",
        pipeline(
            "p",
            """
            steps: [{name: a}]
            output:
              steps: [a]
              stepsJoin: first  # <-
        """,
        ),
        "spec.output.stepsJoin",
    ),
    (
        "negative joinWindowMs",
        pipeline(
            "p",
            """
            steps:
            - name: a
              joinWindowMs: -5  # <-
            output: {steps: [a]}
        """,
        ),
        "joinWindowMs is -5; it cannot be negative",
    ),
    (
        "negative output joinWindowMs",
        pipeline(
            "p",
            """
            steps: [{name: a}]
            output:
              steps: [a]
              joinWindowMs: -1  # <-
        """,
        ),
        "joinWindowMs is -1",
    ),
    (
        "joinWindowMs that is not a number",
        pipeline(
            "p",
            """
            steps:
            - name: a
              joinWindowMs: soon  # <-
            output: {steps: [a]}
        """,
        ),
        "valid integer",
    ),
    # --- batch --------------------------------------------------------------------------
    (
        "negative batch size",
        pipeline(
            "p",
            """
            steps:
            - name: a
              batch:
                size: -2  # <-
            output: {steps: [a]}
        """,
        ),
        "batch size is -2; it must be positive",
    ),
    (
        "zero batch size",
        pipeline(
            "p",
            """
            steps:
            - name: a
              batch:
                size: 0  # <-
            output: {steps: [a]}
        """,
        ),
        "batch size is 0",
    ),
    (
        "negative batch window",
        pipeline(
            "p",
            """
            steps:
            - name: a
              batch:
                size: 2
                windowMs: -10  # <-
            output: {steps: [a]}
        """,
        ),
        "batch windowMs is -10",
    ),
    (
        "batch with neither size nor window",
        pipeline(
            "p",
            """
            steps:
            - name: a
              batch:  # <-
                rolling: true
            output: {steps: [a]}
        """,
        ),
        "batch needs a size or a windowMs",
    ),
    # --- models -------------------------------------------------------------------------
    (
        "step model not declared when models are given",
        pipeline(
            "p",
            """
            steps:
            - name: a
            - name: b  # <-
              inputs: [a]
            output: {steps: [b]}
        """,
        )
        + model("a"),
        "no Model 'b' is declared",
    ),
    (
        "model without storageUri",
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: m\nspec:  # <-\n  requirements: [python]\n",
        "spec.storageUri is missing",
    ),
    (
        "model timeout that is not a number of seconds",
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: m\nspec:\n"
        "  storageUri: ./m\n  parameters:\n  - name: timeout\n    value: soon  # <-\n",
        "parameter timeout is 'soon'; give a positive number of seconds",
    ),
    (
        "model timeout of zero",
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: m\nspec:\n"
        "  storageUri: ./m\n  parameters:\n  - name: timeout\n    value: 0  # <-\n",
        "parameter timeout is 0; give a positive number of seconds",
    ),
    (
        "pipeline without steps",
        pipeline(
            "p",
            """
            steps: []  # <-
        """,
        ),
        "the pipeline has no steps",
    ),
]


def experiment(body: str) -> str:
    head = "apiVersion: mlops.seldon.io/v1alpha1\nkind: Experiment\nmetadata:\n  name: e\nspec:\n"
    return head + textwrap.indent(textwrap.dedent(body), "  ")


EXPERIMENT_CASES: list[tuple[str, str, str]] = [
    (
        "experiment weights all zero",
        experiment("""
            candidates:  # <-
            - name: a
              weight: 0
            - name: b
              weight: 0
        """),
        "every candidate has weight 0",
    ),
    (
        "experiment weight negative",
        experiment("""
            candidates:
            - name: a
              weight: -1  # <-
        """),
        "weight -1",
    ),
    (
        "experiment default not a candidate",
        experiment("""
            default: c  # <-
            candidates:
            - {name: a, weight: 1}
        """),
        "default 'c' is not among the candidates (a)",
    ),
    (
        "experiment candidate not a declared model",
        experiment("""
            candidates:
            - {name: a, weight: 1}
            - name: ghost  # <-
              weight: 1
        """)
        + model("a"),
        "candidate 'ghost' is not a declared model",
    ),
    (
        "experiment candidate not a known pipeline",
        experiment("""
            resourceType: pipeline
            candidates:
            - name: nowhere  # <-
              weight: 1
        """),
        "candidate 'nowhere' is not a declared pipeline",
    ),
    (
        "experiment candidate listed twice",
        experiment("""
            candidates:
            - {name: a, weight: 1}
            - {name: a, weight: 2}  # <-
        """),
        "listed twice",
    ),
    (
        "experiment mirror percent out of range",
        experiment("""
            candidates:
            - {name: a, weight: 1}
            mirror:
              name: b
              percent: 150  # <-
        """),
        "mirror percent is 150",
    ),
    (
        "experiment without candidates",
        experiment("""
            candidates: []  # <-
        """),
        "spec.candidates is empty",
    ),
    (
        "experiment with a bad resourceType",
        experiment("""
            resourceType: server  # <-
            candidates:
            - {name: a, weight: 1}
        """),
        "must be 'model' or 'pipeline'",
    ),
]

ALL_CASES = CASES + EXPERIMENT_CASES


def test_there_are_enough_cases() -> None:
    assert len(ALL_CASES) >= 30


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in ALL_CASES], ids=[case[0] for case in ALL_CASES]
)
def test_rule(text: str, expected: str) -> None:
    _, problems, warnings = compile_text(text)
    (line,) = marked_lines(text)
    reported = [*problems, *warnings]
    matching = [p for p in reported if expected in str(p)]
    assert matching, f"no problem says {expected!r}; got:\n" + "\n".join(map(str, reported))
    assert line in {p.line for p in matching}, "\n".join(map(str, matching))
    assert problems, "the case must be rejected, not only warned about"
    for problem in problems:
        assert str(problem).startswith(f"case.yaml:{problem.line}: ")


def test_a_file_with_three_mistakes_reports_all_three_with_lines() -> None:
    text = pipeline(
        "p",
        """
        steps:
        - name: a
          joinWindowMs: -1  # <-
        - name: b
          inputs: [missing.outputs]  # <-
          inputsJoinType: sideways  # <-
        output: {steps: [b]}
    """,
    )
    with pytest.raises(TopologyError):
        load_text(textwrap.dedent(text), "three.yaml")
    # `sideways` fails while reading the spec; the rest is still compiled, so
    # reading and compiling together (what `validate` does) finds all three.
    topology, problems, _ = compile_text(text)
    assert sorted(p.line for p in problems) == marked_lines(text)
    assert all("pipeline 'p'" in str(p) for p in problems)
    assert "p" not in topology.pipelines


def test_three_semantic_mistakes_raise_together() -> None:
    text = pipeline(
        "p",
        """
        steps:
        - name: a
          joinWindowMs: -1  # <-
        - name: b
          inputs: [missing.outputs]  # <-
          batch: {size: 0}  # <-
        output: {steps: [b]}
    """,
    )
    with pytest.raises(TopologyError) as raised:
        compile_topology(load_text(textwrap.dedent(text), "three.yaml"))
    problems = raised.value.problems
    assert [p.line for p in problems] == marked_lines(text)
    message = str(raised.value)
    assert message.startswith("3 problems in the specs")
    first = marked_lines(text)[0]
    assert f"three.yaml:{first}: pipeline 'p' step 'a': joinWindowMs is -1" in message
