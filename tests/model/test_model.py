"""The reference model on its own: cache, window semantics, hybrid switching, attention paths."""

from __future__ import annotations

import pytest
import torch

from radon import HybridTransformerModel, ModelConfig
from radon.errors import RadonError
from radon_testing import decisive_


def _model(name: str = "tiny_mistral", **changes) -> HybridTransformerModel:
    cfg = ModelConfig.from_json(name)
    for k, v in changes.items():
        setattr(cfg, k, v)
    return decisive_(HybridTransformerModel(cfg)).eval()


def _ids(length: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, 320, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["tiny_mistral", "tiny_gpt2"])
@torch.no_grad()
def test_incremental_decoding_equals_full_forward_past_3_windows(name: str) -> None:
    model = _model(name)
    window = model.config.sliding_window or 8
    ids = _ids(3 * window + 9)
    full = model(ids, use_cache=False).logits
    out = model(ids[:, :3], use_cache=True)
    cache, steps, lengths = out.past_key_values, [out.logits], []
    for t in range(3, ids.shape[1]):
        out = model(ids[:, t : t + 1], past_key_values=cache, use_cache=True)
        steps.append(out.logits)
        lengths.append(cache.length)
        # the buffer's tensors have exactly the shape the contract states
        assert cache.keys[0].shape == (2, model.config.num_kv_heads, cache.length, model.config.head_dim)
    assert (torch.cat(steps, 1) - full).abs().max().item() <= 1e-5
    if model.config.sliding_window:
        assert max(lengths) == window - 1, "the rolling buffer holds W - 1 positions between steps"
        assert lengths[-window:] == [window - 1] * window, "and stops growing there"
    else:
        assert lengths[-1] == ids.shape[1], "full attention keeps every position"


@torch.no_grad()
def test_window_semantics_perturb_one_key() -> None:
    """Query i sees keys i-W < j <= i: changing token j moves logits at i only inside that band."""
    model = _model()
    W = model.config.sliding_window
    ids = _ids(4 * W, batch=1)
    base = model(ids).logits
    j = W + 3
    moved = ids.clone()
    moved[0, j] = (moved[0, j] + 17) % 320
    delta = (model(moved).logits - base).abs().amax(-1)[0]
    # one layer of attention reaches W-1 back; two layers reach 2(W-1)
    reach = model.config.num_layers * (W - 1)
    assert (delta[:j] == 0).all()
    assert (delta[j : j + reach + 1] > 0).all()
    assert (delta[j + reach + 1 :] == 0).all()


@torch.no_grad()
def test_prefill_longer_than_window_then_decode() -> None:
    model = _model()
    W = model.config.sliding_window
    ids = _ids(3 * W + 2)
    full = model(ids).logits
    out = model(ids[:, : 2 * W + 5], use_cache=True)
    assert out.past_key_values.length == W - 1, "a long prefill keeps only the last W - 1 positions"
    nxt = model(ids[:, 2 * W + 5 :], past_key_values=out.past_key_values, use_cache=True).logits
    assert (nxt - full[:, 2 * W + 5 :]).abs().max().item() <= 1e-5


@torch.no_grad()
def test_flex_attention_matches_sdpa() -> None:
    model = _model()
    ids = _ids(40)
    mask = torch.ones_like(ids)
    mask[1, :6] = 0
    a = model(ids, attention_mask=mask).logits
    b = model(ids, attention_mask=mask, use_flash_attention=True).logits
    assert (a - b)[mask.bool()].abs().max().item() <= 1e-5


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    ids = _ids(24)
    grads = []
    for ckpt in (False, True):
        model = _model(gradient_checkpointing=ckpt).train()
        model.config.dropout = 0.0
        loss = model(ids, labels=ids, use_cache=False).loss
        loss.backward()
        grads.append(model.mistral.layers[0].attn.qkv.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_hybrid_holds_both_stacks_and_switches() -> None:
    cfg = ModelConfig.from_json("tiny_mistral")
    cfg.model_type = "hybrid"
    model = decisive_(HybridTransformerModel(cfg)).eval()
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"embed_tokens", "lm_head", "gpt2", "mistral"}
    ids = _ids(20)
    with torch.no_grad():
        as_mistral = model.switch_to_mistral()(ids).logits
        as_gpt2 = model.switch_to_gpt2()(ids).logits
        again = model.switch_to_mistral()(ids).logits
    assert torch.equal(as_mistral, again), "switching back restores the same function"
    assert (as_mistral - as_gpt2).abs().max() > 1e-2
    # the GPT-2 stack of a hybrid is plain multi-head attention even though the config has GQA
    assert model.gpt2.layers[0].attn.nkv == cfg.num_attention_heads
    assert model.mistral.layers[0].attn.nkv == cfg.num_kv_heads


def test_switch_refused_on_single_architecture() -> None:
    with pytest.raises(RadonError, match="model_type 'hybrid'"):
        _model("tiny_gpt2").switch_to_mistral()


def test_parameter_count_matches_meta_instantiation() -> None:
    from radon.config import presets
    from radon.info import count_parameters

    for name, path in presets().items():
        for kind in (None, "hybrid"):
            cfg = ModelConfig.from_json(path)
            if kind:
                if cfg.q_size != cfg.hidden_size:
                    continue
                cfg.model_type = kind
            with torch.device("meta"):
                model = HybridTransformerModel(cfg)
            assert count_parameters(cfg).total == model.num_parameters(), (name, kind)


def test_output_hidden_states_and_attentions() -> None:
    model = _model()
    out = model(_ids(12), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == model.config.num_layers + 1
    att = out.attentions[0]
    assert att.shape == (2, 4, 12, 12)
    W = model.config.sliding_window
    assert torch.allclose(att.sum(-1), torch.ones(2, 4, 12))
    assert (att[..., 11, : 12 - W] == 0).all(), "nothing outside the window gets weight"
