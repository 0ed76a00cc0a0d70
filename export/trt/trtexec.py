"""``trtexec`` command lines equivalent to ``radon export trt``: an alternative build path.

Flags follow trtexec's help in TensorRT 10.x and 11.x (``samples/common/sampleOptions.cpp``):
``--profile=N`` followed by that profile's ``--minShapes/--optShapes/--maxShapes``,
``--timingCacheFile``, ``--saveEngine``, ``--skipInference``; ``--stronglyTyped`` is required on
TensorRT 10 and a deprecated no-op on 11, where every network is strongly typed.

trtexec cannot register a Python (``tensorrt.plugin``) plugin, so it can build only graphs without the
``trt-plugin`` lowering; an engine *built* by ``radon export trt`` with the plugin's AOT kernel runs in
trtexec (``run_command``) with no Python at all.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from radon.errors import RadonError
from radon.export.trt.profiles import PROFILE_NAMES, ShapeRange


def shape_spec(shapes: Mapping[str, Sequence[int]]) -> str:
    """trtexec's shape list: ``name:1x2x3,...`` (contract 4's names hold dots but no colon or comma)."""
    for name in shapes:
        if ":" in name or "," in name:
            raise RadonError(
                f"{name}: a tensor name with ':' or ',' cannot be written in a trtexec shape list"
            )
    return ",".join(f"{name}:{'x'.join(str(d) for d in shape)}" for name, shape in shapes.items())


def build_command(
    onnx_path: str,
    engine_path: str,
    profiles: Mapping[str, Mapping[str, ShapeRange]],
    *,
    timing_cache: str | None = None,
    tensorrt_major: int = 10,
    uses_plugin: bool = False,
    trtexec: str = "trtexec",
) -> list[str]:
    """The argv that builds the engine with trtexec: strongly typed, prefill and decode profiles.

    Raises RadonError for a ``trt-plugin`` graph (trtexec cannot load a Python plugin).
    """
    if uses_plugin:
        raise RadonError(
            "trtexec cannot build a graph with the radon::SlidingWindowAttention Python plugin; "
            "build it with `radon export trt`, or export with --attention portable for trtexec"
        )
    argv = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    if tensorrt_major < 11:
        argv.append("--stronglyTyped")
    for index, name in enumerate(n for n in PROFILE_NAMES if n in profiles):
        shapes = profiles[name]
        argv += [
            f"--profile={index}",
            "--minShapes=" + shape_spec({n: s[0] for n, s in shapes.items()}),
            "--optShapes=" + shape_spec({n: s[1] for n, s in shapes.items()}),
            "--maxShapes=" + shape_spec({n: s[2] for n, s in shapes.items()}),
        ]
    if timing_cache:
        argv.append(f"--timingCacheFile={timing_cache}")
    argv.append("--skipInference")
    return argv


def run_command(
    engine_path: str,
    shapes: Mapping[str, Sequence[int]],
    *,
    profile: int = 0,
    trtexec: str = "trtexec",
) -> list[str]:
    """The argv that loads an engine and times it at ``shapes`` under optimization profile ``profile``."""
    return [
        trtexec,
        f"--loadEngine={engine_path}",
        f"--useProfile={profile}",
        "--shapes=" + shape_spec(shapes),
    ]


def format_command(argv: Sequence[str]) -> str:
    """A shell-quoted command line, one flag per line for reading."""
    return " \\\n    ".join(shlex.quote(a) for a in argv)
