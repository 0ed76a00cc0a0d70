"""Optimization profiles for a decoder engine: one for prefill, one for decode (DESIGN.md contract 8).

TensorRT tunes kernels at a profile's ``opt`` shape, so a single profile cannot be good for both a
long prompt and one-token steps. Shapes come from the manifest's symbolic IO (contract 4):

    prefill: sequence_length T in [1, max_prefill], past_sequence_length P = 0
    decode:  T = 1, P in [1, max_past], where max_past = W - 1 for a sliding-window model (the
             rolling buffer holds at most W - 1 past positions, contract 3) and max_positions - 1
             without a window; total_sequence_length = P + T.

Every dim of every input is (min, opt, max). ``choose_profile`` picks the profile for a feed at run
time, as ``radon parity`` and the runner need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from radon.errors import ConfigError
from radon.runtime.contract import Manifest, TensorSpec

PROFILE_NAMES = ("prefill", "decode")
Range = tuple[int, int, int]  # min, opt, max
ShapeRange = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # min, opt, max shapes


@dataclass(frozen=True)
class ProfileLimits:
    """The user's limits; None fields get defaults from the model (see ``resolve``)."""

    max_batch: int = 1
    opt_batch: int = 1
    max_prefill: int | None = None  # default: min(max_positions, 2048)
    opt_prefill: int | None = None  # default: min(256, max_prefill)
    opt_past: int | None = (
        None  # default: max_past with a window (the buffer is usually full), else min(1024, max_past)
    )

    def resolve(self, spec: Manifest) -> ProfileLimits:
        """Fill the defaults and validate; ConfigError names the flag at fault."""
        max_prefill = self.max_prefill or min(spec.architecture.max_position_embeddings, 2048)
        opt_prefill = self.opt_prefill or min(256, max_prefill)
        past = max_past(spec)
        opt_past = (
            self.opt_past
            if self.opt_past is not None
            else (past if spec.architecture.sliding_window else min(1024, past))
        )
        checks = (
            ("--max-batch", 1 <= self.max_batch, f"must be >= 1, got {self.max_batch}"),
            ("--opt-batch", 1 <= self.opt_batch <= self.max_batch, f"must be in [1, {self.max_batch}], got {self.opt_batch}"),
            ("--max-prefill", 1 <= max_prefill <= spec.architecture.max_position_embeddings,
             f"must be in [1, {spec.architecture.max_position_embeddings}] (max_position_embeddings), got {max_prefill}"),
            ("--opt-prefill", 1 <= opt_prefill <= max_prefill, f"must be in [1, {max_prefill}], got {opt_prefill}"),
            ("--opt-past", min(1, past) <= opt_past <= past, f"must be in [{min(1, past)}, {past}], got {opt_past}"),
        )  # fmt: skip
        for flag, ok, message in checks:
            if not ok:
                raise ConfigError(f"{flag}: {message}")
        return ProfileLimits(self.max_batch, self.opt_batch, max_prefill, opt_prefill, opt_past)


def max_past(spec: Manifest) -> int:
    """The longest past a decode step sees: W - 1 with a window (rolling buffer), else max_positions - 1."""
    if spec.architecture.sliding_window:
        return min(spec.architecture.sliding_window - 1, spec.architecture.max_position_embeddings - 1)
    return spec.architecture.max_position_embeddings - 1


def symbol_ranges(spec: Manifest, limits: ProfileLimits) -> dict[str, dict[str, Range]]:
    """Per profile, the (min, opt, max) of each symbolic dim of contract 4."""
    lim = limits.resolve(spec)
    batch = (1, lim.opt_batch, lim.max_batch)
    assert lim.max_prefill is not None and lim.opt_prefill is not None and lim.opt_past is not None
    prefill_t = (1, lim.opt_prefill, lim.max_prefill)
    past_hi = max_past(spec)
    decode_p = (min(1, past_hi), lim.opt_past, past_hi)
    return {
        "prefill": {"batch_size": batch, "sequence_length": prefill_t, "past_sequence_length": (0, 0, 0),
                    "total_sequence_length": prefill_t},
        "decode": {"batch_size": batch, "sequence_length": (1, 1, 1), "past_sequence_length": decode_p,
                   "total_sequence_length": tuple(p + 1 for p in decode_p)},
    }  # fmt: skip


def _dim(dim: int | str, ranges: Mapping[str, Range], tensor: str) -> Range:
    """Resolve one dim: an int, a known symbol, or a sum such as 'past_sequence_length + 1'."""
    if isinstance(dim, int):
        return (dim, dim, dim)
    total = [0, 0, 0]
    for term in str(dim).replace(" ", "").split("+"):
        if term.isdigit():
            rng: Range = (int(term), int(term), int(term))
        elif term in ranges:
            rng = ranges[term]
        else:
            raise ConfigError(
                f"{tensor}: unknown symbolic dim {term!r}; expected one of {', '.join(sorted(ranges))} or an int"
            )
        total = [a + b for a, b in zip(total, rng)]
    return (total[0], total[1], total[2])


def input_shapes(tensor: TensorSpec, ranges: Mapping[str, Range]) -> ShapeRange:
    """(min, opt, max) shapes of one input under one profile's symbol ranges."""
    dims = [_dim(d, ranges, tensor.name) for d in tensor.shape]
    return tuple(d[0] for d in dims), tuple(d[1] for d in dims), tuple(d[2] for d in dims)


def profile_shapes(spec: Manifest, limits: ProfileLimits | None = None) -> dict[str, dict[str, ShapeRange]]:
    """``{"prefill": {input: (min, opt, max)}, "decode": {...}}`` for every graph input."""
    ranges = symbol_ranges(spec, limits or ProfileLimits())
    return {name: {t.name: input_shapes(t, ranges[name]) for t in spec.inputs} for name in PROFILE_NAMES}


def choose_profile(profiles: Sequence[Mapping[str, ShapeRange]], shapes: Mapping[str, Sequence[int]]) -> int:
    """Index of the first profile whose ranges hold every given input shape; ConfigError if none does."""
    for index, profile in enumerate(profiles):
        if all(
            name in profile and len(shape) == len(profile[name][0])
            and all(lo <= s <= hi for s, lo, hi in zip(shape, profile[name][0], profile[name][2]))
            for name, shape in shapes.items()
        ):  # fmt: skip
            return index
    described = ", ".join(f"{n} {tuple(s)}" for n, s in shapes.items())
    raise ConfigError(
        f"no optimization profile of the engine accepts these shapes: {described}; rebuild with larger limits"
    )


def as_json(profiles: Mapping[str, Mapping[str, ShapeRange]]) -> dict[str, dict[str, list[list[int]]]]:
    """Profiles as the manifest records them: name -> input -> [min, opt, max] lists."""
    return {p: {n: [list(s) for s in rng] for n, rng in shapes.items()} for p, shapes in profiles.items()}


def from_json(data: Mapping[str, Mapping[str, Sequence[Sequence[int]]]]) -> list[dict[str, ShapeRange]]:
    """The manifest's profiles back as a list in PROFILE_NAMES order (the engine's profile indices)."""
    out = []
    for name in PROFILE_NAMES:
        if name in data:
            out.append({n: (tuple(r[0]), tuple(r[1]), tuple(r[2])) for n, r in data[name].items()})
    return out
