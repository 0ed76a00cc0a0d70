"""``radon demo --quick`` goes through every step, on the built-in corpus as on a fresh clone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from radon.checkpoint import verify_checkpoint
from radon.demo import STEPS, DemoContext, Step, register, run_demo

Cli = Callable[..., tuple[int, str, str]]


def test_quick_demo_on_a_fresh_clone(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import radon.data.corpus as corpus_mod

    monkeypatch.delenv("RADON_DATA", raising=False)
    monkeypatch.setattr(
        corpus_mod, "repo_data_dir", lambda: tmp_path / "no-shared-data"
    )  # as on a fresh clone
    rc, out, err = cli("demo", "--quick", "--out", tmp_path / "demo")
    assert rc == 0, err
    demo = tmp_path / "demo"
    for i, step in enumerate(STEPS, 1):
        assert f"[{i}/{len(STEPS)}] {step.title}" in out
    assert "built-in corpus" in out and "smoke run" in out and "no quality claim" in out
    verify_checkpoint(demo / "checkpoint")
    assert (demo / "checkpoint" / "tokenizer" / "radon_tokenizer.json").is_file()
    for label, path in (
        ("checkpoint", demo / "checkpoint"),
        ("eval", demo / "eval.md"),
        ("samples", demo / "samples.md"),
    ):
        assert f"{label}" in out and str(path) in out and path.exists()
    facts = json.loads((demo / "demo.json").read_text(encoding="utf-8"))
    assert list(facts["timings"]) == [s.name for s in STEPS]
    assert set(facts["samples"]) == {"ru", "en", "code"}
    assert set(facts["eval"]["languages"]) == {"ru", "en", "code"}
    assert "KV cache == full recompute" in out
    from radon.runtime.manifest import read_manifest

    for folder, precision in (("onnx", "fp32"), ("onnx-int8", "int8-dynamic"), ("onnx-int4", "int4")):
        m = read_manifest(demo / folder)  # every file's sha256 checked
        assert m.precision == precision and m.lowering == "ort" and m.parity["passed"], folder
        assert (demo / folder / "parity.md").is_file() and str(demo / folder) in out
    report = (demo / "parity.md").read_text(encoding="utf-8")
    assert report.startswith("# RADON demo: parity") and all(f"{f}/parity.md" in report for f in ("onnx-int8", "onnx-int4"))


def test_steps_register_in_order(tmp_path: Path) -> None:
    ran: list[str] = []

    def make(name: str) -> Step:
        def run(ctx: DemoContext) -> str:
            ran.append(name)
            ctx.outputs[name] = ctx.out / name
            return f"did {name}"

        return Step(name, f"step {name}", run)

    saved = list(STEPS)
    try:
        STEPS.clear()
        register(make("a"))
        register(make("c"))
        register(make("b"), after="a")
        register(make("z"), before="a")
        with pytest.raises(ValueError, match="already registered"):
            register(make("a"))
        lines: list[str] = []
        ctx = DemoContext(
            out=tmp_path, quick=True, recipe=None, data_dir=tmp_path, smoke=False, say=lines.append
        )  # type: ignore[arg-type]
        timings = run_demo(ctx)
    finally:
        STEPS[:] = saved
    assert ran == ["z", "a", "b", "c"] and [t.name for t in timings] == ran
    text = "\n".join(lines)
    assert "[4/4] step c" in text and "outputs:" in text and str(tmp_path / "b") in text
