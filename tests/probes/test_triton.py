"""Probes of the Triton surface (docs/reliability.md, "Triton"): every input of the generate model, the
tokenizer, detokenizer and decoder models with bad values, types, shapes and missing inputs, over HTTP
(``/generate``, ``/generate_stream``, ``/infer``) and gRPC; ``radon triton build``, ``serve`` and
``client`` with bad flags and folders; a taken port; ``kill -9`` of ``radon triton serve``.

Each probe asserts the status (HTTP 4xx, a gRPC error, exit 2) and that the message names the input, the
flag or the file. A refusal written by RADON starts with the name; one written by Triton itself (a
missing input, a dtype or shape against the config RADON generated) contains it in quotes. HTTP bodies
are JSON text, so that NaN, Infinity, values wider than the declared dtype and invalid UTF-8 reach the
server as a hostile client sends them. What Triton's own C++ parser answers with HTTP 500 before any
model runs (malformed JSON, a JSON type that is not the input's) is upstream behaviour, listed apart in
docs/reliability.md and not probed here.

One real tritonserver for the module (``tests/triton_testing.py``: the tiny Mistral, window 16, context
512, a hybrid tokenizer without a chat template, ``max_tokens_limit`` 1024, max batch 4), on free
loopback ports. Skipped, saying why, without the server environment (``scripts/make_triton_env.sh``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import triton_testing

from radon.cli import main as radon_main

# the Triton tests' fixtures (tests/triton_testing.py), found by pytest by these names
free_port = triton_testing.free_port
triton_root = triton_testing.triton_root
server_install = triton_testing.server_install
text_artifact = triton_testing.text_artifact
repository = triton_testing.repository

HANG_GUARD = 120  # seconds: a probe that waits this long has failed; no probe asserts a duration
CONTEXT, LIMIT, VOCAB = 512, 1024, 520  # the fixture model's context, the build's max_tokens_limit, vocab
GOOD = '"text_input": "Hello", "max_tokens": 4'


@pytest.fixture(scope="module")
def server(repository: Path, server_install, triton_root: Path) -> Iterator[Any]:
    """The probes' own tritonserver on free loopback ports (one per module)."""
    from radon.model_repository.server import TritonServer

    port = triton_testing._free_port
    srv = TritonServer(repository, http_port=port(), grpc_port=port(), metrics_port=port(),
                       install=server_install, log_file=triton_root / "probes-tritonserver.log")  # fmt: skip
    srv.start(timeout_s=180)
    yield srv
    srv.stop()


