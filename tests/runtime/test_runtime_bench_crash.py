"""``radon bench --compare`` with peers that die: a segfault in ``decode`` (as llama-cpp-python 0.3.36 on
quantized GGUFs on an AMX host), SIGKILL, ``os._exit(139)`` in a later round, an exception at load.
Each gets a row that says it crashed and why; RADON and a steady peer still report. No timings asserted.

The dying peers run ``bench_worker``'s real protocol loop (its ``main``) with a fake engine, under a
stand-in interpreter (a shell script), exactly as a peer venv's Python would be run.
"""

from __future__ import annotations

import json
import signal
import stat
import sys
from pathlib import Path

import pytest

from radon.bench.crash import Crash, crash_site, exit_reason, stderr_excerpt

FAULT_DUMP = """\
llama_model_loader: loaded meta data with 27 key-value pairs
Fatal Python error: Segmentation fault

Current thread 0x00007f3a1c1ff740 (most recent call first):
  File "/venv/lib/python3.12/site-packages/llama_cpp/_internals.py", line 303 in decode
  File "/venv/lib/python3.12/site-packages/llama_cpp/llama.py", line 641 in eval
  File "/repo/radon/bench/worker.py", line 205 in pp
  File "<frozen runpy>", line 88 in _run_code

Extension modules: numpy._core._multiarray_umath, numpy.linalg._umath_linalg (total: 14)
"""
TRACEBACK = """\
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/repo/radon/bench/worker.py", line 255, in main
    engine = make(args)
  File "/repo/radon/bench/worker.py", line 190, in __init__
    self.model = og.Model(config)
                 ^^^^^^^^^^^^^^^^
RuntimeError: Load model from /cache/genai-int4/model.onnx failed: file not found
"""


