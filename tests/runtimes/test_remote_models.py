"""Remote models (`oip+http://HOST:PORT/MODEL`) against a stub OIP server: what loads,
what each kind of remote failure becomes, and the allow-list of hosts."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.operators.model_call import call_model
from engine.runtime.models import ModelPool
from engine.runtimes import (
    ModelFailure,
    ModelHosts,
    ModelInputError,
    ModelLoadError,
    ModelUnreachable,
    load_model,
    remote_model,
)
from engine.runtimes.hosts import HOSTS_VARIABLE, parse_host, remote_address
from engine.runtimes.remote_model import RemoteModel, options_of
from engine.topology.specs import ModelParameter, ModelSpec
from tests.gateway.test_security import pki  # noqa: F401 (a fixture: a CA, a server certificate)
from tests.runtimes.oip_stub import Listener, OipStub, StubModel


def remote(uri: str, name: str = "r", **parameters: object) -> ModelSpec:
    given = tuple(ModelParameter(name=k, value=v) for k, v in parameters.items())  # type: ignore[arg-type]
    return ModelSpec(name=name, storage_uri=uri, parameters=given)


@pytest.fixture(scope="module")
def stub() -> Iterator[OipStub]:
    server = OipStub(
        {
            "double": StubModel(),
            "refuse": StubModel("refuse"),
            "fail": StubModel("fail"),
            "crash": StubModel("crash"),
            "slow": StubModel("slow", delay_s=2.0),
            "cold": StubModel(ready=False, reason="still loading weights"),
        }
    )
    yield server
    server.stop()


def test_a_remote_model_loads_its_signature_and_answers(stub: OipStub) -> None:
    with load_model(remote(f"oip+http://127.0.0.1:{stub.port}/double")) as model:
        assert isinstance(model, RemoteModel)
        assert [(s.name, s.datatype, s.shape) for s in model.inputs] == [("X", "FP32", (-1, 2))]
        assert model.batchable  # the metadata's batch axis is free
        outputs = model.predict({"X": np.array([[1.0, 2.5]], dtype=np.float32)})
    assert outputs["Y"].dtype == np.float32
    np.testing.assert_array_equal(outputs["Y"], [[2.0, 5.0]])


def test_the_model_name_defaults_to_the_models_own(stub: OipStub) -> None:
    with load_model(remote(f"oip+http://127.0.0.1:{stub.port}", name="double")) as model:
        assert model.predict({"X": np.zeros((1, 2), np.float32)})["Y"].shape == (1, 2)


def test_requested_outputs_travel_to_the_server(stub: OipStub) -> None:
    with load_model(remote(f"oip+http://127.0.0.1:{stub.port}/double")) as model:
        model.predict_outputs({"X": np.zeros((1, 2), np.float32)}, ("Y",))
    assert stub.models["double"].calls[-1]["outputs"] == [{"name": "Y"}]


def test_a_refused_request_is_a_bad_input_naming_server_model_and_status(stub: OipStub) -> None:
    with load_model(remote(f"oip+http://127.0.0.1:{stub.port}/refuse")) as model:
        with pytest.raises(ModelInputError) as caught:
            model.predict({"X": np.zeros((1, 3), np.float32)})
    message = str(caught.value)
    assert f"http://127.0.0.1:{stub.port}" in message and "'refuse'" in message
    assert "400" in message and "does not fit [-1, 2]" in message


def test_a_server_error_is_a_model_failure_with_the_servers_message(stub: OipStub) -> None:
    with load_model(remote(f"oip+http://127.0.0.1:{stub.port}/fail")) as model:
        with pytest.raises(ModelFailure) as caught:
            model.predict({"X": np.zeros((1, 2), np.float32)})
    assert not isinstance(caught.value, ModelUnreachable)
    assert "500" in str(caught.value) and "ran out of memory" in str(caught.value)


def test_a_traceback_answered_as_text_is_reported_by_its_last_line(stub: OipStub) -> None:
    with load_model(remote(f"oip+http://127.0.0.1:{stub.port}/crash")) as model:
        with pytest.raises(ModelFailure) as caught:
            model.predict({"X": np.zeros((1, 2), np.float32)})
    assert str(caught.value).endswith("'crash': 500 Internal Server Error: ValueError: 3 != 4")


def test_a_call_past_the_timeout_fails_and_the_rest_of_the_batch_is_not_sent(
    stub: OipStub,
) -> None:
    slow = stub.models["slow"]
    before = len(slow.calls)
    spec = remote(f"oip+http://127.0.0.1:{stub.port}/slow", timeout="0.3", max_batch_size=1)
    with load_model(spec) as model:
        assert not model.batchable
        requests = [{"X": np.full((1, 2), i, np.float32)} for i in range(3)]
        results = call_model(model, requests)
    assert all(isinstance(r, ModelUnreachable) for r in results)
    assert "no answer within 0.3 s" in str(results[0])
    assert len(slow.calls) - before == 1  # one timeout, not three


def test_a_server_gone_after_load_gives_unreachable_errors() -> None:
    server = OipStub({"double": StubModel()})
    model = load_model(remote(f"oip+http://127.0.0.1:{server.port}/double"))
    server.stop()
    try:
        with pytest.raises(ModelUnreachable) as caught:
            model.predict({"X": np.zeros((1, 2), np.float32)})
    finally:
        model.close()
    assert f"http://127.0.0.1:{server.port} model 'double'" in str(caught.value)


def test_oip_https_verifies_the_server_against_ssl_cert_file(
    pki: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
    server = OipStub({"double": StubModel()}, tls=context)
    uri = f"oip+https://127.0.0.1:{server.port}/double"
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(ModelLoadError, match="CERTIFICATE_VERIFY_FAILED"):
            load_model(remote(uri))  # a private CA is not trusted by default
        monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
        with load_model(remote(uri)) as model:
            outputs = model.predict({"X": np.ones((1, 2), np.float32)})
        np.testing.assert_array_equal(outputs["Y"], [[2.0, 2.0]])
    finally:
        server.stop()


def test_a_model_the_server_says_is_not_ready_fails_to_load_with_its_reason(
    stub: OipStub,
) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_model(remote(f"oip+http://127.0.0.1:{stub.port}/cold"))
    assert "not ready" in str(caught.value) and "still loading weights" in str(caught.value)


def test_a_model_not_ready_is_loaded_again_once_the_server_says_ready() -> None:
    late = StubModel(ready=False, reason="warming up")
    server = OipStub({"late": late})
    pool = ModelPool(retry_s=0.0)
    specs = {"late": remote(f"oip+http://127.0.0.1:{server.port}", name="late")}
    try:
        first = pool.sync(specs)["late"]
        assert isinstance(first, ModelLoadError) and "warming up" in str(first)
        assert pool.retry_due()
        late.ready = True
        assert isinstance(pool.sync(specs)["late"], RemoteModel)
        assert not pool.retry_due()
    finally:
        pool.close()
        server.stop()


def test_a_host_not_allowed_is_not_tried_again() -> None:
    pool = ModelPool(lambda s: load_model(s, hosts=ModelHosts.of([])), retry_s=0.0)
    assert isinstance(pool.sync({"r": remote("oip+http://127.0.0.1:1/m")})["r"], ModelLoadError)
    assert not pool.retry_due()
    pool.close()


def test_a_model_the_server_does_not_have_fails_to_load(stub: OipStub) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_model(remote(f"oip+http://127.0.0.1:{stub.port}/nope"))
    assert "404" in str(caught.value)


def test_an_unreachable_server_fails_the_load() -> None:
    listener = Listener()
    port = listener.port
    listener.close()  # nothing listens there now
    with pytest.raises(ModelLoadError) as caught:
        load_model(remote(f"oip+grpc://127.0.0.1:{port}/m", timeout=2))
    assert "UNAVAILABLE" in str(caught.value)


def test_a_host_not_allowed_fails_without_connecting() -> None:
    listener = Listener()
    try:
        hosts = ModelHosts.of(["models.internal:9000"])
        for scheme in ("oip+http", "oip+grpc"):
            with pytest.raises(ModelLoadError) as caught:
                load_model(remote(f"{scheme}://127.0.0.1:{listener.port}/m"), hosts=hosts)
            message = str(caught.value)
            assert f"host 127.0.0.1:{listener.port} is not an allowed model host" in message
            assert "models.internal:9000" in message and "--model-host" in message
        assert listener.accepted == 0
    finally:
        listener.close()


def test_allowed_hosts_with_and_without_a_port() -> None:
    address = remote_address("m", "oip+http://Models.Internal:9000/iris")
    assert ModelHosts.of(["models.internal"]).allows(address)  # any port
    assert ModelHosts.of(["models.internal:9000"]).allows(address)
    assert not ModelHosts.of(["models.internal:9001"]).allows(address)
    assert not ModelHosts.of([]).allows(address)
    assert ModelHosts.of(["[::1]:9000"]).allows(remote_address("m", "oip+grpc://[::1]:9000"))


def test_the_default_hosts_are_those_of_the_command_lines_remote_models() -> None:
    specs = [
        remote("oip+http://a.example:9000/x"),
        remote("oip+grpc://b.example:9500"),
        ModelSpec(name="local", storage_uri="/models/iris"),
    ]
    hosts = ModelHosts.configured([], specs, environ={})
    assert [str(e) for e in hosts.entries] == ["a.example:9000", "b.example:9500"]
    # Named hosts replace the defaults: flags and the variable together.
    named = ModelHosts.configured(["c.example"], specs, environ={HOSTS_VARIABLE: "d:1, e"})
    assert [str(e) for e in named.entries] == ["c.example", "d:1", "e"]


def test_bad_host_entries_say_what_is_wrong() -> None:
    for entry in ("http://a:1", "a:port", "a/b"):
        with pytest.raises(ValueError, match="model host"):
            parse_host(entry)


def test_bad_addresses_and_parameters_are_load_errors() -> None:
    for uri, words in [
        ("oip+http://host-without-port/m", "HOST and PORT"),
        ("oip+http://h:1/a/b", "one model name"),
    ]:
        with pytest.raises(ModelLoadError, match=words):
            remote_address("m", uri)
    for parameters, words in [
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"max_batch_size": "0"}, "max_batch_size"),
        ({"binary_data": "maybe"}, "binary_data"),
    ]:
        with pytest.raises(ModelLoadError, match=words):
            options_of(remote("oip+http://h:1/m", **parameters))
    assert options_of(remote("oip+http://h:1/m", binary_data="true")).binary_data


def test_the_command_line_names_the_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import build_parser
    from engine.cli.runtime import model_hosts

    (tmp_path / "m.yaml").write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: r\n"
        "spec:\n  storageUri: oip+grpc://mlserver.internal:8081/iris\n"
    )
    monkeypatch.delenv(HOSTS_VARIABLE, raising=False)
    parser = build_parser()
    defaulted = parser.parse_args(["worker", "-f", str(tmp_path / "m.yaml")])
    assert [str(e) for e in model_hosts(defaulted).entries] == ["mlserver.internal:8081"]
    named = parser.parse_args(["up", "--model-host", "a:1", "--model-host", "b"])
    assert [str(e) for e in model_hosts(named).entries] == ["a:1", "b"]
    with pytest.raises(SystemExit, match="model host 'a:b'"):
        model_hosts(parser.parse_args(["worker", "--model-host", "a:b"]))


def test_a_model_that_keeps_failing_is_tried_less_and_less_often() -> None:
    now = [1000.0]
    tries: list[float] = []

    def load(spec: ModelSpec) -> RemoteModel:
        tries.append(now[0])
        raise ModelLoadError(spec.name, spec.storage_uri, "no answer", transient=True)

    pool = ModelPool(load, retry_s=5.0, clock=lambda: now[0])
    specs = {"r": remote("oip+http://h:1/m")}
    for _ in range(40):  # 200 s, a sync every 5 s, as a worker's loop would
        if pool.retry_due() or not tries:
            pool.sync(specs)
        now[0] += 5.0
    waits = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_a_refused_connection_is_tried_again_with_backoff_until_the_server_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = OipStub({"double": StubModel()})
    port = server.port
    model = load_model(remote(f"oip+http://127.0.0.1:{port}/double", retries="3"))
    server.stop()
    waits: list[float] = []
    back: list[OipStub] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the server is back after two refused connections
            back.append(OipStub({"double": StubModel()}, port=port))

    monkeypatch.setattr(remote_model, "_backoff_sleep", wait)
    try:
        answer = model.predict({"X": np.ones((1, 2), np.float32)})
    finally:
        model.close()
        for stub in back:
            stub.stop()
    np.testing.assert_array_equal(answer["Y"], [[2.0, 2.0]])
    assert waits == [0.1, 0.2]  # doubled each time
    assert len(back[0].models["double"].calls) == 1


def test_retries_end_with_an_unreachable_error_and_answers_are_never_retried(
    stub: OipStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(remote_model, "_backoff_sleep", waits.append)
    gone = OipStub({"double": StubModel()})
    model = load_model(remote(f"oip+http://127.0.0.1:{gone.port}/double", retries="2"))
    gone.stop()
    with pytest.raises(ModelUnreachable):
        model.predict({"X": np.zeros((1, 2), np.float32)})
    model.close()
    assert waits == [0.1, 0.2]

    waits.clear()
    failing = stub.models["fail"]
    before = len(failing.calls)
    with load_model(remote(f"oip+http://127.0.0.1:{stub.port}/fail")) as model:
        with pytest.raises(ModelFailure, match="500"):
            model.predict({"X": np.zeros((1, 2), np.float32)})
    assert waits == [] and len(failing.calls) - before == 1  # the server may have done the work


def test_retries_and_max_in_flight_must_be_counts() -> None:
    with pytest.raises(ModelLoadError, match="retries must be an integer"):
        options_of(remote("oip+http://127.0.0.1:1/x", retries="-1"))
    assert options_of(remote("oip+http://127.0.0.1:1/x", retries="0")).retries == 0
    spec = remote("oip+http://127.0.0.1:1/x", max_in_flight="0")
    with pytest.raises(ValueError, match="max_in_flight is '0'; give a positive integer"):
        spec.max_in_flight()
    assert remote("oip+http://127.0.0.1:1/x", max_in_flight="8").max_in_flight() == 8


def test_max_in_flight_calls_run_at_once(kafka_settings, stub: OipStub, tmp_path: Path) -> None:
    from engine.messages import InferenceMessage
    from tests.runtime.helpers import Kafka, RunningWorker, compile_specs, new_id, tensors

    slow = stub.models["slow"]
    slow.peak_in_flight = 0
    spec = (
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: slow4\n"
        f"spec:\n  storageUri: oip+http://127.0.0.1:{stub.port}/slow\n  parameters:\n"
        "  - name: max_in_flight\n    value: '4'\n  - name: max_batch_size\n    value: '1'\n"
    )
    path = tmp_path / "slow4.yaml"
    path.write_text(spec)
    worker = RunningWorker(kafka_settings, compile_specs(kafka_settings, [path]))
    try:
        worker.wait_ready("model", "slow4")
        kafka = Kafka(kafka_settings)
        ids = [new_id("slow") for _ in range(4)]
        for rid in ids:
            request = InferenceMessage(rid, tensors(X=np.ones((1, 2), np.float32)), "request")
            kafka.send(kafka.topics.model_inputs("slow4"), rid, request)
        answers = kafka.collect(kafka.topics.model_outputs("slow4"), ids)
        kafka.close()
    finally:
        worker.stop()
    assert all(not a.is_error for a in answers.values())
    assert slow.peak_in_flight == 4  # one call at a time without the parameter
