"""The radon CLI: verbs, --help without heavy imports, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from radon.cli import VERBS, main
from radon_testing import radon_checkpoint


def _run(*args: str, env_block: str = "") -> subprocess.CompletedProcess:
    """Run ``radon`` in a fresh interpreter; ``env_block`` names modules to make unimportable."""
    code = (
        "import sys\n"
        f"for m in {env_block.split()!r}: sys.modules[m] = None\n"
        "from radon.cli import main\n"
        "try:\n"
        f"    rc = main({list(args)!r})\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        "print('IMPORTED_TORCH=' + str('torch' in sys.modules), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_top_level_help_imports_no_torch() -> None:
    r = _run("--help")
    assert r.returncode == 0
    assert "IMPORTED_TORCH=False" in r.stderr
    for verb in VERBS:
        assert verb in r.stdout


def test_console_script_is_installed() -> None:
    r = subprocess.run(["radon", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("radon ")


def test_a_closed_pipe_ends_quietly() -> None:
    """``radon --help | head -1``: the reader goes away before radon writes (``| true``); no traceback."""
    r = subprocess.run(["bash", "-c", "radon --help | true; echo rc=${PIPESTATUS[0]}"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Traceback" not in r.stderr and "BrokenPipeError" not in r.stderr, r.stderr
    assert r.stdout.strip() in ("rc=0", "rc=141")  # 0 where the pipe took the whole text before closing


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help_without_torch(verb: str) -> None:
    r = _run(*verb.split(), "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: radon " + verb in r.stdout
    assert "IMPORTED_TORCH=False" in r.stderr, f"radon {verb} --help imported torch"


def test_missing_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    r = _run("convert", "--from-hf", str(tmp_path), "--out", str(tmp_path / "o"), env_block="torch")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("IMPORTED_TORCH")]
    assert lines == ["radon convert: needs 'torch', which is not installed: pip install 'radon[torch]'"]


def test_info_json_on_the_7b_config(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "mistral_7b", "--json", "--context", "32768"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert abs(report["parameters"]["total"] - 7_241_732_096) <= 0.005 * 7_241_732_096
    kv = report["kv_cache"]
    assert kv["cached_tokens"] == 4096, "the KV cache stops growing at the window"
    assert kv["bytes"]["float16"] == 2 * 32 * 8 * 128 * 2 * 4096


def test_info_on_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    assert main(["info", str(ckpt), "--context", "100"]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "capped at the sliding window" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "no/such/config.json"], "no such config file"),
        (["info", "small", "--context", "0"], "--context"),
        (["convert", "--out", "x"], "exactly one of"),
        (["convert", "--from-hf", "no/such/dir", "--out", "x"], "no such folder"),
        (["convert", "--to-hf", "no/such/ckpt", "--out", "x"], "no such checkpoint"),
        (["generate", "no/such/ckpt", "--prompt-ids", "1 2"], "no such checkpoint"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_verb_and_flag(capsys: pytest.CaptureFixture) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown verb 'frobnicate'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["info", "small", "--colour", "red"])
    assert exc.value.code == 2


def test_generate_from_a_checkpoint_with_ids(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    assert main(["generate", str(ckpt), "--prompt-ids", "5 6 7", "--max-new-tokens", "6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["new_tokens"] == 6 and result["backend"] == "torch"
    import torch

    from radon import load_model

    expected = load_model(ckpt).generate(torch.tensor([[5, 6, 7]]), max_new_tokens=6)[0, 3:].tolist()
    assert result["ids"] == expected
    assert main(["generate", str(ckpt), "--prompt", "hello"]) == 2
    assert "no tokenizer" in capsys.readouterr().err


@pytest.mark.parametrize("verb", [["demo", "--quick"], ["tokenizer", "train", "--vocab-size", "600"]])
def test_a_read_only_output_folder_is_one_line(
    verb: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Tests run as root, whom chmod does not stop; so the file system's refusal is simulated where every
    writer starts, at mkdir, as a read-only mount answers it (EROFS, with the path)."""
    import errno

    out = tmp_path / "ro" / "out"
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    from radon.data import builtin_corpus

    builtin_corpus(tmp_path / "data", code_bytes=30_000, doc_bytes=10_000)
    monkeypatch.setenv("RADON_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main([*verb, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Read-only file system" in err and str(tmp_path / "ro") in err and err.startswith("radon ")


def test_info_says_when_the_context_is_past_the_model(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "small", "--context", "32768"]) == 0
    out = capsys.readouterr().out
    assert "past max_position_embeddings (512)" in out and "MiB" in out and " MB" not in out
    assert main(["info", "small", "--context", "512"]) == 0
    assert "past max_position_embeddings" not in capsys.readouterr().out