def test_exit_reasons():
    assert exit_reason(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_reason(1) == "exited with status 1"
    assert exit_reason(139) == "exited with status 139 (128 + SIGSEGV, as a shell reports that signal)"


def test_where_it_died_from_stderr():
    assert crash_site(FAULT_DUMP) == ("decode", None)
    assert crash_site(TRACEBACK) == (
        "__init__",
        "RuntimeError: Load model from /cache/genai-int4/model.onnx failed: file not found",
    )
    assert crash_site("genai: the benchmark drives batch 1 only\n") == (None, None)
    assert stderr_excerpt(FAULT_DUMP) == [
        "Fatal Python error: Segmentation fault",
        "Current thread 0x00007f3a1c1ff740 (most recent call first):",
        '  File "/venv/lib/python3.12/site-packages/llama_cpp/_internals.py", line 303 in decode',
        '  File "/venv/lib/python3.12/site-packages/llama_cpp/llama.py", line 641 in eval',
    ]
    assert stderr_excerpt(TRACEBACK, 2) == [
        "    self.model = og.Model(config)",
        "RuntimeError: Load model from /cache/genai-int4/model.onnx failed: file not found",
    ]
    crash = Crash.from_exit(-signal.SIGSEGV, FAULT_DUMP, "tg8 (round 2)")
    assert crash.summary == "killed by SIGSEGV in decode; during tg8 (round 2)"
    assert Crash.from_exit(1, TRACEBACK, "load").summary == (
        "exited with status 1 in __init__: RuntimeError: Load model from /cache/genai-int4/model.onnx failed: "
        "file not found; during load"
    )


FAKE_WORKER = '''
"""A peer interpreter's stand-in: bench_worker's real loop over an engine that dies as argv says."""
import os, signal, sys

sys.argv = [sys.argv[0], *sys.argv[3:]]  # drop "-m radon.bench.worker"
from radon.bench import worker as bench_worker


def decode():  # the frame faulthandler names, as in llama_cpp._internals
    os.kill(os.getpid(), signal.SIGSEGV)


class Engine:
    def __init__(self, mode):
        if mode == "raise-on-load":
            raise RuntimeError("no model file at /nowhere")
        self.mode, self.generations, self.vocab = mode, 0, 100
        self.info = {"version": f"fake {mode}"}

    def pp(self, n):
        if self.mode == "sigkill-in-prefill":
            os.kill(os.getpid(), signal.SIGKILL)
        return 0.001 * n

    def tg(self, prompt, n):
        self.generations += 1  # 1: the warm-up, 2: round 1, 3: round 2
        if self.mode == "segv-in-decode":
            decode()
        if self.mode == "exit-in-round-2" and self.generations == 3:
            print("ggml_abort: something went wrong", file=sys.stderr, flush=True)
            os._exit(139)
        return [0.01 * (i + 1) for i in range(n)]


bench_worker.make = lambda args: Engine(args.engine)
bench_worker.main()
'''
MODES = ("segv-in-decode", "sigkill-in-prefill", "exit-in-round-2", "raise-on-load", "steady")


def fake_interpreter(folder: Path) -> Path:
    """A shell script run as ``PYTHON -m radon.bench.worker ENGINE MODEL ...``."""
    (folder / "fake_worker.py").write_text(FAKE_WORKER)
    script = folder / "python"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{folder / "fake_worker.py"}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_bench_compare_reports_crashed_peers_and_goes_on(text_artifact, tmp_path, monkeypatch, capsys):
    import radon.bench.runtime as bench
    from radon.bench.peers import Peer
    from radon.bench.report import markdown

    python = fake_interpreter(tmp_path)
    peers = [Peer(mode, f"fake {mode}", str(python), tmp_path, engine=mode) for mode in MODES]
    monkeypatch.setattr(bench, "prepare_peers", lambda *args, **kwargs: peers)
    assert bench.run(text_artifact, compare=True, runs=2, threads=1, prompt_tokens=8, new_tokens=8,
                     pp_sizes=(), json=True) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    engines = report["engines"]
    for name in ("radon", "steady"):  # the others still report, every round
        assert "crashed" not in engines[name] and "skipped" not in engines[name], engines[name]
        assert engines[name]["tests"]["tg8"]["n"] == 2 and engines[name]["tests"]["tg8"]["median"] > 0
    assert engines["segv-in-decode"]["crashed"] == "killed by SIGSEGV in decode; during tg4 (warm-up)"
    assert engines["segv-in-decode"]["crash"]["stderr"][0] == "Fatal Python error: Segmentation fault"
    assert engines["segv-in-decode"]["version"] == "fake segv-in-decode"  # it loaded, then died
    assert engines["sigkill-in-prefill"]["crashed"] == "killed by SIGKILL; during pp8 (warm-up)"
    late = engines["exit-in-round-2"]
    assert late["crashed"] == (
        "exited with status 139 (128 + SIGSEGV, as a shell reports that signal); during tg8 (round 2)"
    )
    assert late["crash"]["stderr"][-1] == "ggml_abort: something went wrong"
    assert late["tests"]["tg8"]["n"] == 1  # round 1's figures are kept in the JSON
    assert engines["raise-on-load"]["crashed"] == (
        "exited with status 1 in __init__: RuntimeError: no model file at /nowhere; during load"
    )
    assert report["machine"]["host"]

    text = markdown(report)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table}
    assert rows["fake segv-in-decode"].startswith(
        "| fake segv-in-decode | fake segv-in-decode | 0 | **crashed**: killed by SIGSEGV in decode; during tg4"
    )
    assert "**crashed**: exited with status 1 in __init__: RuntimeError" in rows["fake raise-on-load"]
    assert "crashed" not in rows["fake steady"] and "crashed" not in rows["RADON (ort, fp32)"]
    assert {line.count(" | ") for line in table} == {rows["fake steady"].count(" | ")}  # the same columns
    assert "- fake segv-in-decode: crashed: killed by SIGSEGV in decode; during tg4 (warm-up); stderr: " \
           "`Fatal Python error: Segmentation fault`" in text  # fmt: skip
    assert f"host: {report['machine']['host']}; " in text


@pytest.mark.parametrize("crashed", [True, False])
def test_targets_say_a_peer_crashed(crashed):
    from radon.bench.report import quantized_targets

    stats = {"median": 100.0, "min": 100.0, "max": 100.0, "n": 1, "rounds": [100.0]}
    peer = {"label": "llama.cpp Q8_0", "family": "int8", "tests": {}}
    if crashed:
        peer["crashed"] = "killed by SIGSEGV in decode; during tg4 (warm-up)"
    else:
        peer["skipped"] = "no venv"
    report = {"new_tokens": 8, "engines": {"radon-int8": {"label": "RADON (ort, int8)", "family": "int8",
                                                          "tests": {"tg8": stats}}, "llamacpp-q8_0": peer}}  # fmt: skip
    said = "llama.cpp Q8_0 crashed" if crashed else "llama.cpp Q8_0 did not run"
    assert quantized_targets(report) == [f"- int8 decode >= llama.cpp Q8_0: not checked ({said})"]


def test_the_peer_venvs_are_looked_for_at_the_repository_root(monkeypatch) -> None:
    """``scripts/make_bench_venv.sh`` makes ``.bench-venv`` at the repository root; the harness looks there
    (it looked in ``radon/`` after the move to ``radon/bench/``, so every peer read "not available")."""
    from radon.bench import peers

    monkeypatch.delenv("RADON_BENCH_VENV", raising=False)
    assert (peers.REPO / "pyproject.toml").is_file() and (
        peers.REPO / "scripts" / "make_bench_venv.sh"
    ).is_file()
    assert peers.bench_venv_python() == peers.REPO / ".bench-venv" / "bin" / "python"
