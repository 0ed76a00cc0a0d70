"""Training's input checks: the tokenizer's id count against the config's vocab_size, and out of memory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from radon.config import ModelConfig
from radon.errors import RadonError
from radon.train.loop import check_vocab


@pytest.mark.parametrize(
    "tokenizer_ids, resumed, refused",
    [
        (320, False, False),  # equal: the only fresh run that trains
        (160, False, True),  # fewer ids: rows 160..319 are sampled by generation and decode to nothing
        (640, False, True),  # more ids: the embedding has no row for 320..639
        (160, True, False),  # a checkpoint trained before this check may still be resumed
        (640, True, True),
    ],
)
def test_tokenizer_ids_must_be_the_models_rows(tokenizer_ids: int, resumed: bool, refused: bool) -> None:
    config = ModelConfig.from_json("tiny_mistral")
    assert config.vocab_size == 320
    tokenizer = SimpleNamespace(vocab_size=tokenizer_ids)
    if not refused:
        check_vocab(tokenizer, config, resumed=resumed)  # type: ignore[arg-type]
        return
    with pytest.raises(RadonError) as info:
        check_vocab(tokenizer, config, resumed=resumed)  # type: ignore[arg-type]
    assert f"{tokenizer_ids} ids" in str(info.value) and "vocab_size is 320" in str(info.value)


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
    ],
    ids=["MemoryError", "cpu-allocator"],
)
def test_out_of_memory_names_the_flags(error: BaseException) -> None:
    from radon.train import TrainConfig
    from radon.train.loop import _step_or_explain

    def step(s: int) -> float:
        raise error

    with pytest.raises(RadonError) as info:
        _step_or_explain(step, 4, TrainConfig(batch_size=64, context=128))
    assert "step 5: out of memory with --batch-size 64 x --context 128" in str(info.value)


def test_other_runtime_errors_are_not_disguised() -> None:
    from radon.train import TrainConfig
    from radon.train.loop import _step_or_explain

    def step(s: int) -> float:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        _step_or_explain(step, 0, TrainConfig())
