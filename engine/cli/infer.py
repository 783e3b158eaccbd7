"""`tensorflux pipeline|model infer`: one inference request, over HTTP, gRPC or straight through Kafka."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import headers as h
from engine.cli.errors import (
    BadInputs,
    BadRequest,
    GatewayUnreachable,
    InferenceFailed,
    NoReply,
    Refused,
    UnreadableFile,
)
from engine.cli.infer_grpc import DEFAULT_GRPC_ADDRESS, GRPC_ADDRESS_VARIABLE, infer_grpc
from engine.cli.options import add_kafka_options, settings_from

if TYPE_CHECKING:
    from engine.config import KafkaSettings
    from engine.topology.specs import ResourceType

DEFAULT_URL = "http://127.0.0.1:9000"
GATEWAY_URL_VARIABLE = "TENSORFLUX_GATEWAY_URL"
GATEWAY_TOKEN_VARIABLE = "TENSORFLUX_GATEWAY_TOKEN"


def register(commands: argparse._SubParsersAction, kind: ResourceType) -> None:
    infer = commands.add_parser(
        "infer",
        help=f"send one inference request to a {kind} (HTTP gateway, --grpc or --kafka)",
        description=f"Send an Open Inference Protocol V2 request to a {kind} and print the "
        'response JSON. --inputs is a request object ({"inputs": [...]}) or a list of '
        "tensors, as JSON text or @FILE.",
    )
    infer.add_argument("name", metavar="NAME")
    infer.add_argument(
        "data", nargs="?", metavar="DATA", help="the request, as Seldon's CLI takes it (JSON|@FILE)"
    )
    infer.add_argument("--inputs", metavar="JSON|@FILE", help="the request (or DATA, or -f)")
    infer.add_argument("-f", "--file", metavar="FILE", help="read the request from FILE")
    via = infer.add_mutually_exclusive_group()
    via.add_argument("--http", action="store_true", help="through the HTTP gateway (default)")
    via.add_argument("--kafka", action="store_true", help="straight to the Kafka topics")
    via.add_argument("--grpc", action="store_true", help="through the gateway's OIP gRPC port")
    via.add_argument(
        "--inference-mode", choices=("rest", "grpc"), help="Seldon's spelling of --http/--grpc"
    )
    infer.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="send this header (gRPC: metadata) too; repeatable",
    )
    infer.add_argument(
        "--show-headers", action="store_true", help="print the answer's headers (on stderr)"
    )
    infer.add_argument(
        "-i", "--iterations", type=int, default=1, metavar="N", help="send the request N times"
    )
    infer.add_argument(
        "-s",
        "--sticky",
        action="store_true",
        help="with -i: stay on the experiment candidate the first answer names (x-seldon-route)",
    )
    infer.add_argument(
        "--grpc-address",
        metavar="HOST:PORT",
        help=f"gRPC gateway (default: {GRPC_ADDRESS_VARIABLE}, else {DEFAULT_GRPC_ADDRESS})",
    )
    infer.add_argument(
        "--url",
        "--inference-host",  # Seldon's name (HOST:PORT, no scheme)
        dest="url",
        help=f"gateway URL (default: {GATEWAY_URL_VARIABLE}, else {DEFAULT_URL})",
    )
    infer.add_argument(
        "--token",
        help=f"bearer token for a gateway that asks for one (default: {GATEWAY_TOKEN_VARIABLE})",
    )
    infer.add_argument(
        "--ca-cert", metavar="PEM", help="verify an HTTPS gateway against this CA (else system CAs)"
    )
    infer.add_argument("--request-id", help="request id (default: a new uuid)")
    infer.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    add_kafka_options(infer)
    infer.set_defaults(handler=run_infer, kind=kind)


def read_request(text: str) -> dict[str, Any]:
    """An OIP request object from JSON text or @FILE; a bare list is its inputs."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as error:
            raise UnreadableFile(path, error.strerror) from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise BadInputs.not_json(error) from None
    if isinstance(document, list):
        document = {"inputs": document}
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise BadInputs.not_a_request()
    return document


def request_text(args: argparse.Namespace) -> str:
    """The request as given: DATA, --inputs or -f FILE, exactly one of them."""
    given = [text for text in (args.data, args.inputs) if text is not None]
    if args.file is not None:
        given.append(f"@{args.file}")
    if len(given) != 1:
        raise BadInputs(
            "give the request once: as DATA, --inputs JSON|@FILE or -f FILE"
            + (f" (got {len(given)})" if given else "")
        )
    return given[0]


def header_pairs(pairs: list[str]) -> dict[str, str]:
    """`--header KEY=VALUE` as a mapping (names lower-cased, as HTTP/2 and gRPC want)."""
    headers: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInputs(f"--header {pair!r}: expected KEY=VALUE")
        headers[key.strip().lower()] = value.strip()
    return headers


