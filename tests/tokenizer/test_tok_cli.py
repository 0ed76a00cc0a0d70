"""``radon tokenizer train | stats | encode``: they work end to end, and bad input exits non-zero
with one line naming the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import radon.data.corpus
from radon.cli import main
from radon.data.builtin import EN_FILE, RU_FILE
from radon.tokenizer import HybridTokenizer, load_tokenizer

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    files = {"ru": folder / "ru.txt", "en": folder / "en.txt", "code": folder / "code.txt"}
    shutil.copy(RU_FILE, files["ru"])
    shutil.copy(EN_FILE, files["en"])
    shutil.copy(HERE / "golden" / "train_code.txt", files["code"])
    return files


def _train_args(corpus: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["tokenizer", "train", "--ru", str(corpus["ru"]), "--en", str(corpus["en"]), "--code",
            str(corpus["code"]), "--vocab-size", "900", "--out", str(out), *extra]  # fmt: skip


def test_train_encode_stats(
    corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tok"
    assert main(_train_args(corpus, out, "--ru-share", "0.5")) == 0
    captured = capsys.readouterr()
    assert "tokenizer:" in captured.err  # the progress display
    assert f"wrote {out}: hybrid tokenizer, 900 ids" in captured.out
    tok = load_tokenizer(out)
    assert isinstance(tok, HybridTokenizer) and tok.vocab_size == 900
    assert tok.training["ru_share"] == 0.5 and tok.training["sources"]["ru"]["file"] == "ru.txt"
    assert str(tmp_path) not in (out / "radon_tokenizer.json").read_text(), "no absolute paths in the config"

    assert main(["tokenizer", "encode", str(out), "--text", "Привет, мир!\tHello"]) == 0
    text = capsys.readouterr().out
    ids = tok.encode("Привет, мир!\tHello")
    assert "round trip exact" in text and "ids: " + " ".join(map(str, ids)) in text
    assert "unigram" in text and "bpe" in text

    assert main(["tokenizer", "encode", str(out), "--text", "мир", "--add-bos", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ids"][0] == 1 and report["decoded"] == "мир" and report["round_trip"] is True

    assert (
        main(["tokenizer", "stats", str(out), "--text", str(corpus["ru"]), f"en={corpus['en']}", "--json"])
        == 0
    )
    stats = json.loads(capsys.readouterr().out)
    rows = {r["label"]: r for r in stats["texts"]}
    assert set(rows) == {"ru", "en", "total"}
    for row in rows.values():
        assert row["round_trip"] is True and row["unknown_rate"] == 0 and row["mb_per_s"] > 0
        assert row["fertility"] > 0 and row["bytes_per_token"] >= row["chars_per_token"] > 0
    assert main(["tokenizer", "stats", str(out), "--text", str(corpus["code"])]) == 0
    assert "tokens/word" in capsys.readouterr().out


def test_train_is_deterministic_and_bpe_type(corpus: dict[str, Path], tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(_train_args(corpus, tmp_path / name, "--quiet")) == 0
    for f in ("unigram.model", "bpe.json", "radon_tokenizer.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert main(_train_args(corpus, tmp_path / "plain", "--quiet", "--type", "bpe")) == 0
    assert load_tokenizer(tmp_path / "plain").type_name == "bpe"


def test_builtin_corpus_when_no_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RADON_DATA", raising=False)
    monkeypatch.setattr(radon.data.corpus, "repo_data_dir", lambda: tmp_path / "absent")
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--vocab-size", "800", "--out", str(out), "--sample-mb", "0.2"]) == 0
    assert "built-in corpus (smoke run" in capsys.readouterr().err
    assert load_tokenizer(out).vocab_size == 800


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ru", "/no/such/ru.txt", "--en", "x", "--code", "y"], "--ru /no/such/ru.txt: no such file"),
        (["--ru", "RU"], "give all three of --ru, --en, --code (missing --en, --code)"),
        (["--data", "/no/such/folder"], "--data /no/such/folder: no such folder"),
        (
            ["--ru", "RU", "--en", "EN", "--code", "CODE", "--vocab-size", "100"],
            "--vocab-size 100 is too small",
        ),
        (
            ["--ru", "RU", "--en", "EN", "--code", "CODE", "--ru-share", "1.5"],
            "--ru-share: must be between 0 and 1",
        ),
        (
            ["--ru", "RU", "--en", "EN", "--code", "CODE", "--type", "bpe", "--ru-share", "0.5"],
            "applies to --type hybrid",
        ),
    ],
)
def test_train_bad_input(
    args: list[str], message: str, corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(corpus[a.lower()]) if a in ("RU", "EN", "CODE") else a for a in args]
    if "--vocab-size" not in args:
        args += ["--vocab-size", "900"]
    assert main(["tokenizer", "train", "--out", str(tmp_path / "t"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("radon tokenizer train: error:")


def test_existing_output_is_refused(
    corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tok"
    out.mkdir()
    assert main(_train_args(corpus, out, "--quiet")) == 2
    assert "already exists (use --force" in capsys.readouterr().err


def test_stats_and_encode_bad_input(
    hybrid_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tokenizer", "encode", str(tmp_path / "none"), "--text", "x"]) == 2
    assert "not a tokenizer folder" in capsys.readouterr().err
    assert main(["tokenizer", "stats", str(hybrid_dir), "--text", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err
    broken = Path(shutil.copytree(hybrid_dir, tmp_path / "broken"))
    (broken / "bpe.json").write_text("{}")
    assert main(["tokenizer", "stats", str(broken), "--text", str(RU_FILE)]) == 2
    assert "bpe.json: sha256 mismatch" in capsys.readouterr().err
