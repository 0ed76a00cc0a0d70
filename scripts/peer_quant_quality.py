"""Quality of a peer's quantized ONNX model (onnxruntime-genai's ``-p int4``) by RADON's own parity code.

genai's decoder graph takes ``input_ids``, ``attention_mask`` and an (empty) past; this runs it with
onnxruntime on the same held-out chunks and greedy prompts that ``radon.export.parity.compare`` uses,
against the RADON checkpoint the peer model was built from (``radon convert --to-hf``, then genai's
builder), and prints KL, top-1, perplexity change and greedy agreement. Greedy recomputes the whole
sequence each token (no cache), which is exact and fine for the small demo model.

    python scripts/peer_quant_quality.py GENAI_DIR --reference CKPT [--precision int4]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--precision", default="int4")
    args = ap.parse_args()
    from radon.checkpoint import load_model
    from radon.export.parity import compare

    r = compare(GenaiGraph(args.model, args.precision), load_model(args.reference),
                tokenizer_dir=args.reference / "tokenizer", reference_name=args.reference.name)  # fmt: skip
    m = r.metrics
    print(f"| {r.candidate} | ppl {m['ppl_change']:+.2%} | KL {m['kl_mean']:.4f} | top-1 {m['top1_agreement']:.3f} | "
          f"greedy {m['greedy_agreement']:.3f} | {args.precision} gate {'pass' if r.passed else 'FAIL: ' + '; '.join(r.failures)} |")  # fmt: skip


if __name__ == "__main__":
    main()