def run_infer(args: argparse.Namespace, environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ  # read when the command runs
    document = read_request(request_text(args))
    headers = header_pairs(args.header)
    if args.iterations < 1:
        raise BadInputs(f"-i {args.iterations}: send at least one request")
    first_id = args.request_id or document.get("id") or str(uuid.uuid4())
    response: dict[str, Any] = {}
    answered: dict[str, str] = {}
    for iteration in range(args.iterations):
        request_id = first_id if iteration == 0 else f"{first_id}-{iteration}"
        response, answered = _send(args, env, document, request_id, headers)
        if args.sticky and iteration == 0 and h.SELDON_ROUTE in answered:
            headers[h.SELDON_ROUTE] = answered[h.SELDON_ROUTE]
        if args.show_headers:  # every answer's, with -i: which candidate took each
            for key, value in answered.items():
                print(f"{key}: {value}", file=sys.stderr)
    print(json.dumps(response, indent=2))
    return 0


def _send(
    args: argparse.Namespace,
    env: Mapping[str, str],
    document: dict[str, Any],
    request_id: str,
    headers: dict[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """One request the way the arguments say; the answer and its headers."""
    token = args.token or env.get(GATEWAY_TOKEN_VARIABLE)
    if args.kafka:
        settings = settings_from(args)
        return infer_kafka(settings, args.kind, args.name, document, request_id, args.timeout), {}
    if args.grpc or args.inference_mode == "grpc":
        return infer_grpc(
            args.grpc_address or env.get(GRPC_ADDRESS_VARIABLE, DEFAULT_GRPC_ADDRESS),
            args.kind,
            args.name,
            document,
            request_id,
            args.timeout,
            token=token,
            ca_cert=args.ca_cert,
            headers=headers,
        )
    url = args.url or env.get(GATEWAY_URL_VARIABLE, DEFAULT_URL)
    if "://" not in url:  # Seldon's --inference-host is HOST:PORT
        url = f"http://{url}"
    return infer_http(
        url,
        args.kind,
        args.name,
        document,
        request_id,
        args.timeout,
        token=token,
        ca_cert=args.ca_cert,
        headers=headers,
    )


def infer_http(
    url: str,
    kind: ResourceType,
    name: str,
    document: dict[str, Any],
    request_id: str,
    timeout_s: float,
    *,
    token: str | None = None,
    ca_cert: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The response document and the response's headers."""
    import httpx

    endpoint = f"{url.rstrip('/')}/v2/{kind}s/{name}/infer"
    sent = {**(headers or {}), h.REQUEST_ID: request_id}
    if token:
        sent["authorization"] = f"Bearer {token}"
    try:
        reply = httpx.post(
            endpoint,
            json=document,
            headers=sent,
            timeout=timeout_s + 5,
            verify=ssl.create_default_context(cafile=ca_cert) if ca_cert else True,
        )
    except httpx.HTTPError as error:
        raise GatewayUnreachable(url, error) from None
    try:
        body = reply.json()
    except ValueError:
        body = {"error": reply.text}
    if reply.status_code != 200:
        raise Refused(kind, name, reply.status_code, body.get("error", body))
    return body, dict(reply.headers)


def infer_kafka(
    settings: KafkaSettings,
    kind: ResourceType,
    name: str,
    document: dict[str, Any],
    request_id: str,
    timeout_s: float,
) -> dict[str, Any]:
    """Produce the request to the inputs topic, wait for its record on the outputs topic."""
    from engine.codec import (
        CodecError,
        avro_headers,
        decode_error,
        decode_payload,
        encode_avro,
        message_from_document,
        message_to_document,
    )
    from engine.gateway.router import ReplyRouter

    topics = settings.topics()
    if kind == "pipeline":
        topic, reply_topic = topics.pipeline_inputs(name), topics.pipeline_outputs(name)
    else:
        topic, reply_topic = topics.model_inputs(name), topics.model_outputs(name)
    try:
        message = message_from_document(document, "request", default_id=request_id)
    except CodecError as error:
        raise BadRequest(error) from None
    message = message.replace(id=request_id, model_name=name)
    headers = avro_headers(message, pipeline=name if kind == "pipeline" else None)
    router = ReplyRouter(settings).start()
    try:
        reply = asyncio.run(
            router.request(topic, reply_topic, request_id, encode_avro(message), headers, timeout_s)
        )
    except TimeoutError:
        raise NoReply(reply_topic, timeout_s, request_id) from None
    finally:
        router.close()
    if h.is_error(reply.headers):
        record = decode_error(reply.value)
        raise InferenceFailed(kind, name, record.kind, record.reason)
    result = message_to_document(decode_payload(reply.value, reply.headers, "response"))
    result["model_name"] = name
    return result
