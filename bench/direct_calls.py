"""Direct calls of one model, timed from one client in the bench process: an OIP server
over HTTP (httpx) or gRPC (grpcio), or an in-process runtime. bench/remote_bench.py sets
a pipeline step's figures beside these.

Each caller is `(call(index), close())`; `direct` runs `count` calls from a few threads
sharing that one client and gives the calls a second and each call's latency.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx

from bench import load
from engine.codec.oip_json import tensor_item
from engine.codec.proto import grpc_predict_v2_pb2 as pb
from engine.messages import Tensor
from engine.runtimes import load_model
from engine.topology.specs import ModelSpec

SERVICE = "/inference.GRPCInferenceService/ModelInfer"
Caller = tuple[Callable[[int], None], Callable[[], None]]
"""`(call(index), close())`: index picks one of the three flowers."""


def flower(index: int) -> Tensor:
    row = load.IRIS_ROWS[index % 3 : index % 3 + 1]
    return Tensor.from_array("INPUT", row)


def http_caller(address: str, model: str) -> Caller:
    """One httpx client (keep-alive, a connection per concurrent caller): call(i), close()."""
    client = httpx.Client(base_url=f"http://{address}", timeout=30)
    bodies = [json.dumps({"inputs": [tensor_item(flower(i))]}).encode() for i in range(3)]
    path, headers = f"/v2/models/{model}/infer", {"content-type": "application/json"}

    def call(index: int) -> None:
        reply = client.post(path, content=bodies[index % 3], headers=headers)
        if reply.status_code != 200:
            raise RuntimeError(f"MLServer answered {reply.status_code}: {reply.text[:200]}")

    return call, client.close


def grpc_caller(address: str, model: str) -> Caller:
    """One grpcio channel (HTTP/2 multiplexes the concurrent calls): call(i), close()."""
    channel = grpc.insecure_channel(address)
    infer = channel.unary_unary(
        SERVICE,
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    requests = []
    for i in range(3):
        request = pb.ModelInferRequest(model_name=model)
        tensor = flower(i)
        request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        request.raw_input_contents.append(tensor.data.tobytes())
        requests.append(request)

    def call(index: int) -> None:
        infer(requests[index % 3], timeout=30)

    return call, channel.close


def direct(call: Callable[[int], None], count: int, concurrency: int) -> tuple[float, list[float]]:
    """(calls a second, each call's ms) of `count` calls from `concurrency` threads."""
    call(0)  # connected and warm
    latencies: list[float] = []
    failures: list[BaseException] = []

    def caller(first: int) -> None:
        for index in range(first, count, concurrency):
            started = time.perf_counter()
            try:
                call(index)
            except Exception as error:  # reported after the threads end
                failures.append(error)
                return
            latencies.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"direct call failed: {failures[0]}")
    return count / elapsed, latencies


def in_process_caller(artifact: Path, model: str) -> Caller:
    """The in-process sklearn runtime on the artifact, called as a pipeline step calls it."""
    spec = ModelSpec(name=model, storage_uri=str(artifact), requirements=("sklearn",))
    runtime = load_model(spec)
    flowers = [{"INPUT": flower(i).data} for i in range(3)]

    def call(index: int) -> None:
        runtime.predict(flowers[index % 3])

    return call, runtime.close
