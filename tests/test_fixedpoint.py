"""The project's one set of fixed-point rules (docs/SPEC.md, Numbers)."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from pruning.fixedpoint import (FixedPointFormat, choose_frac_bits, from_fixed, quantize,
                                requantize, saturate, to_fixed)


def round_half_even(fraction):
    floor = fraction.numerator // fraction.denominator
    rest = fraction - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor


def test_round_half_to_even():
    q = quantize(torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, -0.51]),
                 FixedPointFormat(16, 0))
    assert q.values.tolist() == [0, 2, 2, 0, -2, -2, 0, -1]
    assert q.values.dtype == torch.int64


def test_saturates_and_counts():
    q = quantize(torch.tensor([1.0, -1.0, 0.25, 0.999]), FixedPointFormat(8, 7))
    assert q.values.tolist() == [127, -128, 32, 127]
    assert q.saturated == 2


@pytest.mark.parametrize("peak,width,expected", [
    (1.0, 16, 14), (0.999, 16, 15), (0.5, 16, 15), (3.0, 8, 5), (1000.0, 8, -3), (0.0, 16, 15)])
def test_choose_frac_bits(peak, width, expected):
    assert choose_frac_bits(torch.tensor([0.0, -peak, peak / 3]), width) == expected


def test_chosen_scale_never_saturates():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        t = torch.randn(100, generator=generator, dtype=torch.float64) * 10 ** float(
            torch.empty(1).uniform_(-6, 6, generator=generator))
        q = to_fixed(t, 12)
        assert q.saturated == 0
        assert int(q.values.abs().max()) > (1 << 10) - 1   # uses the top bit's half at least
        assert float((q.to_float() - t).abs().max()) <= q.format.scale / 2


def test_round_trip_exact_for_representable_values():
    values = torch.tensor([-32768, -3, 0, 5, 32767], dtype=torch.int64)
    assert torch.equal(quantize(from_fixed(values, 9), FixedPointFormat(16, 9)).values, values)


def test_requantize_matches_exact_rational_rounding():
    generator = np.random.default_rng(7)
    values = generator.integers(-(1 << 40), 1 << 40, size=2000)
    values[:8] = [-5, -3, -1, 1, 3, 5, 7, 6]
    for shift in (1, 2, 5, 17, 30):
        fmt = FixedPointFormat(32, 3)
        q = requantize(values, 3 + shift, fmt)
        expected = [round_half_even(Fraction(int(v), 1 << shift)) for v in values]
        clipped = [min(max(e, fmt.min_int), fmt.max_int) for e in expected]
        assert q.values.tolist() == clipped
        assert q.saturated == sum(e != c for e, c in zip(expected, clipped))


def test_requantize_left_shift_saturates():
    q = requantize(torch.tensor([1, -1, 3, 0, 1 << 20]), 0, FixedPointFormat(8, 6))
    assert q.values.tolist() == [64, -64, 127, 0, 127]
    assert q.saturated == 2
    far = requantize(torch.tensor([1, -1, 0]), -30, FixedPointFormat(8, 30))
    assert far.values.tolist() == [127, -128, 0] and far.saturated == 2


def test_saturate_keeps_kind():
    clipped, count = saturate(np.array([5, -9, 2]), 4)
    assert isinstance(clipped, np.ndarray) and clipped.tolist() == [5, -8, 2] and count == 1
    clipped, count = saturate(torch.tensor([8, 0]), 4)
    assert clipped.tolist() == [7, 0] and count == 1


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(data_width=1), ValueError, "data_width must be in 2..32, not 1"),
    (dict(data_width=33), ValueError, "data_width must be in 2..32, not 33"),
    (dict(data_width=16.0), TypeError, "data_width must be an int"),
    (dict(frac_bits=True), TypeError, "frac_bits must be an int"),
    (dict(frac_bits=99), ValueError, "frac_bits must be in -60..60, not 99"),
])
def test_bad_format(kwargs, error, message):
    with pytest.raises(error, match=message):
        FixedPointFormat(**kwargs)


def test_bad_tensors():
    with pytest.raises(ValueError, match="1 non-finite"):
        to_fixed(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="must be a torch.Tensor or numpy array"):
        to_fixed([1.0])
    with pytest.raises(TypeError, match="values must be integers"):
        requantize(torch.tensor([1.5]), 4, FixedPointFormat())
