"""Probes of the generation parameters on every surface that takes them (docs/reliability.md, "Request
parameters" and "radon generate"): ``radon serve``'s seed route and both OpenAI routes, and ``radon
generate`` on a checkpoint and on an artifact. Each bad value gets the expected status or exit code and
a message that names the parameter; all of them are refused by the one validation module
(``radon.runtime.params``).

One tiny chat model for the module (tests/chat_testing.py: checkpoint, ``ort`` artifact, and a
``portable`` export for flash attention), one server under a real uvicorn on a loopback port. HTTP
bodies are written as JSON text, so that NaN, Infinity and lone surrogates (``"\\ud800"``) reach the
server exactly as a hostile client would send them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("torch")
pytest.importorskip("uvicorn")

LIMIT = 48  # the server's max new tokens
CONTEXT = 1024  # the chat model's max_position_embeddings
HANG_GUARD = 60  # seconds: a probe that waits this long has failed; no probe asserts a duration
NAN, INF, NEG_INF = float("nan"), float("inf"), float("-inf")
SURROGATE = "\ud800"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from chat_testing import chat_artifact

    from radon.export.exporter import export_onnx

    root = tmp_path_factory.mktemp("request_params")
    ckpt, artifact = chat_artifact(root)
    portable = export_onnx(ckpt, root / "portable", attention="portable", parity=False, threads=1).path
    return SimpleNamespace(ckpt=ckpt, artifact=artifact, portable=portable)


@pytest.fixture(scope="module")
def server(models: SimpleNamespace) -> Iterator[str]:
    from chat_testing import serving

    import radon.runtime
    from radon.runtime.server import create_app

    app = create_app(radon.runtime.load(models.artifact, threads=1), max_tokens_limit=LIMIT, model_name="m")
    with serving(app) as url:
        yield url


# ---- HTTP -----------------------------------------------------------------------------------------
ROUTES = {  # route -> (path, a valid body, its name for the new-token budget)
    "seed": ("/api/v1/generate", {"prompt": "Hello", "max_new_tokens": 4}, "max_new_tokens"),
    "completions": ("/v1/completions", {"model": "m", "prompt": "Hello", "max_tokens": 4}, "max_tokens"),
    "chat": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "Hello"}],
                                      "max_completion_tokens": 4}, "max_completion_tokens"),
}  # fmt: skip
SAMPLING = [  # (parameter, bad value, what it is); each is probed on all three routes
    ("temperature", NAN, "nan"), ("temperature", INF, "inf"), ("temperature", -1.0, "negative"),
    ("temperature", "hot", "string"), ("temperature", True, "bool"),
    ("top_p", NAN, "nan"), ("top_p", 0.0, "zero"), ("top_p", 1.5, "too-large"), ("top_p", -0.5, "negative"),
    ("min_p", NAN, "nan"), ("min_p", 1.0, "too-large"), ("min_p", -0.1, "negative"),
    ("repetition_penalty", NAN, "nan"), ("repetition_penalty", NEG_INF, "neg-inf"),
    ("repetition_penalty", 0.0, "zero"),
    ("top_k", -1, "negative"), ("top_k", True, "bool"), ("top_k", "5", "string"), ("top_k", 2**70, "too-large"),
    ("top_k", 2.5, "float"),
    ("seed", -1, "negative"), ("seed", 2**63, "2**63"), ("seed", 2**64 + 5, "beyond-uint64"), ("seed", True, "bool"),
    ("seed", "1", "string"),
]  # fmt: skip
BUDGET = [("zero", 0), ("negative", -5), ("over-limit", LIMIT + 1), ("huge", 2**70), ("bool", True), ("float", 1.5),
          ("string", "8")]  # fmt: skip
TYPE_ERRORS = (str, bool, float)  # pydantic refuses these (422 on the seed route, 400 under /v1)


def _http_status(route: str, value: object, param: str, where: str = "plan") -> int:
    """400 for what radon.runtime.params refuses; a type error is pydantic's: 422 on the seed route."""
    kind = type(value)
    if where == "schema" or (kind in TYPE_ERRORS and not (kind is float and param not in INT_FIELDS)):
        return 422 if route == "seed" else 400
    return 400


