"""Quality of a peer's quantized model by RADON's own parity code: onnxruntime-genai's ``-p int4`` ONNX
graph, or a llama.cpp GGUF (``.gguf``: Q8_0, Q4_0, ...) through ``llama-cpp-python``.

genai's decoder graph takes ``input_ids``, ``attention_mask`` and an (empty) past; this runs it with
onnxruntime on the same held-out chunks and greedy prompts that ``radon.export.parity.compare`` uses,
against the RADON checkpoint the peer model was built from (``radon convert --to-hf``, then genai's
builder), and prints KL, top-1, perplexity change and greedy agreement. Greedy recomputes the whole
sequence each token (no cache), which is exact and fine for the small demo model.

    python scripts/peer_quant_quality.py GENAI_DIR --reference CKPT [--precision int4]
    .bench-venv/bin/python scripts/peer_quant_quality.py model-q8_0.gguf --reference CKPT --precision int8-dynamic
    .bench-venv/bin/python scripts/peer_quant_quality.py model-q8_0.gguf --serve   # logits over pipes (GgufServer)

The peer models are the ones ``radon bench CKPT-ARTIFACTS --compare`` builds from the same checkpoint
(``~/.cache/radon/bench/<digest>/``): genai's from the ``radon convert --to-hf`` folder, the GGUFs from a
copy of it whose stub ``tokenizer.model`` has one piece per id (``radon.bench.peers.gguf_source``), so a
GGUF's token ids are RADON's; parity feeds ids, never text. ``--precision`` picks the thresholds the
result is held to: ``int8-dynamic`` for Q8_0 (weights per block, activations at run time), ``int4``
for Q4_0 and genai int4.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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


def serve(path: Path) -> None:
    """Answer logits requests for a GGUF over pipes (``GgufServer``): a JSON line ``{"ids": [...]}`` in,
    a line ``T V`` and T x V float32 bytes out. llama.cpp prints to stdout, so the answers get their own
    descriptor and stdout goes to stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    graph = GgufGraph(path, "")
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin:
        logits = np.ascontiguousarray(graph.logits(np.array(json.loads(line)["ids"], np.int64)), np.float32)
        out.write(f"{logits.shape[0]} {logits.shape[1]}\n".encode() + logits.tobytes())
        out.flush()


class GgufServer:
    """A GGUF as a parity candidate in this process, run by llama.cpp in another (``python`` of the peer
    venv, ``serve``): llama_cpp and torch must not share a process (two OpenMP runtimes can segfault),
    and llama.cpp may crash on quantized files (DESIGN.md). A crash raises ``WorkerCrashed``."""

    def __init__(self, path: Path, precision: str, python: str) -> None:
        self.log = Path(tempfile.mkstemp(prefix=f"gguf-{path.stem}-", suffix=".log")[1])
        self._stderr = self.log.open("w")
        env = dict(os.environ, PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen([python, __file__, str(path), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=env)  # fmt: skip
        self.description = f"{path.name} (llama.cpp)"
        self.precision = precision
        self._expect(b"ready\n", "load")

    def _crashed(self, during: str) -> Exception:
        from radon.bench.crash import Crash, WorkerCrashed

        if self.proc.poll() is None:  # it closed its output but lives on
            self.proc.kill()
        code = self.proc.wait()
        self._stderr.close()
        return WorkerCrashed(
            Crash.from_exit(code, self.log.read_text(errors="replace"), during, str(self.log))
        )

    def _expect(self, line: bytes, during: str) -> None:
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != line:
            raise self._crashed(during)

    def logits(self, ids: np.ndarray) -> np.ndarray:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"ids": [int(t) for t in ids]}).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise self._crashed(f"logits of {ids.size} tokens") from None
        head = self.proc.stdout.readline().split()
        if len(head) != 2:
            raise self._crashed(f"logits of {ids.size} tokens")
        t, v = int(head[0]), int(head[1])
        data = self.proc.stdout.read(t * v * 4)
        if len(data) != t * v * 4:
            raise self._crashed(f"logits of {ids.size} tokens")
        return np.frombuffer(data, np.float32).reshape(t, v)

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        seq = ids.copy()
        for _ in range(new_tokens):
            seq = np.append(seq, int(self.logits(seq)[-1].argmax()))
        return seq[ids.size :]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self._stderr.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--reference", type=Path)
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--serve", action="store_true", help="answer logits requests on stdin (GgufServer)")
    args = ap.parse_args()
    if args.serve:
        return serve(args.model)
    if args.reference is None:
        ap.error("--reference is required")
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
