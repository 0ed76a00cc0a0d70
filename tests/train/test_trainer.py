"""The training loop: the loss falls, --resume continues bit for bit, checkpoints are never half-written."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from radon.checkpoint import verify_checkpoint
from radon.config import ModelConfig
from radon.errors import RadonError
from radon.tokenizer import load_tokenizer
from radon.train import TrainConfig, TrainingInterrupted, train
from radon.train.optim import lr_at
from radon.train.state import read_state


def _files(corpus: Path) -> dict[str, list[Path]]:
    return {lang: [corpus / f"{lang}.txt"] for lang in ("ru", "en", "code")}


def _recipe(**overrides: object) -> TrainConfig:
    base = dict(steps=8, batch_size=4, context=32, lr=3e-3, warmup_steps=2, eval_every=0, seed=7,
                max_bytes_per_language=60_000, threads=1)  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _run(tiny_config: Path, corpus: Path, tokenizer_dir: Path, out: Path, **kwargs: object):  # noqa: ANN202
    recipe = kwargs.pop("recipe", None) or _recipe()
    return train(
        ModelConfig.from_json(tiny_config), recipe, _files(corpus), load_tokenizer(tokenizer_dir), out,
        progress=False, **kwargs,
    )  # fmt: skip


def test_loss_falls(tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    result = _run(
        tiny_config, corpus, tokenizer_dir, tmp_path / "ckpt", recipe=_recipe(steps=30, eval_every=15)
    )
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < first - 0.5, f"loss did not fall: {first:.3f} -> {last:.3f}"
    assert set(result.val_losses) == {"15", "30"}
    assert all(v < result.losses[0] for v in result.val_losses["30"].values())
    verify_checkpoint(result.checkpoint)
    assert (result.checkpoint / "tokenizer").is_dir()


def test_resume_is_bit_for_bit(tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    straight = _run(tiny_config, corpus, tokenizer_dir, tmp_path / "a")
    half = _run(tiny_config, corpus, tokenizer_dir, tmp_path / "b", stop_after=4)
    assert not half.finished and read_state(half.checkpoint)["step"] == 4
    torch.manual_seed(12345)  # the resumed run must restore the RNG itself
    resumed = train(None, _recipe(), None, None, tmp_path / "b", resume=tmp_path / "b", progress=False)
    assert resumed.finished
    assert resumed.losses == straight.losses  # identical floats, not approximately equal
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    oa = load_file(str(tmp_path / "a" / "training" / "optimizer.safetensors"))
    ob = load_file(str(tmp_path / "b" / "training" / "optimizer.safetensors"))
    for name in oa:
        assert torch.equal(oa[name], ob[name]), name


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-4, rel=0.01)
    lrs = [lr_at(s, cfg) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_batches_depend_only_on_seed_and_step(corpus: Path, tokenizer_dir: Path) -> None:
    from radon.train.data import build_mixture

    tok = load_tokenizer(tokenizer_dir)
    mix = build_mixture(_files(corpus), tok, context=16, seed=3, weights={"code": 3, "ru": 1, "en": 0},
                        max_bytes_per_language=40_000)  # fmt: skip
    assert torch.equal(mix.batch(5, 0, 8), mix.batch(5, 0, 8))
    assert not torch.equal(mix.batch(5, 0, 8), mix.batch(6, 0, 8))
    assert mix.weights == {"ru": 0.25, "en": 0.0, "code": 0.75}
    # packed: every row is a full window of real tokens, and BOS starts each piece of text
    assert mix.batch(0, 0, 8).shape == (8, 16)
    assert (mix.streams["ru"].train == tok.bos_token_id).sum() >= 1
    # the validation tail is never in the training stream
    ru = mix.streams["ru"]
    assert ru.train.size + ru.val.size > ru.train.size > 0


def test_graceful_interrupt_saves_a_resumable_checkpoint(
    tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radon.train.data import Mixture

    batch = Mixture.batch

    def batch_then_ctrl_c(self: Mixture, step: int, micro: int, rows: int) -> torch.Tensor:
        if step == 3:
            signal.raise_signal(signal.SIGINT)  # the handler only sets a flag; the step completes
        return batch(self, step, micro, rows)

    monkeypatch.setattr(Mixture, "batch", batch_then_ctrl_c)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 4 .*--resume") as info:
        _run(tiny_config, corpus, tokenizer_dir, tmp_path / "ckpt")
    assert info.value.exit_code == 130
    verify_checkpoint(tmp_path / "ckpt")
    assert read_state(tmp_path / "ckpt")["step"] == 4
    monkeypatch.setattr(Mixture, "batch", batch)
    resumed = train(None, _recipe(), None, None, tmp_path / "ckpt", resume=tmp_path / "ckpt", progress=False)
    assert resumed.finished and len(resumed.losses) == 8


def test_crash_mid_save_keeps_the_last_good_checkpoint(
    tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import radon.train.state as state_mod

    write = state_mod.write_state
    calls = {"n": 0}

    def write_then_die(root: Path, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second save (step 4): die halfway through writing it
            (root / "training").mkdir(parents=True, exist_ok=True)
            (root / "training" / "optimizer.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt
        write(root, *args, **kwargs)

    monkeypatch.setattr(state_mod, "write_state", write_then_die)
    with pytest.raises(TrainingInterrupted, match=r"Last good checkpoint: .*ckpt \(step 2\)"):
        _run(tiny_config, corpus, tokenizer_dir, tmp_path / "ckpt", recipe=_recipe(save_every=2))
    verify_checkpoint(tmp_path / "ckpt")  # every file matches its recorded sha256
    assert read_state(tmp_path / "ckpt")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left behind


def test_context_over_max_positions_is_refused(
    tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        RadonError, match=r"--context 512 is over the model's max_position_embeddings \(256\)"
    ):
        _run(tiny_config, corpus, tokenizer_dir, tmp_path / "ckpt", recipe=_recipe(context=512))
    assert not (tmp_path / "ckpt").exists()


def test_minutes_fixes_the_step_count_after_timing_a_few_steps(
    tiny_config: Path, corpus: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    from radon.train.loop import CALIBRATION_STEPS

    result = _run(tiny_config, corpus, tokenizer_dir, tmp_path / "ckpt", recipe=_recipe(minutes=0.002))
    assert result.finished and result.total_steps == result.step >= CALIBRATION_STEPS + 1
    state = read_state(tmp_path / "ckpt")
    assert state["train_config"]["steps"] == result.step  # recorded like any other step count
