#!/usr/bin/env bash
# The peer-benchmark venv, .bench-venv: optimum-onnx (which needs transformers < 4.58), onnxruntime-genai
# (its runtime; it declares none of onnx-ir, torch, transformers, onnx), torch pinned by constraints.txt,
# and RADON itself. It never touches the main venv (DESIGN.md, "Environments").
#
# genai 0.18's *model builder* does not run here: it imports transformers 5.x classes
# (Qwen3_5ForConditionalGeneration). So the script also makes .venv-genai-build, a throwaway venv on
# top of the main venv (.venv: transformers 5, torch, onnx, onnx-ir) plus onnxruntime-genai; genai's
# models are built there and run here (docs/export.md, "Peers"; docs/runtime.md, "Benchmarks").
# llama.cpp is opt-in: RADON_BENCH_LLAMA_CPP=1 builds llama-cpp-python from source (about 15+ minutes
# on 2 cores) and keeps its convert_hf_to_gguf.py under .bench-venv/share/llama.cpp.
#
#   scripts/make_bench_venv.sh            # create or refresh .bench-venv (and .venv-genai-build)
#   .bench-venv/bin/python -m pytest -m peers tests/export   # optimum and genai run RADON's artifacts
#   radon bench ARTIFACT --compare --threads 2               # the side-by-side benchmark
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

# genai's model builder: transformers 5 from the main venv, genai on top (nothing is installed into .venv)
main_venv=${RADON_MAIN_VENV:-.venv}
builder=${RADON_GENAI_BUILDER_VENV:-.venv-genai-build}
if [ -x "$main_venv/bin/python" ]; then
  [ -x "$builder/bin/python" ] || "$main_venv/bin/python" -m venv "$builder"
  main_site=$("$main_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  builder_site=$("$builder/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$main_site" > "$builder_site/radon_main_venv.pth"
  "$builder/bin/python" -m pip install -q --no-deps "onnxruntime-genai==0.18.0"
  "$builder/bin/python" -c "import onnxruntime_genai, transformers, torch, onnx_ir; print('genai builder venv OK: transformers', transformers.__version__)"
else
  echo "no main venv at $main_venv: skipped $builder (radon bench --compare will report genai as not run)"
fi

# llama.cpp (opt-in): the wheel builds llama.cpp from source; the sdist also carries the GGUF converter
if [ "${RADON_BENCH_LLAMA_CPP:-0}" = "1" ]; then
  "${pip[@]}" "llama-cpp-python==0.3.36"
  src=$(mktemp -d)
  "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==0.3.36" -d "$src"
  tar -xzf "$src"/llama_cpp_python-*.tar.gz -C "$src"
  mkdir -p "$venv/share/llama.cpp"
  cp "$src"/llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py "$venv/share/llama.cpp/"
  # newer llama.cpp splits the converter: convert_hf_to_gguf.py imports its model classes from conversion/
  if [ -d "$src"/llama_cpp_python-*/vendor/llama.cpp/conversion ]; then
    cp -r "$src"/llama_cpp_python-*/vendor/llama.cpp/conversion "$venv/share/llama.cpp/"
  fi
  "${pip[@]}" "$src"/llama_cpp_python-*/vendor/llama.cpp/gguf-py
  rm -rf "$src"
fi

"$venv/bin/python" - <<'PY'
import importlib.metadata as md

for name in ("torch", "transformers", "optimum-onnx", "onnxruntime", "onnxruntime-genai", "onnx"):
    print(f"{name:18} {md.version(name)}")
import optimum.onnxruntime  # noqa: F401
import onnxruntime_genai  # noqa: F401
import radon.export.exporter  # noqa: F401

print("bench venv OK")
PY
