# Every target builds .venv on first use and re-installs only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test test-fast test-alibi test-mlserver test-kafka kafka lint bench clean proto

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,sklearn,xgboost,lightgbm,mlflow]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tensorflux up -f examples/ --grpc-port 9500

# Three pytest processes (pytest-xdist), each with its own embedded broker; a test file's
# tests stay together (--dist loadfile) so its module-scoped stacks start once. Most broker
# tests wait on consumer-group joins and answers, not on the CPU, so three beat two cores'
# worth. TEST_WORKERS=0 runs in one process; the 15 slowest tests are listed at the end.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not broker" $(PYTEST_ARGS)

# alibi-detect 0.13 (the latest) requires numpy<2 and tensorflux pins numpy 2.4.6, so the
# drift/outlier detector runtime lives in a venv of its own: the project installed without
# its numpy pin, numpy 1.26.4, alibi-detect. `make test-alibi` runs the detector tests there
# (TENSORFLUX_REQUIRE_ALIBI makes them fail rather than skip when alibi-detect is missing).
ALIBI_VENV := .venv-alibi
ALIBI_STAMP := $(ALIBI_VENV)/.installed
ALIBI_PINS := numpy==1.26.4 alibi-detect==0.13.0
ALIBI_TESTS := tests/runtimes/test_alibi_detect.py tests/docs/test_drift_readme.py

$(ALIBI_STAMP): pyproject.toml
	test -x $(ALIBI_VENV)/bin/python || $(PYTHON) -m venv $(ALIBI_VENV)
	$(ALIBI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(ALIBI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(ALIBI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(ALIBI_PINS) \
		$$($(ALIBI_VENV)/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print(" ".join(d.split("#")[0].strip() for d in p["dependencies"] + p["optional-dependencies"]["test"] if not d.startswith("numpy")))')
	touch $(ALIBI_STAMP)

test-alibi: $(ALIBI_STAMP)
	TENSORFLUX_REQUIRE_ALIBI=1 $(ALIBI_VENV)/bin/python -m pytest $(ALIBI_TESTS) $(PYTEST_ARGS)

# A real MLServer (it pins its own FastAPI, so it lives in a venv of its own) serving the
# iris sklearn example: tensorflux's remote models call it and its answers are compared with
# the in-process sklearn runtime's. The tests run in the project's venv and start MLServer
# from .venv-mlserver; TENSORFLUX_REQUIRE_MLSERVER makes them fail rather than skip without it.
# scikit-learn and joblib as the sklearn extra pins them: both load the same model.joblib.
MLSERVER_VENV := .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed
MLSERVER_PINS := mlserver==1.7.1 mlserver-sklearn==1.7.1 scikit-learn==1.9.1 joblib==1.6.0
MLSERVER_TESTS := tests/runtimes/test_mlserver_remote.py

$(MLSERVER_STAMP): Makefile
	test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(MLSERVER_PINS)
	touch $(MLSERVER_STAMP)

test-mlserver: $(STAMP) $(MLSERVER_STAMP)
	TENSORFLUX_REQUIRE_MLSERVER=1 $(BIN)/python -m pytest $(MLSERVER_TESTS) $(PYTEST_ARGS)

# The suite on a real Apache Kafka node the fixture starts, plus the drills on a
# 3-node cluster (tests/kafka/). Needs Java 17+ and Maven: the first line fetches
# Kafka's jars into ~/.cache/tensorflux, or says in one line what is missing.
# TEST_KAFKA=cluster puts the suite itself on three nodes.
TEST_KAFKA ?= 1
test-kafka: $(STAMP)
	@$(BIN)/tensorflux broker --kafka --fetch-only
	TENSORFLUX_TEST_KAFKA=$(TEST_KAFKA) $(BIN)/python -m pytest $(PYTEST_ARGS)

# A real Apache Kafka in the foreground: KAFKA_ARGS="--nodes 3 --port 9092".
kafka: $(STAMP)
	$(BIN)/tensorflux broker --kafka $(KAFKA_ARGS)

# The OIP gRPC messages (engine/codec/proto/grpc_predict_v2_pb2.py, committed) from the
# .proto beside them; the gateway builds its service handlers itself (no _pb2_grpc).
proto: $(STAMP)
	cd engine/codec/proto && ../../../$(BIN)/python -m grpc_tools.protoc -I. \
		--python_out=. --pyi_out=. grpc_predict_v2.proto
	# A private descriptor pool: tritonclient.grpc registers the same `inference.*`
	# names in the default pool, and both must load in one process.
	sed -i 's/_descriptor_pool.Default()/_descriptor_pool.DescriptorPool()/' \
		engine/codec/proto/grpc_predict_v2_pb2.py

lint: $(STAMP)
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench

# The peers (Quix Streams pins its own confluent-kafka) live in their own venv;
# the tensorflux runs and the runner use the project's.
BENCH_VENV := .venv-bench
BENCH_PEERS_STAMP := $(BENCH_VENV)/.installed

$(BENCH_PEERS_STAMP): Makefile
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		quixstreams==3.28.1 faust-streaming==0.15.3 onnxruntime==1.31.1 numpy==2.4.6 \
		fastavro==1.13.1 py-spy==0.4.3
	touch $(BENCH_PEERS_STAMP)

# The remote-model rows call a real MLServer (.venv-mlserver, as `make test-mlserver` builds
# it); where it cannot be built, the bench says so and skips those rows.
bench: $(STAMP) $(BENCH_PEERS_STAMP)
	@$(MAKE) --no-print-directory $(MLSERVER_STAMP) || \
		echo "bench: could not build $(MLSERVER_VENV): the remote-model rows will be skipped" >&2
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(ALIBI_VENV) $(MLSERVER_VENV) .pytest_cache build *.egg-info
