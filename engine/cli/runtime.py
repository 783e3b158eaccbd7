"""`tensorflux up` (everything in one process) and `tensorflux worker` (a scale-out unit)."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import TYPE_CHECKING, Any

from engine.broker import EmbeddedBroker
from engine.cli.gateway import (
    add_limit_options,
    add_security_options,
    add_wire_option,
    security_from,
    seldon_wire,
)
from engine.cli.options import (
    add_kafka_options,
    add_log_options,
    add_shutdown_option,
    configure_logging,
    settings_from,
)
from engine.cli.stopping import stop_on_signals

if TYPE_CHECKING:
    from engine.config import KafkaSettings
    from engine.runtime.service import WorkerService
    from engine.runtime.settings import WorkerSettings
    from engine.runtimes import ModelHosts, ModelRoots

# The runtime (numpy, onnxruntime, the model runtimes) is imported when `up` or `worker`
# starts, not when the parser is built: every other command starts without it.

log = logging.getLogger("tensorflux")


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser(
        "up",
        help="all in one: embedded broker (unless --bootstrap), a worker, the HTTP gateway",
        description="Start the engine: the embedded broker unless --bootstrap is given, load "
        "the specs, run a worker and the Open Inference Protocol gateway until Ctrl-C.",
    )
    up.add_argument("-f", "--file", dest="files", action="append", default=[], metavar="SPECS")
    up.add_argument(
        "--broker-port", type=int, default=9092, help="embedded broker port (0: any free)"
    )
    up.add_argument("--http-port", type=int, default=9000, help="gateway port")
    up.add_argument("--http-host", default="127.0.0.1")
    up.add_argument(
        "--grpc-port",
        type=int,
        metavar="PORT",
        help="also serve OIP gRPC (KServe V2) on this port, e.g. 9500 (default: no gRPC)",
    )
    up.add_argument("--no-gateway", action="store_true", help="run no HTTP gateway")
    add_log_options(up)
    add_wire_option(up)
    _add_model_roots_option(up, default="the directories of the -f specs' models and the cwd")
    _add_model_hosts_option(up)
    _add_guarantee_option(up)
    add_limit_options(up)
    add_security_options(up)
    add_kafka_options(up)
    up.set_defaults(handler=run_up)

    worker = subparsers.add_parser(
        "worker",
        help="run a worker: it follows the control topic; -f loads specs first",
        description="Run one worker of the namespace's consumer group. Workers split the "
        "partitions between them; start as many as you have cores.",
    )
    worker.add_argument("-f", "--file", dest="files", action="append", default=[], metavar="SPECS")
    worker.add_argument(
        "--worker-id", help="name in status reports (default: host and a random suffix)"
    )
    worker.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (/metrics)"
    )
    worker.add_argument(
        "--health-port",
        type=int,
        help="serve /health/live, /health/ready and /metrics on this port (for probes)",
    )
    add_log_options(worker)
    add_wire_option(worker)
    _add_model_roots_option(worker, default="the directories of the -f specs' models")
    _add_model_hosts_option(worker)
    _add_guarantee_option(worker)
    add_shutdown_option(worker)
    add_kafka_options(worker)
    worker.set_defaults(handler=run_worker)


def _add_model_roots_option(parser: argparse.ArgumentParser, *, default: str) -> None:
    parser.add_argument(
        "--model-root",
        dest="model_roots",
        action="append",
        default=[],
        metavar="DIR",
        help="load model artifacts only from under DIR (repeatable; also "
        f"TENSORFLUX_MODEL_ROOTS); default: {default}. Specs from the control topic "
        "that point elsewhere fail without being read",
    )


def _add_model_hosts_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-host",
        dest="model_hosts",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="remote models (oip+http/oip+grpc storageUri) may call only this host "
        "(repeatable; without a port: any port; also TENSORFLUX_MODEL_HOSTS, comma-separated); "
        "default: the hosts of the -f specs' remote models. Specs from the control topic "
        "naming another host fail without connecting",
    )


def _add_guarantee_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processing-guarantee",
        choices=("at-least-once", "exactly-once"),
        help="at-least-once (default; also TENSORFLUX_PROCESSING_GUARANTEE): a request may be "
        "answered twice after a failure; exactly-once: each chunk's records and offsets commit "
        "in one Kafka transaction (real Kafka only: tansu does not hide aborted records)",
    )


def worker_settings(args: argparse.Namespace) -> WorkerSettings:
    from engine.runtime.settings import WorkerSettings

    return WorkerSettings.load(processing_guarantee=args.processing_guarantee)


def model_roots(args: argparse.Namespace, *, include_cwd: bool) -> ModelRoots:
    """The roots this process may load from (see engine.runtimes.roots)."""
    from engine.runtimes import ModelRoots
    from engine.topology import load_files

    specs = load_files(args.files).models.values() if args.files else ()
    roots = ModelRoots.configured(args.model_roots, specs, include_cwd=include_cwd)
    log.info("model roots: %s", ", ".join(map(str, roots.roots)) or "none (no model can load)")
    return roots


def model_hosts(args: argparse.Namespace) -> ModelHosts:
    """The hosts this process's remote models may call (see engine.runtimes.hosts)."""
    from engine.runtimes import ModelHosts
    from engine.topology import load_files

    specs = load_files(args.files).models.values() if args.files else ()
    try:
        hosts = ModelHosts.configured(args.model_hosts, specs)
    except ValueError as error:
        raise SystemExit(f"tensorflux: {error}") from None
    if hosts.entries:
        log.info("model hosts: %s", ", ".join(map(str, hosts.entries)))
    return hosts


