"""Probes of the CLI verbs that make and measure models: ``radon train``, ``radon tokenizer
train | stats | encode``, ``radon bench``, ``radon demo`` and ``radon calibrate`` (docs/reliability.md,
"train, tokenizer and other verbs").

Each probe is one bad flag or file. It must get exit 2 and a last line ``radon <verb>: error: ...`` (or
argparse's ``error: argument --flag: ...``) that names the flag or the file, and no traceback. A probe
runs ``radon.cli.main`` in this process, so a crash is an exception here and fails the test. Every bad
value is refused before any training or measuring starts, so the whole file takes seconds; the one
artifact (for calibrate) is the tiny chat model of tests/chat_testing.py, built once.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

TOKENIZER_VOCAB = 4096  # the case: a vocab-8192 config with a 4096-id tokenizer
TEXT = "\n".join(
    f"line {i}: the river flows past the old mill, and the miller counts {i * 7} sacks of grain"
    for i in range(200)
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Text files good and bad, a tokenizer, model configs that match it and one that does not."""
    from radon.config import ModelConfig
    from radon.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("cli_probes")
    (root / "en.txt").write_text(TEXT, encoding="utf-8")
    (root / "ru.txt").write_text("Мельник считает мешки зерна у старой мельницы.\n" * 100, encoding="utf-8")
    (root / "code.txt").write_text("def add(a, b):\n    return a + b\n" * 100, encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me, na\xefve\n".encode("latin-1") * 50)
    (root / "empty.txt").write_bytes(b"")
    (root / "broken.json").write_text('{"vocab_size": ', encoding="utf-8")
    tok = train_bpe([TEXT], TOKENIZER_VOCAB)
    tok_dir = Path(tok.save_pretrained(root / "tok"))
    configs = {}
    for name, vocab in (("match", TOKENIZER_VOCAB), ("vocab8192", 2 * TOKENIZER_VOCAB)):
        cfg = ModelConfig.from_json("tiny_mistral").to_dict()
        cfg.update(vocab_size=vocab, name=f"probe-{name}")
        configs[name] = root / f"{name}.json"
        configs[name].write_text(json.dumps(cfg), encoding="utf-8")
    (root / "not_a_tokenizer").mkdir()
    for folder, langs in (("data_empty_ru", ("en", "code")), ("data_no_code", ("ru", "en"))):
        (root / folder).mkdir()
        for lang in langs:
            (root / folder / f"{lang}.txt").write_text((root / f"{lang}.txt").read_text(encoding="utf-8"))
    (root / "data_empty_ru" / "ru.txt").write_bytes(b"")
    return SimpleNamespace(root=root, tok=tok_dir, configs=configs)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chat_testing import chat_artifact

    return chat_artifact(tmp_path_factory.mktemp("cli_probes_artifact"))[1]


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """``radon ARGV`` in this process: (exit code, stderr). A traceback would be an exception here."""
    import radon.cli

    capsys.readouterr()
    try:
        rc = radon.cli.main(argv)
    except SystemExit as exc:  # argparse's errors
        rc = int(exc.code or 0)
    return rc, capsys.readouterr().err


def expand(args: list[str], f: SimpleNamespace, tmp_path: Path) -> list[str]:
    """Fill the placeholders: {root} the files' folder, {tok} the tokenizer, {cfg:NAME} a config, {tmp}."""
    out = []
    for a in args:
        for name, path in f.configs.items():
            a = a.replace(f"{{cfg:{name}}}", str(path))
        out.append(
            a.replace("{root}", str(f.root)).replace("{tok}", str(f.tok)).replace("{tmp}", str(tmp_path))
        )
    return out


def params(probes: list[tuple[str, list[str], str]]) -> list[object]:
    """One pytest case per probe, with its id; a probe in GAPS is an expected failure, with the reason."""
    cases = []
    for pid, argv, named in probes:
        gap = [pytest.mark.xfail(reason=GAPS[pid], strict=False)] if pid in GAPS else []
        cases.append(pytest.param(argv, named, id=pid, marks=gap))
    return cases


def assert_refused(rc: int, err: str, named: str) -> None:
    assert rc == 2, f"exit {rc} (2 expected): {err}"
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and named in last, f"{named!r} not named in: {last}"


# Probes that fail today in code this file's owner does not own; each is reported to that code's owner.
GAPS: dict[str, str] = {}  # probe id -> why it still fails (none today)

# ---- radon train --------------------------------------------------------------------------------------
TRAIN = ["train", "--config", "{cfg:match}", "--tokenizer", "{tok}", "--data", "en={root}/en.txt",
         "--out", "{tmp}/ck", "--no-progress", "--batch-size", "2", "--context", "16"]  # fmt: skip

TRAIN_PROBES = [  # (id, extra flags, what the message must name)
    ("steps-zero", ["--steps", "0"], "--steps"),
    ("steps-negative", ["--steps", "-5"], "--steps"),
    ("steps-not-a-number", ["--steps", "ten"], "--steps"),
    ("minutes-zero", ["--minutes", "0"], "--minutes"),
    ("minutes-nan", ["--minutes", "nan"], "--minutes"),
    ("steps-and-minutes", ["--steps", "3", "--minutes", "1"], "--steps or --minutes"),
    ("lr-nan", ["--lr", "nan"], "--lr"),
    ("lr-inf", ["--lr", "inf"], "--lr"),
    ("lr-zero", ["--lr", "0"], "--lr"),
    ("lr-negative", ["--lr", "-0.001"], "--lr"),
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size"),
    ("batch-size-negative", ["--batch-size", "-4"], "--batch-size"),
    ("grad-accum-zero", ["--grad-accum", "0"], "--grad-accum"),
    ("context-one", ["--context", "1"], "--context"),
    ("context-over-positions", ["--context", "100000"], "--context"),
    ("warmup-negative", ["--warmup-steps", "-1"], "--warmup-steps"),
    ("weight-decay-nan", ["--weight-decay", "nan"], "--weight-decay"),
    ("grad-clip-negative", ["--grad-clip", "-1"], "--grad-clip"),
    ("grad-clip-inf", ["--grad-clip", "inf"], "--grad-clip"),
    ("min-lr-ratio-above-one", ["--min-lr-ratio", "1.5"], "--min-lr-ratio"),
    ("val-fraction-half", ["--val-fraction", "0.5"], "--val-fraction"),
    ("seed-negative", ["--seed", "-1"], "--seed"),
    ("seed-over-64-bits", ["--seed", str(2**64)], "--seed"),
    ("eval-every-negative", ["--eval-every", "-10"], "--eval-every"),
    ("save-every-negative", ["--save-every", "-10"], "--save-every"),
    ("threads-negative", ["--threads", "-2"], "--threads"),
    ("stop-after-zero", ["--stop-after", "0"], "--stop-after"),
    ("max-bytes-negative", ["--max-bytes-per-language", "-1"], "--max-bytes-per-language"),
    ("mixture-inf", ["--mixture", "en=inf"], "mixture"),
    ("mixture-malformed", ["--mixture", "en"], "mixture"),
    ("device-unknown", ["--device", "tpu"], "--device"),
    ("vocab-8192-tokenizer-4096", ["--config", "{cfg:vocab8192}"], "4096 ids but the model config's vocab_size is 8192"),
    ("tokenizer-missing", ["--tokenizer", "{root}/no_tok"], "no_tok"),
    ("tokenizer-not-a-tokenizer", ["--tokenizer", "{root}/not_a_tokenizer"], "not_a_tokenizer"),
    ("config-missing", ["--config", "{root}/no.json"], "no.json"),
    ("config-malformed-json", ["--config", "{root}/broken.json"], "broken.json"),
    ("data-missing-file", ["--data", "en={root}/nope.txt"], "nope.txt"),
    ("data-not-utf8", ["--data", "en={root}/latin1.txt"], "latin1.txt"),
    ("data-empty-file", ["--data", "en={root}/empty.txt"], "empty"),
    ("out-under-a-file", ["--out", "{root}/en.txt/ck"], "cannot write here"),
    ("out-exists", ["--out", "{root}"], "already exists"),
    ("resume-missing", ["--resume", "{root}/no_ckpt"], "no_ckpt"),
    ("unknown-flag", ["--learning-rate", "1"], "--learning-rate"),
]  # fmt: skip


@pytest.mark.parametrize("extra, named", params(TRAIN_PROBES))
def test_train_refuses(
    files: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    rc, err = run_cli(capsys, expand(TRAIN + extra, files, tmp_path))
    assert_refused(rc, err, named)
    assert not (tmp_path / "ck").exists()


# ---- radon tokenizer train | stats | encode -----------------------------------------------------------
TOK_TRAIN = ["tokenizer", "train", "--out", "{tmp}/tok", "--vocab-size", "512", "--quiet"]
TOK_FILES = ["--ru", "{root}/ru.txt", "--en", "{root}/en.txt", "--code", "{root}/code.txt"]

TOKENIZER_PROBES = [  # (id, argv, what the message must name)
    ("train-vocab-size-zero", [*TOK_TRAIN[:5], "0", "--quiet", *TOK_FILES], "--vocab-size"),
    ("train-vocab-size-not-int", [*TOK_TRAIN[:5], "4k", "--quiet", *TOK_FILES], "--vocab-size"),
    ("train-vocab-size-absurd", [*TOK_TRAIN[:5], "100000000", "--quiet", *TOK_FILES], "--vocab-size"),
    ("train-vocab-size-too-small", [*TOK_TRAIN[:5], "10", "--quiet", *TOK_FILES], "--vocab-size 10"),
    ("train-sample-mb-nan", [*TOK_TRAIN, "--sample-mb", "nan", *TOK_FILES], "--sample-mb"),
    ("train-sample-mb-negative", [*TOK_TRAIN, "--sample-mb", "-1", *TOK_FILES], "--sample-mb"),
    ("train-ru-share-one", [*TOK_TRAIN, "--ru-share", "1", *TOK_FILES], "--ru-share"),
    ("train-ru-share-nan", [*TOK_TRAIN, "--ru-share", "nan", *TOK_FILES], "--ru-share"),
    ("train-ru-share-with-bpe", [*TOK_TRAIN, "--type", "bpe", "--ru-share", "0.5", *TOK_FILES], "--ru-share"),
    ("train-ru-not-utf8", [*TOK_TRAIN, "--ru", "{root}/latin1.txt", *TOK_FILES[2:]], "latin1.txt"),
    ("train-ru-empty", [*TOK_TRAIN, "--ru", "{root}/empty.txt", *TOK_FILES[2:]], "--ru"),
    ("train-code-empty", [*TOK_TRAIN, *TOK_FILES[:4], "--code", "{root}/empty.txt"], "--code"),
    ("train-en-missing", [*TOK_TRAIN, *TOK_FILES[:2], "--en", "{root}/nope.txt", *TOK_FILES[4:]], "nope.txt"),
    ("train-only-ru", [*TOK_TRAIN, *TOK_FILES[:2]], "--en"),
    ("train-data-missing", [*TOK_TRAIN, "--data", "{root}/no_data"], "no_data"),
    ("train-data-empty-ru", [*TOK_TRAIN, "--data", "{root}/data_empty_ru"], "data_empty_ru/ru.txt"),
    ("train-data-no-code", [*TOK_TRAIN, "--data", "{root}/data_no_code"], "code.txt"),
    ("train-out-is-a-file", ["tokenizer", "train", "--out", "{root}/en.txt", "--vocab-size", "512", *TOK_FILES], "en.txt"),
    ("train-out-under-a-file", ["tokenizer", "train", "--out", "{root}/en.txt/tok", "--vocab-size", "512", *TOK_FILES], "en.txt"),
    ("train-type-unknown", [*TOK_TRAIN, "--type", "wordpiece", *TOK_FILES], "--type"),
    ("stats-folder-missing", ["tokenizer", "stats", "{root}/no_tok", "--text", "{root}/en.txt"], "no_tok"),
    ("stats-not-a-tokenizer", ["tokenizer", "stats", "{root}/not_a_tokenizer", "--text", "{root}/en.txt"], "not_a_tokenizer"),
    ("stats-text-not-utf8", ["tokenizer", "stats", "{tok}", "--text", "{root}/latin1.txt"], "latin1.txt"),
    ("stats-text-empty", ["tokenizer", "stats", "{tok}", "--text", "{root}/empty.txt"], "empty.txt"),
    ("stats-text-missing", ["tokenizer", "stats", "{tok}", "--text", "{root}/nope.txt"], "nope.txt"),
    ("stats-text-empty-label", ["tokenizer", "stats", "{tok}", "--text", "={root}/en.txt"], "--text"),
    ("stats-repeats-zero", ["tokenizer", "stats", "{tok}", "--text", "{root}/en.txt", "--repeats", "0"], "--repeats"),
    ("stats-max-mb-nan", ["tokenizer", "stats", "{tok}", "--text", "{root}/en.txt", "--max-mb", "nan"], "--max-mb"),
    ("stats-data-with-text", ["tokenizer", "stats", "{tok}", "--text", "{root}/en.txt", "--data", "{root}"], "--data"),
    ("encode-folder-missing", ["tokenizer", "encode", "{root}/no_tok", "--text", "hi"], "no_tok"),
    ("encode-folder-is-a-file", ["tokenizer", "encode", "{root}/en.txt", "--text", "hi"], "en.txt"),
    ("encode-text-not-utf8", ["tokenizer", "encode", "{tok}", "--text", "caf\udce9"], "--text"),
    ("encode-no-text", ["tokenizer", "encode", "{tok}"], "--text"),
]  # fmt: skip


@pytest.mark.parametrize("argv, named", params(TOKENIZER_PROBES))
def test_tokenizer_refuses(
    files: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    rc, err = run_cli(capsys, expand(argv, files, tmp_path))
    assert_refused(rc, err, named)
    assert not (tmp_path / "tok").exists()


# ---- radon bench, radon demo, radon calibrate -----------------------------------------------------------
ARCH = ["bench", "--architectures", "tiny_gpt2", "tiny_mistral"]
OTHER_PROBES = [  # (id, argv, what the message must name); {art} is an fp32 ort artifact
    ("bench-artifact-missing", ["bench", "{root}/no_art"], "no_art"),
    ("bench-artifact-is-a-file", ["bench", "{root}/en.txt"], "en.txt"),
    ("bench-folder-not-an-artifact", ["bench", "{root}/not_a_tokenizer"], "not_a_tokenizer"),
    ("bench-architectures-one-config", ["bench", "--architectures", "tiny_gpt2"], "--architectures"),
    ("bench-architectures-unknown-preset", ["bench", "--architectures", "tiny_gpt2", "no_such_preset"], "no_such_preset"),
    ("bench-architectures-with-compare", [*ARCH, "--compare"], "--compare"),
    ("bench-batch-zero", [*ARCH, "--batch", "0"], "--batch"),
    ("bench-runs-zero", [*ARCH, "--runs", "0"], "--runs"),
    ("bench-rounds-zero", [*ARCH, "--rounds", "0"], "--rounds"),
    ("bench-new-tokens-negative", [*ARCH, "--new-tokens", "-1"], "--new-tokens"),
    ("bench-prompt-tokens-zero", [*ARCH, "--prompt-tokens", "0"], "--prompt-tokens"),
    ("bench-threads-negative", [*ARCH, "--threads", "-1"], "--threads"),
    ("bench-kv-context-zero", [*ARCH, "--kv-context", "0"], "--kv-context"),
    ("bench-device-unknown", [*ARCH, "--device", "tpu"], "--device"),
    ("bench-dtype-unknown", [*ARCH, "--dtype", "int3"], "--dtype"),
    ("bench-artifact-cache-unknown", ["bench", "{art}", "--cache", "ring,bogus"], "--cache"),
    ("bench-artifact-dtype", ["bench", "{art}", "--dtype", "float16"], "--dtype"),
    ("bench-artifact-rounds", ["bench", "{art}", "--rounds", "5"], "--rounds"),
    ("demo-data-missing", ["demo", "--data", "{root}/no_data", "--out", "{tmp}/demo"], "no_data"),
    ("demo-data-is-a-file", ["demo", "--data", "{root}/en.txt", "--out", "{tmp}/demo"], "en.txt"),
    ("demo-out-is-a-file", ["demo", "--out", "{root}/en.txt"], "en.txt"),
    ("demo-unknown-flag", ["demo", "--quik"], "--quik"),
    ("calibrate-artifact-missing", ["calibrate", "{root}/no_art", "--out", "{tmp}/cal"], "no_art"),
    ("calibrate-artifact-is-a-file", ["calibrate", "{root}/en.txt", "--out", "{tmp}/cal"], "en.txt"),
    ("calibrate-samples-zero", ["calibrate", "{art}", "--out", "{tmp}/cal", "--samples", "0"], "--samples"),
    ("calibrate-seq-len-zero", ["calibrate", "{art}", "--out", "{tmp}/cal", "--seq-len", "0"], "--seq-len"),
    ("calibrate-data-missing", ["calibrate", "{art}", "--out", "{tmp}/cal", "--calibration-data", "{root}/nope.txt"], "nope.txt"),
    ("calibrate-data-empty", ["calibrate", "{art}", "--out", "{tmp}/cal", "--calibration-data", "{root}/empty.txt"], "empty.txt"),
    ("calibrate-data-not-utf8", ["calibrate", "{art}", "--out", "{tmp}/cal", "--calibration-data", "{root}/latin1.txt"], "latin1.txt"),
    ("calibrate-smooth-alpha-nan", ["calibrate", "{art}", "--out", "{tmp}/cal", "--calibration-data", "{root}/en.txt",
                                    "--samples", "2", "--seq-len", "16", "--smooth-alpha", "nan"], "--smooth-alpha"),
    ("calibrate-smooth-alpha-two", ["calibrate", "{art}", "--out", "{tmp}/cal", "--calibration-data", "{root}/en.txt",
                                    "--samples", "2", "--seq-len", "16", "--smooth-alpha", "2"], "--smooth-alpha"),
    ("calibrate-threads-negative", ["calibrate", "{art}", "--out", "{tmp}/cal", "--calibration-data", "{root}/en.txt",
                                    "--samples", "2", "--seq-len", "16", "--threads", "-1"], "--threads"),
    ("calibrate-samples-huge", ["calibrate", "{art}", "--out", "{tmp}/cal", "--samples", "1000000000"], "--samples"),
    ("calibrate-method-unknown", ["calibrate", "{art}", "--out", "{tmp}/cal", "--method", "median"], "--method"),
    ("calibrate-out-exists", ["calibrate", "{art}", "--out", "{root}"], "already exists"),
]  # fmt: skip


@pytest.mark.parametrize("argv, named", params(OTHER_PROBES))
def test_bench_demo_calibrate_refuse(
    files: SimpleNamespace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    argv: list[str],
    named: str,
) -> None:
    if any("{art}" in a for a in argv):
        art = str(request.getfixturevalue("artifact"))
        argv = [a.replace("{art}", art) for a in argv]
    rc, err = run_cli(capsys, expand(argv, files, tmp_path))
    assert_refused(rc, err, named)
    assert not any((tmp_path / name).exists() for name in ("demo", "cal"))
