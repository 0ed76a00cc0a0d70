"""The CLI on artifacts: ``radon generate``, ``radon serve --help``, ``radon bench`` (and ``--compare``)."""

from __future__ import annotations

import json

import pytest

from radon.cli import main
from radon.cli._app import build_parser
from radon.cli.serve import serve


def test_generate_on_an_artifact_records_the_providers(text_artifact, text_gen, capsys):
    assert (
        main(["generate", str(text_artifact), "--prompt", "Привет", "--max-new-tokens", "12", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["providers"] == ["CPUExecutionProvider"] and out["backend"].startswith("onnxruntime")
    (want,) = text_gen.complete("Привет", 12)
    assert (
        out["text"] == want.text
        and out["ids"] == want.token_ids
        and out["finish_reason"] == want.finish_reason
    )


def test_generate_streams_the_same_text(text_artifact, text_gen, capsys):
    argv = ["generate", str(text_artifact), "--prompt", "Hello", "--max-new-tokens", "10", "--stream"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == text_gen.generate_text("Hello", 10) + "\n"
    assert "[onnxruntime (CPUExecutionProvider)]" in captured.err


def test_generate_refuses_what_the_artifact_cannot_honour(text_artifact, capsys):
    for flag, message in ((["--sliding-window-size", "32"], "sliding_window_size"),
                          (["--max-new-tokens", "5000"], "max_position_embeddings")):  # fmt: skip
        assert main(["generate", str(text_artifact), "--prompt", "hi", *flag]) == 2
        assert message in capsys.readouterr().err


def test_use_flash_attention_is_refused_only_without_a_fused_kernel(text_artifact, artifacts, capsys):
    argv = [
        "generate",
        str(text_artifact),
        "--prompt",
        "hi",
        "--max-new-tokens",
        "3",
        "--use-flash-attention",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    portable = artifacts[("mistral", "portable")]
    assert main(["generate", str(portable), "--prompt-ids", "1 5 6", "--use-flash-attention"]) == 2
    assert "use_flash_attention: an ONNX artifact with the portable lowering" in capsys.readouterr().err


def test_serve_help_lists_the_endpoints():
    text = build_parser(serve, "radon serve").format_help()
    words = ("/api/v1/generate", "/v1/completions", "/v1/chat/completions", "/health", "/metrics", "--port")
    for word in (*words, "--providers"):
        assert word in text


def test_bench_artifact_reports_llama_bench_tests(text_artifact, capsys):
    from radon.cli.bench import bench

    assert bench([str(text_artifact)], runs=1, threads=1, prompt_tokens=8, new_tokens=8, json=True) == 0
    report = json.loads(capsys.readouterr().out)
    radon = report["engines"]["radon"]
    assert set(radon["tests"]) == {"pp8", "pp128", "pp512", "tg8", "ttft_ms"}
    assert radon["tests"]["tg8"]["median"] > 0 and radon["peak_rss_bytes"] > 0
    assert report["bandwidth"]["gb_per_s"] > 0 and report["decode_limit_tok_s"] > 0
    assert "before" in report["load_average"] and len(report["load_average"]["rounds"]) == 1


def test_bench_compare_runs_available_peers_and_names_the_rest(text_artifact, tmp_path, monkeypatch, capsys):
    """Peers from the artifact's sibling checkpoint; a missing peer venv is reported, not fatal."""
    from radon.bench.runtime import run

    monkeypatch.setenv("RADON_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RADON_BENCH_VENV", str(tmp_path / "no-venv"))
    assert (
        run(text_artifact, compare=True, runs=1, threads=1, prompt_tokens=8, new_tokens=8, pp_sizes=()) == 0
    )
    out = capsys.readouterr().out
    assert "| transformers eager |" in out and "| RADON (ort, fp32) |" in out
    for peer in ("optimum ORTModelForCausalLM", "onnxruntime-genai fp32", "llama.cpp f32"):
        assert f"- {peer}: not run: " in out and "no-venv" in out
    assert "genai did not run" in out


def test_bench_compare_needs_the_source_checkpoint(artifacts, tmp_path, monkeypatch):
    import shutil

    from radon.bench.runtime import run
    from radon.errors import RadonError

    lonely = shutil.copytree(artifacts[("gpt2", "ort")], tmp_path / "lonely")
    monkeypatch.setenv("RADON_BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RadonError, match="--compare needs the checkpoint"):
        run(lonely, compare=True, runs=1, threads=1, prompt_tokens=4, new_tokens=4)


def test_demo_serving_step_starts_asks_and_stops(text_artifact, text_gen, tmp_path):
    """The demo's serving stage: a real server on a free loopback port, one request, then stopped."""
    import threading

    from radon.demo import PIPELINE, PROMPTS, QUICK_RECIPE, DemoContext
    from radon.runtime.demo_step import step_serve

    said: list[str] = []
    ctx = DemoContext(out=tmp_path, quick=True, recipe=QUICK_RECIPE, data_dir=tmp_path, smoke=False,
                      outputs={"onnx": text_artifact}, say=said.append)  # fmt: skip
    before = threading.active_count()
    line = step_serve(ctx)
    assert "radon serve answered" in line and "then stopped" in line
    assert ctx.facts["serve"]["completion_tokens"] > 0 and ctx.facts["serve"]["providers"] == [
        "CPUExecutionProvider"
    ]
    # the seed API's answer for PROMPTS["en"] is the runtime's own generation for it
    prompt = PROMPTS["en"]
    assert ctx.facts["serve"]["text"] == text_gen.generate_text(prompt, QUICK_RECIPE.serve_tokens)
    assert said == [f"      POST /api/v1/generate {prompt!r} -> {(prompt + ctx.facts['serve']['text'])!r}"]
    # the server and scheduler threads are joined; onnxruntime's intra-op pool may keep one of its own
    assert threading.active_count() <= before + 1, "the server thread must be gone"
    assert PIPELINE[[s.name for s in PIPELINE].index("serve")].run is step_serve


def test_serve_once_posts_any_body_to_any_route(text_artifact):
    """One helper for every demo request: the seed API, OpenAI's routes, and the server's refusals."""
    from radon.errors import RadonError
    from radon.runtime.demo_step import serve_once

    served = serve_once(text_artifact, "/v1/completions",
                        {"model": "demo", "prompt": "Hello", "max_tokens": 4, "temperature": 0}, model_name="demo")  # fmt: skip
    assert served.url.endswith("/v1/completions") and served.seconds > 0
    assert served.answer["object"] == "text_completion" and served.answer["usage"]["completion_tokens"] <= 4
    with pytest.raises(RadonError, match="HTTP 404.*not served here"):
        serve_once(text_artifact, "/v1/completions", {"model": "other", "prompt": "Hello"}, model_name="demo")


def test_bench_several_artifacts_adds_each_precisions_peers(text_artifact, tmp_path, monkeypatch, capsys):
    """fp32 and int4 artifacts of one checkpoint run as two RADON engines in the same rounds; --compare
    then names the int4 peers (genai int4, llama.cpp Q4_0) beside the fp32 ones, here as not run."""
    from radon.bench.runtime import run
    from radon.export.quantize import quantize_artifact
    from radon.export.quantize.int4 import Int4Options
    from radon.runtime.contract import read_manifest

    layers = read_manifest(text_artifact).architecture.num_layers  # fc_out's input (176) takes no 4-bit block
    int4 = quantize_artifact(text_artifact, tmp_path / "int4", precision="int4", parity=False, threads=1,
                             auto_mixed_budget=None, keep=[f"layers.{i}.mlp.fc_out" for i in range(layers)],
                             int4=Int4Options(keep_precision="fp32")).path  # fmt: skip
    monkeypatch.setenv("RADON_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RADON_BENCH_VENV", str(tmp_path / "no-venv"))
    assert run([text_artifact, int4], compare=True, runs=1, threads=1, prompt_tokens=8, new_tokens=8,
               pp_sizes=(), json=True) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    engines = report["engines"]
    assert engines["radon"]["family"] == "fp32" and engines["radon-int4"]["family"] == "int4"
    assert engines["radon-int4"]["tests"]["tg8"]["median"] > 0
    assert engines["radon-int4"]["bytes_per_decode_token"] < engines["radon"]["bytes_per_decode_token"]
    for peer in ("genai", "genai-int4", "llamacpp", "llamacpp-q4_0"):
        assert "no-venv" in engines[peer]["skipped"], peer
    assert "llamacpp-q8_0" not in engines  # no int8 artifact, no Q8_0 peer
    from radon.bench.report import markdown

    text = markdown(report)
    assert "int4 decode >= onnxruntime-genai int4: not checked" in text


def test_bench_targets_pair_rounds() -> None:
    """The paired ratio is the median of per-round ratios, not the ratio of medians: here ours has the
    lower median (150 against 170) but was ahead in two of three rounds (1.1x, 1.2x, 0.88x)."""
    from radon.bench.report import paired, quantized_targets

    def engine(rounds: list[float]) -> dict:
        stats = {
            "median": sorted(rounds)[1],
            "min": min(rounds),
            "max": max(rounds),
            "n": 3,
            "rounds": rounds,
        }
        return {"label": "x", "family": "int4", "tests": {"tg8": stats}}

    report = {"new_tokens": 8, "engines": {"radon": engine([110.0, 240.0, 150.0]),
                                           "genai-int4": engine([100.0, 200.0, 170.0])}}  # fmt: skip
    want = "; paired by round: median 1.10x, ahead in 2 of 3 rounds"
    assert paired(report, "radon", "genai-int4", "tg8") == want
    (line,) = quantized_targets(report)
    assert line == "- int4 decode >= onnxruntime-genai int4: 150.0 vs 170.0 tok/s = 0.88x (MISSED)" + want
    report["engines"]["genai-int4"]["tests"]["tg8"].pop("rounds")  # a report from before rounds were kept
    assert paired(report, "radon", "genai-int4", "tg8") == ""


def test_checkpoint_stream_holds_back_a_stop_string_split_across_tokens(text_ckpt, capsys):
    """``--stream`` on a checkpoint prints exactly the final text: the beginning of a stop string that
    spans two tokens is held back, never printed and then taken back."""
    from radon.tokenizer import load_tokenizer

    base = ["generate", str(text_ckpt), "--prompt", "Hello", "--max-new-tokens", "24"]
    assert main([*base, "--json"]) == 0
    free = json.loads(capsys.readouterr().out)
    tok = load_tokenizer(text_ckpt / "tokenizer")
    pieces = [tok.decode([i]) for i in free["ids"]]
    text = "".join(pieces)
    assert text == free["text"]

    def spanning(i: int) -> str:  # the last character of token i and the first of token i + 1
        return pieces[i][-1:] + pieces[i + 1][:1]

    i = next(i for i in range(len(pieces) - 1)
             if len(spanning(i)) == 2 and text.find(spanning(i)) == len("".join(pieces[: i + 1])) - 1)  # fmt: skip
    stop = spanning(i)
    want = free["text"][: free["text"].find(stop)]
    assert main([*base, "--stream", "--stop", stop]) == 0
    assert capsys.readouterr().out == want + "\n"
