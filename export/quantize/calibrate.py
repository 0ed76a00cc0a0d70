"""``radon calibrate``: activation ranges of an fp32 artifact on real text, for static INT8.

Runs onnxruntime's own calibrators (``onnxruntime.quantization.create_calibrator``: MinMax, Entropy,
Percentile, as in its "Quantize ONNX models" guide) over the feeds of ``reader.py`` (prefill and
one-token decode with a past), and writes three files:

    calibration.json        onnxruntime's calibration table (``save_tensors_data``): what
                            ``quantize_static(calibration_cache_path=...)`` reads instead of calibrating again
    calibration.cache       the same ranges as a TensorRT calibration cache (``trt_cache.py``)
    calibration_meta.json   the text (file hashes, token-id sha256), method, feeds per path, source model
    smoothing.npz           with ``smooth_alpha``: SmoothQuant's factors (``smooth.py``), applied to the
                            graph before its ranges are measured, and again by ``radon quantize``

``radon calibrate`` calibrates every float activation (not only the MatMul inputs the ONNX quantizer
needs), so the TensorRT cache covers the whole network; ``radon quantize --precision int8`` calibrates
only the inputs of the Linear MatMuls (``linear_inputs_only``), the ranges its Q/DQ pairs read: about a
sixth of the tensors, and the activations of a step that the calibrator holds at once with them. Ranges are symmetric (TensorRT's INT8 is symmetric, and the
Q/DQ artifact uses symmetric activations so that one graph serves onnxruntime and TensorRT).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from radon.errors import RadonError
from radon.export.quantize.calibration_data import CalibrationSet
from radon.export.quantize.graph import Unit, annotate_types
from radon.export.quantize.reader import (
    PATHS,
    DecoderCalibrationReader,
    build_feeds,
    statistics_session_options,
)
from radon.export.quantize.smooth import SMOOTHING_FILE, Smoothing, plan_smoothing, smoothed_source
from radon.export.quantize.trt_cache import DEFAULT_TRT_VERSION, write_trt_cache
from radon.integrity import read_json, write_json

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")
# Entropy (KL-optimal histogram clipping, TensorRT's EntropyCalibration2) is the default: on both demo
# models it gave the best top-1 of static INT8 (0.951 / 0.939 against MinMax's 0.943 / 0.929).
DEFAULT_METHOD = "entropy"
MASK_LIMIT = 1e30  # |x| beyond this is a masking constant, not an activation: not calibrated, not cached
CALIBRATION_TABLE = "calibration.json"
TRT_CACHE = "calibration.cache"
CALIBRATION_META = "calibration_meta.json"
TYPED_MODEL = "model_typed.onnx"
EXTERNAL_DATA_BYTES = 1 << 30
# The histogram methods hold every activation of a calibration step at once (all are outputs); with
# OUTPUT_GROUPS > 1 the feeds run once per group of outputs instead. 2 groups did not lower SmolLM2's
# measured peak (docs/quantization.md, "Static INT8 on real models"), so the default is one pass. The mask probe runs on a short prefill.
OUTPUT_GROUPS = 1
PROBE_TOKENS = 16


def ort_method(method: str) -> Any:
    """onnxruntime's ``CalibrationMethod`` for ``minmax`` | ``entropy`` | ``percentile``."""
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}  # fmt: skip
    if method not in table:
        raise RadonError(f"--method: must be one of {', '.join(METHODS)}, got {method!r}")
    return table[method]


def save_typed_model(model: onnx.ModelProto, folder: Path, name: str = TYPED_MODEL) -> Path:
    """Write ``annotate_types(model)`` for onnxruntime's quantization tools, which read models by path."""
    typed = annotate_types(model)
    path = folder / name
    big = typed.ByteSize() > EXTERNAL_DATA_BYTES
    onnx.save_model(typed, str(path), save_as_external_data=big, all_tensors_to_one_file=True,
                    location=name + ".data" if big else None)  # fmt: skip
    return path


@dataclass
class Calibration:
    """Where the calibration went and what it recorded."""

    folder: Path
    method: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> Path:
        return self.folder / CALIBRATION_TABLE

    @property
    def trt_cache(self) -> Path:
        return self.folder / TRT_CACHE

    @property
    def smoothing(self) -> Smoothing | None:
        """The SmoothQuant factors the ranges were measured with (None: the graph as exported)."""
        path = self.folder / SMOOTHING_FILE
        return Smoothing.load(path) if path.is_file() else None

    @classmethod
    def load(cls, folder: str | Path) -> Calibration:
        """A folder written by ``radon calibrate``; a missing file is an error naming it."""
        folder = Path(folder)
        for name in (CALIBRATION_TABLE, CALIBRATION_META):
            if not (folder / name).is_file():
                raise RadonError(f"--calibration: {folder} has no {name} (write it with radon calibrate)")
        meta = read_json(folder / CALIBRATION_META, "calibration metadata")
        return cls(folder, meta["method"], meta)


