"""A remote model's calls over OIP V2 REST (httpx): JSON, or the binary tensor extension.

One `httpx.Client` per model keeps its connections alive between calls and is
safe to share between threads. TLS (`oip+https`) verifies the server against
certifi's CAs (httpx's default), or the bundle in SSL_CERT_FILE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import httpx
import numpy as np

from engine.codec import CodecError
from engine.codec.oip_binary import BINARY_DATA_OUTPUT, BINARY_DATA_SIZE, HEADER_LENGTH
from engine.codec.oip_json import message_from_document, tensor_item
from engine.codec.raw import array_from_raw, raw_from_array
from engine.messages import Tensor
from engine.runtimes.hosts import RemoteAddress
from engine.runtimes.remote_model import RemoteCallFailed, RemoteOptions

_INPUT_STATUSES: Final = frozenset({400, 413, 415, 422})
"""Answers meaning "this request does not fit": the request's fault, not the server's."""


class HttpTransport:
    def __init__(self, address: RemoteAddress, options: RemoteOptions) -> None:
        scheme = "https" if address.tls else "http"
        self._binary = options.binary_data
        self._timeout_s = options.timeout_s
        self._load_timeout_s = options.load_timeout_s
        self._client = httpx.Client(
            base_url=f"{scheme}://{address.authority}",
            timeout=options.timeout_s,
            headers={"user-agent": "tensorflux"},
        )

    def metadata(self, model: str) -> Mapping[str, Any]:
        reply = self._send("GET", f"/v2/models/{model}", timeout=self._load_timeout_s)
        if reply.status_code != 200:
            raise _refused(reply)
        document = _json(reply)
        if not isinstance(document, dict):
            raise RemoteCallFailed("failure", "200", "the model's metadata is not a JSON object")
        return document

    def ready(self, model: str) -> tuple[bool, str]:
        reply = self._send("GET", f"/v2/models/{model}/ready", timeout=self._load_timeout_s)
        if reply.status_code == 200:
            document = _json_or_none(reply)
            # OIP says the status code answers; a body saying otherwise is believed too.
            if isinstance(document, dict) and document.get("ready") is False:
                return False, "it answers ready: false"
            return True, ""
        if reply.status_code == 404:
            raise _refused(reply)
        return False, f"{reply.status_code} {_error_text(reply)}"

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], requested: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        try:
            tensors = [Tensor.from_array(name, array) for name, array in inputs.items()]
        except CodecError as error:
            raise RemoteCallFailed("input", "not sent", str(error)) from None
        document: dict[str, Any] = {}
        if requested:
            document["outputs"] = [{"name": name} for name in requested]
        if self._binary:
            items, raws = [], []
            for tensor in tensors:
                raw = raw_from_array(tensor.datatype, tensor.data, tensor=tensor.name)
                raws.append(raw)
                items.append(
                    {
                        "name": tensor.name,
                        "datatype": tensor.datatype,
                        "shape": list(tensor.shape),
                        "parameters": {BINARY_DATA_SIZE: len(raw)},
                    }
                )
            document["inputs"] = items
            document["parameters"] = {BINARY_DATA_OUTPUT: True}
            header = json.dumps(document, separators=(",", ":")).encode()
            reply = self._send(
                "POST",
                f"/v2/models/{model}/infer",
                content=header + b"".join(raws),
                headers={
                    "content-type": "application/octet-stream",
                    HEADER_LENGTH: str(len(header)),
                },
            )
        else:
            document["inputs"] = [tensor_item(tensor) for tensor in tensors]
            reply = self._send(
                "POST",
                f"/v2/models/{model}/infer",
                content=json.dumps(document, separators=(",", ":")).encode(),
                headers={"content-type": "application/json"},
            )
        if reply.status_code != 200:
            raise _refused(reply)
        return _outputs(reply)

    def close(self) -> None:
        self._client.close()

    def _send(
        self, method: str, path: str, timeout: float | None = None, **extra: Any
    ) -> httpx.Response:
        waited = timeout or self._timeout_s
        try:
            return self._client.request(method, path, timeout=waited, **extra)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise RemoteCallFailed(
                "unreachable", "unreachable", f"{type(error).__name__}: {error}", connect=True
            ) from None
        except httpx.TimeoutException as error:
            raise RemoteCallFailed(
                "unreachable", "timeout", f"no answer within {waited} s ({error})"
            ) from None
        except httpx.HTTPError as error:
            raise RemoteCallFailed(
                "unreachable", "unreachable", f"{type(error).__name__}: {error}"
            ) from None


def _outputs(reply: httpx.Response) -> dict[str, np.ndarray]:
    body = reply.content
    length = reply.headers.get(HEADER_LENGTH)
    try:
        if length is None:
            document = json.loads(body)
            binary: dict[str, np.ndarray] = {}
        else:
            document, binary = _binary_outputs(body, int(length))
        if not isinstance(document, dict):
            raise ValueError("the answer is not a JSON object")
        plain = [item for item in document.get("outputs") or () if item.get("name") not in binary]
        message = message_from_document({**document, "outputs": plain}, "response", default_id="")
    except (ValueError, TypeError, AttributeError, CodecError) as error:
        raise RemoteCallFailed(
            "failure", "200", f"the answer is not an OIP inference response: {error}"
        ) from None
    outputs = {tensor.name: tensor.data for tensor in message.tensors}
    outputs.update(binary)
    return outputs


def _binary_outputs(body: bytes, length: int) -> tuple[Any, dict[str, np.ndarray]]:
    """The JSON header of a binary answer, and its binary outputs by name."""
    document = json.loads(body[:length])
    binary: dict[str, np.ndarray] = {}
    position = length
    for item in document.get("outputs") or ():
        size = (item.get("parameters") or {}).get(BINARY_DATA_SIZE)
        if size is None:
            continue
        name, shape = item["name"], tuple(item["shape"])
        binary[name] = array_from_raw(
            body, position, position + size, item["datatype"], shape, tensor=name
        )
        position += size
    return document, binary


def _refused(reply: httpx.Response) -> RemoteCallFailed:
    status = reply.status_code
    kind = "input" if status in _INPUT_STATUSES else "failure"
    return RemoteCallFailed(kind, f"{status} {reply.reason_phrase}".strip(), _error_text(reply))


def _error_text(reply: httpx.Response) -> str:
    """The OIP error message (`{"error": ...}`); else a traceback's last line (a server
    in debug mode, as MLServer is by default, answers one for a model that raised);
    else the start of the body."""
    document = _json_or_none(reply)
    if isinstance(document, dict):
        for key in ("error", "detail", "message"):
            if key in document:
                return str(document[key])
    text = reply.text.strip()
    if text.startswith("Traceback (most recent call last)"):
        return text.splitlines()[-1][:300]
    return text[:300] or "no message"


def _json(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError as error:
        raise RemoteCallFailed("failure", str(reply.status_code), f"not JSON: {error}") from None


def _json_or_none(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None
