"""``radon convert``: Hugging Face GPT-2 / Mistral / Llama / Qwen2 folders in and out, GGUF files in."""

from __future__ import annotations

from pathlib import Path


def convert(
    *,
    out: Path,
    from_hf: Path | None = None,
    to_hf: Path | None = None,
    from_gguf: Path | None = None,
    force: bool = False,
) -> int:
    """Convert a transformers GPT-2 / Mistral / Llama / Qwen2 folder or a GGUF file to a RADON checkpoint, or back.

    radon convert --from-hf HF_DIR --out CKPT    read config.json + (sharded) safetensors, and tokenizer.json
    radon convert --from-gguf FILE --out CKPT    dequantize a llama/qwen2 GGUF to float32 (the gguf package);
                                                 tokenizer and chat template from its metadata
    radon convert --to-hf CKPT --out HF_DIR      write a folder of the checkpoint's family that
                                                 transformers' from_pretrained loads

    Every tensor must be accounted for and match the shape the config implies; pickled .bin files
    are refused, and so is any config switch RADON cannot reproduce (named in the message).

    Args:
        out: the folder to write (refused if it exists, unless --force).
        from_hf: a Hugging Face model folder to read.
        to_hf: a RADON checkpoint folder to write out in Hugging Face form.
        from_gguf: a GGUF file (llama or qwen2 architecture) to read.
        force: replace --out if it exists.
    """
    from radon.errors import RadonError

    given = [flag for flag, value in (("--from-hf", from_hf), ("--to-hf", to_hf), ("--from-gguf", from_gguf))
             if value is not None]  # fmt: skip
    if len(given) != 1:
        raise RadonError(
            "give exactly one of --from-hf HF_DIR, --from-gguf FILE or --to-hf CKPT"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    from radon import convert as conv

    if from_hf is not None:
        if (Path(from_hf) / "radon_checkpoint.json").is_file():
            raise RadonError(f"--from-hf: {from_hf} is a RADON checkpoint, not a Hugging Face folder (--to-hf writes one)")  # fmt: skip
        path = conv.from_hf(from_hf, out, overwrite=force)
        print(f"wrote RADON checkpoint {path}")
    elif from_gguf is not None:
        path = conv.from_gguf(from_gguf, out, overwrite=force)
        print(f"wrote RADON checkpoint {path} (float32, dequantized from {Path(from_gguf).name})")
    else:
        path = conv.to_hf(to_hf, out, overwrite=force)
        print(f"wrote Hugging Face folder {path}")
    return 0
