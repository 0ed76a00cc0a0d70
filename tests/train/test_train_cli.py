"""``radon train`` from the command line: the seed's flags, --resume, and one clear message per bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from radon.checkpoint import verify_checkpoint
from radon.train.state import read_state

Cli = Callable[..., tuple[int, str, str]]
FAST = ("--steps", "4", "--batch-size", "2", "--context", "32", "--max-bytes-per-language", "40000",
        "--threads", "1", "--no-progress")  # fmt: skip


def _data(corpus: Path) -> str:
    return f"ru={corpus / 'ru.txt'},en={corpus / 'en.txt'},code={corpus / 'code.txt'}"


def test_seed_flags_work(cli: Cli, tiny_config: Path, corpus: Path, tmp_path: Path) -> None:
    """The seed's train_mistral.py command line, verbatim flags; no --tokenizer: one is trained on the data."""
    rc, out, err = cli(
        "train", "--model_config", tiny_config, "--data_path", corpus / "code.txt", "--output_dir", tmp_path / "out",
        "--use_fp16", "--gradient_checkpointing", *FAST,
    )  # fmt: skip
    assert rc == 0, err
    assert f"checkpoint: {tmp_path / 'out'}" in out
    verify_checkpoint(tmp_path / "out")
    state = read_state(tmp_path / "out")
    assert state["precision"] == "fp32"  # --use_fp16 is CUDA-only: the CPU trains in fp32 and says so
    assert state["train_config"]["use_fp16"] and state["train_config"]["gradient_checkpointing"]
    assert list(state["data"]) == ["code"]
    assert "training a byte-level BPE" in err


def test_resume_from_the_command_line(
    cli: Cli,
    tiny_config: Path,
    corpus: Path,
    tokenizer_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    common = ("--config", tiny_config, "--data", _data(corpus), "--tokenizer", tokenizer_dir)
    rc, out, err = cli("train", *common, "--out", tmp_path / "ck", *FAST, "--stop-after", "2", "--json")
    assert rc == 0, err
    first = json.loads(out)
    assert first["step"] == 2 and not first["finished"]
    rc, out, err = cli("train", "--resume", tmp_path / "ck", "--no-progress", "--lr", "0.5", "--json")
    assert rc == 0, err
    assert json.loads(out)["step"] == 4 and json.loads(out)["finished"]
    assert "ignoring --lr" in caplog.text  # the checkpoint's recipe wins


def test_existing_output_needs_force(
    cli: Cli, tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "ck").mkdir()
    rc, _, err = cli("train", "--config", tiny_config, "--data", _data(corpus), "--tokenizer", tokenizer_dir,
                     "--out", tmp_path / "ck", *FAST)  # fmt: skip
    assert rc == 2 and "already exists (use --force" in err


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty data file", "the data file is empty"),
        ("context over max positions", "--context 512 is over the model's max_position_embeddings (256)"),
        ("output under a regular file", "cannot write here"),
        ("missing data file", "no such file"),
        ("bad mixture", "no data for language 'de'"),
    ],
)
def test_bad_input_is_one_clear_line(
    cli: Cli, tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path, case: str, message: str
) -> None:
    empty = tmp_path / "ru_empty.txt"
    empty.write_text("", encoding="utf-8")
    blocker = tmp_path / "a_file"
    blocker.write_text("x", encoding="utf-8")
    args = {
        "--config": tiny_config,
        "--data": _data(corpus),
        "--tokenizer": tokenizer_dir,
        "--out": tmp_path / "ck",
    }
    extra: list[str] = list(FAST)
    if case == "empty data file":
        args["--data"] = f"ru={empty},code={corpus / 'code.txt'}"
    elif case == "context over max positions":
        extra[extra.index("--context") + 1] = "512"
    elif case == "output under a regular file":  # we run as root: a path under a file is never writable
        args["--out"] = blocker / "ck"
    elif case == "missing data file":
        args["--data"] = f"ru={tmp_path / 'nope.txt'}"
    elif case == "bad mixture":
        extra += ["--mixture", "ru=1,de=2"]
    rc, _, err = cli("train", *[str(x) for kv in args.items() for x in kv], *extra)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("radon train: error: ") and message in lines[-1], err
    assert "Traceback" not in err
    assert not (tmp_path / "ck").exists()


def test_unknown_flag_exits_2(cli: Cli, tmp_path: Path) -> None:
    rc, _, err = cli("train", "--out", tmp_path / "x", "--learning-rat", "1")
    assert rc == 2 and "unrecognized arguments: --learning-rat" in err


def test_steps_and_minutes_are_exclusive(cli: Cli, tmp_path: Path) -> None:
    rc, _, err = cli("train", "--out", tmp_path / "x", "--steps", "3", "--minutes", "1")
    assert rc == 2 and "--steps or --minutes" in err


@pytest.mark.parametrize("verb", ["train", "eval", "bench"])
def test_help_loads_no_torch(verb: str) -> None:
    module = {
        "train": "radon.cli.train:train",
        "eval": "radon.cli.eval:evaluate",
        "bench": "radon.cli.bench:bench",
    }
    mod, fn = module[verb].split(":")
    code = (
        "import sys\nfrom radon.cli._app import build_parser\nimport importlib\n"
        f"build_parser(getattr(importlib.import_module({mod!r}), {fn!r}), 'radon {verb}').format_help()\n"
        "print('torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_bad_requests_fail_before_the_tokenizer_is_trained(
    cli: Cli, tiny_config: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --tokenizer, train trains one first (minutes on real data): a request that cannot run
    must be refused before that, naming its problem."""
    import radon.train.sources as sources

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer was trained before the request was checked")

    monkeypatch.setattr(sources, "auto_tokenizer", never)
    taken = tmp_path / "taken"
    taken.mkdir()
    for extra, message in (
        (["--context", "100000", "--out", tmp_path / "ck"], "max_position_embeddings"),
        (["--out", taken], "already exists"),
    ):
        rc, _, err = cli("train", "--config", tiny_config, "--data", _data(corpus), "--no-progress", *extra)
        assert rc == 2 and message in err, err
