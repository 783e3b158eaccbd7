"""The gRPC gateway's bearer tokens and TLS, as the HTTP gateway has them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from engine.broker import free_port
from engine.gateway import run_gateway
from engine.gateway.security import TlsFiles, TokenFile
from tests.gateway.conftest import Stack
from tests.gateway.test_security import TOKEN, pki, token_file  # noqa: F401 (fixtures)

A = np.arange(1, 17, dtype=np.int32).reshape(1, 16)


@pytest.fixture(scope="module")
def grpc_gateway(stack: Stack) -> Iterator[Callable[..., str]]:
    """Starts a gateway with gRPC over the stack's catalog; returns host:port of gRPC."""
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(tokens: TokenFile | None = None, tls: TlsFiles | None = None) -> str:
        port, grpc_port, stop = free_port(), free_port(), threading.Event()
        thread = threading.Thread(
            target=run_gateway,
            args=(stack.settings, stack.catalog, "127.0.0.1", port, stop),
            kwargs={"timeout_s": 20.0, "tokens": tokens, "tls": tls, "grpc_port": grpc_port},
            daemon=True,
        )
        thread.start()
        started.append((stop, thread))
        return f"127.0.0.1:{grpc_port}"

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(10)


def wait_live(client: triton.InferenceServerClient) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.is_server_live():
                return
        except InferenceServerException:
            assert time.monotonic() < deadline, "the gRPC gateway never answered"
            time.sleep(0.1)


def inputs() -> list[triton.InferInput]:
    built = []
    for name in ("INPUT0", "INPUT1"):
        tensor = triton.InferInput(name, [1, 16], "INT32")
        tensor.set_data_from_numpy(A)
        built.append(tensor)
    return built


def test_tokens_guard_everything_but_the_probes(grpc_gateway, token_file: Path) -> None:  # noqa: F811
    client = triton.InferenceServerClient(grpc_gateway(tokens=TokenFile(token_file)))
    wait_live(client)
    assert client.is_server_ready()  # probes stay open
    for call in (lambda **kw: client.infer("tfsimples", inputs(), **kw),
                 lambda **kw: client.get_model_metadata("tfsimples", **kw),
                 lambda **kw: client.is_model_ready("tfsimples", **kw)):  # fmt: skip
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
        assert "Authorization: Bearer" in refused.value.message()
        with pytest.raises(InferenceServerException, match="not one this gateway accepts"):
            call(headers={"authorization": "Bearer wrong"})
    result = client.infer("tfsimples", inputs(), headers={"authorization": f"Bearer {TOKEN}"})
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * A)
    _stream_needs_the_token(client)


def _stream_needs_the_token(client: triton.InferenceServerClient) -> None:
    """A ModelStreamInfer stream without the token is refused when it opens; with it, it
    answers."""
    import queue

    for headers, wanted in ((None, "UNAUTHENTICATED"), ({"authorization": f"Bearer {TOKEN}"}, None)):  # fmt: skip
        answers: queue.Queue = queue.Queue()
        client.start_stream(
            callback=lambda result, error, q=answers: q.put((result, error)), headers=headers
        )
        try:
            try:
                client.async_stream_infer("tfsimples", inputs())
            except InferenceServerException:  # refused already: the callback has the reason
                pass
            result, error = answers.get(timeout=60)
        finally:
            client.stop_stream()
        if wanted is None:
            assert error is None, error
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * A)
        else:
            assert error is not None and wanted in error.status(), error


def test_tls_serves_grpc_with_the_same_certificate(grpc_gateway, pki: Path) -> None:  # noqa: F811
    tls = TlsFiles(pki / "server.pem", pki / "server.key")
    client = triton.InferenceServerClient(
        grpc_gateway(tls=tls), ssl=True, root_certificates=str(pki / "ca.pem")
    )
    wait_live(client)
    np.testing.assert_array_equal(client.infer("tfsimples", inputs()).as_numpy("OUTPUT0"), 2 * A)
