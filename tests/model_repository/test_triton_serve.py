"""``radon triton serve``: finding a server (PATH, then nvidia-pytriton in an environment with numpy<2),
one clear line when there is none, a repository whose decoder needs a backend the server lacks, and the
command itself: a real tritonserver on loopback that answers, then stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from radon.errors import RadonError
from radon.model_repository import build_repository
from radon.model_repository.server import MAKE_ENV, TritonServer, find_server, pytriton_install


def test_no_server_is_one_line_naming_the_script(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("RADON_TRITON_VENV", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        "radon.model_repository.server.candidate_envs", lambda explicit=None: [tmp_path / "none"]
    )
    with pytest.raises(RadonError) as err:
        find_server()
    assert MAKE_ENV in str(err.value) and "\n" not in str(err.value)


def test_an_env_that_could_not_install_the_server_says_why(tmp_path, monkeypatch):
    """scripts/make_triton_env.sh exits 0 when pip cannot install nvidia-pytriton (CI then skips the server
    tests) and leaves the reason in the env's UNAVAILABLE file, which find_server quotes."""
    env = tmp_path / "env"
    env.mkdir()
    (env / "UNAVAILABLE").write_text(
        "nvidia-pytriton could not be installed: ERROR: no wheel for this platform\n"
    )
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("radon.model_repository.server.candidate_envs", lambda explicit=None: [env])
    with pytest.raises(
        RadonError, match="^no tritonserver: nvidia-pytriton could not be installed: ERROR: no wheel"
    ):
        find_server()


def test_an_environment_with_numpy_2_or_without_radon_is_refused(tmp_path):
    info = {"pytriton": str(tmp_path), "numpy_version": "2.4.6", "radon_runtime": True, "version": "3.11",
            "purelib": str(tmp_path), "libdir": "/usr/lib"}  # fmt: skip
    with pytest.raises(RadonError, match=r"numpy 2.4.6; the python backend stub needs numpy<2"):
        pytriton_install(tmp_path, info)
    with pytest.raises(RadonError, match="RADON .* is not installed there"):
        pytriton_install(tmp_path, info | {"numpy_version": "1.26.4", "radon_runtime": False})


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads Linux /proc")
def test_listening_ports_are_the_process_own():
    """Readiness counts only when the started process itself listens on the HTTP port: a socket this
    process listens on is found, one that is merely bound, or another process's, is not."""
    import socket

    from radon.model_repository.server import listening_ports

    with socket.socket() as listener, socket.socket() as bound:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        bound.bind(("127.0.0.1", 0))
        ports = listening_ports(os.getpid())
        assert ports is not None and listener.getsockname()[1] in ports
        assert bound.getsockname()[1] not in ports
    assert listening_ports(2**22 + 7) is None  # no such process: unknown, not "no ports"


@pytest.mark.triton
def test_a_decoder_the_server_cannot_run_is_refused_before_starting(text_artifact, tmp_path, server_install):
    repo = build_repository(text_artifact, tmp_path / "repo", decoder="onnxruntime").repository
    with pytest.raises(
        RadonError, match="radon_decoder needs Triton's onnxruntime backend.*--decoder python"
    ):
        TritonServer(repo, install=server_install)


def serve_command(repo: Path, env: Path, ports: list[int]) -> list[str]:
    from radon.cli import VERBS

    args = [str(repo), "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port",
            str(ports[2]), "--env", str(env), "--models", "radon", "radon_tokenizer"]  # fmt: skip
    if "triton serve" in VERBS:
        return [sys.executable, "-m", "radon", "triton", "serve", *args]
    code = "import sys; from radon.cli._app import call; from radon.cli.triton import serve; " \
           "sys.exit(call(serve, 'radon triton serve', sys.argv[1:]))"  # fmt: skip
    return [sys.executable, "-c", code, *args]


@pytest.mark.triton
def test_serve_answers_then_stops_on_sigterm(repository, server_install, text_gen, tmp_path, free_port):
    ports = [free_port(), free_port(), free_port()]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(serve_command(repository, server_install.python_env, ports), stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 180  # hang guard only: the asserts below read the log
        while "ready" not in (tmp_path / "serve.log").read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        out = (tmp_path / "serve.log").read_text()
        assert f"HTTP http://127.0.0.1:{ports[0]}" in out, out
        assert "nvidia-pytriton" in out  # says which server and which environment it uses
        body = json.dumps({"text_input": "Hello", "max_tokens": 8}).encode()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{ports[0]}/v2/models/radon/generate", body, timeout=60
        ) as r:
            assert json.loads(r.read())["text_output"] == text_gen.generate_text("Hello", 8)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = (tmp_path / "serve.log").read_text()
    assert "SIGTERM: stopping tritonserver" in out and "stopped (exit code 0)" in out
    pid = int(out.split("tritonserver pid ")[1].split(")")[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=5)


@pytest.mark.triton
def test_demo_step(text_artifact, server_install, text_gen, tmp_path):
    from radon.demo import PIPELINE, PROMPTS, QUICK_RECIPE, DemoContext
    from radon.model_repository.demo_step import step_triton

    ctx = DemoContext(out=tmp_path, quick=True, recipe=QUICK_RECIPE, data_dir=tmp_path, smoke=False,
                      outputs={"onnx": text_artifact}, say=lambda s: None)  # fmt: skip
    result = step_triton(ctx)
    assert result.startswith("tritonserver answered") and "then stopped" in result
    assert ctx.facts["triton"]["text"] == text_gen.generate_text(PROMPTS["en"], QUICK_RECIPE.serve_tokens)
    assert QUICK_RECIPE.serve_tokens == 16
    names = [s.name for s in PIPELINE]
    i = names.index("triton")
    assert PIPELINE[i].run is step_triton and names[i - 1] == "serve"
