"""The peers of ``radon bench --compare``, built from the same weights as the artifact and cached.

Peers need packages RADON's core install cannot hold (DESIGN.md, environments), so each runs under
the interpreter of the environment that has it:

| peer | model | interpreter |
|---|---|---|
| transformers eager | the checkpoint as a Hugging Face folder (``radon convert --to-hf``) | this one |
| optimum ``ORTModelForCausalLM`` | optimum's own export of that folder (``text-generation-with-past``) | ``.bench-venv`` |
| onnxruntime-genai fp32 | genai's model builder on that folder (``-p fp32 -e cpu``) | runs in ``.bench-venv``, built in ``.venv-genai-build`` |
| llama.cpp f32 | ``convert_hf_to_gguf.py --outtype f32`` | ``.bench-venv`` with llama-cpp-python (opt-in) |

``scripts/make_bench_venv.sh`` makes the venvs (``RADON_BENCH_LLAMA_CPP=1`` adds the llama.cpp
build). Their locations can be overridden with ``RADON_BENCH_VENV`` and ``RADON_GENAI_BUILDER_PYTHON``;
the cache lives in ``RADON_BENCH_CACHE`` (default ``~/.cache/radon/bench/<checkpoint digest>``). A
peer that cannot be prepared is reported as not run, with the reason; it never stops the benchmark.
The source checkpoint is ``reference``, else the artifact's sibling folder named in its manifest
(``source.checkpoint_name``), accepted only if its digest matches ``source.checkpoint_sha256``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radon.errors import RadonError
from radon.runtime.contract import Manifest

log = logging.getLogger(__name__)
REPO = (
    Path(__file__).resolve().parents[2]
)  # the repository root of an editable install (radon/bench/peers.py)


@dataclass
class Peer:
    """One engine to run: its worker name, interpreter and model, or why it is not run."""

    name: str  # the key in the report
    label: str
    python: str | None = None
    model: Path | None = None
    skipped: str | None = None
    engine: str = ""  # the radon.bench.worker engine (default: name)
    args: tuple[str, ...] = ()  # extra worker arguments

    def __post_init__(self) -> None:
        self.engine = self.engine or self.name

    @property
    def size_bytes(self) -> int:
        if self.model is None:
            return 0
        files = [self.model] if self.model.is_file() else list(self.model.rglob("*"))
        return sum(
            f.stat().st_size for f in files if f.is_file() and ("onnx" in f.name or f.suffix == ".gguf")
        )


def bench_venv_python() -> Path:
    return Path(os.environ.get("RADON_BENCH_VENV", REPO / ".bench-venv")) / "bin" / "python"


def genai_builder_python() -> Path:
    return Path(os.environ.get("RADON_GENAI_BUILDER_PYTHON", REPO / ".venv-genai-build" / "bin" / "python"))


def find_reference(artifact: Path, manifest: Manifest, reference: Path | None) -> Path:
    """The checkpoint the artifact was exported from (checked by its digest)."""
    from radon.checkpoint import checkpoint_digest

    want = manifest.source.get("checkpoint_sha256")
    candidates = [reference] if reference else [artifact.parent / str(manifest.source.get("checkpoint_name"))]
    for ckpt in candidates:
        if ckpt and ckpt.is_dir():
            if checkpoint_digest(ckpt) != want:
                raise RadonError(f"{ckpt}: not the checkpoint {artifact} was exported from (digest differs)")
            return ckpt
    raise RadonError(
        f"--compare needs the checkpoint {artifact} was exported from ({manifest.source.get('checkpoint_name')}), "
        f"to build the peers from the same weights; it is not beside the artifact (pass reference=CKPT)"
    )


def _run(cmd: list[str], what: str, log_file: Path) -> str | None:
    """Run a preparation command; None on success, else the reason (its log's tail)."""
    log.info("bench: %s: %s", what, " ".join(cmd))
    with log_file.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        return f"{what} failed (exit {done.returncode}; see {log_file}): {' / '.join(tail)}"
    return None


def write_stub_tokenizer(hf_dir: Path, vocab_size: int) -> None:
    """A word-level tokenizer.json with one token per id: genai's builder and optimum's exporter load a
    tokenizer from the folder even though the benchmark feeds ids. Only for checkpoints without one."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {t: i for i, t in enumerate(specials)} | {f"t{i}": i for i in range(len(specials), vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(hf_dir / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "pad_token": "<pad>", "unk_token": "<unk>"}  # fmt: skip
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(config))


def write_stub_sentencepiece(hf_dir: Path, vocab_size: int) -> None:
    """A SentencePiece ``tokenizer.model`` with one piece per id, for llama.cpp's ``convert_hf_to_gguf.py``:
    it reads a vocabulary from ``tokenizer.model`` and refuses a word-level ``tokenizer.json`` (its BPE
    path wants a known pre-tokenizer). The benchmark and the parity code feed ids, so the pieces'
    text does not matter; only the id space does. Run with the bench venv's Python (its protobuf matches
    sentencepiece's generated code; the main venv's may not)."""
    from sentencepiece import sentencepiece_model_pb2

    # protoc's generated module builds its message classes into globals() at import time, and
    # sentencepiece ships no .pyi for it (despite py.typed), so a type checker sees none of them
    spm: Any = sentencepiece_model_pb2
    proto = spm.ModelProto()
    kinds = {"<unk>": spm.ModelProto.SentencePiece.UNKNOWN, "<s>": spm.ModelProto.SentencePiece.CONTROL,
             "</s>": spm.ModelProto.SentencePiece.CONTROL, "<pad>": spm.ModelProto.SentencePiece.CONTROL}  # fmt: skip
    for i in range(vocab_size):
        name = list(kinds)[i] if i < len(kinds) else f"t{i}"
        proto.pieces.add(piece=name, score=0.0, type=kinds.get(name, spm.ModelProto.SentencePiece.NORMAL))
    proto.trainer_spec.model_type = spm.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = vocab_size
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 0, 1, 2
    proto.trainer_spec.pad_id = 3
    (hf_dir / "tokenizer.model").write_bytes(proto.SerializeToString())


def cache_dir(manifest: Manifest) -> Path:
    root = os.environ.get("RADON_BENCH_CACHE") or Path.home() / ".cache" / "radon" / "bench"
    return Path(root) / str(manifest.source.get("checkpoint_sha256", "unknown"))[:16]


FAMILIES = {"fp32": "fp32", "fp16": "fp32", "int8": "int8", "int8-dynamic": "int8", "int4": "int4"}


def prepare_peers(artifact: Path, manifest: Manifest, reference: Path | None = None,
                  precisions: set[str] | None = None) -> list[Peer]:  # fmt: skip
    """The peers for the artifacts' precisions, built (or found in the cache) from their checkpoint:
    fp32 -> transformers, optimum, genai fp32, llama.cpp f32; int8 -> llama.cpp Q8_0; int4 -> genai
    int4 and llama.cpp Q4_0 (the quantized targets' side-by-side set)."""
    ckpt = find_reference(artifact, manifest, reference)
    cache = cache_dir(manifest)
    cache.mkdir(parents=True, exist_ok=True)
    log_file = cache / "prepare.log"
    hf = cache / "hf"
    if not (hf / "config.json").is_file():
        why = _run([sys.executable, "-m", "radon", "convert", "--to-hf", str(ckpt), "--out", str(hf), "--force"],
                   "radon convert --to-hf", log_file)  # fmt: skip
        if why:
            raise RadonError(f"bench --compare: {why}")
    if not (hf / "tokenizer.json").is_file():
        write_stub_tokenizer(hf, manifest.architecture.vocab_size)
    bench_py = bench_venv_python()
    no_venv = f"{bench_py} is missing (run scripts/make_bench_venv.sh)"
    families = {FAMILIES.get(p, "fp32") for p in (precisions or {manifest.precision})}
    peers = []
    if "fp32" in families:
        peers += [_transformers(hf), _optimum(hf, cache, bench_py, log_file, no_venv),
                  _genai(hf, cache, bench_py, log_file, no_venv, "fp32")]  # fmt: skip
    if "int4" in families:
        peers.append(_genai(hf, cache, bench_py, log_file, no_venv, "int4"))
    for family, kind in (("fp32", "f32"), ("int8", "q8_0"), ("int4", "q4_0")):
        if family in families:
            peers.append(_llamacpp(hf, cache, bench_py, log_file, no_venv, kind))
    return peers


def _transformers(hf: Path) -> Peer:
    peer = Peer("transformers", "transformers eager", sys.executable, hf)
    if not (importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")):
        peer.skipped = "torch and transformers are not installed here (pip install 'radon[dev]')"
    return peer


def _optimum(hf: Path, cache: Path, bench_py: Path, log_file: Path, no_venv: str) -> Peer:
    model = cache / "optimum"
    peer = Peer("optimum", "optimum ORTModelForCausalLM", str(bench_py), model)
    if not bench_py.is_file():
        peer.skipped = no_venv
    elif not (model / "model.onnx").is_file():
        cli = bench_py.parent / "optimum-cli"
        peer.skipped = _run([str(cli), "export", "onnx", "--model", str(hf), "--task", "text-generation-with-past",
                             str(model)], "optimum export", log_file)  # fmt: skip
    return peer


def _genai(hf: Path, cache: Path, bench_py: Path, log_file: Path, no_venv: str, precision: str) -> Peer:
    name = "genai" if precision == "fp32" else f"genai-{precision}"
    model = cache / f"genai-{precision}"
    peer = Peer(name, f"onnxruntime-genai {precision}", str(bench_py), model, engine="genai")
    builder = genai_builder_python()
    if not bench_py.is_file():
        peer.skipped = no_venv
    elif not (model / "genai_config.json").is_file():
        if not builder.is_file():
            peer.skipped = f"{builder} is missing (scripts/make_bench_venv.sh makes genai's builder venv)"
        else:
            peer.skipped = _run([str(builder), "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o",
                                 str(model), "-p", precision, "-e", "cpu", "-c", str(cache / "genai-cache")],
                                "genai model builder", log_file)  # fmt: skip
    return peer


# llama.h's LLAMA_FTYPE_MOSTLY_*: each made by llama.cpp's own quantizer from the f32 file, as
# llama-quantize does (convert_hf_to_gguf.py cannot write Q4_0 or K-quants)
LLAMA_QUANT_FTYPES = {"q8_0": 7, "q4_0": 2, "q4_k_m": 15}
QUANTIZE = (
    "import sys, llama_cpp as l; p = l.llama_model_quantize_default_params(); p.ftype = int(sys.argv[3]); "
    "sys.exit(l.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p))"
)


def _llamacpp(hf: Path, cache: Path, bench_py: Path, log_file: Path, no_venv: str, kind: str = "f32",
              own_tokenizer: bool = False) -> Peer:  # fmt: skip
    """llama.cpp on a GGUF of the same weights: ``f32`` from ``convert_hf_to_gguf.py``, ``q8_0``, ``q4_0``
    and ``q4_k_m`` by llama.cpp's own quantizer (``llama_model_quantize``) from the f32 file.
    ``own_tokenizer``: ``hf`` holds a tokenizer the converter reads (a real model's), so no stub."""
    name = "llamacpp" if kind == "f32" else f"llamacpp-{kind}"
    model = cache / f"model-{kind}.gguf"
    peer = Peer(name, f"llama.cpp {kind if kind == 'f32' else kind.upper()}", str(bench_py), model,
                engine="llamacpp")  # fmt: skip
    convert = bench_py.parent.parent / "share" / "llama.cpp" / "convert_hf_to_gguf.py"
    if not bench_py.is_file():
        peer.skipped = no_venv
    elif subprocess.run([str(bench_py), "-c", "import llama_cpp"], capture_output=True).returncode:
        peer.skipped = (
            "llama-cpp-python is not installed (opt-in: RADON_BENCH_LLAMA_CPP=1 scripts/make_bench_venv.sh)"
        )
    elif not model.is_file():
        if kind in LLAMA_QUANT_FTYPES:
            source = _llamacpp(hf, cache, bench_py, log_file, no_venv, "f32", own_tokenizer)
            peer.skipped = source.skipped or _run(
                [str(bench_py), "-c", QUANTIZE, str(source.model), str(peer.model), str(LLAMA_QUANT_FTYPES[kind])],
                f"llama.cpp quantize {kind}", log_file,
            )  # fmt: skip
        elif not convert.is_file():
            peer.skipped = (
                f"{convert} is missing (scripts/make_bench_venv.sh keeps it from llama.cpp's sources)"
            )
        else:
            src = tokenizer4_source(hf, cache) if own_tokenizer else gguf_source(hf, bench_py, log_file)
            peer.skipped = src if isinstance(src, str) else _run(
                [str(bench_py), str(convert), str(src), "--outtype", kind, "--outfile", str(peer.model)],
                "convert_hf_to_gguf.py", log_file,
            )  # fmt: skip
    return peer


def tokenizer4_source(hf: Path, cache: Path) -> Path:
    """``hf`` as the peer venv's transformers 4.x loads its tokenizer (the converter does): transformers 5
    saves ``tokenizer_class: TokenizersBackend``, a class 4.x lacks; links to the files, that key rewritten
    to ``PreTrainedTokenizerFast`` (the same ``tokenizer.json``), in ``cache/hf-tokenizer4``."""
    src = cache / "hf-tokenizer4"
    src.mkdir(exist_ok=True)
    for f in hf.iterdir():
        if f.is_file() and f.name != "tokenizer_config.json" and not (src / f.name).exists():
            (src / f.name).symlink_to(f.resolve())
    config = json.loads((hf / "tokenizer_config.json").read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (src / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return src


def gguf_source(hf: Path, bench_py: Path, log_file: Path) -> Path | str:
    """``hf`` as llama.cpp's converter reads it: links to its files plus a stub ``tokenizer.model``, in a
    folder of its own so that optimum and genai never see the stub; the reason (a string) on failure."""
    src = hf.parent / "hf-gguf"
    src.mkdir(exist_ok=True)
    for f in hf.iterdir():
        if f.is_file() and not (src / f.name).exists():
            (src / f.name).symlink_to(f.resolve())
    if (src / "tokenizer.model").is_file():
        return src
    vocab = json.loads((hf / "config.json").read_text())["vocab_size"]
    stub = ("import sys; from pathlib import Path; from radon.bench.peers import write_stub_sentencepiece "
            "as w; w(Path(sys.argv[1]), int(sys.argv[2]))")  # fmt: skip
    return _run([str(bench_py), "-c", stub, str(src), str(vocab)], "tokenizer.model stub", log_file) or src
