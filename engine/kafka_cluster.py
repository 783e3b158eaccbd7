"""A real Apache Kafka on demand: one KRaft node, or a cluster of three, on loopback.

Every node is a combined broker and controller whose storage is formatted in a
temporary folder that `stop()` deletes. Nodes are tied to their parent (a
parent-death SIGKILL on Linux), so a killed test run or `tensorflux broker
--kafka` leaves no JVM behind; the storage such a run leaves is swept by the
next start. The drills use `kill_node`, `stop_node` and `start_node` to fail
single nodes while the rest serve.

With `sasl_scram=(user, password)` the listener clients use demands
SASL/SCRAM-SHA-512 (SASL_PLAINTEXT): the user is written into the storage at
format time (`kafka-storage format --add-scram`, KRaft keeps credentials in its
metadata log), and the nodes talk to each other as that user. The controller
listener stays plaintext on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.broker import BrokerError, check_port_free, free_port
from engine.kafka_jars import find_java, jars_dir, kafka_version

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

READY_TIMEOUT_S = 180.0  # a JVM starting on two cores that other work keeps busy
STOP_TIMEOUT_S = 15.0  # a controlled shutdown hands leadership over first
_PR_SET_PDEATHSIG = 1
_OWNER = "owner.pid"
_LOG4J = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""
SCRAM_MECHANISM = "SCRAM-SHA-512"
_SCRAM_FORBIDDEN = set('",=[]\\ ')
"""Characters the format tool's `name=...,password=...` syntax or the JAAS line would misread."""


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL when the parent's thread ends.

    SIGKILL, not SIGTERM: a whole cluster told to stop at once spends its grace
    in controlled shutdowns that no controller answers, and the storage is
    thrown away anyway. Start nodes from a thread that lives as long as they do.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()  # Ctrl-C in a terminal goes to the parent, which stops us in order.


@dataclass
class KafkaNode:
    """One combined broker/controller: its id, ports, folder and process."""

    node_id: int
    port: int
    controller_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        log = self.folder / "kafka.log"
        if not log.exists():
            return ""
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])


