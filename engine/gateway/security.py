"""Who may call the gateway: bearer tokens from a file, and TLS (mTLS) for the socket.

`--auth-token-file FILE` holds one token per line (blank lines and `#` comments
ignored). Every path but `/v2/health/*` then needs `Authorization: Bearer
TOKEN`, else 401 with an OIP error body: probes stay open, inference, metadata,
metrics and the docs do not. The file is read again when it changes, so a
rotated Kubernetes Secret takes effect without a restart.

`--tls-cert/--tls-key` serve HTTPS; `--tls-client-ca` also asks every client
for a certificate signed by that CA (mutual TLS), refused at the handshake
otherwise.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.gateway.errors import GatewayError

log = logging.getLogger("tensorflux.gateway")

OPEN_PREFIX = "/v2/health/"
"""Paths under it answer without a token: liveness and readiness probes."""
RECHECK_S = 1.0
"""How often the token file's mtime is looked at (a stat, not a read)."""


class SecurityConfigError(GatewayError):
    """The token file or the TLS files cannot be used; names the file and why."""


class TokenFile:
    """The bearer tokens of one file, re-read when its mtime changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._checked = 0.0
        self._tokens: tuple[bytes, ...] = ()
        self._reload(strict=True)

    def _reload(self, *, strict: bool) -> None:
        try:
            stat = self.path.stat()
            if stat.st_mtime_ns == self._mtime_ns:
                return
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            if strict:
                raise SecurityConfigError(f"cannot read token file {self.path}: {error}") from None
            log.error(
                "token file %s unreadable (%s); keeping the tokens read before", self.path, error
            )
            return
        tokens = []
        for number, line in enumerate(lines, start=1):
            token = line.strip()
            if not token or token.startswith("#"):
                continue
            if any(c.isspace() for c in token):
                problem = f"token file {self.path}, line {number}: a token has no spaces inside"
                if strict:
                    raise SecurityConfigError(problem)
                log.error("%s; keeping the tokens read before", problem)
                return
            tokens.append(token.encode())
        if not tokens:
            problem = f"token file {self.path} holds no token (one per line, '#' comments)"
            if strict:
                raise SecurityConfigError(problem)
            log.error("%s; keeping the tokens read before", problem)
            return
        self._tokens, self._mtime_ns = tuple(tokens), stat.st_mtime_ns

    def accepts(self, token: bytes) -> bool:
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            with self._lock:
                self._checked = now
                self._reload(strict=False)
        # Compared with every token in constant time: no early exit tells which matched.
        found = False
        for known in self._tokens:
            found |= hmac.compare_digest(known, token)
        return found


class BearerAuth:
    """ASGI middleware: 401 unless the request carries a token of `tokens`."""

    def __init__(self, app: Any, tokens: TokenFile) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(OPEN_PREFIX):
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": problem}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="tensorflux"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _problem(self, scope: dict) -> str | None:
        values = [v for k, v in scope.get("headers", ()) if k == b"authorization"]
        return bearer_problem(values[0] if values else None, self.tokens)


def bearer_problem(authorization: bytes | None, tokens: TokenFile) -> str | None:
    """What is wrong with an `authorization` header (HTTP) or metadata entry (gRPC);
    None when it carries a token of `tokens`."""
    if authorization is None:
        return "this gateway needs 'Authorization: Bearer TOKEN' (no Authorization header)"
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return "the Authorization header must be 'Bearer TOKEN'"
    if not tokens.accepts(token.strip()):
        return "the bearer token is not one this gateway accepts"
    return None


@dataclass(frozen=True)
class TlsFiles:
    """Certificate and key to serve HTTPS with; `client_ca` asks clients for theirs."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def of(cls, cert: str | None, key: str | None, client_ca: str | None) -> TlsFiles | None:
        if cert is None and key is None:
            if client_ca is not None:
                raise SecurityConfigError("--tls-client-ca needs --tls-cert and --tls-key too")
            return None
        if cert is None or key is None:
            raise SecurityConfigError("--tls-cert and --tls-key go together; give both")
        files = cls(Path(cert), Path(key), None if client_ca is None else Path(client_ca))
        for flag, path in (("--tls-cert", files.cert), ("--tls-key", files.key), ("--tls-client-ca", files.client_ca)):  # fmt: skip
            if path is not None and not os.access(path, os.R_OK):
                raise SecurityConfigError(f"{flag} {path}: no such readable file")
        return files

    def grpc_credentials(self) -> Any:
        """The same certificate (and client CA) for the gRPC port."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=None if self.client_ca is None else self.client_ca.read_bytes(),
            require_client_auth=self.client_ca is not None,
        )

    def uvicorn_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            options |= {"ssl_ca_certs": str(self.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        return options