def post(server, path: str, body: str | bytes) -> tuple[int, str]:
    """POST ``body`` (JSON text, sent as it is) to the server; (status, body text)."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    request = urllib.request.Request(f"{server.url}{path}", data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HANG_GUARD) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def error_of(text: str) -> str:
    """The ``error`` of a JSON body, or of the first server-sent event that carries one."""
    for line in text.splitlines() or [text]:
        line = line.removeprefix("data: ").strip()
        if line.startswith("{") and "error" in (obj := json.loads(line)):
            return str(obj["error"])
    raise AssertionError(f"no error in {text!r}")


def refused_by(message: str, name: str, by: str) -> None:
    """RADON's refusals start with the name; Triton's own mention it quoted."""
    message = message.removeprefix("[request id: <id_unknown>] ")
    if by == "radon":
        assert message.startswith(name), message
    else:
        assert f"'{name}'" in message, message


# ---- the generate model over HTTP ------------------------------------------------------------------
def body(**changes: Any) -> str:
    """A valid /generate body with ``changes`` (a value of None drops the key; values are JSON text)."""
    fields = {"text_input": '"Hello"', "max_tokens": "4", **changes}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items() if v is not None) + "}"


CHAT_OK = json.dumps(json.dumps([{"role": "user", "content": "Hi"}]))
GENERATE = [  # (id, body, the input the message names, who refuses: radon or triton)
    ("max_tokens-zero", body(max_tokens="0"), "max_tokens", "radon"),
    ("max_tokens-negative", body(max_tokens="-1"), "max_tokens", "radon"),
    ("max_tokens-over-limit", body(max_tokens=str(LIMIT + 1)), "max_tokens", "radon"),
    ("max_tokens-past-context", body(max_tokens=str(CONTEXT)), "max_tokens", "radon"),
    ("max_tokens-2**31-wraps-negative", body(max_tokens=str(2**31)), "max_tokens", "radon"),
    ("max_tokens-missing", body(max_tokens=None), "max_tokens", "radon"),
    ("temperature-negative", body(temperature="-0.5"), "temperature", "radon"),
    ("temperature-nan", body(temperature="NaN"), "temperature", "radon"),
    ("temperature-inf", body(temperature="Infinity"), "temperature", "radon"),
    ("temperature-1e39-overflows-fp32", body(temperature="1e39"), "temperature", "radon"),
    ("top_k-negative", body(top_k="-1"), "top_k", "radon"),
    ("top_k-2**31-wraps-negative", body(top_k=str(2**31)), "top_k", "radon"),
    ("top_p-zero", body(top_p="0"), "top_p", "radon"),
    ("top_p-over-one", body(top_p="1.5"), "top_p", "radon"),
    ("top_p-negative", body(top_p="-0.1"), "top_p", "radon"),
    ("top_p-nan", body(top_p="NaN"), "top_p", "radon"),
    ("repetition_penalty-zero", body(repetition_penalty="0"), "repetition_penalty", "radon"),
    ("repetition_penalty-negative", body(repetition_penalty="-1"), "repetition_penalty", "radon"),
    ("repetition_penalty-neg-inf", body(repetition_penalty="-Infinity"), "repetition_penalty", "radon"),
    ("seed-2**63", body(seed=str(2**63)), "seed", "radon"),
    ("stop_words-empty-string", body(stop_words='[""]'), "stop_words", "radon"),
    ("stop_words-five", body(stop_words='["a", "b", "c", "d", "e"]'), "stop_words", "radon"),
    ("text_input-empty", body(text_input='""'), "text_input", "radon"),
    ("text_input-blank", body(text_input='"   "'), "text_input", "radon"),
    ("text_input-and-messages-missing", body(text_input=None), "text_input", "radon"),
    ("text_input-and-messages-both", body(messages=CHAT_OK), "text_input", "radon"),
    ("text_input-two-prompts", body(text_input='["a", "b"]'), "text_input", "triton"),
    ("text_input-past-context", body(text_input=json.dumps("слово " * 600)), "text_input", "radon"),
    ("unknown-key", body(min_p="0.1"), "min_p", "radon"),
    ("unknown-parameter", body(parameters='{"bogus": 1}'), "bogus", "radon"),
    ("unknown-tensorrt-llm-input", body(min_tokens="2"), "min_tokens", "radon"),  # TensorRT-LLM takes it, RADON does not
    ("messages-not-json", body(text_input=None, messages='"[{oops"'), "messages", "radon"),
    ("messages-not-a-list", body(text_input=None, messages=json.dumps('{"role": "user"}')), "messages", "radon"),
    ("messages-empty", body(text_input=None, messages='"[]"'), "messages", "radon"),
    ("messages-bad-role", body(text_input=None, messages=json.dumps('[{"role": "bot", "content": "x"}]')),
     "messages[0].role", "radon"),
    ("messages-no-content", body(text_input=None, messages=json.dumps('[{"role": "user"}]')),
     "messages[0].content", "radon"),
    ("messages-content-a-number", body(text_input=None, messages=json.dumps('[{"role": "user", "content": 5}]')),
     "messages[0].content", "radon"),
    ("messages-tool-calls", body(text_input=None, messages=json.dumps(
        '[{"role": "assistant", "content": "x", "tool_calls": []}]')), "messages[0].tool_calls", "radon"),
    ("messages-lone-surrogate", body(text_input=None, messages=json.dumps('[{"role": "user", "content": "\\ud800"}]')),
     "messages", "radon"),
    ("messages-no-chat-template", body(text_input=None, messages=CHAT_OK), "messages", "radon"),
]  # fmt: skip
RAW = [  # bodies that are not valid UTF-8: Triton's JSON parser passes the bytes on
    ("text_input-invalid-utf8", b'{"text_input": "\xff\xfe", "max_tokens": 4}', "text_input"),
    (
        "stop_words-invalid-utf8",
        b'{"text_input": "Hi", "max_tokens": 4, "stop_words": ["\xff"]}',
        "stop_words",
    ),
]
STREAM = [  # the same refusals on /generate_stream: the first (and only) event is the error, HTTP 400
    ("max_tokens-zero", body(max_tokens="0", stream="true"), "max_tokens"),
    ("temperature-nan", body(temperature="NaN", stream="true"), "temperature"),
    ("top_p-over-one", body(top_p="2", stream="true"), "top_p"),
    ("unknown-key", body(min_p="0.1", stream="true"), "min_p"),
    ("text_input-empty", body(text_input='""', stream="true"), "text_input"),
    ("messages-bad-role", body(text_input=None, stream="true",
                               messages=json.dumps('[{"role": "bot", "content": "x"}]')), "messages[0].role"),
]  # fmt: skip


@pytest.mark.parametrize(("probe", "payload", "name", "by"), GENERATE, ids=[g[0] for g in GENERATE])
def test_generate_http(server, probe: str, payload: str, name: str, by: str) -> None:
    status, text = post(server, "/v2/models/radon/generate", payload)
    assert status == 400, (status, text)
    refused_by(error_of(text), name, by)


@pytest.mark.parametrize(("probe", "payload", "name"), RAW, ids=[r[0] for r in RAW])
def test_generate_http_invalid_utf8(server, probe: str, payload: bytes, name: str) -> None:
    status, text = post(server, "/v2/models/radon/generate", payload)
    assert status == 400, (status, text)
    refused_by(error_of(text), name, "radon")


@pytest.mark.parametrize(("probe", "payload", "name"), STREAM, ids=[s[0] for s in STREAM])
def test_generate_stream_http(server, probe: str, payload: str, name: str) -> None:
    status, text = post(server, "/v2/models/radon/generate_stream", payload)
    assert status == 400, (status, text)
    refused_by(error_of(text), name, "radon")


def test_a_good_body_is_answered(server) -> None:
    """The probes' baseline: the same helpers, a valid body, HTTP 200 with text (so a 400 above is the
    bad value's doing)."""
    status, text = post(server, "/v2/models/radon/generate", "{" + GOOD + "}")
    assert status == 200 and json.loads(text)["generated_tokens"] == 4, text


