"""Find and run a real ``tritonserver``: the one on PATH (an NGC container), else the one in ``nvidia-pytriton``.

The NGC container (``nvcr.io/nvidia/tritonserver:<yy.mm>-py3``) puts ``tritonserver`` on PATH with its
backends in ``/opt/tritonserver/backends`` (python, onnxruntime, tensorrt, ...). Elsewhere RADON runs the
binary that ``nvidia-pytriton`` bundles (tritonserver 2.51, python backend only), set up as pytriton
itself does (``pytriton/triton.py``, ``_prepare_triton_inference_server``; DESIGN.md's verified recipe):

- the wheel's ``tritonserver/`` is copied to a work dir, and the stub built for the environment's Python
  (``python_backend_stubs/3.X/triton_python_backend_stub``) into its ``backends/python/``;
- the environment's ``bin`` goes first in PATH, so the stub runs that Python and imports its packages;
- ``LD_LIBRARY_PATH`` gets the wheel's ``nvidia_pytriton.libs`` and the Python's ``LIBDIR`` (the stub
  links ``libpython3.X.so.1.0``).

That environment needs ``numpy<2`` (with numpy 2 the stub corrupts outputs and dies), so it is usually not
the main venv but ``.triton-venv``, made by ``scripts/make_triton_env.sh``. ``TritonServer`` binds to
loopback unless told otherwise, waits for ``/v2/health/ready`` with a timeout and a clear error, and
stops with SIGTERM (Triton unloads its models and exits), then SIGKILL to its process group.

The server belongs to the process that started it:

- before starting, the repository is checked (every model folder has its ``config.pbtxt`` and a
  version folder; a python-backend model its ``model.py``) and each port must be free, so a taken
  port is an error naming it rather than a "ready" answered by another server;
- ready means ``/v2/health/ready`` answers *and* the started tritonserver is the process listening on
  the HTTP port (Linux: its socket inodes in ``/proc``);
- on Linux tritonserver runs with ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: when the thread that started
  it dies, by any signal including SIGKILL, the kernel kills tritonserver, and its python-backend
  stubs see the server gone and exit (``pb_stub.cc``, "Non-graceful termination detected");
- a work dir left by a starter that was killed is removed by the next start.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from radon.errors import RadonError

log = logging.getLogger(__name__)
ENV_VAR = "RADON_TRITON_VENV"
ENV_DIR = ".triton-venv"
MAKE_ENV = "scripts/make_triton_env.sh"
UNAVAILABLE = "UNAVAILABLE"  # written by MAKE_ENV into the env when nvidia-pytriton cannot be installed
NGC_BACKENDS = Path("/opt/tritonserver/backends")
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}
WORKDIR_PREFIX = "radon-tritonserver-"  # + the starter's pid + "-": a dead starter's dir is stale
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_PROBE = r"""
import importlib.util, json, sys, sysconfig
out = {"version": f"{sys.version_info[0]}.{sys.version_info[1]}", "libdir": sysconfig.get_config_var("LIBDIR"),
       "purelib": sysconfig.get_paths()["purelib"]}
for name in ("pytriton", "numpy", "radon"):
    spec = importlib.util.find_spec(name)
    out[name] = None if spec is None else (list(spec.submodule_search_locations or [spec.origin]) or [None])[0]