def load_specs(settings: KafkaSettings, files: list[str]) -> None:
    if not files:
        return
    from engine.runtime.control import ControlPlane

    plane = ControlPlane(settings)
    try:
        for resource in plane.load(files):
            log.info("%s", resource)
    finally:
        plane.close()


def run_worker(args: argparse.Namespace) -> int:
    from engine.runtime import gc_tuning
    from engine.runtime.service import WorkerService

    configure_logging(args.verbose, args.log_format)
    stop = stop_on_signals()
    settings = settings_from(args)
    service: WorkerService | None = None
    health = None
    if args.health_port is not None:
        from engine.health import HealthServer

        # Up before the specs load, so a startup probe on /health/live is answered.
        health = HealthServer(
            args.health_port, ready=lambda: service is not None and service.worker.ready()
        ).start()
    try:
        load_specs(settings, args.files)
        if args.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port)
        service = WorkerService(
            settings,
            worker_id=args.worker_id,
            worker_settings=worker_settings(args),
            model_roots=model_roots(args, include_cwd=False),
            model_hosts=model_hosts(args),
        )
        log.info(
            "worker %s serving namespace '%s' on %s",
            service.worker_id,
            settings.namespace,
            settings.bootstrap,
        )
        bridge = seldon_wire(args, settings)
        gc_tuning.settle()  # this process is a worker from now on
        try:
            service.run(stop, grace_s=args.shutdown_grace)
        finally:
            if bridge is not None:
                bridge.close()
        return 0
    finally:
        if health is not None:
            health.stop()


def run_up(args: argparse.Namespace) -> int:
    from engine.runtime import gc_tuning
    from engine.runtime.service import WorkerService

    configure_logging(args.verbose, args.log_format)
    stop = stop_on_signals()
    security = security_from(args)  # a bad token or TLS file fails before anything starts
    broker = None
    if not args.bootstrap:
        broker = EmbeddedBroker(port=args.broker_port).start()
        args.bootstrap = broker.bootstrap
        log.info("embedded broker ready: bootstrap %s (memory only)", broker.bootstrap)
    threads: list[threading.Thread] = []
    # The worker stops after the gateway drained: the requests the gateway still
    # waits for during its grace need the worker to answer them.
    worker_stop = threading.Event()
    bridge = None
    try:
        settings = settings_from(args)
        load_specs(settings, args.files)
        bridge = seldon_wire(args, settings)
        service = WorkerService(
            settings,
            worker_settings=worker_settings(args),
            model_roots=model_roots(args, include_cwd=True),
            model_hosts=model_hosts(args),
        )
        worker = threading.Thread(
            target=service.run,
            args=(worker_stop,),
            kwargs={"grace_s": args.shutdown_grace if args.no_gateway else 0.0},
            name="worker",
        )
        threads.append(worker)
        if not args.no_gateway:
            gateway = _gateway_thread(settings, args, stop, security)
            if gateway is None:
                args.no_gateway = True
            else:
                threads.append(gateway)
        gc_tuning.settle()  # a worker (and gateway) from now on, as `tensorflux worker`
        for thread in threads:
            thread.start()
        print(
            f"tensorflux up: bootstrap {settings.bootstrap}, namespace '{settings.namespace}'"
            + (
                ""
                if args.no_gateway
                else f", gateway {'https' if security[1] else 'http'}://"
                f"{args.http_host}:{args.http_port}/v2"
            )
            + " (Ctrl-C stops)",
            flush=True,
        )
        while not stop.wait(0.5):
            if broker is not None and not broker.running():
                log.error("embedded broker exited: %s", broker.log_tail())
                stop.set()
                return 1
            if not all(thread.is_alive() for thread in threads):
                log.error("a component stopped unexpectedly; shutting down")
                stop.set()
                return 1
        return 0
    finally:
        stop.set()
        started = [thread for thread in threads if thread.ident is not None]
        for thread in started:  # the gateway (draining) first, then the worker
            if thread.name != "worker":
                thread.join(args.shutdown_grace + 30)
        worker_stop.set()
        for thread in started:
            thread.join(30)
        if bridge is not None:
            bridge.close()
        if broker is not None:
            broker.stop()
        print("tensorflux stopped", flush=True)


def _gateway_thread(
    settings: KafkaSettings,
    args: argparse.Namespace,
    stop: threading.Event,
    security: tuple[Any, Any],
) -> threading.Thread | None:
    try:
        from engine.gateway import run_gateway
        from engine.gateway.catalog import ControlCatalog
    except ImportError as error:
        log.warning("no HTTP gateway in this build (%s)", error)
        return None

    catalog = ControlCatalog(settings, worker_in_process=True)

    def serve() -> None:
        try:
            tokens, tls = security
            run_gateway(
                settings,
                catalog,
                args.http_host,
                args.http_port,
                stop,
                tokens=tokens,
                tls=tls,
                grpc_port=args.grpc_port,
                max_request_bytes=args.max_request_bytes,
                shutdown_grace_s=args.shutdown_grace,
            )
        finally:
            catalog.close()

    return threading.Thread(target=serve, name="gateway")