def amax_of(table: Any) -> dict[str, float]:
    """tensor -> max(|lowest|, |highest|) from onnxruntime's ``TensorsData``."""
    out = {}
    for name, data in table.items():
        lo, hi = data.range_value
        out[name] = float(
            max(np.abs(np.asarray(lo, np.float64)).max(), np.abs(np.asarray(hi, np.float64)).max())
        )
    return out


def _is_mask(values: np.ndarray) -> bool:
    """Whether a tensor holds masking values (beyond ``MASK_LIMIT`` or not finite) rather than activations."""
    if not np.issubdtype(values.dtype, np.floating):
        return False
    return bool(not np.isfinite(values).all() or np.abs(values).max() > MASK_LIMIT)


def calibrate_model(
    typed_model: Path,
    reader: DecoderCalibrationReader,
    method: str,
    work: Path,
    threads: int | None = None,
    only: set[str] | None = None,
) -> Any:
    """onnxruntime's calibrator on every float activation of ``typed_model`` (or on the tensors ``only``);
    returns its ``TensorsData``."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import create_calibrator

    # MinMax adds ReduceMin/ReduceMax outputs, so it holds scalars per run, not activations. Its
    # ``max_intermediate_outputs`` is not used: onnxruntime 1.32 drops the ranges it clears.
    extra: dict[str, Any] = {"symmetric": True}
    with _weights_left_on_disk(), _calibrating_only(only):
        calibrator = create_calibrator(
            typed_model, None, augmented_model_path=str(work / "augmented.onnx"), calibrate_method=ort_method(method),
            use_external_data_format=typed_model.with_name(typed_model.name + ".data").exists(), extra_options=extra,
        )  # fmt: skip
    opts = statistics_session_options(threads)  # the calibrator's own settings, one copy of the weights
    # every activation is an output here: without the arena each is freed once handed over, instead of
    # the arena keeping its high-water mark (and the growth steps above it)
    opts.enable_cpu_mem_arena = False
    calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, opts,
                                                    providers=["CPUExecutionProvider"])  # fmt: skip
    excluded: list[str] = []
    sizes: dict[str, int] = {}
    if getattr(calibrator, "tensors_to_calibrate", None):
        # masking constants (the float32 lowest that a banded mask adds) are not activations, and their
        # range overflows a histogram: find them on the first feed (a prefill) and leave them out
        # (cut to PROBE_TOKENS: every activation of the step is held at once here)
        names = [o.name for o in calibrator.infer_session.get_outputs()]
        first = calibrator.infer_session.run(None, _short(reader.feeds[0]))
        excluded = sorted(
            n for n, v in zip(names, first) if v.size and _is_mask(v) and n in calibrator.tensors_to_calibrate
        )
        sizes = {n: v.nbytes for n, v in zip(names, first)}
        del first  # onnxruntime's output buffers: held, they would pin the session's arena
        calibrator.tensors_to_calibrate = set(calibrator.tensors_to_calibrate) - set(excluded)
        if excluded:
            log.info("calibration: %d masking tensors left out (%s)", len(excluded), ", ".join(excluded[:4]))
        # graph inputs (the past key/values) are empty on prefill feeds, which the percentile collector
        # cannot reduce; they are the previous step's presents, calibrated as outputs anyway
        inputs = {i.name for i in onnx.load(str(typed_model), load_external_data=False).graph.input}
        calibrator.tensors_to_calibrate = set(calibrator.tensors_to_calibrate) - inputs
    with contextlib.redirect_stdout(io.StringIO()) as said:  # the histogram calibrators print progress
        _collect(calibrator, reader, method, sizes)
        table = calibrator.compute_data()
    if said.getvalue().strip():
        lines = dict.fromkeys(said.getvalue().strip().splitlines())  # each collect_data call says the same
        log.info("onnxruntime calibrator: %s", "; ".join(lines))
    del calibrator
    return table


@contextlib.contextmanager
def _weights_left_on_disk() -> Iterator[None]:
    """onnxruntime's ``create_calibrator`` without reading the weights into Python or opening its own session.

    The calibrator loads the model with ``onnx.load`` (external data read into memory), adds outputs,
    saves the augmented model and opens a session with weight prepacking: three copies of the weights.
    The model it is given keeps its weights as external data beside it (``stream.Source.write``), so
    loading the graph without them is enough: the augmented model is saved with the same references,
    and ``calibrate_model`` opens the one session, which maps the data file. The two names patched are
    onnxruntime 1.32's (``calibrate.load_model_with_shape_infer``, ``CalibraterBase.create_inference_session``);
    where they are missing, the calibrator runs as it is.
    """
    from onnxruntime.quantization import calibrate as ort_calibrate
    from onnxruntime.quantization.quant_utils import add_infer_metadata

    base = getattr(ort_calibrate, "CalibraterBase", None)
    if not hasattr(ort_calibrate, "load_model_with_shape_infer") or not hasattr(
        base, "create_inference_session"
    ):
        yield
        return

    def load_graph(model_path: Path) -> onnx.ModelProto:
        inferred = model_path.with_name(model_path.stem + "-inferred.onnx")
        onnx.shape_inference.infer_shapes_path(str(model_path), str(inferred))
        model = onnx.load(str(inferred), load_external_data=False)
        add_infer_metadata(model)
        inferred.unlink()
        return model

    saved_load, saved_session = ort_calibrate.load_model_with_shape_infer, base.create_inference_session
    ort_calibrate.load_model_with_shape_infer = load_graph
    base.create_inference_session = lambda self: None
    try:
        yield
    finally:
        ort_calibrate.load_model_with_shape_infer = saved_load
        base.create_inference_session = saved_session


def linear_inputs(typed_model: Path) -> set[str]:
    """The activations that the Linear MatMuls of ``typed_model`` read (input 0 where input 1 is a weight):
    the tensors whose ranges the static quantizer's Q/DQ pairs use (``int8.static_options``: none on
    the outputs)."""
    graph = onnx.load(str(typed_model), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return {
        n.input[0]
        for n in graph.node
        if n.op_type == "MatMul" and len(n.input) == 2 and n.input[1] in weights
    }


@contextlib.contextmanager
def _calibrating_only(only: set[str] | None) -> Iterator[None]:
    """onnxruntime's calibrator choosing among ``only`` the tensors it would calibrate (``None``: all).

    Patched where the graph is augmented (``CalibraterBase.select_tensors_to_calibrate``, onnxruntime
    1.32): the augmented graph then outputs those tensors alone. Where the name is missing, every
    tensor is calibrated, as before.
    """
    from onnxruntime.quantization import calibrate as ort_calibrate

    base = getattr(ort_calibrate, "CalibraterBase", None)
    if only is None or not hasattr(base, "select_tensors_to_calibrate"):
        yield
        return
    saved = base.select_tensors_to_calibrate

    def select(self: Any, model: onnx.ModelProto) -> Any:
        tensors, value_infos = saved(self, model)
        return {t for t in tensors if t in only}, value_infos

    base.select_tensors_to_calibrate = select
    try:
        yield
    finally:
        base.select_tensors_to_calibrate = saved


def _collect(calibrator: Any, reader: DecoderCalibrationReader, method: str, sizes: dict[str, int]) -> None:
    if method == "minmax":
        calibrator.collect_data(reader)
        return
    # the histogram collectors stack each tensor's values over the runs of one call, which fails when
    # prefill and decode feeds give different shapes: hand them one feed per call (histograms merge).
    # Every activation of a step is an output, held at once: in OUTPUT_GROUPS groups of outputs, each
    # over every feed, a step holds a fraction of them (the same histograms, one more forward pass each)
    session = calibrator.infer_session
    try:
        for group in _output_groups(session, calibrator.tensors_to_calibrate, sizes, OUTPUT_GROUPS):
            calibrator.infer_session = _SomeOutputs(session, group)
            for i in range(len(reader)):
                reader.set_range(i, i + 1)
                calibrator.collect_data(reader)
    finally:
        calibrator.infer_session = session
        reader.set_range(0, len(reader))


def _short(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A prefill feed (empty past) cut to its first ``PROBE_TOKENS`` positions; any other feed as it is."""
    t = feed["input_ids"].shape[1]
    if t <= PROBE_TOKENS or feed.get("attention_mask", np.empty((1, 0))).shape[1] != t:
        return feed
    cut = ("input_ids", "attention_mask", "position_ids")
    return {k: (v[:, :PROBE_TOKENS] if k in cut else v) for k, v in feed.items()}


