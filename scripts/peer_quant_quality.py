"""Quality of a peer's quantized model by RADON's own parity code: onnxruntime-genai's ``-p int4`` ONNX
graph, or a llama.cpp GGUF (``.gguf``: Q8_0, Q4_0, ...) through ``llama-cpp-python``.

genai's decoder graph takes ``input_ids``, ``attention_mask`` and an (empty) past; this runs it with
onnxruntime on the same held-out chunks and greedy prompts that ``radon.export.parity.compare`` uses,
against the RADON checkpoint the peer model was built from (``radon convert --to-hf``, then genai's
builder), and prints KL, top-1, perplexity change and greedy agreement. Greedy recomputes the whole
sequence each token (no cache), which is exact and fine for the small demo model.

    python scripts/peer_quant_quality.py GENAI_DIR --reference CKPT [--precision int4]
    .bench-venv/bin/python scripts/peer_quant_quality.py model-q8_0.gguf --reference CKPT --precision int8-dynamic

The peer models are the ones ``radon bench CKPT-ARTIFACTS --compare`` builds from the same checkpoint
(``~/.cache/radon/bench/<digest>/``): genai's from the ``radon convert --to-hf`` folder, the GGUFs from a
copy of it whose stub ``tokenizer.model`` has one piece per id (``bench_peers.gguf_source``), so a
GGUF's token ids are RADON's; parity feeds ids, never text. ``--precision`` picks the thresholds the
result is held to: ``int8-dynamic`` for Q8_0 (weights per block, activations at run time), ``int4``
for Q4_0 and genai int4.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


class GenaiGraph:
    """A genai decoder graph as a parity candidate (full-sequence logits, greedy by recomputation)."""

    def __init__(self, folder: Path, precision: str) -> None:
        import onnxruntime as ort

        cfg = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]
        self.layers, self.kv, self.hd = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_size"]
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(folder / cfg["filename"]), opts, providers=["CPUExecutionProvider"]
        )
        self.names = {i.name for i in self.session.get_inputs()}
        self.description = f"{folder.name} (onnxruntime-genai graph)"
        self.precision = precision

    def logits(self, ids: np.ndarray) -> np.ndarray:
        t = ids.size
        feed = {"input_ids": ids[None].astype(np.int64), "attention_mask": np.ones((1, t), np.int64)}
        if "position_ids" in self.names:
            feed["position_ids"] = np.arange(t, dtype=np.int64)[None]
        for i in range(self.layers):
            for kv in ("key", "value"):
                feed[f"past_key_values.{i}.{kv}"] = np.zeros((1, self.kv, 0, self.hd), np.float32)
        return self.session.run(["logits"], feed)[0][0]

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        seq = ids.copy()
        for _ in range(new_tokens):
            seq = np.append(seq, int(self.logits(seq)[-1].argmax()))
        return seq[ids.size :]


class GgufGraph:
    """A llama.cpp GGUF as a parity candidate: every position's logits (``logits_all``), greedy by recomputation."""

    def __init__(self, path: Path, precision: str) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(path), n_ctx=1024, n_batch=1024, logits_all=True, n_threads=2, verbose=False
        )
        self.description = f"{path.name} (llama.cpp)"
        self.precision = precision

    def logits(self, ids: np.ndarray) -> np.ndarray:
        self.llm.reset()
        self.llm.eval([int(t) for t in ids])
        return np.array(self.llm.scores[: ids.size], dtype=np.float32)

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        seq = ids.copy()
        for _ in range(new_tokens):
            seq = np.append(seq, int(self.logits(seq)[-1].argmax()))
        return seq[ids.size :]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--precision", default="int4")
    args = ap.parse_args()
    from radon.checkpoint import load_model
    from radon.export.parity import compare

    graph = (GgufGraph if args.model.suffix == ".gguf" else GenaiGraph)(args.model, args.precision)
    r = compare(graph, load_model(args.reference),
                tokenizer_dir=args.reference / "tokenizer", reference_name=args.reference.name)  # fmt: skip
    m = r.metrics
    print(f"| {r.candidate} | ppl {m['ppl_change']:+.2%} | KL {m['kl_mean']:.2e} | top-1 {m['top1_agreement']:.3f} | "
          f"greedy {m['greedy_agreement']:.3f} | {args.precision} gate {'pass' if r.passed else 'FAIL: ' + '; '.join(r.failures)} |")  # fmt: skip


if __name__ == "__main__":
    main()
