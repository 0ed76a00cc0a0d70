#!/usr/bin/env bash
# The Triton server's own environment, .triton-venv (DESIGN.md, "Environments"; docs/triton.md).
#
# tritonserver's python backend runs each model.py in a stub process whose Python is this venv's:
# `radon triton serve` puts .triton-venv/bin first in PATH and points LD_LIBRARY_PATH at its
# libpython, so the stub imports what is installed here. It needs numpy<2 (with numpy 2 the stub
# corrupts outputs and dies), so it cannot be the main venv. It holds:
#   - nvidia-pytriton (about 55 MB): a real tritonserver 2.51 with the python backend only, and the
#     python_backend stubs for each Python version;
#   - tritonclient[http,grpc] (the tests' and `radon client`'s client; also usable from here);
#   - what the adapters import: numpy<2, onnxruntime, tokenizers, sentencepiece, safetensors, jinja2, and
#     RADON itself without extras (no torch: the adapters use radon.runtime and radon.tokenizer only),
#     editable by default, so the server always runs this checkout's code; RADON_TRITON_EDITABLE=0
#     installs a copy instead (a deployment: re-run the script after changing the code).
# It never touches the main venv.
#
#   scripts/make_triton_env.sh                  # create or refresh .triton-venv
#   RADON_TRITON_VENV=/opt/triton-venv scripts/make_triton_env.sh
#   radon triton serve REPO                     # finds .triton-venv (or $RADON_TRITON_VENV)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RADON_TRITON_VENV:-.triton-venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
# A machine that cannot install the server (no wheel for this platform, no network) is not an error for
# the README's commands: the reason goes to $venv/UNAVAILABLE, the script exits 0, and the demo's Triton
# step and the Triton server tests skip, quoting it (radon.model_repository.server.find_server).
unavailable="$venv/UNAVAILABLE"
rm -f "$unavailable"
log=$(mktemp)
if ! { "${pip[@]}" --upgrade pip && "${pip[@]}" "numpy>=1.24,<2" "nvidia-pytriton==0.7.0" \
    "tritonclient[http,grpc]>=2.40" "onnxruntime>=1.20" "tokenizers>=0.20" "sentencepiece>=0.2" \
    "safetensors>=0.4" "tqdm>=4.66" "jinja2>=3.1.6"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  reason=$(grep -E "ERROR|error" "$log" | tail -n 1)
  echo "nvidia-pytriton could not be installed into $venv: ${reason:-see the pip log above}" | tee "$unavailable"
  echo "the Triton server tests and the demo's Triton step will skip, saying so"
  rm -f "$log"
  exit 0
fi
rm -f "$log"
if [ "${RADON_TRITON_EDITABLE:-1}" = "1" ]; then
  "${pip[@]}" --no-deps -e .
else
  "${pip[@]}" --no-deps --force-reinstall .
fi

"$venv/bin/python" -I - <<'PY'
import importlib.metadata as md
import sys

import numpy

assert numpy.__version__.split(".")[0] == "1", f"numpy {numpy.__version__}: the python backend stub needs numpy<2"
import onnxruntime  # noqa: F401
import radon.runtime  # noqa: F401
import radon.tokenizer  # noqa: F401
import tritonclient.grpc  # noqa: F401

assert "torch" not in sys.modules, "the server env imported torch"
from radon.model_repository.server import find_server

server = find_server(prefer_path=False, venv=sys.prefix)
for name in ("nvidia-pytriton", "tritonclient", "numpy", "onnxruntime", "tokenizers", "radon"):
    print(f"{name:16} {md.version(name)}")
print(f"tritonserver     {server.binary}")
print("triton env OK")
PY