INT_FIELDS = {"top_k", "seed", "max_new_tokens", "max_tokens", "max_completion_tokens", "max_length",
              "sliding_window_size"}  # fmt: skip


def _probes() -> list[tuple[str, str, dict, int, str]]:
    """(id, route, body, status, name the message must carry)."""
    out = []
    for route, (_, base, budget_name) in ROUTES.items():
        for param, value, what in SAMPLING:
            body = base | {param: value}
            out.append((f"{route}-{param}-{what}", route, body, _http_status(route, value, param), param))
        for what, value in BUDGET:
            body = base | {budget_name: value}
            out.append((f"{route}-{budget_name}-{what}", route, body, _http_status(route, value, budget_name),
                        budget_name))  # fmt: skip
        out.append((f"{route}-unknown-key", route, base | {"beam_size": 4}, _http_status(route, 0, "", "schema"),
                    "beam_size"))  # fmt: skip
        out.append((f"{route}-misspelled-key", route, base | {"temprature": 0.5},
                    _http_status(route, 0, "", "schema"), "temprature"))  # fmt: skip
        out.append((f"{route}-surrogate-key", route, base | {SURROGATE: 1}, _http_status(route, 0, "", "schema"),
                    "not valid UTF-8"))  # fmt: skip
        out.append((f"{route}-stop-surrogate", route, base | {"stop": ["ok", SURROGATE]}, 400, "stop"))
        out.append((f"{route}-stop-empty", route, base | {"stop": [""]}, 400, "stop"))
        out.append((f"{route}-stop-too-many", route, base | {"stop": list("abcde")}, 400, "stop"))
        out.append(
            (f"{route}-stop-number", route, base | {"stop": 5}, _http_status(route, 0, "", "schema"), "stop")
        )
    seed_base = ROUTES["seed"][1]
    out += [
        ("seed-prompt-surrogate", "seed", seed_base | {"prompt": f"Hi {SURROGATE}"}, 400, "prompt"),
        ("seed-prompt-null", "seed", seed_base | {"prompt": None}, 422, "prompt"),
        ("seed-prompt-number", "seed", seed_base | {"prompt": 5}, 422, "prompt"),
        ("seed-max_length-zero", "seed", {"prompt": "Hello", "max_length": 0}, 400, "max_length"),
        ("seed-max_length-no-room", "seed", {"prompt": "Hello", "max_length": 1}, 400, "max_length"),
        ("seed-max_length-bool", "seed", {"prompt": "Hello", "max_length": True}, 422, "max_length"),
        ("seed-max_length-negative", "seed", {"prompt": "Hello", "max_length": -3}, 400, "max_length"),
        ("seed-sliding_window_size-zero", "seed", seed_base | {"sliding_window_size": 0}, 400, "sliding_window_size"),
        ("seed-sliding_window_size-other", "seed", seed_base | {"sliding_window_size": 64}, 400,
         "sliding_window_size"),
        ("seed-use_flash_attention-string", "seed", seed_base | {"use_flash_attention": "yes"}, 422,
         "use_flash_attention"),
        ("seed-use_flash_attention-int", "seed", seed_base | {"use_flash_attention": 1}, 422, "use_flash_attention"),
        ("seed-temperature-null", "seed", seed_base | {"temperature": None}, 422, "temperature"),
        ("seed-ignore_eos-string", "seed", seed_base | {"ignore_eos": "no"}, 422, "ignore_eos"),
        ("completions-prompt-surrogate", "completions", ROUTES["completions"][1] | {"prompt": SURROGATE}, 400,
         "prompt"),
        ("completions-prompt-list-surrogate", "completions", ROUTES["completions"][1] | {"prompt": ["ok", SURROGATE]},
         400, "prompt"),
        ("completions-prompt-ids-out-of-vocab", "completions", ROUTES["completions"][1] | {"prompt": [1, 10**6]}, 400,
         "prompt"),
        ("completions-prompt-null", "completions", ROUTES["completions"][1] | {"prompt": None}, 400, "prompt"),
        ("completions-model-surrogate", "completions", ROUTES["completions"][1] | {"model": SURROGATE}, 404, "model"),
        ("completions-user-surrogate", "completions", ROUTES["completions"][1] | {"user": SURROGATE}, 400, "user"),
        ("chat-content-surrogate", "chat",
         ROUTES["chat"][1] | {"messages": [{"role": "user", "content": f"a{SURROGATE}"}]}, 400, "messages"),
        ("chat-role-surrogate", "chat", ROUTES["chat"][1] | {"messages": [{"role": SURROGATE, "content": "a"}]}, 400,
         "messages"),
        ("chat-message-key-surrogate", "chat",
         ROUTES["chat"][1] | {"messages": [{"role": "user", "content": "a", SURROGATE: "x"}]}, 400, "not valid UTF-8"),
        ("chat-messages-null", "chat", ROUTES["chat"][1] | {"messages": None}, 400, "messages"),
        ("chat-max_tokens-negative", "chat", {"model": "m", "messages": [{"role": "user", "content": "a"}],
                                               "max_tokens": -1}, 400, "max_tokens"),
    ]  # fmt: skip
    return out