# ---- the generate model over gRPC (typed tensors: no JSON in between) -------------------------------
GRPC = [  # (id, input name, numpy value, Triton dtype, the name the error starts with or quotes, by)
    ("max_tokens-zero", "max_tokens", np.array([[0]], np.int32), "INT32", "max_tokens", "radon"),
    ("max_tokens-fp32", "max_tokens", np.array([[4.0]], np.float32), "FP32", "max_tokens", "triton"),
    ("temperature-nan", "temperature", np.array([[np.nan]], np.float32), "FP32", "temperature", "radon"),
    ("top_p-inf", "top_p", np.array([[np.inf]], np.float32), "FP32", "top_p", "radon"),
    ("seed-uint64-max", "seed", np.array([[2**64 - 1]], np.uint64), "UINT64", "seed", "radon"),
    ("seed-int64", "seed", np.array([[-1]], np.int64), "INT64", "seed", "triton"),
    ("text_input-invalid-utf8", "text_input", np.array([[b"\xff"]], dtype=object), "BYTES", "text_input", "radon"),
    ("stream-int32", "stream", np.array([[1]], np.int32), "INT32", "stream", "triton"),
]  # fmt: skip


@pytest.mark.parametrize(("probe", "name", "value", "dtype", "named", "by"), GRPC, ids=[g[0] for g in GRPC])
def test_generate_grpc(
    server, probe: str, name: str, value: np.ndarray, dtype: str, named: str, by: str
) -> None:
    import queue

    grpcclient = pytest.importorskip("tritonclient.grpc")
    inputs = {"text_input": (np.array([[b"Hello"]], dtype=object), "BYTES"),
              "max_tokens": (np.array([[4]], np.int32), "INT32"), name: (value, dtype)}  # fmt: skip
    tensors = []
    for key, (array, triton_type) in inputs.items():
        tensor = grpcclient.InferInput(key, list(array.shape), triton_type)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: results.put(error))
    try:
        client.async_stream_infer("radon", tensors)
        error = results.get(timeout=HANG_GUARD)
    finally:
        client.stop_stream()
        client.close()
    assert error is not None, f"{probe}: accepted"
    refused_by(error.message(), named, by)


