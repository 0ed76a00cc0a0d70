"""``radon export trt`` without TensorRT, its --trtexec mode, and the build progress display."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest

from radon.export.trt.progress import BuildProgress

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def radon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radon", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed, so the missing-extra path cannot be shown")
def test_missing_tensorrt_is_one_line_naming_the_extra(make_artifact, tmp_path: Path) -> None:  # noqa: ANN001
    result = radon("export", "trt", str(make_artifact()), "--out", str(tmp_path / "engine"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'radon[trt]'" in lines[0] and "tensorrt" in lines[0]
    assert result.stdout == "" and not (tmp_path / "engine").exists()


def test_trtexec_mode_needs_no_tensorrt(make_artifact, tmp_path: Path) -> None:  # noqa: ANN001
    art = make_artifact()
    result = radon(
        "export", "trt", str(art), "--out", str(tmp_path / "engine"), "--trtexec", "--max-prefill", "64"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("trtexec")
    assert f"--onnx={art / 'model.onnx'}" in result.stdout and "--profile=1" in result.stdout
    assert "past_key_values.0.key:1x2x7x16" in result.stdout


def test_trtexec_mode_refuses_the_plugin_graph(make_artifact, tmp_path: Path) -> None:  # noqa: ANN001
    art = make_artifact(attention="trt-plugin", with_plugin=True)
    result = radon("export", "trt", str(art), "--out", str(tmp_path / "e"), "--trtexec")
    assert result.returncode == 2 and "radon export trt" in result.stderr


def test_help_loads_without_tensorrt() -> None:
    result = radon("export", "trt", "--help")
    assert result.returncode == 0 and "--max-prefill" in result.stdout and "--trtexec" in result.stdout


def test_missing_artifact_names_the_manifest(tmp_path: Path) -> None:
    result = radon("export", "trt", str(tmp_path / "nope"), "--out", str(tmp_path / "e"))
    assert result.returncode == 2 and "radon_manifest.json" in result.stderr


def test_progress_display_follows_nested_phases() -> None:
    out = io.StringIO()
    p = BuildProgress(file=out)
    p.phase_start("Building engine", None, 3)
    p.phase_start("Tactic timing", "Building engine", 2)
    assert p.step_complete("Tactic timing", 0) and p.step_complete("Tactic timing", 1)
    p.phase_finish("Tactic timing")
    assert p.step_complete("Building engine", 0)
    p.cancelled = True  # what a Ctrl-C sets: TensorRT is asked to stop
    assert not p.step_complete("Building engine", 1)
    p.phase_finish("Building engine")
    text = out.getvalue()
    assert "Building engine" in text and "Tactic timing" in text and p.bars == {}


def test_importing_the_packages_imports_no_backend() -> None:
    code = (
        "import sys, radon.export.trt, radon.export.kernels, radon.export.trt.profiles, radon.export.trt.trtexec;"
        "print(sorted(m for m in ('tensorrt', 'triton', 'onnx', 'torch', 'polygraphy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
