"""One decode step's graph alone, RADON's against onnxruntime-genai's, on the same IO binding.

    python scripts/bench_graph_step.py --radon ART [ART ...] --genai GENAI_DIR --past 200 --rounds 9 [--spinning]

Each graph runs in its own onnxruntime session with the same options (2 intra-op threads, spinning as
asked); past and present are bound to one buffer (RADON's ``shared`` engine, genai's
``past_present_share_buffer``), the logits to a preallocated array, and the step is repeated without
any host work between runs, so the time is the graph's and onnxruntime's only. Rounds interleave the
graphs and rotate their order; the table gives each graph's median and best step time and its ratio
to the last graph named. docs/benchmarks.md ("Edge runtime against peers") used it to show that the
decode gap to genai was never in the graph.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def options(spinning: bool, threads: int) -> ort.SessionOptions:
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = threads, 1, 3
    if not spinning:
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return o


class Step:
    """A session with every input and output bound once; ``run()`` is one decode step at ``past``."""

    def __init__(self, name: str, model: Path, past: int, heads: int, head_dim: int, slots: int, vocab: int,
                 kv_names: list[tuple[str, str]], positions: bool, opts: ort.SessionOptions) -> None:  # fmt: skip
        self.name = name
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self.io = self.session.io_binding()
        self.keep = [
            np.array([[5]], np.int64),
            np.ones((1, past + 1), np.int64),
            np.array([[past]], np.int64),
        ]
        self.io.bind_cpu_input("input_ids", self.keep[0])
        self.io.bind_cpu_input("attention_mask", self.keep[1])
        if positions:
            self.io.bind_cpu_input("position_ids", self.keep[2])
        self.logits = np.zeros((1, 1, vocab), np.float32)
        self.io.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(self.logits))
        rng = np.random.default_rng(0)
        self.buffers = [
            (rng.standard_normal((1, heads, slots, head_dim)) * 0.1).astype(np.float32) for _ in kv_names
        ]
        for (past_name, present_name), buf in zip(kv_names, self.buffers):
            value = ort.OrtValue.ortvalue_from_numpy(buf)
            self.io.bind_ortvalue_input(past_name, value)
            self.io.bind_ortvalue_output(present_name, value)

    def run(self) -> None:
        self.session.run_with_iobinding(self.io)


def radon_step(folder: Path, past: int, opts: ort.SessionOptions) -> Step:
    m = json.loads((folder / "radon_manifest.json").read_text())
    a = m["architecture"]
    kv = [
        (f"past_key_values.{i}.{k}", f"present.{i}.{k}")
        for i in range(a["num_layers"])
        for k in ("key", "value")
    ]
    return Step(f"radon:{folder.name}", folder / m["model_file"], past, a["num_kv_heads"], a["head_dim"],
                a["sliding_window"] or past + 1, a["vocab_size"], kv, True, opts)  # fmt: skip


def genai_step(folder: Path, past: int, opts: ort.SessionOptions) -> Step:
    cfg = json.loads((folder / "genai_config.json").read_text())
    d = cfg["model"]["decoder"]
    kv = [
        (f"past_key_values.{i}.{k}", f"present.{i}.{k}")
        for i in range(d["num_hidden_layers"])
        for k in ("key", "value")
    ]
    slots = cfg["search"]["max_length"] if cfg["search"].get("past_present_share_buffer") else past + 1
    return Step("genai", folder / d["filename"], past, d["num_key_value_heads"], d["head_size"], slots,
                cfg["model"]["vocab_size"], kv, False, opts)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--radon", type=Path, nargs="*", default=[])
    ap.add_argument("--genai", type=Path)
    ap.add_argument("--past", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--spinning", action="store_true")
    args = ap.parse_args()
    opts = options(args.spinning, args.threads)
    steps = [radon_step(f, args.past, opts) for f in args.radon]
    steps += [genai_step(args.genai, args.past, opts)] if args.genai else []
    if not steps:
        ap.error("name at least one graph (--radon ART, --genai DIR)")
    times: dict[str, list[float]] = {s.name: [] for s in steps}
    for s in steps:
        for _ in range(5):
            s.run()
    for r in range(args.rounds):
        for s in steps[r % len(steps) :] + steps[: r % len(steps)]:
            t = time.perf_counter()
            for _ in range(args.steps):
                s.run()
            times[s.name].append((time.perf_counter() - t) / args.steps * 1e3)
    base = statistics.median(times[steps[-1].name])
    print(f"decode step at past {args.past}, {args.threads} threads, spinning {'on' if args.spinning else 'off'}, "
          f"{args.rounds} rounds x {args.steps} steps\n")  # fmt: skip
    print(f"| graph | median ms | best ms | time / {steps[-1].name} |\n|---|---:|---:|---:|")
    for name, ts in times.items():
        print(
            f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {statistics.median(ts) / base:.3f} |"
        )


if __name__ == "__main__":
    main()
