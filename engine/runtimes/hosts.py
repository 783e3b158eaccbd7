"""Remote model servers: the `oip+...://HOST:PORT[/MODEL]` address, and which hosts a worker may call.

Anyone who can write the control topic can name any address as a Model's
`storageUri`; a worker would then send every request of that model (and its
data) there, or probe the network it sits in. So, as for model roots
(roots.py), a worker calls only hosts its operator named (`--model-host
HOST[:PORT]`, `TENSORFLUX_MODEL_HOSTS`) or, by default, the hosts of the
remote models in the specs given on its own command line. A spec naming any
other host fails to load before anything is connected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from engine.runtimes.errors import ModelLoadError
from engine.topology.specs import ModelSpec

HOSTS_VARIABLE: Final = "TENSORFLUX_MODEL_HOSTS"
"""Environment variable: allowed HOST[:PORT] entries separated by commas."""

Transport = Literal["http", "grpc"]

SCHEMES: Final[dict[str, tuple[Transport, bool]]] = {
    "oip+http": ("http", False),
    "oip+https": ("http", True),
    "oip+grpc": ("grpc", False),
    "oip+grpcs": ("grpc", True),
}
"""storageUri scheme -> (transport, TLS)."""


@dataclass(frozen=True)
class RemoteAddress:
    """Where a remote model is served: `oip+http://HOST:PORT/MODEL`."""

    transport: Transport
    tls: bool
    host: str
    port: int
    model: str
    """The model's name on that server (the URI's path; the Model's own name without one)."""

    @property
    def server(self) -> str:
        """The server as users write it in a URL: `http://HOST:PORT`, `grpc://HOST:PORT`."""
        scheme = f"{self.transport}s" if self.tls else self.transport
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def is_oip(uri: str | None) -> bool:
    """True for a storageUri naming a remote OIP server (any `oip+` scheme)."""
    return bool(uri) and uri.split("://", 1)[0].lower() in SCHEMES  # type: ignore[union-attr]


def remote_address(name: str, uri: str) -> RemoteAddress:
    """The address in `uri` (of Model `name`); ModelLoadError says what is wrong with it."""
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ModelLoadError(
            name, uri, f"unknown scheme {scheme!r}; remote models use {', '.join(SCHEMES)}"
        )
    transport, tls = SCHEMES[scheme]
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as error:
        raise ModelLoadError(name, uri, f"not a HOST:PORT address: {error}") from None
    if not parts.hostname or port is None:
        raise ModelLoadError(
            name, uri, f"a remote model needs HOST and PORT: {scheme}://HOST:PORT[/MODEL]"
        )
    model = parts.path.strip("/") or name
    if "/" in model or parts.query or parts.fragment:
        raise ModelLoadError(
            name, uri, f"after HOST:PORT comes one model name at most, got {parts.path!r}"
        )
    return RemoteAddress(transport, tls, parts.hostname.lower(), port, model)


@dataclass(frozen=True)
class HostEntry:
    host: str
    port: int | None
    """None: any port of the host."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class ModelHosts:
    """The hosts remote models may be called on; an empty set allows none."""

    entries: tuple[HostEntry, ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> ModelHosts:
        """From `HOST` (any port) or `HOST:PORT` entries ('[::1]:9000' for IPv6)."""
        parsed: list[HostEntry] = []
        for entry in entries:
            found = parse_host(entry)
            if found not in parsed:
                parsed.append(found)
        return cls(tuple(parsed))

    @classmethod
    def configured(
        cls,
        flags: Iterable[str],
        specs: Iterable[ModelSpec] = (),
        *,
        environ: Mapping[str, str] | None = None,
    ) -> ModelHosts:
        """The hosts a worker calls: `--model-host` flags and TENSORFLUX_MODEL_HOSTS when
        either names any; else the HOST:PORT of each remote model in `specs` (those on
        the worker's own command line)."""
        env = os.environ if environ is None else environ
        named = [*flags, *(e.strip() for e in env.get(HOSTS_VARIABLE, "").split(",") if e.strip())]
        if named:
            return cls.of(named)
        found: list[HostEntry] = []
        for spec in specs:
            if not is_oip(spec.storage_uri):
                continue
            try:
                address = remote_address(spec.name, spec.storage_uri or "")
            except ModelLoadError:
                continue  # the model fails on its own when it loads
            entry = HostEntry(address.host, address.port)
            if entry not in found:
                found.append(entry)
        return cls(tuple(found))

    def allows(self, address: RemoteAddress) -> bool:
        return any(
            entry.host == address.host and entry.port in (None, address.port)
            for entry in self.entries
        )

    def check(self, spec: ModelSpec, address: RemoteAddress) -> None:
        """Raise ModelLoadError unless `address` (of `spec`) is on an allowed host."""
        if self.allows(address):
            return
        allowed = ", ".join(map(str, self.entries)) or "none"
        raise ModelLoadError(
            spec.name,
            spec.storage_uri,
            f"host {address.authority} is not an allowed model host (allowed: {allowed}); "
            "nothing was connected. Start the worker with --model-host HOST[:PORT] "
            f"(or {HOSTS_VARIABLE}) to allow it",
        )


def parse_host(entry: str) -> HostEntry:
    """`HOST` or `HOST:PORT`; ValueError names what is wrong."""
    text = entry.strip()
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port
    except ValueError as error:
        raise ValueError(f"model host {entry!r}: {error}; write HOST or HOST:PORT") from None
    if not parts.hostname or parts.path or parts.username or parts.query:
        raise ValueError(f"model host {entry!r} is not HOST or HOST:PORT")
    return HostEntry(parts.hostname.lower(), port)
