"""Bad input gets one clear line; a failed gate writes nothing; the CLI verbs and their exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from radon.errors import QualityGateError, RadonError


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    import radon.cli as cli

    monkeypatch.setitem(cli.VERBS, "quantize", ("radon.cli.quantize:quantize", "quantize"))
    monkeypatch.setitem(cli.VERBS, "calibrate", ("radon.cli.quantize:calibrate", "calibrate"))
    return cli.main(argv)


def test_bad_inputs_give_clear_messages(fp32: dict[str, Path], quantized, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    art = str(fp32["ort"])
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    cases = [
        (["--precision", "int8", "--calibration-data", str(empty)], "calibration"),
        (["--precision", "int4", "--block-size", "128"], "--block-size 128 does not divide embed_tokens's hidden size 64"),
        (["--precision", "int4", "--keep", "layers.9"], "--keep: unknown layer 'layers.9'"),
        (["--precision", "int8", "--auto-mixed", "0.1"], "--auto-mixed"),
    ]  # fmt: skip
    for extra, message in cases:
        out = tmp_path / "never"
        assert _cli(["quantize", art, "--out", str(out), *extra], monkeypatch) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
        assert not out.exists()
    done = quantized("int8-dynamic", precision="int8-dynamic")
    assert (
        _cli(["quantize", str(done.path), "--precision", "int4", "--out", str(tmp_path / "q")], monkeypatch)
        == 2
    )
    err = capsys.readouterr().err
    assert "already quantized (int8-dynamic)" in err and "fp32 artifact" in err


def test_already_quantized_graph_is_refused_even_if_the_manifest_says_fp32(quantized, tmp_path: Path) -> None:
    from radon.export.quantize import quantize_artifact
    from radon.integrity import sha256_file
    from radon.runtime.contract import read_manifest, write_manifest

    done = quantized("int8-dynamic", precision="int8-dynamic")
    fake = tmp_path / "fake"
    shutil.copytree(done.path, fake)
    m = read_manifest(fake)
    m.precision, m.quantization = "fp32", None
    m.files["model.onnx"] = sha256_file(fake / "model.onnx")
    write_manifest(fake, m)
    with pytest.raises(RadonError, match="already quantized .*MatMulNBits"):
        quantize_artifact(fake, tmp_path / "q", precision="int8-dynamic")


def test_failed_gate_writes_nothing(
    fp32: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import dataclasses

    from radon.export import parity
    from radon.export.info import describe_artifact
    from radon.export.quantize import quantize_artifact
    from radon.runtime.contract import read_manifest

    strict = dataclasses.replace(parity.THRESHOLDS["int8-dynamic"], max_kl=1e-12)
    monkeypatch.setitem(parity.THRESHOLDS, "int8-dynamic", strict)
    out = tmp_path / "gated"
    small = {"max_tokens": 64, "greedy_tokens": 4}
    with pytest.raises(QualityGateError, match="mean KL") as refused:
        quantize_artifact(fp32["ort"], out, precision="int8-dynamic", threads=1, parity_options=small)
    # the message names the folder asked for, not the temporary one, and what to do
    assert str(refused.value).startswith("parity failed for gated (ort, int8-dynamic")
    assert f"Nothing was written to {out}; --no-gate writes it" in str(refused.value)
    assert not out.exists() and not list(tmp_path.glob(".gated*"))
    # --no-gate writes it with the failure recorded where a user looks
    r = quantize_artifact(
        fp32["ort"], out, precision="int8-dynamic", threads=1, parity_options=small, gate=False
    )
    caplog.clear()
    recorded = read_manifest(out).parity  # verifies the hashes too
    assert recorded["passed"] is False and any("mean KL" in f for f in recorded["failures"])
    assert read_manifest(out).parity_verdict.startswith("failed: mean KL 2")  # what /health and serve say
    assert r.parity is not None and not r.parity.passed
    assert "parity at export: FAILED" in describe_artifact(out, 64)["text"]
    assert "mean KL" in (out / "parity.md").read_text()
    assert _cli(["quantize", str(fp32["ort"]), "--precision", "int8-dynamic", "--out", str(tmp_path / "cli"),
                 "--no-gate", "--threads", "1"], monkeypatch) == 0  # fmt: skip
    shown = capsys.readouterr()
    assert "parity vs fp32 artifact: FAILED (mean KL" in shown.out
    warned = [r.getMessage() for r in caplog.records if "--no-gate: written anyway" in r.getMessage()]
    assert len(warned) == 1 and "cli (ort, int8-dynamic" in warned[0], warned  # once: no checkpoint given
    assert _cli(["quantize", str(fp32["ort"]), "--precision", "int8-dynamic", "--out", str(tmp_path / "x"),
                 "--no-gate", "--no-parity"], monkeypatch) == 2  # fmt: skip
    assert "--no-gate records parity's figures" in capsys.readouterr().err
    # --no-parity writes it, and says so in the manifest
    shutil.rmtree(out)
    r = quantize_artifact(fp32["ort"], out, precision="int8-dynamic", parity=False)
    assert r.manifest.parity == {"skipped": "quantized with --no-parity"}
    assert r.manifest.parity_verdict == "skipped"


def test_cli_quantize_and_calibrate(fp32: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    assert _cli(["calibrate", str(fp32["ort"]), "--out", str(tmp_path / "cal"), "--samples", "4", "--seq-len", "32"],
                monkeypatch) == 0  # fmt: skip
    assert "calibration" not in capsys.readouterr().err
    assert (tmp_path / "cal" / "calibration.cache").is_file()
    rc = _cli(["quantize", str(fp32["ort"]), "--precision", "int8", "--calibration", str(tmp_path / "cal"),
               "--out", str(tmp_path / "q8"), "--no-parity"], monkeypatch)  # fmt: skip
    assert rc == 0 and "int8" in capsys.readouterr().out
    rc = _cli(["quantize", str(fp32["ort"]), "--precision", "int4", "--no-auto-mixed", "--keep", "lm_head",
               "--no-parity", "--samples", "4", "--seq-len", "32", "--out", str(tmp_path / "q4")], monkeypatch)  # fmt: skip
    shown = capsys.readouterr().out
    assert (
        rc == 0 and "int4: every unit at 4 bits but --keep (--no-auto-mixed); kept: lm_head (int8)" in shown
    )
    assert "estimated KL" not in shown, "no estimate is made without auto-mixed"
    with pytest.raises(SystemExit) as exit_:
        _cli(["quantize", "--help"], monkeypatch)
    assert exit_.value.code == 0 and "--auto-mixed BUDGET" in capsys.readouterr().out
