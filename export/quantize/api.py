"""``radon calibrate`` as a library call: an fp32 artifact's activation ranges written to a folder."""

from __future__ import annotations

import logging
from pathlib import Path

from radon.errors import RadonError
from radon.export.quantize.calibrate import DEFAULT_METHOD, Calibration, run_calibration
from radon.export.quantize.calibration_data import DEFAULT_SAMPLES, DEFAULT_SEQ_LEN, load_calibration_set
from radon.export.quantize.int8 import DEFAULT_SMOOTH_ALPHA
from radon.export.quantize.reader import PATHS
from radon.export.quantize.trt_cache import DEFAULT_TRT_VERSION
from radon.integrity import atomic_directory

log = logging.getLogger(__name__)


def calibrate_artifact(
    artifact: str | Path,
    out: str | Path,
    *,
    calibration_data: list[Path] | None = None,
    samples: int = DEFAULT_SAMPLES,
    seq_len: int = DEFAULT_SEQ_LEN,
    method: str = DEFAULT_METHOD,
    smooth_alpha: float = DEFAULT_SMOOTH_ALPHA,
    paths: tuple[str, ...] = PATHS,
    threads: int | None = None,
    trt_version: str = DEFAULT_TRT_VERSION,
    force: bool = False,
) -> Calibration:
    """Calibrate the fp32 artifact ``artifact`` on training text; ``out`` gets the table, the TensorRT
    cache and the metadata (``calibrate.py``), with ``smooth_alpha`` > 0 SmoothQuant's factors too
    (``smooth.py``). ``radon quantize --calibration out`` reuses the table and the smoothing."""
    from radon.export.parity_data import load_tokenizer
    from radon.export.quantize.graph import units_of
    from radon.export.quantize.int8 import float_by_recipe, unsmoothed
    from radon.export.quantize.pipeline import _quiet_ort_logging, check_source
    from radon.export.quantize.smooth import check_alpha
    from radon.export.quantize.stream import Source
    from radon.runtime.contract import read_manifest
    from radon.runtime.session import DecoderSession

    _quiet_ort_logging()
    check_alpha(smooth_alpha)
    artifact, out = Path(artifact), Path(out)
    if out.exists() and not force:
        raise RadonError(f"{out}: already exists (use --force to replace it)")
    manifest = read_manifest(artifact)
    src = Source(artifact / manifest.model_file)  # the graph; weights read from the file when needed
    check_source(artifact, manifest, src.model)
    src.untie_lm_head()  # as radon quantize sees it, so the head's input is calibrated as a MatMul's
    units = units_of(src.model)
    tok = artifact / "tokenizer"
    cal_set = load_calibration_set(calibration_data, load_tokenizer(tok if tok.is_dir() else None), samples=samples,
                                   seq_len=seq_len, vocab_size=manifest.architecture.vocab_size)  # fmt: skip

    def open_session() -> DecoderSession:  # for the feeds; closed before the calibrator runs
        return DecoderSession(artifact, manifest=manifest, threads=threads, prepacking=False)

    source = {"artifact": artifact.name, "model_sha256": manifest.files[manifest.model_file]}
    with atomic_directory(out, overwrite=force) as tmp:
        calib = run_calibration(open_session, src, cal_set, tmp, method=method, paths=paths, threads=threads,
                                trt_version=trt_version, source=source, smooth_alpha=smooth_alpha, units=units,
                                keep=unsmoothed(float_by_recipe(units, [])))  # fmt: skip
    calib.folder = out
    return calib
