"""Run the Triton kernel on a saved plugin node's inputs (a subprocess of test_trt_lowering.py).

TRITON_INTERPRET=1 must be set before triton is imported, so this runs in its own interpreter:
argv = npz path with q, k, v, mask, expected and the node's window; prints {"max_abs_diff": ...}.
"""

import json
import sys

import numpy as np
import torch

from radon.export.kernels import sliding_window_attention

data = np.load(sys.argv[1])
out = sliding_window_attention(
    torch.from_numpy(data["q"]), torch.from_numpy(data["k"]), torch.from_numpy(data["v"]),
    torch.from_numpy(data["mask"]), window=int(data["window"]), scale=float(data["scale"]),
)  # fmt: skip
print(json.dumps({"max_abs_diff": float(np.abs(out.numpy() - data["expected"]).max())}))
