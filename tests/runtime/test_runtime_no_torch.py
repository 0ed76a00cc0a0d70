"""``import radon.runtime`` imports no torch (nor fastapi), and a whole generation runs without it.

Checked in fresh interpreters, since this test session has torch loaded already. CI additionally
runs scripts/check_runtime_venv.sh, a venv where torch is not installed at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "fastapi", "uvicorn", "transformers", "onnx", "starlette", "pydantic")


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_is_light():
    got = _run(
        "import json, sys; import radon.runtime; "
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r} + ('onnxruntime',)}}))"
    )
    assert not any(got.values()), f"import radon.runtime imported {[m for m, v in got.items() if v]}"


def test_generation_runs_without_torch(text_artifact: Path):
    code = f"""
import json, sys
import numpy as np
import radon.runtime
gen = radon.runtime.load({str(text_artifact)!r}, threads=1)
text = gen.generate_text("Привет", 8, ignore_eos=True)
ids = gen.generate(np.array([[1, 50, 60]]), 4, temperature=0.8, top_p=0.9, seed=1)
print(json.dumps({{"text": text, "shape": list(ids.shape), "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    got = _run(code)
    assert got["loaded"] == [], f"a generation imported {got['loaded']}"
    assert got["shape"] == [1, 7] and isinstance(got["text"], str)


def test_every_runtime_module_is_torch_free():
    """Every module of ``runtime/`` (the server's apart: it needs fastapi) imports without torch or
    transformers; the benchmark harness, which loads peers through them, lives in ``radon.bench``."""
    names = sorted(
        p.stem for p in (Path(__file__).parents[2] / "runtime").glob("*.py") if p.stem != "__init__"
    )
    assert "batching" in names and not [n for n in names if n.startswith("bench")]
    got = _run(
        "import importlib, json, sys; "
        f"[importlib.import_module('radon.runtime.' + n) for n in {names!r}]; "
        f"print(json.dumps([m for m in ('torch', 'transformers') if m in sys.modules]))"
    )
    assert got == [], f"a runtime module imported {got}"
