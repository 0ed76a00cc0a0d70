"""Fixtures for the Triton-language kernel tests (marker ``kernels``; skipped without triton).

The interpreted cases run in one subprocess with TRITON_INTERPRET=1, and the ahead-of-time checks in
another without it: Triton fixes its mode when it is imported, so neither may depend on what the
pytest process imported first.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
HAS_TRITON = importlib.util.find_spec("triton") is not None


def load_helper(name: str):  # noqa: ANN201
    """Import tests/kernels/<name>.py by path (the tests folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"radon_tests_kernels_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def run_script(script: str, *args: str, interpret: bool, timeout: float = 300) -> dict:
    """Run tests/kernels/<script> in a fresh interpreter; return the JSON on its last stdout line."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # triton 3.9 warns when unset
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(f"{script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def interpreted_results() -> dict:
    """Every case of swa_cases.CASES, run once under the interpreter."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed: pip install 'radon[kernels]'")
    return run_script("swa_cases.py", interpret=True)


@pytest.fixture(scope="session")
def compiled_results() -> dict:
    """The ahead-of-time checks of compiled_checks.py (PTX for named GPU targets, no GPU needed)."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed: pip install 'radon[kernels]'")
    return run_script("compiled_checks.py", interpret=False)


SWA_CASES = load_helper("swa_cases")


@pytest.fixture(scope="session")
def swa_cases():  # noqa: ANN201
    """The swa_cases module (its CASES, seeds and input makers)."""
    return SWA_CASES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``swa_case`` runs once per case of swa_cases.CASES."""
    if "swa_case" in metafunc.fixturenames:
        metafunc.parametrize("swa_case", SWA_CASES.CASES, ids=[c.id for c in SWA_CASES.CASES])
