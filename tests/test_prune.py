"""Stochastic activation-gradient pruning against docs/SPEC.md (Sparsity)."""

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch

from pruning import prune_threshold, stochastic_prune

SIGMA = 0.37


def gaussian(n, zero_fraction=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    g = torch.randn(n, generator=generator, dtype=torch.float64) * SIGMA
    if zero_fraction:
        zeros = torch.rand(n, generator=generator) < zero_fraction
        g[zeros] = 0.0
    return g


@pytest.mark.parametrize("zero_fraction", [0.0, 0.8])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_threshold_matches_gaussian_quantile(p, zero_fraction):
    # sigma is estimated from the nonzero entries only, so natural zeros mixed
    # in must not shrink the threshold.
    g = gaussian(400_000, zero_fraction)
    expected = NormalDist().inv_cdf((1 + p) / 2) * SIGMA
    assert prune_threshold(g, p) == pytest.approx(expected, rel=0.02)


def test_threshold_formula_exact():
    g = torch.tensor([0.0, -1.0, 2.0, 0.0, -3.0])
    sigma = math.sqrt(math.pi / 2) * 2.0   # mean |g| over the three nonzeros
    assert prune_threshold(g, 0.8) == pytest.approx(sigma * NormalDist().inv_cdf(0.9), rel=1e-12)


def test_threshold_accepts_numpy_and_float32():
    g = gaussian(1000).numpy().astype(np.float32)
    assert prune_threshold(g, 0.9) == pytest.approx(prune_threshold(torch.from_numpy(g), 0.9))


def test_rate_zero_returns_input_unchanged():
    g = gaussian(1000)
    assert prune_threshold(g, 0) == 0.0
    out = stochastic_prune(g, 0.0, generator=1)
    assert torch.equal(out, g) and out is not g


def test_all_zero_gradient_unchanged():
    g = torch.zeros(3, 4)
    assert prune_threshold(g, 0.9) == 0.0
    assert torch.equal(stochastic_prune(g, 0.9, generator=0), g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pruned_values_are_kept_zero_or_tau(dtype):
    g = gaussian(50_000, zero_fraction=0.5).to(dtype)
    tau = prune_threshold(g, 0.9)
    out = stochastic_prune(g, 0.9, generator=3)
    assert out.dtype == dtype and out.shape == g.shape
    large = g.abs() >= tau
    assert torch.equal(out[large], g[large])
    small = out[~large]
    is_zero = small == 0
    is_tau = (small.abs() - torch.tensor(tau, dtype=dtype)).abs() <= 1e-6 * tau
    assert bool((is_zero | is_tau).all())
    # A promoted value keeps its sign; a natural zero stays zero.
    promoted = (~large) & (out != 0)
    assert bool((torch.sign(out[promoted]) == torch.sign(g[promoted])).all())
    assert bool((out[g == 0] == 0).all())
    # Pruning at 0.9 removes most of the small values.
    assert float(is_zero.float().mean()) > 0.5


def test_unbiased():
    g = gaussian(2000, zero_fraction=0.3, seed=5)
    p, copies = 0.9, 4000
    tau = prune_threshold(g, p)
    generator = torch.Generator().manual_seed(11)
    total = torch.zeros_like(g)
    for _ in range(copies):
        total += stochastic_prune(g, p, generator)
    mean = total / copies
    # Each small entry is tau*sign(g) with probability |g|/tau: its variance
    # is |g| * tau - g^2. The standardized errors of the mean must look N(0, 1).
    variance = torch.where(g.abs() < tau, g.abs() * tau - g * g, torch.zeros_like(g))
    random = variance > 0
    z = (mean - g)[random] / torch.sqrt(variance[random] / copies)
    assert abs(float(z.mean())) < 0.1
    assert 0.9 < float(z.std()) < 1.1
    assert float(z.abs().max()) < 5.5
    # Kept values are deterministic (up to the float rounding of the sum).
    assert torch.allclose(mean[~random], g[~random], rtol=1e-12, atol=0)


def test_reproducible_from_seed_and_generator():
    g = gaussian(5000)
    a = stochastic_prune(g, 0.9, generator=42)
    b = stochastic_prune(g, 0.9, generator=torch.Generator().manual_seed(42))
    c = stochastic_prune(g, 0.9, generator=43)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_input_not_modified():
    g = gaussian(1000)
    before = g.clone()
    stochastic_prune(g, 0.99, generator=0)
    assert torch.equal(g, before)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_bad_rate(p):
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        prune_threshold(gaussian(10), p)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        stochastic_prune(gaussian(10), p)


@pytest.mark.parametrize("p", ["0.5", None, True])
def test_rate_of_wrong_type(p):
    with pytest.raises(TypeError, match="p must be a real number"):
        prune_threshold(gaussian(10), p)


def test_non_finite_gradient_reports_count():
    g = gaussian(10)
    g[2] = float("nan")
    g[7] = float("inf")
    with pytest.raises(ValueError, match="g has 2 non-finite value"):
        prune_threshold(g, 0.9)
    with pytest.raises(ValueError, match="g has 2 non-finite value"):
        stochastic_prune(g, 0.9)


def test_integer_or_foreign_gradient_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        prune_threshold(torch.arange(5), 0.5)
    with pytest.raises(TypeError, match="g must be a torch.Tensor"):
        prune_threshold([0.1, 0.2], 0.5)


def test_bad_generator():
    with pytest.raises(TypeError, match="generator must be"):
        stochastic_prune(gaussian(10), 0.9, generator="seed")
