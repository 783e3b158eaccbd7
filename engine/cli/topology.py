"""`tensorflux validate` and `tensorflux describe`: check specs and show the compiled graph.

Nothing here touches Kafka, unless asked: `validate --bootstrap` checks the partition
counts of the topics joins read (`copartition_check.py`), `describe` without files
reads the running engine's resources. Topic names follow `--topic-prefix`/`--namespace`
(or `TENSORFLUX_TOPIC_PREFIX`/`TENSORFLUX_NAMESPACE`, as for the other commands).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from engine.cli.errors import UnknownPipeline
from engine.topology.errors import Problem, TopologyError
from engine.topology.topics import TopicNames

# The spec models and the compiler load in the handlers: the parser of every command
# (this module's `register` runs for all of them) stays cheap.


def register(subparsers: argparse._SubParsersAction) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check Model/Pipeline/Experiment YAML without touching Kafka",
        description="Load and compile every resource; print one OK line per resource, "
        "or every problem (file:line, resource, step, how to fix) on stderr and exit 1.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML files or directories")
    _topic_options(validate)
    kafka = validate.add_argument_group("Kafka (optional)")
    kafka.add_argument(
        "--bootstrap",
        "--kafka-broker",
        dest="bootstrap",
        metavar="HOST:PORT",
        help="also check, on this Kafka, that the topics each join reads have one partition "
        "count, as the worker does at load (without it nothing touches Kafka)",
    )
    kafka.add_argument(
        "--partitions",
        type=int,
        help="with --bootstrap: the count the worker makes missing topics with "
        "(its --partitions; default: TENSORFLUX_PARTITIONS, else 4)",
    )
    kafka.add_argument(
        "--kafka-config", metavar="FILE", help="librdkafka properties file (key=value lines)"
    )
    validate.set_defaults(handler=run_validate)

    describe = subparsers.add_parser(
        "describe",
        help="show a pipeline's compiled graph (steps, edges, joins, topics)",
        description="Compile the specs and print one pipeline's graph as text or Mermaid.",
    )
    describe.add_argument("pipeline", metavar="PIPELINE", help="pipeline name")
    describe.add_argument(
        "-f",
        "--file",
        dest="files",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="YAML files or directories (repeatable); without it, what a running engine has loaded",
    )
    describe.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka of the running engine, when no -f is given (default: TENSORFLUX_BOOTSTRAP)",
    )
    describe.add_argument("--mermaid", action="store_true", help="print a Mermaid flowchart")
    _topic_options(describe)
    describe.set_defaults(handler=run_describe)


def _topic_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic-prefix",
        help="first part of every topic name (default: TENSORFLUX_TOPIC_PREFIX, else tensorflux)",
    )
    parser.add_argument(
        "--namespace",
        help="second part of every topic name (default: TENSORFLUX_NAMESPACE, else default)",
    )


def _topics(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> TopicNames:
    """The naming scheme, the environment read when the command runs (not at parser build)."""
    environ = os.environ if environ is None else environ
    return TopicNames(
        prefix=args.topic_prefix or environ.get("TENSORFLUX_TOPIC_PREFIX") or "tensorflux",
        namespace=args.namespace or environ.get("TENSORFLUX_NAMESPACE") or "default",
    )


def _print_warnings(warnings: list[Problem]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def run_validate(args: argparse.Namespace) -> int:
    from engine.topology import compile_collecting, read_files

    specs = read_files(args.files)
    signatures = _onnx_signatures(specs.models)
    topics = _topics(args)
    topology, problems, warnings = compile_collecting(specs, topics, signatures=signatures)
    _print_warnings(warnings)
    if args.bootstrap:
        from engine.cli.copartition_check import copartition_problems
        from engine.cli.options import settings_from

        problems = [*problems, *copartition_problems(specs, topology, topics, settings_from(args))]
    failed = {problem.resource for problem in problems}
    for kind, name in specs.resources():
        resource = f"{kind.lower()} '{name}'"
        if resource not in failed:
            file, line = specs.origin(kind, name)  # type: ignore[arg-type]
            print(f"OK {kind} {name} ({file}:{line})")
    if problems:
        count = len(problems)
        print(f"{count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


def _onnx_signatures(
    models: Mapping[str, object],
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """(input names, output names) of the ONNX models among `models`, read from their files (cheap:
    no other runtime is imported), so validate can tell which tensor names meet where. A
    model it cannot read here is left out; loading it reports why."""
    from engine.runtimes import resolve_artifact
    from engine.runtimes.errors import ModelLoadError

    found: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for name, spec in models.items():
        try:
            kind, path = resolve_artifact(spec)  # type: ignore[arg-type]
        except ModelLoadError:
            continue
        if kind != "onnx":
            continue
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - a bad file is the loader's to report
            continue
        found[name] = (
            tuple(tensor.name for tensor in session.get_inputs()),
            tuple(tensor.name for tensor in session.get_outputs()),
        )
    return found


def run_describe(args: argparse.Namespace) -> int:
    from engine.topology import compile_collecting, describe_mermaid, describe_text, read_files

    if args.files:
        specs = read_files(args.files)
        topology, problems, warnings = compile_collecting(specs, _topics(args))
        _print_warnings(warnings)
        if problems:
            raise TopologyError(problems)
        where = " ".join(args.files)
    else:
        topology, where = _loaded_topology(args), "the running engine"
    graph = topology.pipelines.get(args.pipeline)
    if graph is None:
        raise UnknownPipeline(args.pipeline, f"in {where}", sorted(topology.pipelines), "(none)")
    print(describe_mermaid(graph) if args.mermaid else describe_text(graph), end="")
    return 0


def _loaded_topology(args: argparse.Namespace):
    """What the engine's control topic holds (imports Kafka only on this path)."""
    from engine.config import KafkaSettings
    from engine.runtime.control import ControlPlane, compile_documents

    settings = KafkaSettings.load(
        bootstrap=args.bootstrap, namespace=args.namespace, topic_prefix=args.topic_prefix
    )
    plane = ControlPlane(settings)
    try:
        documents = plane.loaded()
    finally:
        plane.close()
    topology, _ = compile_documents(documents, _topics(args))
    return topology
