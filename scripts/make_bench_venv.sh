#!/usr/bin/env bash
# The peer-benchmark venv, .bench-venv: optimum-onnx (which needs transformers < 4.58), onnxruntime-genai
# (its runtime; it declares none of onnx-ir, torch, transformers, onnx), torch pinned by constraints.txt,
# and RADON itself. It never touches the main venv (DESIGN.md, "Environments").
#
# genai 0.18's *model builder* does not run here: it imports transformers 5.x classes
# (Qwen3_5ForConditionalGeneration). Build genai models where transformers 5 is installed, then run
# them in this venv (docs/export.md, "Peers").
#
#   scripts/make_bench_venv.sh            # create or refresh .bench-venv
#   .bench-venv/bin/python -m pytest -m peers tests/export   # optimum and genai run RADON's artifacts
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RADON_BENCH_VENV:-.bench-venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install -q -c constraints.txt)
"${pip[@]}" --upgrade pip
# torch first, from the pin (a local CPU wheel on the project's machines; unpinned it pulls CUDA builds)
"${pip[@]}" "torch==2.13.0"
# peers, with the transformers they need, and what genai's builder imports without declaring
"${pip[@]}" "optimum-onnx[onnxruntime]==0.1.0" "transformers>=4.45,<4.58" "onnxruntime-genai==0.18.0" \
  "onnx>=1.16" "onnx-ir>=0.1" "onnxruntime>=1.20"
# RADON itself (editable, no extras: the extras would ask for a transformers this venv cannot have)
"${pip[@]}" --no-deps -e .
"${pip[@]}" "numpy>=1.24" "safetensors>=0.4" "sentencepiece>=0.2" "tokenizers>=0.20" "tqdm>=4.66" \
  "ml_dtypes>=0.4" "matplotlib>=3.7" "pytest>=8"

"$venv/bin/python" - <<'PY'
import importlib.metadata as md

for name in ("torch", "transformers", "optimum-onnx", "onnxruntime", "onnxruntime-genai", "onnx"):
    print(f"{name:18} {md.version(name)}")
import optimum.onnxruntime  # noqa: F401
import onnxruntime_genai  # noqa: F401
import radon.export.exporter  # noqa: F401

print("bench venv OK")
PY
