"""``radon triton build``, ``radon triton serve`` and ``radon client``: Triton Inference Server (docs/triton.md)."""

from __future__ import annotations

import json as jsonlib
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

from radon.cli._app import Opt


def build(
    artifact: Annotated[Path, Opt(metavar="ARTIFACT")],
    *,
    out: Annotated[Path, Opt(metavar="REPO")],
    name: str = "radon",
    decoder: Literal["auto", "onnxruntime", "python", "tensorrt"] = "auto",
    max_batch: int | None = None,
    instances: int = 1,
    decode_loop: Literal["auto", "in_process", "bls"] = "auto",
    threads: int = 0,
    max_tokens_limit: int = 1024,
    device: Literal["cpu", "gpu"] = "cpu",
    overwrite: bool = False,
    k8s: Annotated[Path | None, Opt(metavar="DIR")] = None,
) -> int:
    """Generate a Triton model repository from an artifact's manifest.

    Models: radon_tokenizer and radon_detokenizer (python backend), radon_decoder (onnxruntime_onnx,
    the python backend, or tensorrt_plan for an engine folder), and the generate model (python
    backend, BLS, decoupled: /v2/models/NAME/generate and /generate_stream; inputs text_input,
    max_tokens, stream, temperature, top_k, top_p, repetition_penalty, stop_words, seed; output
    text_output). docs/triton.md has the layout and the deployment commands.

    Args:
        artifact: an ONNX artifact (radon export onnx) or a TensorRT engine folder (radon export trt), with tokenizer/.
        out: the repository folder to write (empty, absent, or a repository built from the same artifact).
        name: the generate model's name.
        decoder: auto = tensorrt for an engine folder, onnxruntime where a tritonserver with the onnxruntime backend is installed (the NGC container), python otherwise (nvidia-pytriton has the python backend only).
        max_batch: Triton's max_batch_size, and the most requests generated together (default 8; an engine's own limit when smaller).
        instances: instances of the decoder and of the generate model.
        decode_loop: auto = in_process for ONNX (the generate model runs onnxruntime itself), bls for engines (one BLS call to radon_decoder per token).
        threads: onnxruntime intra-op threads of the decoder and of the in-process loop (0: onnxruntime's choice).
        max_tokens_limit: the most new tokens one request may ask for.
        device: gpu puts the onnxruntime decoder on a GPU (KIND_GPU).
        overwrite: replace a repository built from another artifact.
        k8s: also write Kubernetes manifests for the repository into DIR (Deployment with health probes, Service, HorizontalPodAutoscaler on Triton's queue time, the repository mounted read-only; docs/triton.md).
    """
    from radon.model_repository import build_repository

    if k8s is not None and k8s.exists() and not k8s.is_dir():  # before the repository is written
        from radon.errors import RadonError

        raise RadonError(f"--k8s: {k8s} exists and is not a folder")
    result = build_repository(artifact, out, name=name, decoder=decoder, max_batch=max_batch, instances=instances,
                              decode_loop=decode_loop, threads=threads, max_tokens_limit=max_tokens_limit,
                              device=device, overwrite=overwrite)  # fmt: skip
    print(f"radon triton build: {result.repository}: {', '.join(result.models)} "
          f"({result.decoder} decoder, {result.decode_loop} decode loop)")  # fmt: skip
    print(f"  serve it: radon triton serve {result.repository}")
    if k8s is not None:
        from radon.model_repository.k8s import write_manifests

        files = write_manifests(result.repository, k8s)
        print(f"  kubernetes: {', '.join(str(f) for f in files)} (kubectl apply -f {k8s})")
    return 0


