#!/usr/bin/env bash
# The edge runtime must install and import without torch: a fresh venv, a non-editable install of the
# core package plus the `runtime` extra, then `import radon.runtime` and the tokenizer with torch absent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RADON_RUNTIME_VENV:-/tmp/radon-runtime-venv}
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q ".[runtime]"
if "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "torch is installed in the runtime venv: the core install pulled it in"; exit 1
fi
# -I: isolated, so the repository's radon/ (cwd) does not shadow the installed package, whose radon.runtime
# comes from runtime/ (pyproject package-dir)
"$venv/bin/python" -I - <<'PY'
import sys
import radon.runtime  # noqa: F401
import radon.tokenizer  # noqa: F401
from radon.cli import main
assert main(["info", "small"]) == 0
assert "torch" not in sys.modules, "radon.runtime imported torch"
print("runtime venv OK: radon.runtime and radon.tokenizer import without torch")
PY
"$venv/bin/radon" --help > /dev/null