# ---- the tokenizer, detokenizer and decoder models (/infer) -----------------------------------------
def tensor(name: str, dtype: str, shape: list[int], data: list) -> dict:
    return {"name": name, "datatype": dtype, "shape": shape, "data": data}


def decoder_inputs(ids=(5, 6), mask=None, pos=None, *, past_len: int = 0) -> list[dict]:
    """radon_decoder's contract-4 inputs for one row (2 layers, 2 kv heads)."""
    n = len(ids)
    mask = [1] * (past_len + n) if mask is None else mask
    pos = list(range(past_len, past_len + n)) if pos is None else pos
    out = [tensor("input_ids", "INT64", [1, n], list(ids)), tensor("attention_mask", "INT64", [1, len(mask)], mask),
           tensor("position_ids", "INT64", [1, len(pos)], pos)]  # fmt: skip
    for i in range(2):
        for kv in ("key", "value"):
            shape = [1, 2, past_len, 16]
            out.append(tensor(f"past_key_values.{i}.{kv}", "FP32", shape, [0.0] * int(np.prod(shape))))
    return out


TEXT_IN = tensor("text_input", "BYTES", [1, 1], ["Hello"])
BOGUS = tensor("bogus", "INT32", [1, 1], [1])
INFER = [  # (id, model, request body, name, by)
    ("tokenizer-text_input-missing", "radon_tokenizer", {"inputs": []}, "text_input", "triton"),
    ("tokenizer-text_input-int32", "radon_tokenizer", {"inputs": [tensor("text_input", "INT32", [1, 1], [5])]},
     "text_input", "triton"),
    ("tokenizer-text_input-shape", "radon_tokenizer",
     {"inputs": [tensor("text_input", "BYTES", [1, 2], ["a", "b"])]}, "text_input", "triton"),
    ("tokenizer-text_input-data-not-shape", "radon_tokenizer",
     {"inputs": [tensor("text_input", "BYTES", [1, 1], ["a", "b"])]}, "text_input", "triton"),
    ("tokenizer-unknown-input-instead", "radon_tokenizer", {"inputs": [BOGUS]}, "bogus", "triton"),
    ("tokenizer-unknown-output", "radon_tokenizer", {"inputs": [TEXT_IN], "outputs": [{"name": "bogus"}]},
     "bogus", "triton"),
    ("detokenizer-id-over-vocab", "radon_detokenizer",
     {"inputs": [tensor("token_ids", "INT64", [1, 2], [5, VOCAB])]}, "token_ids", "radon"),
    ("detokenizer-id-negative", "radon_detokenizer",
     {"inputs": [tensor("token_ids", "INT64", [1, 2], [5, -1])]}, "token_ids", "radon"),
    ("detokenizer-token_ids-fp32", "radon_detokenizer",
     {"inputs": [tensor("token_ids", "FP32", [1, 2], [5.0, 6.0])]}, "token_ids", "triton"),
    ("detokenizer-sequence_length-over", "radon_detokenizer",
     {"inputs": [tensor("token_ids", "INT64", [1, 2], [5, 6]), tensor("sequence_length", "INT32", [1, 1], [9])]},
     "sequence_length", "radon"),
    ("detokenizer-sequence_length-negative", "radon_detokenizer",
     {"inputs": [tensor("token_ids", "INT64", [1, 2], [5, 6]), tensor("sequence_length", "INT32", [1, 1], [-1])]},
     "sequence_length", "radon"),
    ("detokenizer-token_ids-missing", "radon_detokenizer",
     {"inputs": [tensor("sequence_length", "INT32", [1, 1], [1])]}, "token_ids", "radon"),
    ("decoder-input_ids-over-vocab", "radon_decoder", {"inputs": decoder_inputs(ids=(5, VOCAB))}, "input_ids", "radon"),
    ("decoder-input_ids-negative", "radon_decoder", {"inputs": decoder_inputs(ids=(5, -3))}, "input_ids", "radon"),
    ("decoder-position_ids-negative", "radon_decoder", {"inputs": decoder_inputs(pos=[-5, -4])}, "position_ids",
     "radon"),
    ("decoder-position_ids-past-context", "radon_decoder", {"inputs": decoder_inputs(pos=[CONTEXT, CONTEXT + 1])},
     "position_ids", "radon"),
    ("decoder-position_ids-shape", "radon_decoder", {"inputs": decoder_inputs(pos=[0])}, "position_ids", "radon"),
    ("decoder-attention_mask-short", "radon_decoder", {"inputs": decoder_inputs(mask=[1])}, "attention_mask",
     "radon"),
    ("decoder-attention_mask-value-2", "radon_decoder", {"inputs": decoder_inputs(mask=[1, 2])}, "attention_mask",
     "radon"),
    ("decoder-past-head_dim", "radon_decoder",
     {"inputs": [*decoder_inputs()[:3], tensor("past_key_values.0.key", "FP32", [1, 2, 1, 8], [0.0] * 16),
                 *decoder_inputs()[4:]]}, "past_key_values.0.key", "triton"),
    ("decoder-inputs-missing", "radon_decoder", {"inputs": decoder_inputs()[:1]}, "attention_mask", "triton"),
    ("decoder-input_ids-fp32", "radon_decoder",
     {"inputs": [tensor("input_ids", "FP32", [1, 2], [5.0, 6.0]), *decoder_inputs()[1:]]}, "input_ids", "triton"),
]  # fmt: skip