class KafkaCluster:
    """`nodes` Apache Kafka nodes on `host`; the first listens on `port` (free if None or 0).

    With three nodes, topics default to replication factor 3 and
    `min.insync.replicas=2`, so one node may fail without losing a write.
    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        nodes: int = 1,
        host: str = "127.0.0.1",
        port: int | None = None,
        heap_mb: int | None = None,
        environ: Mapping[str, str] | None = None,
        broker_config: Mapping[str, str | int] | None = None,
        sasl_scram: tuple[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise BrokerError(f"a Kafka cluster needs at least one node, not {nodes}")
        if sasl_scram is not None:
            for what, value in zip(("user", "password"), sasl_scram, strict=True):
                if not value:
                    raise BrokerError(f"the SASL/SCRAM {what} must not be empty")
                if bad := sorted(set(value) & _SCRAM_FORBIDDEN):
                    raise BrokerError(f"the SASL/SCRAM {what} may not contain {bad}")
        self.sasl_scram = sasl_scram
        """(user, password) the client listener demands (SCRAM-SHA-512), or None: plaintext."""
        self.host = host
        self.port = port
        self.size = nodes
        self.heap_mb = heap_mb or (512 if nodes == 1 else 384)
        self.environ = dict(os.environ if environ is None else environ)
        self.broker_config = dict(broker_config or {})
        """Server properties over the defaults (e.g. a retention check every second)."""
        self.nodes: list[KafkaNode] = []
        self.folder: Path | None = None
        self.version = ""
        self._java = ""
        self._jars: Path | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{node.port}" for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        return min(3, self.size)

    @property
    def listener(self) -> str:
        """The security protocol (and listener name) clients connect with."""
        return "PLAINTEXT" if self.sasl_scram is None else "SASL_PLAINTEXT"

    def client_settings(self) -> dict[str, str]:
        """librdkafka settings a client needs besides the bootstrap (SASL, when demanded)."""
        if self.sasl_scram is None:
            return {}
        user, password = self.sasl_scram
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": user,
            "sasl.password": password,
        }

    def _admin(self) -> AdminClient:
        from confluent_kafka.admin import AdminClient

        return AdminClient(
            {"bootstrap.servers": self.bootstrap, "log_level": 0, **self.client_settings()}
        )

    def node(self, node_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise BrokerError(f"no Kafka node {node_id}; nodes are {[n.node_id for n in self.nodes]}")

    def start(self) -> KafkaCluster:
        self._java = find_java(self.environ)
        self._jars = jars_dir(self.environ)
        self.version = kafka_version()
        first = self.port or free_port(self.host)
        check_port_free(self.host, first)
        _sweep_orphaned_storage()
        self.folder = Path(tempfile.mkdtemp(prefix="tensorflux-kafka-"))
        (self.folder / _OWNER).write_text(str(os.getpid()))
        ports = [first] + [free_port(self.host) for _ in range(self.size - 1)]
        self.nodes = [
            KafkaNode(i + 1, ports[i], free_port(self.host), self.folder / f"node-{i + 1}")
            for i in range(self.size)
        ]
        self.port = first
        try:
            self._format()
            for node in self.nodes:
                self.start_node(node.node_id, wait=False)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _format(self) -> None:
        """Writes each node's configuration and formats its storage, all nodes at once."""
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the format tool would read it as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        voters = ",".join(f"{n.node_id}@{self.host}:{n.controller_port}" for n in self.nodes)
        formats = []
        for node in self.nodes:
            node.folder.mkdir(parents=True)
            (node.folder / "log4j2.yaml").write_text(_LOG4J)
            (node.folder / "server.properties").write_text(self._properties(node, voters))
            formats.append(
                subprocess.Popen(
                    self._java_command(
                        node,
                        "kafka.tools.StorageTool",
                        "format",
                        "-t",
                        cluster_id,
                        "-c",
                        str(node.folder / "server.properties"),
                        *self._scram_format_args(),
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )  # fmt: skip
            )
        for node, process in zip(self.nodes, formats, strict=True):
            output, _ = process.communicate(timeout=READY_TIMEOUT_S)
            if process.returncode != 0:
                tail = " | ".join(output.decode(errors="replace").strip().splitlines()[-3:])
                raise BrokerError(f"formatting Kafka node {node.node_id}'s storage failed: {tail}")

    def _scram_format_args(self) -> list[str]:
        if self.sasl_scram is None:
            return []
        user, password = self.sasl_scram
        return ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]

    def _sasl_properties(self) -> dict[str, str]:
        if self.sasl_scram is None:
            return {}
        user, password = self.sasl_scram
        login = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return {
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
                f'{login} required username="{user}" password="{password}";'
            ),
        }

    def _properties(self, node: KafkaNode, voters: str) -> str:
        replicas = self.replication_factor
        listener = self.listener
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"{listener}://{self.host}:{node.port},"
            f"CONTROLLER://{self.host}:{node.controller_port}",
            "advertised.listeners": f"{listener}://{self.host}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
            **self._sasl_properties(),
            "log.dirs": node.folder / "data",
            "num.partitions": 1,
            # As managed Kafka services do: tensorflux creates its topics itself,
            # and a topic a stray producer recreates would hide a deletion.
            "auto.create.topics.enable": "false",
            "default.replication.factor": replicas,
            "min.insync.replicas": min(2, replicas),
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": 10,  # 50 by default: slow to create, no use here
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min(2, replicas),
            "transaction.state.log.num.partitions": 10,
            # A new group is served at once, not after 3 s of waiting for more members.
            "group.initial.rebalance.delay.ms": 0,
            # KIP-848 groups (the workers'): heartbeats and session as the engine's
            # classic dev defaults (1 s, 6 s), not 5 s and 45 s, so a killed worker's
            # partitions move on within seconds, and a joining one gets its share soon.
            "group.consumer.min.heartbeat.interval.ms": 500,
            "group.consumer.heartbeat.interval.ms": 1000,
            "group.consumer.min.session.timeout.ms": 3000,
            "group.consumer.session.timeout.ms": 6000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            **self.broker_config,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java_command(self, node: KafkaNode, main: str, *args: str) -> list[str]:
        assert self._jars is not None
        return [
            self._java, f"-Xmx{self.heap_mb}m", "-Xms64m", "-XX:+UseG1GC",
            "-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1", "-XX:CICompilerCount=2",
            "-XX:+ExitOnOutOfMemoryError", "-XX:-UsePerfData", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.folder / 'log4j2.yaml'}",
            "-cp", f"{self._jars}/*", main, *args,
        ]  # fmt: skip

    def start_node(self, node_id: int, wait: bool = True) -> None:
        """Starts a node (again, on its storage and ports); waits until it serves."""
        node = self.node(node_id)
        if node.running():
            return
        with open(node.folder / "kafka.log", "ab") as log:
            node.process = subprocess.Popen(
                self._java_command(node, "kafka.Kafka", str(node.folder / "server.properties")),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        if wait:
            self.wait_ready()

    def kill_node(self, node_id: int) -> None:
        """SIGKILL: the node vanishes mid-write, as in a crash."""
        node = self.node(node_id)
        if node.process is not None:
            node.process.kill()
            node.process.wait()

    def stop_node(self, node_id: int) -> None:
        """SIGTERM: a controlled shutdown that hands the node's leaderships over first."""
        node = self.node(node_id)
        process = node.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Ready: a metadata request lists every running node as a broker."""
        admin = self._admin()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            wanted = {node.node_id for node in self.nodes if node.process is not None}
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise BrokerError(
                        f"Kafka node {node.node_id} exited (code {node.process.returncode}): "
                        f"{node.log_tail()}"
                    )
            with contextlib.suppress(Exception):
                if wanted <= set(admin.list_topics(timeout=2).brokers):
                    return
            time.sleep(0.1)
        raise BrokerError(f"Kafka at {self.bootstrap} not ready after {timeout_s:.0f}s")

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The node id that leads `topic`'s partition now (-1 while none does)."""
        admin = self._admin()
        metadata = admin.list_topics(topic, timeout=10)
        return metadata.topics[topic].partitions[partition].leader

    def wait_in_sync(self, timeout_s: float = 120.0) -> None:
        """Waits until every partition of every topic has all its replicas in sync."""
        admin = self._admin()
        deadline = time.monotonic() + timeout_s
        lagging: list[str] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                topics = admin.list_topics(timeout=5).topics.values()
                lagging = [
                    f"{t.topic}[{p.id}]"
                    for t in topics
                    for p in t.partitions.values()
                    if len(p.isrs) < len(p.replicas) or p.leader < 0
                ]
                if not lagging:
                    return
            time.sleep(0.2)
        raise BrokerError(f"replicas not in sync after {timeout_s:.0f}s: {', '.join(lagging[:5])}")

    def running(self) -> bool:
        return bool(self.nodes) and all(node.running() for node in self.nodes)

    def log_tail(self) -> str:
        return " || ".join(f"node {n.node_id}: {n.log_tail()}" for n in self.nodes)

    def stop(self) -> None:
        """Stops every node and deletes the storage.

        One node gets SIGTERM (it stops in about 2 s); a cluster gets SIGKILL: its
        nodes would spend 8 s and more handing leaderships to each other, and the
        storage they would keep consistent is deleted next.
        """
        for node in self.nodes:
            if node.running():
                assert node.process is not None
                node.process.terminate() if self.size == 1 else node.process.kill()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            node.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _sweep_orphaned_storage() -> None:
    """Deletes the storage of runs whose owner died without stopping (SIGKILL)."""
    for folder in Path(tempfile.gettempdir()).glob("tensorflux-kafka-*"):
        try:
            owner = int((folder / _OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{owner}").exists() and sys.platform.startswith("linux"):
            shutil.rmtree(folder, ignore_errors=True)
