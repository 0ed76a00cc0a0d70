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

from radon.errors import RadonError
from radon.runtime.manifest import Manifest

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent  # the repository root of an editable install


@dataclass
class Peer:
    """One engine to run: its worker name, interpreter and model, or why it is not run."""

    name: str  # the key in the report
    label: str
    python: str | None = None
    model: Path | None = None
    skipped: str | None = None
    engine: str = ""  # the bench_worker engine (default: name)
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


def cache_dir(manifest: Manifest) -> Path:
    root = os.environ.get("RADON_BENCH_CACHE") or Path.home() / ".cache" / "radon" / "bench"
    return Path(root) / str(manifest.source.get("checkpoint_sha256", "unknown"))[:16]


def prepare_peers(artifact: Path, manifest: Manifest, reference: Path | None = None) -> list[Peer]:
    """Every peer, built (or found in the cache) from the artifact's checkpoint."""
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
    peers = [
        _transformers(hf),
        _optimum(hf, cache, bench_py, log_file, no_venv),
        _genai(hf, cache, bench_py, log_file, no_venv),
        _llamacpp(hf, cache, bench_py, log_file, no_venv),
    ]
    return peers


def _transformers(hf: Path) -> Peer:
    peer = Peer("transformers", "transformers eager", sys.executable, hf)
    if not (importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")):
        peer.skipped = "torch and transformers are not installed here (pip install 'radon[dev]')"
    return peer


def _optimum(hf: Path, cache: Path, bench_py: Path, log_file: Path, no_venv: str) -> Peer:
    peer = Peer("optimum", "optimum ORTModelForCausalLM", str(bench_py), cache / "optimum")
    if not bench_py.is_file():
        peer.skipped = no_venv
    elif not (peer.model / "model.onnx").is_file():  # type: ignore[operator]
        cli = bench_py.parent / "optimum-cli"
        peer.skipped = _run([str(cli), "export", "onnx", "--model", str(hf), "--task", "text-generation-with-past",
                             str(peer.model)], "optimum export", log_file)  # fmt: skip
    return peer


def _genai(hf: Path, cache: Path, bench_py: Path, log_file: Path, no_venv: str) -> Peer:
    peer = Peer("genai", "onnxruntime-genai fp32", str(bench_py), cache / "genai-fp32")
    builder = genai_builder_python()
    if not bench_py.is_file():
        peer.skipped = no_venv
    elif not (peer.model / "genai_config.json").is_file():  # type: ignore[operator]
        if not builder.is_file():
            peer.skipped = f"{builder} is missing (scripts/make_bench_venv.sh makes genai's builder venv)"
        else:
            peer.skipped = _run([str(builder), "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o",
                                 str(peer.model), "-p", "fp32", "-e", "cpu", "-c", str(cache / "genai-cache")],
                                "genai model builder", log_file)  # fmt: skip
    return peer


def _llamacpp(hf: Path, cache: Path, bench_py: Path, log_file: Path, no_venv: str) -> Peer:
    peer = Peer("llamacpp", "llama.cpp f32", str(bench_py), cache / "model-f32.gguf")
    convert = bench_py.parent.parent / "share" / "llama.cpp" / "convert_hf_to_gguf.py"
    if not bench_py.is_file():
        peer.skipped = no_venv
    elif subprocess.run([str(bench_py), "-c", "import llama_cpp"], capture_output=True).returncode:
        peer.skipped = (
            "llama-cpp-python is not installed (opt-in: RADON_BENCH_LLAMA_CPP=1 scripts/make_bench_venv.sh)"
        )
    elif not peer.model.is_file():  # type: ignore[union-attr]
        if not convert.is_file():
            peer.skipped = (
                f"{convert} is missing (scripts/make_bench_venv.sh keeps it from llama.cpp's sources)"
            )
        else:
            peer.skipped = _run([str(bench_py), str(convert), str(hf), "--outtype", "f32", "--outfile", str(peer.model)],
                                "convert_hf_to_gguf.py", log_file)  # fmt: skip
    return peer