@pytest.mark.parametrize(("probe", "model", "request_body", "name", "by"), INFER, ids=[i[0] for i in INFER])
def test_infer_models(server, probe: str, model: str, request_body: dict, name: str, by: str) -> None:
    status, text = post(server, f"/v2/models/{model}/infer", json.dumps(request_body))
    assert status == 400, (status, text)
    refused_by(error_of(text), name, by)


def test_unknown_model_is_404_naming_it(server) -> None:
    status, text = post(server, "/v2/models/nosuch/generate", "{" + GOOD + "}")
    assert status == 404 and "'nosuch'" in error_of(text), text


# ---- the CLI: build, serve, client ------------------------------------------------------------------
def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    """``radon ARGV`` in this process: (exit code, stderr). argparse's own errors exit 2 by SystemExit."""
    try:
        code = radon_main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, repository: Path) -> dict[str, Path]:
    """Folders that are not what a flag wants: empty, not a repository, half a repository."""
    import shutil

    root = tmp_path_factory.mktemp("triton_probe_folders")
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "notes.txt").write_text("mine")
    (root / "no_config" / "foo" / "1").mkdir(parents=True)
    (root / "no_version" / "foo").mkdir(parents=True)
    (root / "no_version" / "foo" / "config.pbtxt").write_text('name: "foo"\nbackend: "python"\n')
    shutil.copytree(repository / "radon_tokenizer", root / "no_model_py" / "radon_tokenizer")
    (root / "no_model_py" / "radon_tokenizer" / "1" / "model.py").unlink()
    return {p.name: p for p in root.iterdir()}


