"""Fixed-point conversion: the one set of number rules of the project (docs/SPEC.md, Numbers).

Every tensor that reaches the hardware is a signed ``data_width``-bit integer
tensor with one power-of-two scale: ``real = integer * 2**-frac_bits``. The
golden model, the capture of real tensors and the host driver all convert with
the functions below, so the RTL and its reference see the same integers.

Rounding is round-half-to-even (the IEEE default, what ``torch.round`` and
``numpy.round`` do), both for floats and for the integer right shifts of
:func:`requantize`. Out-of-range values saturate to the nearest representable
integer and are counted, never wrapped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "FixedPointFormat",
    "Quantized",
    "choose_frac_bits",
    "quantize",
    "to_fixed",
    "from_fixed",
    "requantize",
    "saturate",
    "int_range",
]

# frac_bits outside this range would need scales that float64 cannot hold
# exactly next to 16-bit mantissas; no real tensor needs them.
_FRAC_BITS_LIMIT = 60
# Operands are at most 32 bits wide (the hardware config enforces the same).
_DATA_WIDTH_LIMIT = 32


def _check_width(name, width, low=2, high=64):
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"{name} must be an int, not {width!r}")
    if not low <= width <= high:
        raise ValueError(f"{name} must be in {low}..{high}, not {width!r}")


def _check_frac_bits(frac_bits):
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, int):
        raise TypeError(f"frac_bits must be an int, not {frac_bits!r}")
    if not -_FRAC_BITS_LIMIT <= frac_bits <= _FRAC_BITS_LIMIT:
        raise ValueError(
            f"frac_bits must be in {-_FRAC_BITS_LIMIT}..{_FRAC_BITS_LIMIT}, not {frac_bits!r}")


def int_range(width):
    """Smallest and largest value of a signed ``width``-bit integer."""
    _check_width("width", width)
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


@dataclass(frozen=True)
class FixedPointFormat:
    """Signed fixed-point format: ``data_width`` bits, value ``= int * 2**-frac_bits``."""

    data_width: int = 16
    frac_bits: int = 0

    def __post_init__(self):
        _check_width("data_width", self.data_width, high=_DATA_WIDTH_LIMIT)
        _check_frac_bits(self.frac_bits)

    @property
    def min_int(self):
        return int_range(self.data_width)[0]

    @property
    def max_int(self):
        return int_range(self.data_width)[1]

    @property
    def scale(self):
        """Real value of one least significant bit."""
        return math.ldexp(1.0, -self.frac_bits)


@dataclass(frozen=True)
class Quantized:
    """An integer tensor with its format and the number of values that saturated."""

    values: torch.Tensor
    format: FixedPointFormat
    saturated: int

    def to_float(self):
        return from_fixed(self.values, self.format.frac_bits)


def _as_float_tensor(t, name):
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, not {type(t).__name__}")
    if t.dtype == torch.bool:
        t = t.to(torch.float64)
    if t.is_complex():
        raise TypeError(f"{name} must be real, not {t.dtype}")
    t = t.detach().to(torch.float64)
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or infinity)")
    return t


def choose_frac_bits(t, data_width=16):
    """Largest ``frac_bits`` at which the largest magnitude of ``t`` still fits.

    The scale is chosen from ``max|t|`` so that no value saturates after
    rounding; an all-zero tensor gets ``data_width - 1`` (any scale would do).
    """
    _check_width("data_width", data_width, high=_DATA_WIDTH_LIMIT)
    t = _as_float_tensor(t, "t")
    peak = float(t.abs().max()) if t.numel() else 0.0
    if peak == 0.0:
        return data_width - 1
    max_int = (1 << (data_width - 1)) - 1
    # floor(log2(max_int / peak)) may be off by one in floating point: adjust
    # so that round(peak * 2**frac) <= max_int holds exactly.
    frac = math.floor(math.log2(max_int / peak))
    while frac > -_FRAC_BITS_LIMIT and round(math.ldexp(peak, frac)) > max_int:
        frac -= 1
    while frac < _FRAC_BITS_LIMIT and round(math.ldexp(peak, frac + 1)) <= max_int:
        frac += 1
    return max(-_FRAC_BITS_LIMIT, min(_FRAC_BITS_LIMIT, frac))


def saturate(values, width):
    """Clip integers to the signed ``width``-bit range.

    Returns ``(clipped, count)`` where ``count`` is how many values were out
    of range. Works on torch tensors and numpy arrays and keeps the kind.
    """
    low, high = int_range(width)
    if isinstance(values, np.ndarray):
        count = int(np.count_nonzero((values < low) | (values > high)))
        return np.clip(values, low, high), count
    count = int(((values < low) | (values > high)).sum())
    return values.clamp(low, high), count


def quantize(t, fmt):
    """Round a float tensor to the integers of ``fmt``, saturating.

    Returns a :class:`Quantized` holding an ``int64`` torch tensor.
    """
    if not isinstance(fmt, FixedPointFormat):
        raise TypeError(f"fmt must be a FixedPointFormat, not {fmt!r}")
    t = _as_float_tensor(t, "t")
    scaled = torch.round(torch.ldexp(t, torch.tensor(float(fmt.frac_bits), dtype=torch.float64)))
    clipped, count = saturate(scaled, fmt.data_width)
    return Quantized(clipped.to(torch.int64), fmt, count)


def to_fixed(t, data_width=16, frac_bits=None):
    """Convert a float tensor to fixed point; ``frac_bits=None`` picks the scale from ``t``."""
    if frac_bits is None:
        frac_bits = choose_frac_bits(t, data_width)
    return quantize(t, FixedPointFormat(data_width, frac_bits))


def from_fixed(values, frac_bits):
    """Real values (float64 tensor) of integers at ``frac_bits``."""
    _check_frac_bits(frac_bits)
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values)
    return torch.ldexp(values.to(torch.float64),
                       torch.tensor(float(-frac_bits), dtype=torch.float64))


def _shift_right_round_even(values, shift):
    """``values / 2**shift`` rounded half to even, in exact int64 arithmetic."""
    quotient = torch.div(values, 1 << shift, rounding_mode="floor")
    remainder = values - quotient * (1 << shift)
    half = 1 << (shift - 1)
    round_up = (remainder > half) | ((remainder == half) & (quotient % 2 == 1))
    return quotient + round_up.to(torch.int64)


def requantize(values, from_frac_bits, to_format):
    """Move integers from ``from_frac_bits`` to ``to_format`` exactly, rounding and saturating.

    This is how an accumulator (product scale ``fx + fw``) becomes the next
    layer's ``data_width``-bit operand. Returns a :class:`Quantized` whose
    values are an ``int64`` torch tensor.
    """
    _check_frac_bits(from_frac_bits)
    if not isinstance(to_format, FixedPointFormat):
        raise TypeError(f"to_format must be a FixedPointFormat, not {to_format!r}")
    values = torch.as_tensor(values)
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise TypeError(f"values must be integers, not {values.dtype}")
    values = values.to(torch.int64)
    shift = from_frac_bits - to_format.frac_bits
    if shift >= 63:
        values = torch.zeros_like(values)
    elif shift > 0:
        values = _shift_right_round_even(values, shift)
    elif shift <= -40:
        # Any nonzero value is far outside a <= 32-bit format: let it saturate.
        values = torch.sign(values) << 40
    elif shift < 0:
        # Clip to one step beyond the range first so the shift cannot overflow int64.
        bound = (to_format.max_int >> -shift) + 1
        values = values.clamp(-bound, bound) << -shift
    clipped, count = saturate(values, to_format.data_width)
    return Quantized(clipped, to_format, count)
