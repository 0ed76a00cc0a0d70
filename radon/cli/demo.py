"""``radon demo``: the whole pipeline on a small model.

Foundation stage: build a small Mistral, save it as a checkpoint, load it back (hashes checked) and
generate from it with and without the KV cache. Later stages (tokenizer, training, export, quantize,
parity, serving) are added here as they land.
"""

from __future__ import annotations

from pathlib import Path


def demo(*, out: Path = Path("radon-demo"), quick: bool = False, force: bool = True) -> int:
    """Run the whole pipeline on a small model and print where each output is.

    Args:
        out: the folder for the demo's outputs.
        quick: the reduced mode CI runs (same steps, less work).
        force: replace outputs of an earlier run.
    """
    import torch

    from radon import HybridTransformerModel, ModelConfig, load_model, save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig.from_json("tiny_mistral")
    print(f"[1/3] building a {cfg.model_type} model ({cfg.num_layers} layers, window {cfg.sliding_window})")
    model = HybridTransformerModel(cfg)
    ckpt = save_checkpoint(model, out / "checkpoint", overwrite=force)
    print(f"[2/3] checkpoint: {ckpt}")
    model = load_model(ckpt)
    prompt = torch.tensor([[cfg.bos_token_id, 10, 11, 12]])
    new = 8 if quick else 3 * cfg.sliding_window
    cached = model.generate(prompt, max_new_tokens=new, ignore_eos=True)
    uncached = model.generate(prompt, max_new_tokens=new, ignore_eos=True, use_cache=False)
    print(f"[3/3] generated ids (untrained model, no tokenizer yet): {cached[0, 4:].tolist()}")
    print(f"      rolling KV cache == full recompute: {torch.equal(cached, uncached)}")
    return 0 if torch.equal(cached, uncached) else 1
