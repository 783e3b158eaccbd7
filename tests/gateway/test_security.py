"""Gateway authentication (bearer tokens from a file) and TLS / mutual TLS, through a
real uvicorn server and a real worker on the embedded broker."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from engine.broker import free_port
from engine.cli import main
from engine.gateway import run_gateway
from engine.gateway.security import SecurityConfigError, TlsFiles, TokenFile
from tests.gateway.conftest import DOUBLED, ONES_TO_16, Stack, tensors

TOKEN = "s3cret-token-one"


def _wait_ready(url: str, verify: object = True, cert: object = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with httpx.Client(verify=verify, cert=cert, timeout=1) as client:
                if client.get(f"{url}/v2/health/ready").status_code == 200:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"gateway at {url} not ready")


@pytest.fixture(scope="module")
def secured_gateway(stack: Stack) -> Iterator[Callable[..., str]]:
    """Starts a gateway over the stack's catalog with tokens and/or TLS; returns its URL."""
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(tokens: TokenFile | None = None, tls: TlsFiles | None = None, **wait: object) -> str:
        port = free_port()
        stop = threading.Event()
        thread = threading.Thread(
            target=run_gateway,
            args=(stack.settings, stack.catalog, "127.0.0.1", port, stop),
            kwargs={"timeout_s": 20.0, "tokens": tokens, "tls": tls},
            daemon=True,
        )
        thread.start()
        started.append((stop, thread))
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        _wait_ready(url, **wait)
        return url

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(10)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "tokens"
    path.write_text(f"# tokens for the tests\n\n{TOKEN}\nanother-token\n")
    return path


@pytest.fixture(scope="module")
def with_tokens(secured_gateway: Callable[..., str], token_file: Path) -> str:
    return secured_gateway(tokens=TokenFile(token_file))


def _infer(url: str, **options: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v2/pipelines/tfsimples/infer",
        json=tensors(ONES_TO_16, ONES_TO_16),
        timeout=30,
        **options,
    )