import numpy
out["numpy_version"] = numpy.__version__
out["radon_runtime"] = importlib.util.find_spec("radon.model_repository.request") is not None
print(json.dumps(out))
"""


@dataclass(frozen=True)
class ServerInstall:
    """A tritonserver to run: ``kind`` ``path`` (as found) or ``pytriton`` (set up from the wheel)."""

    kind: str
    binary: Path
    backends: tuple[str, ...]  # backends it has (python, onnxruntime, tensorrt, ...)
    backend_dir: Path | None = None  # None: the binary's own default
    env: dict[str, str] = field(default_factory=dict)  # variables added to the server's environment
    stub: Path | None = None  # pytriton: the python backend stub to install
    python_env: Path | None = None  # pytriton: the environment whose Python runs the stub

    def describe(self) -> str:
        if self.kind == "path":
            return f"{self.binary} (backends: {', '.join(self.backends) or 'unknown'})"
        return f"nvidia-pytriton's tritonserver, python backend only, Python of {self.python_env}"


def _backends_in(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir())) if folder.is_dir() else ()


def has_backend(name: str) -> bool:
    """Whether a tritonserver on PATH has backend ``name`` (the NGC container's layout)."""
    return shutil.which("tritonserver") is not None and (NGC_BACKENDS / name).is_dir()


def candidate_envs(explicit: str | Path | None = None) -> list[Path]:
    """Environments that may hold nvidia-pytriton, in the order they are tried."""
    out = [Path(explicit)] if explicit else []
    if os.environ.get(ENV_VAR):
        out.append(Path(os.environ[ENV_VAR]))
    out += [Path(sys.prefix), Path.cwd() / ENV_DIR, Path(__file__).resolve().parents[1] / ENV_DIR]
    seen, unique = set(), []
    for p in out:
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def probe_env(env: Path) -> dict | None:
    """What an environment's Python holds (pytriton, numpy, radon), or None if it has no Python."""
    python = env / "bin" / "python"
    if not python.exists():
        return None
    try:
        out = subprocess.run([str(python), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def pytriton_install(env: Path, info: dict) -> ServerInstall:
    """The pytriton server of ``env`` (as ``probe_env`` described it), checked: numpy<2 and radon present."""
    if not info.get("pytriton"):
        raise RadonError(f"{env}: nvidia-pytriton is not installed there; run {MAKE_ENV}")
    if int(str(info["numpy_version"]).split(".")[0]) >= 2:
        raise RadonError(
            f"{env}: numpy {info['numpy_version']}; the python backend stub needs numpy<2 (run {MAKE_ENV})"
        )
    if not info.get("radon_runtime"):
        raise RadonError(
            f"{env}: RADON (radon.model_repository.request) is not installed there; re-run {MAKE_ENV}"
        )
    dist = Path(info["pytriton"]) / "tritonserver"
    stub = dist / "python_backend_stubs" / info["version"] / "triton_python_backend_stub"
    if not stub.is_file():
        raise RadonError(f"{env}: nvidia-pytriton has no python backend stub for Python {info['version']}")
    libs = Path(info["purelib"]) / "nvidia_pytriton.libs"
    ld = ":".join(p for p in (str(libs), info["libdir"] or "", os.environ.get("LD_LIBRARY_PATH", "")) if p)
    path = f"{env.resolve() / 'bin'}:{os.environ.get('PATH', '')}"
    return ServerInstall("pytriton", dist / "bin" / "tritonserver", ("python",), None,
                         {"PATH": path, "LD_LIBRARY_PATH": ld, "PYTHONNOUSERSITE": "1"}, stub, env.resolve())  # fmt: skip


def find_server(*, venv: str | Path | None = None, prefer_path: bool = True) -> ServerInstall:
    """The tritonserver to run: nvidia-pytriton's in ``venv`` when it is given (an error if it has none);
    else on PATH first (unless ``prefer_path`` is False), else nvidia-pytriton's in the first environment
    of ``candidate_envs`` that has it. RadonError (one line naming scripts/make_triton_env.sh) when
    there is none."""
    binary = shutil.which("tritonserver")
    if binary and prefer_path and venv is None:
        return ServerInstall("path", Path(binary), _backends_in(NGC_BACKENDS))
    if venv is not None:  # asked for by name: that environment or an error, never another one
        info = probe_env(Path(venv))
        if info is None:
            raise RadonError(
                f"--env {venv}: not a Python environment (no bin/python that runs); run {MAKE_ENV}"
            )
        return pytriton_install(Path(venv), info)
    problems = []
    for env in candidate_envs(venv):
        info = probe_env(env)
        if info is None or not info.get("pytriton"):
            continue
        try:
            return pytriton_install(env, info)
        except RadonError as exc:
            problems.append(str(exc))
    if problems:
        raise RadonError(problems[0])
    for env in candidate_envs(venv):  # the env script records why it could not install the server
        note = env / UNAVAILABLE
        if note.is_file():
            raise RadonError(f"no tritonserver: {note.read_text(encoding='utf-8').strip()}")
    raise RadonError(
        f"no tritonserver on PATH and no environment with nvidia-pytriton ({ENV_DIR}, ${ENV_VAR}): run {MAKE_ENV}"
    )


def repository_backends(repository: Path) -> dict[str, str]:
    """model -> backend each config.pbtxt in ``repository`` names (``platform`` mapped to its backend)."""
    out = {}
    for cfg in sorted(repository.glob("*/config.pbtxt")):
        text = cfg.read_text(encoding="utf-8")
        backend = re.search(r'^backend:\s*"([^"]+)"', text, re.M)
        platform = re.search(r'^platform:\s*"([^"]+)"', text, re.M)
        if backend:
            out[cfg.parent.name] = backend.group(1)
        elif platform:
            out[cfg.parent.name] = PLATFORM_BACKENDS.get(platform.group(1), platform.group(1))
    return out


def check_repository(repository: str | Path) -> Path:
    """``repository`` resolved, once it looks like a Triton model repository; RadonError naming the
    missing folder or file otherwise (a model folder without ``config.pbtxt``, without a version folder,
    or a python-backend model without ``<version>/model.py``)."""
    root = Path(repository)
    if not root.is_dir():
        raise RadonError(f"{repository}: no such model repository (a folder made by radon triton build)")
    models = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not models:
        raise RadonError(
            f"{repository}: not a model repository: no MODEL/config.pbtxt in it (radon triton build makes one)"
        )
    for model in models:
        config = model / "config.pbtxt"
        if not config.is_file():
            raise RadonError(f"{config}: missing; every model folder of a Triton repository needs one")
        versions = [v for v in model.iterdir() if v.is_dir() and v.name.isdigit()]
        if not versions:
            raise RadonError(f"{model}: no version folder ({model.name}/1/) in this model")
        if repository_backends(root).get(model.name) == "python":
            for version in versions:
                if not (version / "model.py").is_file():
                    raise RadonError(f"{version / 'model.py'}: missing; a python-backend model needs it")
    return root.resolve()


def check_port_free(host: str, port: int, flag: str) -> None:
    """RadonError naming ``flag`` when something already listens on ``host:port`` (or it is not a port)."""
    if not 0 < port < 65536:
        raise RadonError(f"{flag}: {port} is not a TCP port (1-65535)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RadonError(
                    f"{flag}: port {port} on {host} is already in use (another server listens there); "
                    "choose another port"
                ) from None
            raise RadonError(f"{flag}: cannot bind {host}:{port} ({exc.strerror})") from None


def listening_ports(pid: int) -> set[int] | None:
    """TCP ports process ``pid`` listens on (Linux ``/proc``), or None where that cannot be read."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    inodes = set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()  # sl local_address rem_address st ... inode (column 9)
            if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def _die_with_parent(prctl: Callable[..., int], parent: int) -> None:
    """``preexec_fn`` of tritonserver: SIGKILL from the kernel when the starting thread dies. Runs in the
    forked child, so ``prctl`` is looked up in the parent beforehand."""
    if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(126)
    if os.getppid() != parent:  # the starter died before prctl took effect
        os._exit(126)


def _remove_stale_workdirs() -> None:
    """Work dirs of starters that no longer run (killed before they could remove theirs)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = folder.name[len(WORKDIR_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


class TritonServer:
    """One tritonserver process on ``repository`` (see the module docstring). A context manager."""

    def __init__(self, repository: str | Path, *, http_port: int = 8000, grpc_port: int = 8001,
                 metrics_port: int = 8002, host: str = "127.0.0.1", install: ServerInstall | None = None,
                 log_file: str | Path | None = None, log_verbose: int = 0, exit_timeout_s: int = 10,
                 extra_args: tuple[str, ...] = (), models: list[str] | None = None) -> None:  # fmt: skip
        self.repository = check_repository(repository)
        self.install = install or find_server()
        self.host, self.http_port, self.grpc_port, self.metrics_port = (
            host,
            http_port,
            grpc_port,
            metrics_port,
        )
        self.log_file = Path(log_file) if log_file else None
        self.log_verbose, self.exit_timeout_s = log_verbose, exit_timeout_s
        self.extra_args = tuple(extra_args)  # more tritonserver flags, e.g. ("--http-thread-count", "32")
        self.models = list(models or [])  # load only these (explicit model control); default: every model
        missing = [m for m in self.models if not (self.repository / m / "config.pbtxt").is_file()]
        if missing:
            raise RadonError(f"{missing[0]}: no such model in {self.repository}")
        self.process: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._check_backends()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _check_backends(self) -> None:
        if self.install.kind == "path" and not self.install.backends:
            return  # a custom layout: let tritonserver say what it lacks
        for model, backend in repository_backends(self.repository).items():
            if self.models and model not in self.models:
                continue
            if backend not in self.install.backends:
                hint = (
                    " (rebuild with radon triton build --decoder python)" if backend == "onnxruntime" else ""
                )
                raise RadonError(
                    f"{model} needs Triton's {backend} backend, which this tritonserver lacks "
                    f"({self.install.describe()}){hint}"
                )

    def command(self, backend_dir: Path | None, cache_dir: Path | None) -> list[str]:
        cmd = [str(self.install.binary), "--model-repository", str(self.repository)]
        if backend_dir:
            cmd += ["--backend-directory", str(backend_dir)]
        if cache_dir:
            cmd += ["--cache-directory", str(cache_dir)]
        cmd += [
            "--http-address", self.host, "--grpc-address", self.host, "--metrics-address", self.host,
            "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port), "--allow-gpu-metrics", "false",
            "--exit-timeout-secs", str(self.exit_timeout_s), "--log-verbose", str(self.log_verbose),
            "--strict-readiness", "true", *self.extra_args,
        ]  # fmt: skip
        if self.models:
            cmd += ["--model-control-mode", "explicit"]
            for model in self.models:
                cmd += ["--load-model", model]
        return cmd

    def _prepare(self) -> tuple[Path | None, Path | None]:
        """pytriton: copy the server and install the stub in a work dir; returns (backends, caches)."""
        if self.install.kind != "pytriton":
            return self.install.backend_dir, None
        _remove_stale_workdirs()
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        dist = self.install.binary.parents[1]
        root = self._workdir / "tritonserver"
        shutil.copytree(dist, root, ignore=shutil.ignore_patterns("python_backend_stubs", "__pycache__"))
        assert self.install.stub is not None
        shutil.copy2(self.install.stub, root / "backends" / "python" / "triton_python_backend_stub")
        self._binary = root / "bin" / "tritonserver"
        return root / "backends", root / "caches"

    def start(self, timeout_s: float = 120.0) -> TritonServer:
        """Start the server and wait until it is ready; RadonError with the log's tail if it is not, or
        naming the port when one is already taken."""
        for port, flag in ((self.http_port, "--http-port"), (self.grpc_port, "--grpc-port"),
                           (self.metrics_port, "--metrics-port")):  # fmt: skip
            check_port_free(self.host, port, flag)
        backends, caches = self._prepare()
        cmd = self.command(backends, caches)
        if self.install.kind == "pytriton":
            cmd[0] = str(self._binary)
        env = {**os.environ, **self.install.env}
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115 - lives with the process
        log.info("starting %s", " ".join(cmd))
        tie = None
        if sys.platform.startswith("linux"):
            tie = functools.partial(_die_with_parent, ctypes.CDLL(None, use_errno=True).prctl, os.getpid())
        self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                        start_new_session=True, preexec_fn=tie)  # fmt: skip
        if out:
            out.close()
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise RadonError(
                    f"tritonserver exited with code {code} before it was ready{self._log_tail()}"
                )
            if self.ready() and self._owns_http_port():
                log.info("tritonserver ready at %s (gRPC %s)", self.url, self.grpc_url)
                return
            time.sleep(0.2)
        raise RadonError(f"tritonserver was not ready after {timeout_s:.0f} s{self._log_tail()}")

    def _owns_http_port(self) -> bool:
        """Whether the HTTP port that answered is the started tritonserver's (True where /proc is absent)."""
        assert self.process is not None
        ports = listening_ports(self.process.pid)
        return ports is None or self.http_port in ports

    def _log_tail(self, lines: int = 30) -> str:
        if not self.log_file or not self.log_file.is_file():
            return ""
        tail = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        errors = [line for line in tail if line.startswith("E") or "rror" in line] or tail[-5:]
        return "; its log (" + str(self.log_file) + ") ends:\n" + "\n".join(errors[-10:])

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM) without waiting: safe inside a signal handler."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def serve_until_stopped(self, stop_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
                            grace_s: float = 30.0) -> int:  # fmt: skip
        """Block until the server exits; ``stop_signals`` are forwarded to it as SIGTERM (a second one,
        or ``grace_s`` without an exit, kills it). Returns 0 after a requested stop, else its exit code."""
        asked: list[float] = []

        def forward(signum: int, _frame: object) -> None:
            log.warning("%s: stopping tritonserver", signal.Signals(signum).name)
            if asked:
                asked[0] = 0.0  # a second signal: do not wait any longer
            else:
                asked.append(time.monotonic())
            self.terminate()

        previous = {s: signal.signal(s, forward) for s in stop_signals}
        try:
            assert self.process is not None
            while True:
                try:
                    code = self.process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if asked and time.monotonic() - asked[0] > grace_s:
                        os.killpg(self.process.pid, signal.SIGKILL)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.stop()
        return 0 if asked else code

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (Triton unloads its models), then SIGKILL to the process group; removes the work dir."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("tritonserver did not stop in %.0f s: killing its process group", timeout_s)
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)
            code = self.process.returncode
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return code

    def __enter__(self) -> TritonServer:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
