"""``radon convert``: Hugging Face GPT-2 / Mistral folders in and out."""

from __future__ import annotations

from pathlib import Path


def convert(
    *,
    out: Path,
    from_hf: Path | None = None,
    to_hf: Path | None = None,
    force: bool = False,
) -> int:
    """Convert a transformers GPT2LMHeadModel / MistralForCausalLM folder to a RADON checkpoint, or back.

    radon convert --from-hf HF_DIR --out CKPT    read config.json + (sharded) safetensors, and tokenizer.json
    radon convert --to-hf CKPT --out HF_DIR      write a folder that transformers' from_pretrained loads

    Every tensor must be accounted for and match the shape the config implies; pickled .bin files
    are refused.

    Args:
        out: the folder to write (refused if it exists, unless --force).
        from_hf: a Hugging Face model folder to read.
        to_hf: a RADON checkpoint folder to write out in Hugging Face form.
        force: replace --out if it exists.
    """
    from radon.errors import RadonError

    if (from_hf is None) == (to_hf is None):
        raise RadonError("give exactly one of --from-hf HF_DIR or --to-hf CKPT")
    from radon import convert as conv

    if from_hf is not None:
        path = conv.from_hf(from_hf, out, overwrite=force)
        print(f"wrote RADON checkpoint {path}")
    else:
        path = conv.to_hf(to_hf, out, overwrite=force)
        print(f"wrote Hugging Face folder {path}")
    return 0
