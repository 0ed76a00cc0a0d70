"""radon.data: finding the corpora, sampling them deterministically, and the built-in fallback corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

import radon.data.corpus
from radon.data import builtin_corpus, corpus_files, eval_files, find_data_dir, heldout_files, sample_text
from radon.data.builtin import RU_FILE, builtin_texts
from radon.errors import RadonError


def _data_folder(root: Path) -> Path:
    (root / "eval").mkdir(parents=True)
    for lang in ("ru", "en", "code"):
        (root / f"{lang}.txt").write_text(f"{lang} training text\n")
        (root / "eval" / f"{lang}_eval.txt").write_text(f"{lang} held out\n")
    return root


def test_find_data_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = _data_folder(tmp_path / "explicit")
    env = _data_folder(tmp_path / "env")
    repo = _data_folder(tmp_path / "repo")
    monkeypatch.setattr(radon.data.corpus, "repo_data_dir", lambda: repo)
    monkeypatch.setenv("RADON_DATA", str(env))
    assert find_data_dir(explicit) == explicit
    assert find_data_dir() == env
    monkeypatch.delenv("RADON_DATA")
    assert find_data_dir() == repo.resolve()
    monkeypatch.setattr(radon.data.corpus, "repo_data_dir", lambda: tmp_path / "absent")
    assert find_data_dir() is None


def test_find_data_dir_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RadonError, match="--data .*: no such folder"):
        find_data_dir(tmp_path / "nope")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "ru.txt").write_text("x")
    with pytest.raises(RadonError, match="not a data folder \\(missing en.txt, code.txt\\)"):
        find_data_dir(partial)
    monkeypatch.setenv("RADON_DATA", str(partial))
    with pytest.raises(RadonError, match="RADON_DATA"):
        find_data_dir()


def test_repo_data_dir_is_beside_the_repository() -> None:
    root = Path(__file__).resolve().parents[2]
    assert radon.data.corpus.repo_data_dir().resolve() == (root.parent / "shared" / "data").resolve()


def test_corpus_and_eval_files(tmp_path: Path) -> None:
    folder = _data_folder(tmp_path / "d")
    assert corpus_files(folder) == {lang: folder / f"{lang}.txt" for lang in ("ru", "en", "code")}
    assert eval_files(folder)["code"] == folder / "eval" / "code_eval.txt"
    assert heldout_files(folder) == eval_files(folder)  # no modern held-out text yet
    (folder / "eval" / "ru_modern_eval.txt").write_text("Сегодня в новостях.\n", encoding="utf-8")
    (folder / "eval" / "ru_modern_eval.index.tsv").write_text("id\tlicense\n", encoding="utf-8")
    held = heldout_files(folder)
    assert list(held) == ["ru", "en", "code", "ru_modern"]  # the index is not a held-out text
    assert held["ru_modern"] == folder / "eval" / "ru_modern_eval.txt"
    assert eval_files(folder) == {k: v for k, v in held.items() if k != "ru_modern"}
    (folder / "eval" / "en_eval.txt").unlink()
    with pytest.raises(RadonError, match="missing held-out file\\(s\\) eval/en_eval.txt"):
        eval_files(folder)


def test_sample_text(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    lines = [f"строка {i} " + "ж" * (i % 37) for i in range(5000)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    whole = path.read_text(encoding="utf-8")
    assert sample_text(path, None) == whole == sample_text(path, 10**9)
    spread = sample_text(path, 20_000)
    assert spread == sample_text(path, 20_000), "deterministic"
    assert 18_000 < len(spread.encode()) < 24_000
    kept = spread.splitlines()
    assert all(line in set(lines) for line in kept), "cut at line boundaries only"
    assert kept[0] == lines[0] and int(kept[-1].split()[1]) > 4000, "windows spread over the file"
    head = sample_text(path, 20_000, spread=False)
    assert whole.startswith(head) and head.endswith("\n")
    with pytest.raises(RadonError, match="no such file"):
        sample_text(tmp_path / "nope.txt", 10)


def test_sample_text_never_splits_a_character(tmp_path: Path) -> None:
    path = tmp_path / "oneline.txt"
    path.write_text("я" * 100_000, encoding="utf-8")  # no newline to cut at
    for n in (1001, 1002, 5003):
        text = sample_text(path, n)
        assert set(text) == {"я"}


def test_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(RadonError, match="latin1.txt: not UTF-8"):
        sample_text(path, None)


def test_builtin_corpus(tmp_path: Path) -> None:
    paths = builtin_corpus(tmp_path / "builtin", code_bytes=200_000, doc_bytes=100_000)
    assert find_data_dir(tmp_path / "builtin") == tmp_path / "builtin", "laid out like ../shared/data"
    assert set(paths) == {"ru", "en", "code"}
    evals = eval_files(tmp_path / "builtin")
    for lang, path in paths.items():
        train, held = path.read_text(encoding="utf-8"), evals[lang].read_text(encoding="utf-8")
        assert train.strip() and held.strip(), lang
    ru_train = paths["ru"].read_text(encoding="utf-8")
    ru_eval = evals["ru"].read_text(encoding="utf-8")
    assert not set(ru_eval.split("\n\n")) & set(ru_train.split("\n\n")), (
        "held-out paragraphs are not trained on"
    )
    assert sum(ch.isalpha() and "а" <= ch.lower() <= "я" for ch in ru_train) > 10_000
    assert "def " in paths["code"].read_text(encoding="utf-8")
    assert builtin_texts(200_000, 100_000)["code"] == (paths["code"].read_text(encoding="utf-8"),
                                                      evals["code"].read_text(encoding="utf-8")), "deterministic"  # fmt: skip


def test_builtin_russian_sample_ships() -> None:
    text = RU_FILE.read_text(encoding="utf-8")
    assert 15_000 < len(text.encode()) < 100_000
    assert "ё" in text and "«" in text and "—" in text
