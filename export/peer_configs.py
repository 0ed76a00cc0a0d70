"""Files that let peers load a RADON artifact: optimum's ``config.json`` and onnxruntime-genai's ``genai_config.json``.

Contract 5 asks for them where they are cheap. Both peers bind the same contract-4 names RADON uses.
Neither knows RADON's rolling buffer: optimum and genai grow the past without bound, which RADON's
graphs accept (the band is computed from slot differences, so a longer past gives the same logits),
so they load and generate correctly, just without bounded memory. ``genai_config.json`` follows the
layout of the files onnxruntime-genai's model builder writes (``model.decoder.inputs`` maps roles to
graph names, ``%d`` stands for the layer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radon.config import ModelConfig
from radon.convert import config_to_hf
from radon.export.decoder_spec import DecoderSpec
from radon.integrity import read_json, write_json
from radon.runtime.contract import (
    ATTENTION_MASK,
    INPUT_IDS,
    LOGITS,
    PAST_KEY,
    PAST_VALUE,
    POSITION_IDS,
    PRESENT_KEY,
    PRESENT_VALUE,
)

OPTIMUM_CONFIG = "config.json"
GENAI_CONFIG = "genai_config.json"
GENERATION_CONFIG = "generation_config.json"
# genai's model "type" picks how it binds IO, not the architecture (that is in the graph). Its "gpt2" type
# expects GPT-2's legacy combined past_%d tensors; its generic decoder types bind contract 4's names.
GENAI_TYPE = {"mistral": "mistral", "gpt2": "llama", "llama": "llama", "qwen2": "qwen2"}


def optimum_config(cfg: ModelConfig) -> dict[str, Any]:
    """transformers' config dict, as optimum's ORTModelForCausalLM reads it beside model.onnx."""
    hf = config_to_hf(cfg)
    hf["use_cache"] = True
    return hf


def genai_pattern(template: str) -> str:
    """A contract name template (``present.{i}.key``) in genai's form, ``%d`` for the layer."""
    return template.replace("{i}", "%d")


def genai_config(spec: DecoderSpec, model_file: str) -> dict[str, Any]:
    """onnxruntime-genai's config for a decoder with contract-4 IO (CPU provider, growing past).

    genai rejects unknown keys, so nothing RADON-specific goes in; the window lives in the manifest.
    """
    eos = spec.eos_token_id
    return {
        "model": {
            "bos_token_id": spec.bos_token_id,
            "context_length": spec.max_position_embeddings,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": model_file,
                "head_size": spec.head_dim,
                "hidden_size": spec.hidden_size,
                "inputs": {
                    "input_ids": INPUT_IDS,
                    "attention_mask": ATTENTION_MASK,
                    "position_ids": POSITION_IDS,
                    "past_key_names": genai_pattern(PAST_KEY),
                    "past_value_names": genai_pattern(PAST_VALUE),
                },
                "outputs": {
                    "logits": LOGITS,
                    "present_key_names": genai_pattern(PRESENT_KEY),
                    "present_value_names": genai_pattern(PRESENT_VALUE),
                },
                "num_attention_heads": spec.num_attention_heads,
                "num_hidden_layers": spec.num_layers,
                "num_key_value_heads": spec.num_kv_heads,
            },
            "eos_token_id": eos if eos is not None else -1,
            "pad_token_id": spec.pad_token_id
            if spec.pad_token_id is not None
            else (eos if eos is not None else 0),
            "type": GENAI_TYPE[spec.model_type],
            "vocab_size": spec.vocab_size,
        },
        "search": {
            "diversity_penalty": 0.0,
            "do_sample": False,
            "early_stopping": True,
            "length_penalty": 1.0,
            "max_length": spec.max_position_embeddings,
            "min_length": 0,
            "no_repeat_ngram_size": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            # RADON's graphs take a past of past_sequence_length and return past + new (no shared buffer)
            "past_present_share_buffer": False,
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }


def write_peer_configs(
    folder: Path, checkpoint: Path, cfg: ModelConfig, spec: DecoderSpec, model_file: str
) -> list[str]:
    """Write config.json, generation_config.json and genai_config.json into ``folder``; returns the names."""
    write_json(folder / OPTIMUM_CONFIG, optimum_config(cfg))
    gen_path = checkpoint / GENERATION_CONFIG
    gen = read_json(gen_path, "the generation config") if gen_path.is_file() else {}
    gen = {k: v for k, v in gen.items() if v is not None}
    write_json(folder / GENERATION_CONFIG, gen)
    write_json(folder / GENAI_CONFIG, genai_config(spec, model_file))
    return [OPTIMUM_CONFIG, GENERATION_CONFIG, GENAI_CONFIG]
