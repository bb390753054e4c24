"""Exact integer golden model against torch's float64 convolutions (exact on small integers)."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pruning import golden

KERNELS = [(1, 1), (3, 3), (5, 5), (7, 7), (11, 11), (3, 5), (1, 3)]
STRIDES = [1, 2, 4]
PADS = [0, 1, 2, 3]
# Operand magnitudes small enough that every float64 sum is exact.
LIMIT = 200


def layer_case(kernel, stride, pad, seed, density=0.6):
    """Random integer layer with non-square input sizes that the stride does not divide."""
    rng = np.random.default_rng(seed)
    r_len, s_len = kernel
    n, c, k = 2, 3, 4
    h = max(r_len - 2 * pad, 1) + int(rng.integers(2, 9))
    w = max(s_len - 2 * pad, 1) + int(rng.integers(3, 12))

    def sparse(shape):
        values = rng.integers(-LIMIT, LIMIT + 1, size=shape)
        return values * (rng.random(shape) < density)

    x = sparse((n, c, h, w))
    wt = sparse((k, c, r_len, s_len))
    out_h, out_w = golden.output_size(h, r_len, stride, pad), golden.output_size(w, s_len, stride, pad)
    dy = sparse((n, k, out_h, out_w))
    mask = (rng.random((n, c, h, w)) < 0.5).astype(np.uint8)
    return x, wt, dy, mask


def as_float(a):
    return torch.from_numpy(np.asarray(a)).to(torch.float64)


CASES = [pytest.param(kernel, stride, pad, id=f"k{kernel[0]}x{kernel[1]}-u{stride}-p{pad}")
         for kernel, stride, pad in itertools.product(KERNELS, STRIDES, PADS)]


@pytest.mark.parametrize("kernel,stride,pad", CASES)
def test_layers_match_torch(kernel, stride, pad):
    x, w, dy, mask = layer_case(kernel, stride, pad, seed=hash((kernel, stride, pad)) % 2**32)
    y = golden.conv_ff(x, w, stride, pad)
    expected_y = F.conv2d(as_float(x), as_float(w), stride=stride, padding=pad)
    assert y.dtype == np.int64 and y.shape == tuple(expected_y.shape)
    assert np.array_equal(y, expected_y.numpy().astype(np.int64))

    input_hw = x.shape[2:]
    dx = golden.conv_bp(dy, w, stride, pad, input_hw)
    expected_dx = torch.nn.grad.conv2d_input(x.shape, as_float(w), as_float(dy),
                                             stride=stride, padding=pad)
    assert np.array_equal(dx, expected_dx.numpy().astype(np.int64))
    masked = golden.conv_bp(dy, w, stride, pad, input_hw, mask=mask)
    assert np.array_equal(masked, np.where(mask != 0, dx, 0))

    dw = golden.conv_wg(x, dy, stride, pad, kernel)
    expected_dw = torch.nn.grad.conv2d_weight(as_float(x), w.shape, as_float(dy),
                                              stride=stride, padding=pad)
    assert np.array_equal(dw, expected_dw.numpy().astype(np.int64))


def test_torch_in_torch_out():
    x, w, dy, mask = layer_case((3, 3), 2, 1, seed=1)
    y = golden.conv_ff(torch.from_numpy(x).to(torch.int16), w, 2, 1)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.int64
    assert np.array_equal(y.numpy(), golden.conv_ff(x, w, 2, 1))
    dx = golden.conv_bp(dy, w, 2, 1, x.shape[2:], mask=torch.from_numpy(mask).bool())
    assert isinstance(dx, torch.Tensor)


def inside_indices(x, w, dy, stride, pad):
    """Every ``(n, k, c, e, f, r, s, h, v)`` of a layer whose input index ``(h, v)`` is
    inside ``x`` (the dense MACs), by enumeration."""
    n_len, c_len, h_len, w_len = x.shape
    k_len, _, r_len, s_len = w.shape
    _, _, e_len, f_len = dy.shape
    for n, k, c, e, f, r, s in itertools.product(range(n_len), range(k_len), range(c_len),
                                                 range(e_len), range(f_len), range(r_len),
                                                 range(s_len)):
        h, v = e * stride + r - pad, f * stride + s - pad
        if 0 <= h < h_len and 0 <= v < w_len:
            yield n, k, c, e, f, r, s, h, v


def brute_force_macs(phase, x, w, dy, mask, stride, pad):
    """Count MACs of a layer by enumerating every (n, k, c, e, f, r, s)."""
    dense = effectual = 0
    for n, k, c, e, f, r, s, h, v in inside_indices(x, w, dy, stride, pad):
        dense += 1
        if phase == "ff":
            effectual += bool(x[n, c, h, v]) and bool(w[k, c, r, s])
        elif phase == "bp":
            effectual += bool(dy[n, k, e, f]) and bool(w[k, c, r, s]) and bool(mask[n, c, h, v])
        else:
            effectual += bool(x[n, c, h, v]) and bool(dy[n, k, e, f])
    return dense, effectual


@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("kernel,stride,pad", [((3, 3), 1, 1), ((5, 3), 2, 2), ((1, 1), 4, 0),
                                               ((3, 5), 4, 3)])
def test_count_macs_against_enumeration(phase, kernel, stride, pad):
    x, w, dy, mask = layer_case(kernel, stride, pad, seed=3, density=0.6)
    x, w, dy, mask = x[:, :2], w[:2, :2], dy[:, :2], mask[:, :2]
    dense, effectual = golden.count_macs(phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad)
    assert (dense, effectual) == brute_force_macs(phase, x, w, dy, mask, stride, pad)
    assert dense > 0 and effectual < dense


def test_count_macs_dense_is_phase_independent_and_ignores_padding():
    x, w, dy, mask = layer_case((3, 3), 1, 1, seed=4)
    ones = [golden.count_macs(phase, x=np.ones_like(x), w=np.ones_like(w), dy=np.ones_like(dy),
                              stride=1, pad=1) for phase in golden.PHASES]
    assert ones[0] == ones[1] == ones[2]
    assert ones[0][0] == ones[0][1]
    n, c, h, wd = x.shape
    k = w.shape[0]
    # 3x3, pad 1, stride 1: per axis, (3*L - 2) of the 3*L taps are inside.
    assert ones[0][0] == n * k * c * (3 * h - 2) * (3 * wd - 2)


def row_case(phase, kernel, stride, pad, rng, length):
    """Random sparse rows for one primitive; ``length`` is the input row length W."""
    def sparse(size):
        return rng.integers(-50, 51, size=size) * (rng.random(size) < 0.5)

    if phase == "ff":
        return sparse(length), rng.integers(-50, 51, size=kernel), None
    f_len = golden.output_size(length, kernel, stride, pad)
    if phase == "bp":
        return sparse(f_len), rng.integers(-50, 51, size=kernel), length
    return sparse(f_len), sparse(length), kernel


ROW_CASES = [(1, 1, 0), (3, 1, 1), (5, 2, 2), (7, 4, 3), (11, 4, 0), (11, 1, 3), (3, 2, 0)]


@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("kernel,stride,pad", ROW_CASES)
def test_row_primitive_matches_torch_1d(phase, kernel, stride, pad):
    rng = np.random.default_rng(kernel * 100 + stride * 10 + pad)
    length = kernel + int(rng.integers(0, 20))
    a, b, out_len = row_case(phase, kernel, stride, pad, rng, length)
    a_t, b_t = as_float(a).reshape(1, 1, -1), as_float(b).reshape(1, 1, -1)
    if phase == "ff":
        expected = F.conv1d(a_t, b_t, stride=stride, padding=pad)
    elif phase == "bp":
        expected = torch.nn.grad.conv1d_input((1, 1, out_len), b_t, a_t, stride=stride, padding=pad)
    else:
        expected = torch.nn.grad.conv1d_weight(b_t, (1, 1, out_len), a_t, stride=stride, padding=pad)
    out = golden.row_primitive(phase, a, b, stride, pad, out_len)
    assert np.array_equal(out, expected.numpy().reshape(-1).astype(np.int64))
    if phase == "bp":
        mask = rng.random(out_len) < 0.5
        assert np.array_equal(golden.row_primitive(phase, a, b, stride, pad, out_len, mask),
                              np.where(mask, out, 0))


@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("kernel,stride,pad", ROW_CASES)
def test_row_primitives_are_row_primitive_per_row(phase, kernel, stride, pad):
    rng = np.random.default_rng(kernel * 31 + stride * 5 + pad)
    length = kernel + int(rng.integers(0, 20))
    cases = [row_case(phase, kernel, stride, pad, rng, length) for _ in range(5)]
    a = np.stack([case[0] for case in cases])
    b = np.stack([case[1] for case in cases])
    out_len = cases[0][2]
    mask = (rng.random(out_len) < 0.5) if phase == "bp" else None
    rows = golden.row_primitives(phase, a, b, stride, pad, out_len, mask)
    assert rows.shape[0] == 5
    for row, case in zip(rows, cases):
        assert np.array_equal(row, golden.row_primitive(phase, case[0], case[1], stride, pad,
                                                        out_len, mask))
    with pytest.raises(ValueError, match="as many rows"):
        golden.row_primitives(phase, a, b[:3], stride, pad, out_len)


@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("kernel,stride,pad", ROW_CASES)
def test_row_macs_against_enumeration(phase, kernel, stride, pad):
    rng = np.random.default_rng(kernel * 7 + stride * 3 + pad)
    length = kernel + int(rng.integers(0, 20))
    a, b, out_len = row_case(phase, kernel, stride, pad, rng, length)
    mask = (rng.random(length) < 0.5) if phase == "bp" else None
    # Every (f, s) pair whose input index f*U + s - P is inside the row.
    f_len = golden.output_size(length, kernel, stride, pad)
    dense = effectual = 0
    for f, s in itertools.product(range(f_len), range(kernel)):
        index = f * stride + s - pad
        if not 0 <= index < length:
            continue
        dense += 1
        if phase == "ff":
            effectual += bool(a[index]) and bool(b[s])
        elif phase == "bp":
            effectual += bool(a[f]) and bool(b[s]) and bool(mask[index])
        else:
            effectual += bool(a[f]) and bool(b[index])
    assert golden.row_macs(phase, a, b, stride, pad, out_len, mask) == (dense, effectual)


@pytest.mark.parametrize("kernel,stride,pad", [((3, 3), 1, 1), ((5, 3), 2, 2), ((3, 5), 4, 3)])
def test_layers_are_sums_of_row_primitives(kernel, stride, pad):
    """The decomposition into row primitives (docs/SPEC.md) that the controller relies on."""
    x, w, dy, mask = layer_case(kernel, stride, pad, seed=9)
    n_len, c_len, h_len, w_len = x.shape
    k_len, _, r_len, s_len = w.shape
    e_len = dy.shape[2]
    y = np.zeros((n_len, k_len, e_len, dy.shape[3]), dtype=np.int64)
    dx = np.zeros(x.shape, dtype=np.int64)
    dw = np.zeros(w.shape, dtype=np.int64)
    for n, k, c, e, r in itertools.product(range(n_len), range(k_len), range(c_len),
                                           range(e_len), range(r_len)):
        h = e * stride + r - pad
        if not 0 <= h < h_len:
            continue
        y[n, k, e] += golden.row_primitive("ff", x[n, c, h], w[k, c, r], stride, pad)
        dx[n, c, h] += golden.row_primitive("bp", dy[n, k, e], w[k, c, r], stride, pad, w_len,
                                            mask=mask[n, c, h])
        dw[k, c, r] += golden.row_primitive("wg", dy[n, k, e], x[n, c, h], stride, pad, s_len)
    assert np.array_equal(y, golden.conv_ff(x, w, stride, pad))
    assert np.array_equal(dx, golden.conv_bp(dy, w, stride, pad, (h_len, w_len), mask=mask))
    assert np.array_equal(dw, golden.conv_wg(x, dy, stride, pad, kernel))


@pytest.mark.parametrize("call,error,message", [
    (lambda: golden.conv_ff(np.ones((1, 2, 5, 5), int), np.ones((1, 3, 3, 3), int)),
     ValueError, "w has 3 input channels but x has 2"),
    (lambda: golden.conv_ff(np.ones((2, 5, 5), int), np.ones((1, 2, 3, 3), int)),
     ValueError, "x must have 4 dimensions"),
    (lambda: golden.conv_ff(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3), int)),
     TypeError, "x must hold integers, not float64"),
    (lambda: golden.conv_ff([[1]], np.ones((1, 1, 3, 3), int)),
     TypeError, "x must be a numpy array or torch tensor"),
    (lambda: golden.conv_ff(np.ones((1, 1, 5, 5), int), np.ones((1, 1, 3, 3), int), stride=0),
     ValueError, "stride must be >= 1, not 0"),
    (lambda: golden.conv_ff(np.ones((1, 1, 5, 5), int), np.ones((1, 1, 3, 3), int), pad=-1),
     ValueError, "pad must be >= 0, not -1"),
    (lambda: golden.conv_ff(np.ones((1, 1, 2, 5), int), np.ones((1, 1, 5, 3), int)),
     ValueError, "kernel 5 is larger than the padded input 2"),
    (lambda: golden.conv_bp(np.ones((1, 1, 4, 4), int), np.ones((1, 1, 3, 3), int), 1, 0, (5, 5)),
     ValueError, "dy is 4x4 but input 5x5 with kernel 3x3, stride 1, pad 0 gives 3x3"),
    (lambda: golden.conv_bp(np.ones((1, 1, 3, 3), int), np.ones((1, 1, 3, 3), int), 1, 0, (5, 5),
                            mask=np.ones((1, 1, 4, 4), int)),
     ValueError, r"mask must have shape \(1, 1, 5, 5\)"),
    (lambda: golden.conv_wg(np.ones((2, 1, 5, 5), int), np.ones((1, 1, 3, 3), int), 1, 0, (3, 3)),
     ValueError, "x has batch 2 but dy has batch 1"),
    (lambda: golden.conv_wg(np.ones((1, 1, 5, 5), int), np.ones((1, 1, 3, 3), int), 1, 0, 3),
     TypeError, "kernel_hw must be a pair of ints"),
    (lambda: golden.conv_ff(np.full((1, 1, 5, 5), 1 << 40), np.full((1, 1, 3, 3), 1 << 30)),
     ValueError, "could overflow int64"),
    (lambda: golden.count_macs("fp", x=np.ones((1, 1, 3, 3), int)),
     ValueError, "phase must be one of ff, bp, wg, not 'fp'"),
    (lambda: golden.count_macs("wg", x=np.ones((1, 1, 3, 3), int), dy=np.ones((1, 1, 1, 1), int)),
     ValueError, r"phase wg needs kernel_hw \(or w\)"),
    (lambda: golden.count_macs("ff", x=np.ones((1, 1, 3, 3), int)),
     ValueError, "phase ff needs w"),
    (lambda: golden.row_primitive("bp", np.ones(3, int), np.ones(3, int), 1, 0),
     ValueError, r"phase bp needs out_len \(the input row length W\)"),
    (lambda: golden.row_primitive("wg", np.ones(5, int), np.ones(6, int), 1, 0, out_len=3),
     ValueError, "len\\(a\\) must be 4 for a wg row"),
    (lambda: golden.row_primitive("ff", np.ones(6, int), np.ones(3, int), 1, 0, mask=np.ones(4)),
     ValueError, "an output mask applies to phase bp only"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_conv_phase_dispatches():
    x, w, dy, mask = layer_case((3, 3), 2, 1, seed=21)
    assert np.array_equal(golden.conv_phase("ff", x=x, w=w, stride=2, pad=1),
                          golden.conv_ff(x, w, 2, 1))
    assert np.array_equal(golden.conv_phase("bp", x=x, w=w, dy=dy, mask=mask, stride=2, pad=1),
                          golden.conv_bp(dy, w, 2, 1, x.shape[2:], mask=mask))
    assert np.array_equal(golden.conv_phase("wg", x=x, w=w, dy=dy, stride=2, pad=1),
                          golden.conv_wg(x, dy, 2, 1, (3, 3)))


# -- saturating accumulation (docs/SPEC.md, Numbers) -----------------------------------------------

def products_per_output(phase, x, w, dy, mask, stride, pad):
    """Every output's list of products, by enumeration."""
    products = {}
    for n, k, c, e, f, r, s, h, v in inside_indices(x, w, dy, stride, pad):
        if phase == "ff":
            key, product = (n, k, e, f), x[n, c, h, v] * w[k, c, r, s]
        elif phase == "bp":
            if not mask[n, c, h, v]:
                continue
            key, product = (n, c, h, v), dy[n, k, e, f] * w[k, c, r, s]
        else:
            key, product = (k, c, r, s), x[n, c, h, v] * dy[n, k, e, f]
        products.setdefault(key, []).append(int(product))
    return products