def serve(
    repository: Annotated[Path, Opt(metavar="REPO")],
    *,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    host: str = "127.0.0.1",
    env: Annotated[Path | None, Opt(metavar="VENV")] = None,
    startup_timeout: float = 180.0,
    log_verbose: int = 0,
    models: list[str] | None = None,
) -> int:
    """Run a real tritonserver on a model repository until SIGTERM or Ctrl-C.

    The tritonserver on PATH (an NGC container) if there is one, else the one in nvidia-pytriton, run
    with the Python of an environment that has numpy<2 (the python backend stub needs it): --env, or
    $RADON_TRITON_VENV, or .triton-venv, made by scripts/make_triton_env.sh.

    A folder that is not a model repository is refused naming the missing file, a port in use naming
    the flag; "ready" means the server this command started answers. tritonserver (and its python
    stubs) go down with this command however it ends, kill -9 included.

    Args:
        repository: a model repository (radon triton build).
        http_port: HTTP port (generate: POST /v2/models/radon/generate and /generate_stream).
        grpc_port: gRPC port (streaming: tritonclient.grpc start_stream).
        metrics_port: Prometheus metrics port (/metrics).
        host: address to bind (0.0.0.0 accepts other machines).
        env: an environment with nvidia-pytriton and numpy<2 (skips a tritonserver on PATH).
        startup_timeout: seconds to wait for every model to be ready.
        log_verbose: tritonserver's --log-verbose level.
        models: load only these models (Triton's explicit model control), e.g. radon radon_tokenizer: the in-process decode loop needs no radon_decoder, whose weights are a second copy in memory.
    """
    from radon.errors import ConfigError
    from radon.model_repository.server import TritonServer, check_port_free, check_repository, find_server
    from radon.runtime.params import check_float, check_int

    # the user's mistakes first, before looking for a server or touching signals
    check_float("--startup-timeout", startup_timeout, low=0, low_open=True)
    check_int("--log-verbose", log_verbose, low=0)
    ports = {"--http-port": http_port, "--grpc-port": grpc_port, "--metrics-port": metrics_port}
    for flag, port in ports.items():
        check_int(flag, port, low=1, high=65535)
    if len(set(ports.values())) < len(ports):
        raise ConfigError(
            f"--http-port, --grpc-port, --metrics-port: must differ, got {list(ports.values())}"
        )
    check_repository(repository)
    for flag, port in ports.items():  # TritonServer.start checks again, right before starting
        check_port_free(host, port, flag)
    install = find_server(venv=env)
    server = TritonServer(repository, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                          host=host, install=install, log_verbose=log_verbose, models=models)  # fmt: skip
    print(f"radon triton serve: {install.describe()}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # while starting: stop it, then exit (130)
    server.start(startup_timeout)
    print(f"radon triton serve: ready (tritonserver pid {server.pid}): HTTP {server.url}, gRPC {server.grpc_url}, "
          f"metrics http://{host}:{metrics_port}/metrics", flush=True)  # fmt: skip
    code = server.serve_until_stopped()
    print(f"radon triton serve: stopped (exit code {code})", flush=True)
    return code


def client(
    *,
    prompt: str,
    url: str = "http://127.0.0.1:8000",
    model: str = "radon",
    max_tokens: int = 64,
    stream: bool = False,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    stop: list[str] | None = None,
    seed: int | None = None,
    timeout: float = 300.0,
    json: bool = False,
) -> int:
    """Send one prompt to a Triton generate model and print the text (streamed as it arrives with --stream).

    Args:
        prompt: the prompt text.
        url: http://HOST:PORT (Triton's generate extension) or grpc://HOST:PORT (tritonclient's gRPC stream).
        model: the generate model's name.
        max_tokens: new tokens to generate.
        stream: print each token's text as it arrives (one response per token).
        temperature: 0 = greedy (the model's default); > 0 samples.
        top_k: keep the k most likely tokens (0 = off).
        top_p: nucleus sampling mass in (0, 1].
        repetition_penalty: > 0; 1 = off.
        stop: stop strings (the text is cut before the first one).
        seed: the sampler's seed.
        timeout: seconds to wait for the server.
        json: print one JSON object (text, responses, timings) instead of the text.
    """
    from radon.model_repository.client import generate
    from radon.runtime.params import check_float, check_int, check_seed, check_stop_strings, check_text

    # the flags are checked here, as the generate model would: a value Triton's own JSON parser cannot
    # take (a negative --seed for its UINT64 input) would otherwise come back as Triton's HTTP 500
    check_text("--prompt", prompt)
    check_int("--max-tokens", max_tokens, low=1, high=2**31 - 1)  # the model's max_tokens is INT32
    check_float("--temperature", temperature, low=0, optional=True)
    check_int("--top-k", top_k, low=0, high=2**31 - 1, optional=True)
    check_float("--top-p", top_p, low=0, high=1, low_open=True, optional=True)
    check_float("--repetition-penalty", repetition_penalty, low=0, low_open=True, optional=True)
    check_seed(seed, "--seed")
    check_stop_strings("--stop", stop)
    check_float("--timeout", timeout, low=0, low_open=True)

    def show(piece: str) -> None:
        print(piece, end="", flush=True)

    reply = generate(url, prompt, model=model, max_tokens=max_tokens, stream=stream, timeout_s=timeout,
                     on_piece=show if stream and not json else None, temperature=temperature, top_k=top_k,
                     top_p=top_p, repetition_penalty=repetition_penalty, stop_words=stop or None, seed=seed)  # fmt: skip
    if json:
        print(jsonlib.dumps({"text": reply.text, "responses": reply.responses,
                             "time_to_first_response_s": round(reply.time_to_first_response_s, 4),
                             "total_s": round(reply.total_s, 4)}, ensure_ascii=False))  # fmt: skip
    elif stream:
        print()
    else:
        print(reply.text)
    print(f"[{url} {model}] {reply.responses} response(s), first after {reply.time_to_first_response_s * 1000:.0f} ms, "
          f"{reply.total_s:.2f} s", file=sys.stderr)  # fmt: skip
    return 0