BUILD = [  # (id, argv after ARTIFACT --out OUT, the flag or file the message names)
    ("max-batch-zero", ["--max-batch", "0"], "--max-batch"),
    ("threads-negative", ["--threads", "-1"], "--threads"),
    ("max-tokens-limit-zero", ["--max-tokens-limit", "0"], "--max-tokens-limit"),
    ("instances-zero", ["--instances", "0"], "--instances"),
    ("name-path", ["--name", "../x"], "--name"),
    ("name-taken", ["--name", "radon_decoder"], "--name"),
    ("decoder-tensorrt-on-onnx", ["--decoder", "tensorrt"], "--decoder"),
    ("decoder-unknown", ["--decoder", "bogus"], "--decoder"),
    ("device-unknown", ["--device", "tpu"], "--device"),
]


@pytest.mark.parametrize(("probe", "args", "named"), BUILD, ids=[b[0] for b in BUILD])
def test_build_flags(
    capsys, text_artifact: Path, tmp_path: Path, probe: str, args: list[str], named: str
) -> None:
    code, err = run_cli(
        capsys, ["triton", "build", str(text_artifact), "--out", str(tmp_path / "repo"), *args]
    )
    assert code == 2 and named in err and "Traceback" not in err, err
    assert not (tmp_path / "repo" / "radon_repository.json").exists()  # nothing half-built


@pytest.mark.parametrize("probe", ["artifact-missing", "artifact-empty-folder", "out-not-a-repository"])
def test_build_folders(
    capsys, text_artifact: Path, folders: dict[str, Path], tmp_path: Path, probe: str
) -> None:
    artifact, out, named = {
        "artifact-missing": (tmp_path / "nope", tmp_path / "repo", str(tmp_path / "nope")),
        "artifact-empty-folder": (folders["empty"], tmp_path / "repo", "radon_manifest.json"),
        "out-not-a-repository": (text_artifact, folders["notes"], str(folders["notes"])),
    }[probe]
    code, err = run_cli(capsys, ["triton", "build", str(artifact), "--out", str(out)])
    assert code == 2 and named in err and "Traceback" not in err, err


SERVE_FOLDERS = {  # id -> (folder key, what the message names)
    "folder-missing": ("missing", "missing"),
    "folder-empty": ("empty", "MODEL/config.pbtxt"),
    "model-without-config": ("no_config", "foo/config.pbtxt"),
    "model-without-version": ("no_version", "foo/1/"),
    "python-model-without-model.py": ("no_model_py", "1/model.py"),
}


@pytest.mark.parametrize("probe", list(SERVE_FOLDERS))
def test_serve_folders(capsys, folders: dict[str, Path], tmp_path: Path, probe: str) -> None:
    key, named = SERVE_FOLDERS[probe]
    folder = folders.get(key, tmp_path / key)
    code, err = run_cli(capsys, ["triton", "serve", str(folder)])
    assert code == 2 and named in err and "Traceback" not in err, err


SERVE_FLAGS = [  # (id, flags, what the message names); the repository is the module's
    ("http-port-70000", ["--http-port", "70000"], "--http-port"),
    ("grpc-port-zero", ["--grpc-port", "0"], "--grpc-port"),
    ("ports-equal", ["--http-port", "18999", "--grpc-port", "18999"], "--grpc-port"),
    ("startup-timeout-zero", ["--startup-timeout", "0"], "--startup-timeout"),
    ("startup-timeout-nan", ["--startup-timeout", "nan"], "--startup-timeout"),
    ("log-verbose-negative", ["--log-verbose", "-1"], "--log-verbose"),
    ("models-unknown", ["--models", "nosuch"], "nosuch"),
    ("env-not-an-environment", ["--env", "/nonexistent-env"], "--env"),
    ("http-port-not-a-number", ["--http-port", "http"], "--http-port"),
]


