"""Docs that run: the README's pipeline block, executed line by line on the built-in corpus, and its
Python block, executed as written.

Each line runs as written, with ``../shared/data`` pointed at the built-in corpus and a few flags
appended that shrink the work (fewer steps, fewer samples); values that must agree between lines
(the tokenizer's vocabulary and the model config's) are never rewritten, so a README whose lines
contradict each other fails here; a line whose verb waits forever (a
server) or needs peers or a Hugging Face download is covered by its own tests and listed in SKIPPED.
"""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest

from radon.cli import main

ROOT = Path(__file__).resolve().parents[2]
# README line prefix -> flags appended (or replacements) so that the line runs in seconds
SHRINK = {
    "radon tokenizer train": {},
    "radon train": {"": "--steps 80 --batch-size 4 --context 64 --warmup-steps 5 --lr 1e-2 --no-progress"},
    "radon eval": {"": "--max-bytes 4000"},
    "radon export onnx": {"": "--quiet"},
    "radon quantize": {"": "--samples 4"},
    "radon parity": {"": "--max-tokens 128 --greedy-tokens 4"},
    "radon generate": {"--max-new-tokens 32": "--max-new-tokens 4"},
}
SKIPPED = {
    "radon serve": "a server runs until stopped: tests/runtime start it on a loopback port",
    "radon triton": "needs the Triton server env: tests/model_repository",
    "radon client": "needs a running tritonserver: tests/model_repository/test_triton_server.py",
    "radon bench": "--compare needs the peer venv: tests/runtime (slow, peers)",
    "radon convert": "needs a Hugging Face folder: tests/model/test_hf_parity.py",
}


def pipeline_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## The CLI", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [
        re.sub(r"\s+#.*$", "", ln).strip() for ln in block.splitlines() if ln.strip().startswith("radon ")
    ]


def test_every_readme_line_is_run_or_explained() -> None:
    lines = pipeline_lines()
    assert len(lines) >= 8
    for line in lines:
        assert any(line.startswith(p) for p in (*SHRINK, *SKIPPED, "radon info")), (
            f"README line not covered: {line}"
        )


def test_readme_pipeline_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from radon.data import builtin_corpus

    builtin_corpus(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    for line in pipeline_lines():
        if any(line.startswith(p) for p in SKIPPED):
            continue
        for prefix, changes in SHRINK.items():
            if line.startswith(prefix):
                for old, new in changes.items():
                    line = line.replace(old, new) if old else f"{line} {new}"
        line = line.replace("../shared/data", str(tmp_path / "data"))
        argv = shlex.split(line)[1:]
        argv = [p for a in argv for p in (sorted(glob.glob(a)) if "*" in a else [a])]
        assert main(argv) == 0, f"README line failed: {line}\n{capsys.readouterr().err[-2000:]}"
    assert (tmp_path / "art-int4" / "radon_manifest.json").is_file()
    assert (tmp_path / "parity.md").read_text().startswith("# Parity report")


def readme_python() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]


def test_readme_python_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The README's Python block as written, in a folder where ``radon-demo/onnx`` is a tiny model's export
    (a decisive tiny Mistral with a byte-level BPE tokenizer) instead of the demo's."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import torch
    from chat_testing import chat_artifact

    _, artifact = chat_artifact(tmp_path / "build", template=None)
    (tmp_path / "radon-demo").mkdir()
    artifact.rename(tmp_path / "radon-demo" / "onnx")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_python(), "README.md (## Python)", "exec"), scope)
    assert scope["out"].logits.shape == (1, 3, scope["config"].vocab_size)
    assert scope["ids"].shape == (1, 3 + 8) and torch.equal(scope["ids"][:, :3], scope["input_ids"])
    assert not scope["model"].training and (tmp_path / "tiny-checkpoint" / "config.json").is_file()
    printed = capsys.readouterr().out
    assert printed == scope["generator"].generate_text("Привет, RADON!", max_new_tokens=32) + "\n"
