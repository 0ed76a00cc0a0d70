"""SmolLM2-135M-Instruct through the converter and the exporter (``realmodel``; skips without the registry).

The reference is transformers' ``LlamaForCausalLM`` on the Hugging Face folder that ``radon.realmodel``
writes from the package's GGUF. On real text of 256+ tokens (a paragraph written here, tokenized by
transformers' tokenizer from that folder):

- ``convert --from-hf`` gives transformers' logits within 1e-3 (fp32, same weights; measured 0 on the
  315 tokens here, on a 2-core EPYC: the same kernels in the same order);
- ``convert --from-gguf`` on the GGUF itself gives the ``--from-hf`` checkpoint's logits within 1e-5
  (measured 0: both dequantize with the gguf package, and the q/k permutation is undone exactly), with
  the same tokenizer and chat template, and ``source.json`` naming the file, its sha256 and its types;
- the fp32 ``ort`` export stores the tied embedding once (≤ 1.05 x the parameter bytes; measured 1.004x)
  and passes the exporter's own validation and parity (on this text only, to stay cheap; measured
  max|dlogit| 9.2e-5). The three tests take about a minute on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from radon.cli import main as cli

pytestmark = pytest.mark.realmodel
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

HF_LOGIT_TOL = 1e-3  # fp32 against transformers on 256+ real tokens: reassociation over 30 layers
GGUF_LOGIT_TOL = 1e-5  # the same dequantized weights by two paths: nothing but bit-level noise may differ
SIZE_RATIO = 1.05  # fp32 artifact bytes over parameter bytes: the tied table stored once
TEXT = """\
The lighthouse keeper kept a notebook in which he wrote down every ship that passed, the direction of
the wind, and the colour of the sea at dawn. Over forty years the notebook grew into a shelf of
notebooks, and the shelf into a small library that nobody but the keeper ever read. When the light was
finally automated, a young engineer came to install the new lamp and found the library. She read for
three nights instead of sleeping. The entries were short and plain: a grain ship bound for the north,
fog until noon, a seal on the rocks, the sea grey as slate. Yet together they told the history of the
harbour better than any official record, because they had been written by someone who was there every
single day and who had no reason to make anything look better or worse than it was.

def moving_average(values, window):
    \"\"\"Return the mean of each run of `window` consecutive values.\"\"\"
    if window <= 0:
        raise ValueError("window must be positive")
    total = sum(values[:window])
    out = [total / window]
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        out.append(total / window)
    return out

The engineer asked the harbour office whether the notebooks could be kept, and after some discussion
they were moved to the town museum, where they sit today in a glass case next to the old brass lamp.
"""


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The GGUF, the HF folder, the text's ids and the ``--from-hf`` checkpoint, made once."""
    from transformers import AutoTokenizer

    from radon.realmodel import RealModelUnavailable, fetch, write_hf_folder

    try:
        model = fetch()
        hf_dir = write_hf_folder(model)
    except RealModelUnavailable as exc:
        pytest.skip(str(exc))
    ids = torch.tensor([AutoTokenizer.from_pretrained(hf_dir)(TEXT).input_ids])
    assert ids.shape[1] >= 256, ids.shape
    ckpt = tmp_path_factory.mktemp("smollm2") / "from_hf"
    assert cli(["convert", "--from-hf", str(hf_dir), "--out", str(ckpt)]) == 0
    return SimpleNamespace(gguf=model.gguf, hf_dir=hf_dir, ids=ids, ckpt=ckpt)


def _logits(ckpt: Path, ids: torch.Tensor) -> torch.Tensor:
    from radon import load_model

    with torch.no_grad():
        return load_model(ckpt)(ids).logits


def test_from_hf_matches_transformers(real: SimpleNamespace) -> None:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(real.hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = hf(real.ids).logits
    del hf
    got = _logits(real.ckpt, real.ids)
    diff = (got - ref).abs().max().item()
    assert diff <= HF_LOGIT_TOL, f"max|dlogit| {diff:.3g}"
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean().item() >= 0.99


def test_from_gguf_equals_from_hf(real: SimpleNamespace, tmp_path: Path) -> None:
    from radon.realmodel import SMOLLM2
    from radon.tokenizer import HFTokenizer

    out = tmp_path / "from_gguf"
    assert cli(["convert", "--from-gguf", str(real.gguf), "--out", str(out)]) == 0
    diff = (_logits(out, real.ids) - _logits(real.ckpt, real.ids)).abs().max().item()
    assert diff <= GGUF_LOGIT_TOL, f"max|dlogit| {diff:.3g}"
    source = json.loads((out / "source.json").read_text())
    assert source["sha256"] == SMOLLM2.gguf_sha256 and source["file"] == real.gguf.name
    assert source["quantization"] == {"F32": 61, "Q4_1": 210, "Q8_0": 1}
    assert "source.json" in json.loads((out / "radon_checkpoint.json").read_text())["files"]
    ours, theirs = (
        HFTokenizer.from_pretrained(out / "tokenizer"),
        HFTokenizer.from_pretrained(real.ckpt / "tokenizer"),
    )
    assert ours.chat_template == theirs.chat_template == (real.hf_dir / "chat_template.jinja").read_text()
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (
        real.ckpt / "tokenizer" / "tokenizer.json"
    ).read_bytes()
    assert ours.encode(TEXT) == real.ids[0].tolist()


def test_fp32_export_stores_the_tied_table_once_and_passes_parity(
    real: SimpleNamespace, tmp_path: Path
) -> None:
    from radon.config import ModelConfig
    from radon.export.exporter import export_onnx
    from radon.info import count_parameters

    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    result = export_onnx(real.ckpt, tmp_path / "onnx", attention="ort", texts=[text],
                         parity_options={"max_tokens": 512, "greedy_tokens": 8})  # fmt: skip
    assert result.parity.passed and result.manifest.parity["passed"]
    assert (
        result.manifest.architecture.model_type == "llama"
        and result.manifest.architecture.tie_word_embeddings
    )
    param_bytes = 4 * count_parameters(ModelConfig.from_json(real.ckpt / "config.json")).total
    size = sum(
        (tmp_path / "onnx" / f).stat().st_size
        for f in [result.manifest.model_file, *result.manifest.external_data]
    )
    assert size <= SIZE_RATIO * param_bytes, f"{size:,} bytes for {param_bytes:,} bytes of parameters"


def test_radon_info_on_the_gguf_and_the_folder(real: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    """Both describe SmolLM2 as a LlamaForCausalLM of 134,515,008 parameters and say how to convert it."""
    for target, flag in ((real.gguf, "--from-gguf"), (real.hf_dir, "--from-hf")):
        assert cli(["info", str(target), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (
            report["hf_architecture"] == "LlamaForCausalLM" and report["parameters"]["total"] == 134_515_008
        )
        assert report["convert"] == f"radon convert {flag} {target} --out CKPT"
    assert report["architecture"]["tied_embeddings"] and report["architecture"]["kv_heads"] == 3
