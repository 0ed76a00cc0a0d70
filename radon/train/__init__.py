"""Training for RADON's reference model: ``radon train`` and the demo model's recipe build on this.

    from radon.train import TrainConfig, train
    result = train(ModelConfig.from_json("demo"), TrainConfig(steps=400), {"ru": [...], "en": [...]},
                   tokenizer, Path("ckpt"))

Files: config.py (the recipe), data.py (language mixture, packing), optim.py (AdamW, warm-up + cosine),
precision.py (device, AMP), state.py (resumable state as safetensors + JSON), loop.py (the loop).
"""

from __future__ import annotations

from radon.train.config import TrainConfig, parse_mixture
from radon.train.loop import TrainingInterrupted, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "parse_mixture", "train"]
