"""``radon.train.loop.check_vocab``: a tokenizer's id count against the model config's vocab_size."""

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