HTTP_PROBES = _probes()


def _send(url: str, route: str, body: dict, client: httpx.Client | None = None) -> httpx.Response:
    """POST ``body`` as JSON text with NaN/Infinity literals and ``\\uXXXX`` escapes (what a client can send)."""
    content = json.dumps(body, allow_nan=True).encode()
    post = (client or httpx).post  # type: ignore[attr-defined]
    return post(url + ROUTES[route][0], content=content, headers={"Content-Type": "application/json"},
                timeout=HANG_GUARD)  # fmt: skip


def _message(r: httpx.Response) -> str:
    body = r.json()
    return body["error"]["message"] if "error" in body else body["detail"]


@pytest.mark.parametrize(
    "route, body, status, name", [p[1:] for p in HTTP_PROBES], ids=[p[0] for p in HTTP_PROBES]
)
def test_http_parameter_probe(server: str, route: str, body: dict, status: int, name: str) -> None:
    r = _send(server, route, body)
    assert r.status_code == status, r.text
    assert name in _message(r), r.text


def test_the_seeds_exact_request_is_answered(server: str) -> None:
    """MIGRATION_GUIDE.md's curl: max_length 32000 capped at the server's limit and reported; flash
    attention honoured by the ``ort`` artifact's fused GroupQueryAttention."""
    r = _send(server, "seed", {"prompt": "Привет, RADON!", "max_length": 32000, "use_flash_attention": True})
    assert r.status_code == 200, r.text
    budget = r.json()["budget"]
    assert budget["requested"] == 32000 and budget["capped_by"] == "max_tokens_limit"
    assert budget["max_new_tokens"] == LIMIT


def test_a_refused_surrogate_keeps_the_connection(server: str) -> None:
    """The 400 for a lone surrogate leaves the keep-alive connection usable (it was reset after a 500)."""
    with httpx.Client() as client:
        bad = _send(server, "seed", {"prompt": SURROGATE}, client)
        good = _send(server, "seed", ROUTES["seed"][1], client)
    assert bad.status_code == 400 and "prompt: not valid UTF-8" in _message(bad)
    assert good.status_code == 200, good.text