def _output_groups(session: Any, wanted: Any, sizes: dict[str, int], count: int) -> list[set[str]]:
    """The calibrated outputs in graph order, cut into ``count`` runs of about equal bytes per step."""
    names = [o.name for o in session.get_outputs() if o.name in wanted]
    total = sum(sizes.get(n, 0) for n in names) or 1
    groups: list[set[str]] = [set() for _ in range(count)]
    seen = 0
    for n in names:
        groups[min(count - 1, seen * count // total)].add(n)
        seen += sizes.get(n, 0)
    return [g for g in groups if g]


class _SomeOutputs:
    """The calibrator's session, seen as if its graph had only the outputs ``names`` (onnxruntime runs
    the whole graph and frees every other activation as soon as it is read)."""

    def __init__(self, session: Any, names: set[str]) -> None:
        self.session = session
        self.outputs = [o for o in session.get_outputs() if o.name in names]

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.outputs

    def run(self, output_names: Any, feed: Any, *args: Any) -> Any:
        return self.session.run(output_names or [o.name for o in self.outputs], feed, *args)


def run_calibration(
    session: Any,
    model: onnx.ModelProto | Any,
    cal_set: CalibrationSet,
    out: Path,
    *,
    method: str = DEFAULT_METHOD,
    paths: tuple[str, ...] = PATHS,
    threads: int | None = None,
    trt_version: str = DEFAULT_TRT_VERSION,
    source: dict[str, Any] | None = None,
    smooth_alpha: float = 0.0,
    units: list[Unit] | None = None,
    keep: list[str] | None = None,
    linear_inputs_only: bool = False,
) -> Calibration:
    """Calibrate ``model`` into ``out``: the artifact's fp32 graph, or its ``stream.Source`` (weights on disk).

    ``session``: a DecoderSession on the artifact, or a function that opens one; the feeds are built with
    it, and a session opened here is closed before the calibrator opens its own. ``smooth_alpha`` > 0
    (a ``stream.Source`` only): SmoothQuant the MatMul ``units`` not in ``keep`` on the same feeds first
    (``smooth.py``), calibrate the smoothed graph, and save the factors beside the table.
    ``linear_inputs_only``: calibrate the Linear MatMuls' inputs alone (``linear_inputs``), what
    ``radon quantize`` reads; the TensorRT cache then covers those tensors only.
    """
    from onnxruntime.quantization.calibrate import save_tensors_data

    ort_method(method)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="radon-calib-") as tmp:
        spill = Path(tmp) / "feeds"  # the feeds wait on disk (reader.DiskFeeds) while the calibrator runs
        if callable(session) and not hasattr(session, "step"):
            opened = session()
            feeds = build_feeds(opened, cal_set.samples, paths, folder=spill)
            del opened
            from radon.runtime.memory import trim_heap

            trim_heap()
        else:
            feeds = build_feeds(session, cal_set.samples, paths, folder=spill)
        reader = DecoderCalibrationReader(feeds)
        smoothing = None
        if smooth_alpha:
            if isinstance(model, onnx.ModelProto) or units is None:
                raise RadonError("smoothing needs the artifact's graph as a stream.Source and its units")
            smoothing = plan_smoothing(model, units, keep or [], feeds, smooth_alpha, Path(tmp), threads)
            model = smoothed_source(model, smoothing)
        if isinstance(model, onnx.ModelProto):
            typed = save_typed_model(model, Path(tmp))
        else:  # a stream.Source: the typed graph, its weights streamed to external data beside it
            typed = model.write(Path(tmp), TYPED_MODEL, annotate_types(model.model))
        only = linear_inputs(typed) if linear_inputs_only else None
        table = calibrate_model(typed, reader, method, Path(tmp), threads, only)
        feed_paths = reader.paths()  # while the feeds are on disk
    save_tensors_data(table, out / CALIBRATION_TABLE)
    if smoothing is not None:
        smoothing.save(out / SMOOTHING_FILE)
    amax = {k: v for k, v in amax_of(table).items() if v <= MASK_LIMIT}
    write_trt_cache(out / TRT_CACHE, amax, trt_version)
    meta = {
        "method": method, "paths": feed_paths, "symmetric": True, "tensors": len(amax),
        "data": cal_set.to_dict(), "source": source or {}, "trt_cache": {"file": TRT_CACHE, "version": trt_version},
        "seconds": round(time.perf_counter() - start, 2),
        "smoothing": smoothing.summary() if smoothing is not None else None,
        "calibrated": "the Linear MatMuls' inputs" if linear_inputs_only else "every float activation",
    }  # fmt: skip
    write_json(out / CALIBRATION_META, meta)
    log.info("calibrated %d tensors (%s) in %.1f s", len(amax), method, meta["seconds"])
    return Calibration(out, method, meta)
