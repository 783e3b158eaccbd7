"""The HTTP ceiling of the gateway bench: a bare ASGI app that reads and parses an
inference body and answers a fixed response, served by uvicorn with httptools and
uvloop (the fastest stock Python stack). Nothing of tensorflux runs here.

    python -m uvicorn bench.apps.http_ceiling:app --loop uvloop --http httptools
"""

from __future__ import annotations

import orjson

ANSWER = orjson.dumps(
    {
        "id": "00000000-0000-0000-0000-000000000000",
        "model_name": "chain-base",
        "outputs": [
            {"name": name, "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}
            for name in ("OUTPUT0", "OUTPUT1")
        ],
    }
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    orjson.loads(body)  # the same parse the gateway must do
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