# ---- radon generate -------------------------------------------------------------------------------
CLI_COMMON = [  # (id, flags, message): refused before the model is loaded, on either backend
    ("temperature-nan", ["--temperature", "nan"], "temperature: must be a finite number"),
    ("temperature-inf", ["--temperature", "inf"], "temperature: must be a finite number"),
    ("temperature-negative", ["--temperature", "-1"], "temperature: must be >= 0"),
    ("temperature-string", ["--temperature", "hot"], "--temperature: invalid float value"),
    ("top-p-zero", ["--top-p", "0"], "top_p: must be in (0, 1]"),
    ("top-p-nan", ["--top-p", "nan"], "top_p: must be a finite number"),
    ("min-p-one", ["--min-p", "1"], "min_p: must be in [0, 1)"),
    ("repetition-penalty-neg-inf", ["--repetition-penalty=-inf"], "repetition_penalty: must be a finite"),
    ("top-k-negative", ["--top-k", "-3"], "top_k: must be >= 0"),
    ("seed-negative", ["--seed", "-1"], "seed: must be in [0, 2**63)"),
    ("seed-2**63", ["--seed", str(2**63)], "seed: must be in [0, 2**63)"),
    ("max-new-tokens-zero", ["--max-new-tokens", "0"], "max_new_tokens: must be > 0"),
    ("max-new-tokens-past-context", ["--max-new-tokens", str(CONTEXT)], "max_position_embeddings"),
    ("sliding-window-size-zero", ["--sliding-window-size", "0"], "sliding_window_size: must be > 0"),
    ("prompt-not-utf8", ["--prompt", "ab\udcff"], "--prompt: not valid UTF-8 text (byte 0xff"),
    ("prompt-surrogate", ["--prompt", SURROGATE], "--prompt: not valid UTF-8 text"),
    ("chat-not-utf8", ["--chat", "\udcc3("], "--chat: not valid UTF-8 text"),
    ("stop-not-utf8", ["--prompt", "hi", "--stop", "\udcff"], "--stop[0]: not valid UTF-8 text"),
    ("stop-empty", ["--prompt", "hi", "--stop", ""], "--stop: a stop string is empty"),
    ("prompt-ids-not-ints", ["--prompt-ids", "1 two"], "--prompt-ids: expected space-separated integers"),
    ("prompt-ids-out-of-vocab", ["--prompt-ids", "1 100000"], "--prompt-ids: ids must be in [0, 300)"),
]  # fmt: skip
NEEDS_PROMPT = ("--prompt", "--prompt-ids", "--chat")
CLI_PROBES = [(f"{backend}-{pid}", backend, flags, message) for backend in ("checkpoint", "artifact")
              for pid, flags, message in CLI_COMMON]  # fmt: skip
CLI_PROBES += [
    ("artifact-sliding-window-size-other", "artifact", ["--sliding-window-size", "64"], "sliding_window_size"),
    ("portable-use-flash-attention", "portable", ["--prompt-ids", "1 5", "--use-flash-attention"],
     "use_flash_attention: an ONNX artifact with the portable lowering"),
    ("checkpoint-providers", "checkpoint", ["--providers", "cpu"], "--providers"),
]  # fmt: skip


@pytest.mark.parametrize(
    "backend, flags, message", [p[1:] for p in CLI_PROBES], ids=[p[0] for p in CLI_PROBES]
)
def test_cli_parameter_probe(
    models: SimpleNamespace, capsys, backend: str, flags: list[str], message: str
) -> None:
    from radon.cli import main

    path = {"checkpoint": models.ckpt, "artifact": models.artifact, "portable": models.portable}[backend]
    prompt = [] if any(f in flags for f in NEEDS_PROMPT) else ["--prompt", "hi"]
    budget = [] if "--max-new-tokens" in flags else ["--max-new-tokens", "2"]
    try:
        code = main(["generate", str(path), *prompt, *flags, *budget])
    except SystemExit as exc:  # argparse's own refusal of a value that is not a number
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err


def test_cli_non_utf8_prompt_bytes_in_a_real_process(models: SimpleNamespace) -> None:
    """Bytes that are not UTF-8 on a real command line (Python keeps them as surrogate escapes)."""
    run = "import sys; from radon.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", run, "generate", str(models.artifact), "--prompt"]
    done = subprocess.run([*map(str.encode, argv), b"caf\xe9"], capture_output=True, timeout=HANG_GUARD)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "--prompt: not valid UTF-8 text (byte 0xe9" in err, err
    assert "Traceback" not in err


def test_probe_count() -> None:
    """docs/reliability.md counts these; keep at least 60 distinct probes."""
    ids = [p[0] for p in HTTP_PROBES] + [p[0] for p in CLI_PROBES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