def test_inference_without_a_token_is_refused_with_401(with_tokens: str) -> None:
    reply = _infer(with_tokens)
    assert reply.status_code == 401
    assert "Authorization: Bearer" in reply.json()["error"]
    assert reply.headers["www-authenticate"].startswith("Bearer")
    wrong = _infer(with_tokens, headers={"authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401 and "not one this gateway accepts" in wrong.json()["error"]
    basic = _infer(with_tokens, headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401 and "Bearer TOKEN" in basic.json()["error"]


def test_a_listed_token_infers(with_tokens: str) -> None:
    for token in (TOKEN, "another-token"):
        reply = _infer(with_tokens, headers={"authorization": f"Bearer {token}"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["outputs"][0]["data"] == DOUBLED


def test_health_is_open_and_everything_else_needs_the_token(with_tokens: str) -> None:
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert httpx.get(with_tokens + path).status_code == 200, path
    auth = {"authorization": f"Bearer {TOKEN}"}
    for path in ("/v2", "/v2/pipelines/tfsimples", "/v2/models/tfsimple1/ready", "/metrics"):
        assert httpx.get(with_tokens + path).status_code == 401, path
        reply = httpx.get(with_tokens + path, headers=auth, follow_redirects=True)
        assert reply.status_code == 200, path


def test_a_rotated_token_file_takes_effect_without_a_restart(
    secured_gateway: Callable[..., str], tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    path.write_text("old-token\n")
    url = secured_gateway(tokens=TokenFile(path))
    assert httpx.get(f"{url}/v2", headers={"authorization": "Bearer old-token"}).status_code == 200
    path.write_text("new-token\n")
    deadline = time.monotonic() + 20
    while httpx.get(f"{url}/v2", headers={"authorization": "Bearer new-token"}).status_code != 200:
        assert time.monotonic() < deadline, "the new token was never accepted"
        time.sleep(0.2)
    assert httpx.get(f"{url}/v2", headers={"authorization": "Bearer old-token"}).status_code == 401
    # A file emptied by mistake keeps the tokens read before, rather than locking everyone out.
    path.write_text("")
    time.sleep(1.5)
    assert httpx.get(f"{url}/v2", headers={"authorization": "Bearer new-token"}).status_code == 200


def test_the_cli_sends_its_token(with_tokens: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["pipeline", "infer", "tfsimples", "--url", with_tokens, "--inputs"]
    request = '[{"name":"INPUT0","datatype":"INT32","shape":[1,16],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},{"name":"INPUT1","datatype":"INT32","shape":[1,16],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]'
    assert main([*args, request]) == 1
    assert "401" in capsys.readouterr().err
    assert main([*args, request, "--token", TOKEN]) == 0
    assert '"OUTPUT0"' in capsys.readouterr().out


def test_bad_token_files_are_refused_by_name(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(SecurityConfigError, match=f"{empty} holds no token"):
        TokenFile(empty)
    spaced = tmp_path / "spaced"
    spaced.write_text("good\nbad token\n")
    with pytest.raises(SecurityConfigError, match=f"{spaced}, line 2"):
        TokenFile(spaced)
    with pytest.raises(SecurityConfigError, match="cannot read token file"):
        TokenFile(tmp_path / "missing")
    with pytest.raises(SecurityConfigError, match="go together"):
        TlsFiles.of(str(empty), None, None)
    with pytest.raises(SecurityConfigError, match="--tls-client-ca needs"):
        TlsFiles.of(None, None, str(empty))


def test_the_gateway_command_refuses_a_bad_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("\n")
    code = main(["gateway", "--auth-token-file", str(empty), "--bootstrap", "127.0.0.1:1"])
    assert code == 1
    assert f"token file {empty} holds no token" in capsys.readouterr().err


# -- TLS ------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=tensorflux-test-ca", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out",
                 f"{who}.csr", "-subj", f"/CN={who}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", "-extfile",
                 f"{who}.ext", cwd=d)  # fmt: skip
    return d


def _trusting(pki: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki / "ca.pem"))


def test_https_serves_inference(secured_gateway: Callable[..., str], pki: Path) -> None:
    tls = TlsFiles.of(str(pki / "server.pem"), str(pki / "server.key"), None)
    url = secured_gateway(tls=tls, verify=_trusting(pki))
    reply = _infer(url, verify=_trusting(pki))
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == DOUBLED
    with pytest.raises(httpx.ConnectError):  # an untrusted certificate is not accepted
        httpx.get(f"{url}/v2/health/live")


def test_mutual_tls_refuses_clients_without_a_certificate(
    secured_gateway: Callable[..., str], pki: Path
) -> None:
    tls = TlsFiles.of(str(pki / "server.pem"), str(pki / "server.key"), str(pki / "ca.pem"))
    with_cert = _trusting(pki)
    with_cert.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    url = secured_gateway(tls=tls, verify=with_cert)
    reply = _infer(url, verify=with_cert)
    assert reply.status_code == 200, reply.text
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/v2/health/live", verify=_trusting(pki))


def test_tokens_never_reach_the_logs(
    with_tokens: str, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither an accepted nor a refused token is logged, at any level, by any logger
    (the gateway's, uvicorn's access log, httpx's): logs travel where tokens must not."""
    refused = "Bearer wrong-token-that-must-not-leak"
    with caplog.at_level("DEBUG"):
        assert _infer(with_tokens, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert _infer(with_tokens, headers={"authorization": refused}).status_code == 401
        assert httpx.get(f"{with_tokens}/v2", headers={"authorization": refused}).status_code == 401
        TokenFile(token_file)  # reading the file logs nothing of what it holds either
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records  # the gateway did log the requests (so the check can fail)
    for secret in (TOKEN, "another-token", "wrong-token-that-must-not-leak"):
        assert secret not in logged
