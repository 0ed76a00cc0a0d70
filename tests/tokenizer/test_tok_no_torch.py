"""The edge runtime's tokenizer path never imports torch (DESIGN.md: the runtime is torch-free)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import radon.runtime  # noqa: F401
import radon.data  # noqa: F401
from radon import load_tokenizer
for folder in sys.argv[1:]:
    tok = load_tokenizer(folder)
    text = "Привет, мир! Hello 😀\\n    return x"
    ids = tok.encode(text, add_bos=True)
    assert tok.decode(ids) == text
    dec = tok.stream_decoder()
    assert "".join(dec.push(i) for i in ids) + dec.flush() == text
    batch, mask = tok.encode_batch([text, "мир"])
    assert batch.shape == mask.shape
assert "torch" not in sys.modules, "the tokenizer path imported torch"
print("NO_TORCH_OK")
"""


def test_runtime_and_tokenizers_import_no_torch(hybrid_dir: Path, bpe_dir: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(hybrid_dir), str(bpe_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "NO_TORCH_OK" in r.stdout


def test_tokenizer_sources_never_import_torch() -> None:
    """No module of radon.tokenizer or radon.data mentions torch in an import, even lazily."""
    root = Path(__file__).resolve().parents[2] / "radon"
    for folder in ("tokenizer", "data"):
        for path in (root / folder).glob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                stripped = line.strip()
                if stripped.startswith(("import ", "from ")):
                    assert "torch" not in stripped, f"{path.name}: {stripped}"