@pytest.mark.parametrize(("probe", "flags", "named"), SERVE_FLAGS, ids=[s[0] for s in SERVE_FLAGS])
def test_serve_flags(
    capsys, repository: Path, server_install, probe: str, flags: list[str], named: str
) -> None:
    env = [] if "--env" in flags else ["--env", str(server_install.python_env)]
    code, err = run_cli(capsys, ["triton", "serve", str(repository), *env, *flags])
    assert code == 2 and named in err and "Traceback" not in err, err


def test_serve_on_a_taken_port_names_it_and_never_says_ready(capsys, repository: Path, server, server_install,
                                                            free_port) -> None:  # fmt: skip
    args = ["triton", "serve", str(repository), "--env", str(server_install.python_env), "--http-port",
            str(server.http_port), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]  # fmt: skip
    code, err = run_cli(capsys, args)
    assert code == 2 and f"--http-port: port {server.http_port}" in err and "already in use" in err, err
    assert "serve: ready" not in capsys.readouterr().out + err


CLIENT = [  # (id, flags, what the message names); checked before anything is sent
    ("max-tokens-zero", ["--max-tokens", "0"], "--max-tokens"),
    ("max-tokens-over-int32", ["--max-tokens", str(2**31)], "--max-tokens"),
    ("temperature-nan", ["--temperature", "nan"], "--temperature"),
    ("top-p-over-one", ["--top-p", "2"], "--top-p"),
    ("top-k-negative", ["--top-k", "-1"], "--top-k"),
    ("repetition-penalty-zero", ["--repetition-penalty", "0"], "--repetition-penalty"),
    ("seed-negative", ["--seed", "-1"], "--seed"),
    ("stop-empty", ["--stop", ""], "--stop"),
    ("url-scheme", ["--url", "ftp://127.0.0.1:1"], "--url"),
]


@pytest.mark.parametrize(("probe", "flags", "named"), CLIENT, ids=[c[0] for c in CLIENT])
def test_client_flags(capsys, server, probe: str, flags: list[str], named: str) -> None:
    url = [] if "--url" in flags else ["--url", server.url]
    code, err = run_cli(capsys, ["client", "--prompt", "Hello", *url, *flags])
    assert code == 2 and named in err and "Traceback" not in err, err


@pytest.mark.parametrize("probe", ["model-unknown", "nothing-listening"])
def test_client_server_side(capsys, server, free_port, probe: str) -> None:
    if probe == "model-unknown":
        argv, named = ["--url", server.url, "--model", "nosuch"], "nosuch"
    else:
        port = free_port()
        argv, named = ["--url", f"http://127.0.0.1:{port}"], f"127.0.0.1:{port}"
    code, err = run_cli(capsys, ["client", "--prompt", "Hello", *argv])
    assert code == 2 and named in err and "Traceback" not in err, err


# ---- kill -9 of radon triton serve ----------------------------------------------------------------
def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_9_of_serve_leaves_no_tritonserver(repository: Path, server_install, free_port,
                                                 tmp_path: Path) -> None:  # fmt: skip
    """SIGKILL cannot be caught: tritonserver dies by PR_SET_PDEATHSIG, its stubs by seeing it gone. No
    process of tritonserver's process group (it leads a session of its own) may be left."""
    http = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "radon", "triton", "serve", str(repository), "--env", str(server_install.python_env),
           "--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
           "--models", "radon", "radon_tokenizer"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + HANG_GUARD
        while "ready (tritonserver pid" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        pid = int(log.read_text().split("tritonserver pid ")[1].split(")")[0])
        assert group_alive(pid)  # the server and its stubs run
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30  # the stubs notice their server is gone within seconds
        while group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(pid), f"tritonserver's group {pid} outlived radon triton serve"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