def saturating_sum(values, acc_width):
    low, high = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    total = 0
    for value in values:
        total = min(high, max(low, total + value))
    return total


@pytest.mark.parametrize("phase", golden.PHASES)
def test_saturating_phase_equals_saturating_sums_in_any_order(phase):
    rng = np.random.default_rng(7)
    acc_width = 14
    x, w, dy, mask = layer_case((3, 3), 1, 1, seed=5, density=0.8)
    # One-signed products, large enough that many sums saturate.
    x, w, dy = np.abs(x), -np.abs(w), np.abs(dy)
    result, saturated = golden.saturating_phase(phase, acc_width=acc_width, x=x, w=w, dy=dy,
                                                mask=mask, stride=1, pad=1)
    exact = golden.conv_phase(phase, x=x, w=w, dy=dy, mask=mask, stride=1, pad=1)
    assert saturated and (result != exact).any()
    for key, values in products_per_output(phase, x, w, dy, mask, 1, 1).items():
        for _ in range(3):
            order = rng.permutation(len(values))
            assert result[key] == saturating_sum([values[i] for i in order], acc_width), key
    # Sums that stay in range: the exact result, no flag.
    result, saturated = golden.saturating_phase(phase, acc_width=40, x=x, w=w, dy=dy, mask=mask,
                                                stride=1, pad=1)
    assert not saturated and np.array_equal(result, exact)


def test_saturating_phase_refuses_an_order_dependent_sum():
    x = np.array([[[[10000, 10000, -10000]]]])
    dy = np.ones((1, 1, 1, 3), np.int64)
    # dw = 10000 + 10000 - 10000 in 15 bits (top 16383): clipped on the way up in
    # one order (ends at 6383), never out of range in the other (ends at 10000).
    products = [int(v) for v in x.ravel()]
    assert saturating_sum(products, 15) != saturating_sum(products[::-1], 15)
    with pytest.raises(golden.OrderDependentSaturation, match=r"output \(0, 0, 0, 0\)"):
        golden.saturating_phase("wg", acc_width=15, x=x, dy=dy, kernel_hw=(1, 1))
    # One sign more bits: every order stays in range.
    result, saturated = golden.saturating_phase("wg", acc_width=16, x=x, dy=dy,
                                                kernel_hw=(1, 1))
    assert result.ravel().tolist() == [10000] and not saturated
