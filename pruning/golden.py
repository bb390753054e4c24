"""Exact integer reference for the three convolution phases (docs/SPEC.md, Row primitives).

Whole layers (with a batch dimension) and the 1-D *row primitives* that the
PE computes. Everything is computed in ``int64`` with no rounding at all, so
the RTL is compared with these results bit for bit. A call whose sums could
overflow ``int64`` is refused rather than wrapped.

Shapes: ``x[N][C][H][W]``, ``w[K][C][R][S]``, ``y``/``dy[N][K][E][F]`` with
``E = (H + 2P - R) // U + 1`` and ``F = (W + 2P - S) // U + 1``.

- FF: ``y[n,k,e,f]  = sum_{c,r,s} x[n,c,eU+r-P, fU+s-P] * w[k,c,r,s]``
- BP: ``dx[n,c,h,v] = sum_{k,r,s : h=eU+r-P, v=fU+s-P} dy[n,k,e,f] * w[k,c,r,s]``,
  kept only where ``mask`` is nonzero
- WG: ``dw[k,c,r,s] = sum_{n,e,f} x[n,c,eU+r-P, fU+s-P] * dy[n,k,e,f]``

Indices that fall into the padding read zero and cost no work.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np
import torch

from .fixedpoint import int_range, saturate

__all__ = [
    "PHASES",
    "output_size",
    "conv_ff",
    "conv_bp",
    "conv_wg",
    "conv_phase",
    "saturating_phase",
    "OrderDependentSaturation",
    "count_macs",
    "row_output_length",
    "row_primitive",
    "row_primitives",
    "row_macs",
    "row_macs_per_element",
]

PHASES = ("ff", "bp", "wg")

_INT64_LIMIT = (1 << 63) - 1


# -- argument checks ----------------------------------------------------------

def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, not {value!r}")
    return value


def _check_pair(name, value):
    if (not isinstance(value, (tuple, list)) or len(value) != 2):
        raise TypeError(f"{name} must be a pair of ints, not {value!r}")
    return tuple(_check_int(name, v, 1) for v in value)


def _check_phase(phase):
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
    return phase


def _as_int_array(name, value, ndim, allow_bool=False):
    """``(int64 numpy array, came_from_torch)``; integer input only."""
    from_torch = isinstance(value, torch.Tensor)
    if from_torch:
        array = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise TypeError(f"{name} must be a numpy array or torch tensor, not {type(value).__name__}")
    if array.dtype == np.bool_:
        if not allow_bool:
            raise TypeError(f"{name} must hold integers, not bool")
    elif not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, not {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, not shape {tuple(array.shape)}")
    if array.dtype == np.uint64 and array.size and array.max() > _INT64_LIMIT:
        raise ValueError(f"{name} has values above the int64 range")
    return array.astype(np.int64, copy=False), from_torch


def _result(array, as_torch):
    return torch.from_numpy(np.ascontiguousarray(array)) if as_torch else array


def _peak(array):
    return int(np.abs(array).max()) if array.size else 0


def _check_no_overflow(a, b, terms):
    if _peak(a) * _peak(b) * max(terms, 1) > _INT64_LIMIT:
        raise ValueError(
            "operands are too large: the sums could overflow int64 "
            f"(max |a| = {_peak(a)}, max |b| = {_peak(b)}, {terms} terms per output)")


def output_size(in_size, kernel, stride, pad):
    """Output length ``(in_size + 2*pad - kernel) // stride + 1``; must be >= 1."""
    in_size = _check_int("in_size", in_size, 1)
    kernel = _check_int("kernel", kernel, 1)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    if in_size + 2 * pad < kernel:
        raise ValueError(
            f"kernel {kernel} is larger than the padded input {in_size} + 2*{pad}")
    return (in_size + 2 * pad - kernel) // stride + 1


def _window(padded, r, s, stride, out_h, out_w):
    """The strided slice ``padded[..., eU+r, fU+s]`` for all ``e < out_h, f < out_w``."""
    return padded[..., r:r + stride * (out_h - 1) + 1:stride,
                  s:s + stride * (out_w - 1) + 1:stride]


def _pad(array, pad):
    return np.pad(array, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


# -- whole layers -------------------------------------------------------------

def conv_ff(x, w, stride=1, pad=0):
    """Forward convolution ``y = x * w``, exact.

    Parameters
    ----------
    x : integer array (N, C, H, W)
    w : integer array (K, C, R, S)
    stride, pad : int

    Returns
    -------
    int64 array (N, K, E, F), a torch tensor if any input was one.
    """
    x, x_torch = _as_int_array("x", x, 4)
    w, w_torch = _as_int_array("w", w, 4)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    n, c, h, wd = x.shape
    k, wc, r_len, s_len = w.shape
    if wc != c:
        raise ValueError(f"w has {wc} input channels but x has {c} (w {w.shape}, x {x.shape})")
    out_h = output_size(h, r_len, stride, pad)
    out_w = output_size(wd, s_len, stride, pad)
    _check_no_overflow(x, w, c * r_len * s_len)
    padded = _pad(x, pad)
    y = np.zeros((n, k, out_h * out_w), dtype=np.int64)
    for r in range(r_len):
        for s in range(s_len):
            patch = _window(padded, r, s, stride, out_h, out_w).reshape(n, c, out_h * out_w)
            y += np.matmul(w[:, :, r, s], patch)
    return _result(y.reshape(n, k, out_h, out_w), x_torch or w_torch)


def conv_bp(dy, w, stride, pad, input_hw, mask=None):
    """Activation-gradient back-propagation ``dx`` from ``dy`` and ``w``, exact.

    Parameters
    ----------
    dy : integer array (N, K, E, F)
    w : integer array (K, C, R, S)
    stride, pad : int
    input_hw : (H, W)
        Size of ``x``; with a stride that does not divide evenly several
        input sizes give the same ``E, F``, so it must be stated.
    mask : array (N, C, H, W) or None
        Where nonzero, ``dx`` is computed; elsewhere it is exactly zero.

    Returns
    -------
    int64 array (N, C, H, W), a torch tensor if any input was one.
    """
    dy, dy_torch = _as_int_array("dy", dy, 4)
    w, w_torch = _as_int_array("w", w, 4)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    h, wd = _check_pair("input_hw", input_hw)
    n, k, out_h, out_w = dy.shape
    wk, c, r_len, s_len = w.shape
    if wk != k:
        raise ValueError(f"w has {wk} output channels but dy has {k} (w {w.shape}, dy {dy.shape})")
    expected = (output_size(h, r_len, stride, pad), output_size(wd, s_len, stride, pad))
    if (out_h, out_w) != expected:
        raise ValueError(
            f"dy is {out_h}x{out_w} but input {h}x{wd} with kernel {r_len}x{s_len}, "
            f"stride {stride}, pad {pad} gives {expected[0]}x{expected[1]}")
    as_torch = dy_torch or w_torch
    if mask is not None:
        mask, mask_torch = _as_int_array("mask", mask, 4, allow_bool=True)
        as_torch = as_torch or mask_torch
        if mask.shape != (n, c, h, wd):
            raise ValueError(f"mask must have shape {(n, c, h, wd)}, not {mask.shape}")
    _check_no_overflow(dy, w, k * r_len * s_len)
    padded = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=np.int64)
    flat_dy = dy.reshape(n, k, out_h * out_w)
    for r in range(r_len):
        for s in range(s_len):
            contribution = np.matmul(w[:, :, r, s].T, flat_dy).reshape(n, c, out_h, out_w)
            _window(padded, r, s, stride, out_h, out_w)[...] += contribution
    dx = padded[:, :, pad:pad + h, pad:pad + wd]
    if mask is not None:
        dx = np.where(mask != 0, dx, 0)
    return _result(dx, as_torch)


def conv_wg(x, dy, stride, pad, kernel_hw):
    """Weight gradient ``dw`` from ``x`` and ``dy``, exact, summed over the batch.

    Parameters
    ----------
    x : integer array (N, C, H, W)
    dy : integer array (N, K, E, F)
    stride, pad : int
    kernel_hw : (R, S)

    Returns
    -------
    int64 array (K, C, R, S), a torch tensor if any input was one.
    """
    x, x_torch = _as_int_array("x", x, 4)
    dy, dy_torch = _as_int_array("dy", dy, 4)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    r_len, s_len = _check_pair("kernel_hw", kernel_hw)
    n, c, h, wd = x.shape
    dn, k, out_h, out_w = dy.shape
    if dn != n:
        raise ValueError(f"x has batch {n} but dy has batch {dn}")
    expected = (output_size(h, r_len, stride, pad), output_size(wd, s_len, stride, pad))
    if (out_h, out_w) != expected:
        raise ValueError(
            f"dy is {out_h}x{out_w} but input {h}x{wd} with kernel {r_len}x{s_len}, "
            f"stride {stride}, pad {pad} gives {expected[0]}x{expected[1]}")
    _check_no_overflow(x, dy, n * out_h * out_w)
    padded = _pad(x, pad)
    # (K, N*E*F) against (N*E*F, C): one matrix product per kernel offset.
    flat_dy = dy.transpose(1, 0, 2, 3).reshape(k, n * out_h * out_w)
    dw = np.zeros((k, c, r_len, s_len), dtype=np.int64)
    for r in range(r_len):
        for s in range(s_len):
            patch = _window(padded, r, s, stride, out_h, out_w)
            dw[:, :, r, s] = np.matmul(flat_dy, patch.transpose(0, 2, 3, 1).reshape(-1, c))
    return _result(dw, x_torch or dy_torch)


def conv_phase(phase, *, x=None, w=None, dy=None, mask=None, stride=1, pad=0, input_hw=None,
               kernel_hw=None):
    """The result of one phase: :func:`conv_ff`, :func:`conv_bp` or :func:`conv_wg`.

    BP takes the input size from ``input_hw`` or the shape of ``x`` or
    ``mask``; WG the kernel size from ``kernel_hw`` or the shape of ``w``.
    """
    _check_phase(phase)
    if phase == "ff":
        return conv_ff(x, w, stride, pad)
    if phase == "bp":
        if input_hw is None:
            input_hw = tuple((x if x is not None else mask).shape[2:])
        return conv_bp(dy, w, stride, pad, input_hw, mask=mask)
    if kernel_hw is None:
        kernel_hw = tuple(w.shape[2:])
    return conv_wg(x, dy, stride, pad, kernel_hw)


class OrderDependentSaturation(ValueError):
    """A sum leaves the accumulator's range in a way whose saturated value depends on
    the order of its products (see :func:`saturating_phase`)."""


# The two operands of each phase, by keyword: the products of a phase are
# products of one value of each.
_OPERANDS = {"ff": ("x", "w"), "bp": ("dy", "w"), "wg": ("x", "dy")}


def saturating_phase(phase, *, acc_width, x=None, w=None, dy=None, mask=None, stride=1, pad=0,
                     input_hw=None, kernel_hw=None):
    """The result of one phase as an ``acc_width``-bit saturating accumulator computes it.

    The accumulator adds one product at a time and clips a sum that leaves
    ``-2^(acc_width-1) .. 2^(acc_width-1) - 1`` to the nearest bound, setting
    a sticky flag (docs/SPEC.md, Numbers). In general the clipped value depends on
    the order of the products (a sum clipped at the top and then lowered by
    a negative product ends below the bound). It does not when every prefix
    of the sum stays in range whatever the order (the positive products add
    up to at most the top, the negative ones to at least the bottom), nor
    when all products of an output have one sign (the sum only grows away
    from zero, and ends at the clipped exact sum). Those outputs are
    ``clip(exact)``; the hardware's value of any other output depends on the
    order its compiler chose, so such a layer is refused here.

    Returns
    -------
    (array, bool)
        The clipped result (int64, the kind of :func:`conv_phase`'s) and
        whether any output was clipped (the sticky flag's value).

    Raises
    ------
    OrderDependentSaturation
        Naming the first output whose saturated value depends on the order.
    """
    acc_width = _check_int("acc_width", acc_width, 2, 63)
    bottom, top = int_range(acc_width)
    operands = {"x": x, "w": w, "dy": dy}
    exact = conv_phase(phase, **operands, mask=mask, stride=stride, pad=pad, input_hw=input_hw,
                       kernel_hw=kernel_hw)
    first, second = (_as_int_array(name, operands[name], 4)[0] for name in _OPERANDS[phase])
    # Products per output, at most: FF C*R*S, BP K*R*S, WG N*E*F.
    terms = first.shape[0 if phase == "wg" else 1] * second.shape[2] * second.shape[3]
    if _peak(first) * _peak(second) * terms > top:
        # Sums of the positive and of the negative products of every output.
        def partial(a, b):
            names = dict(zip(_OPERANDS[phase], (a, b)))
            return np.asarray(conv_phase(phase, **{**operands, **names}, mask=mask,
                                         stride=stride, pad=pad, input_hw=input_hw,
                                         kernel_hw=kernel_hw))

        a_pos, a_neg = np.maximum(first, 0), np.minimum(first, 0)
        b_pos, b_neg = np.maximum(second, 0), np.minimum(second, 0)
        positive = partial(a_pos, b_pos) + partial(a_neg, b_neg)
        negative = partial(a_pos, b_neg) + partial(a_neg, b_pos)
        independent = (((positive <= top) & (negative >= bottom))
                       | (positive == 0) | (negative == 0))
        if not independent.all():
            index = tuple(int(i) for i in np.argwhere(~independent)[0])
            raise OrderDependentSaturation(
                f"output {index} of this {phase} layer has positive products adding up to "
                f"{int(positive[index])} and negative ones to {int(negative[index])}: with "
                f"{acc_width}-bit saturating sums its value depends on the order of the "
                f"products (keep every output's products of one sign, or their sums in "
                f"{bottom}..{top})")
    clipped, count = saturate(exact, acc_width)
    return clipped, count > 0


def _valid_pairs(in_size, out_size, kernel, stride, pad):
    """Number of (output, kernel) index pairs whose input index is inside the tensor."""
    out_index = np.arange(out_size)[:, None]
    tap = np.arange(kernel)[None, :]
    position = out_index * stride + tap - pad
    return int(np.count_nonzero((position >= 0) & (position < in_size)))


def count_macs(phase, *, x=None, w=None, dy=None, mask=None, stride=1, pad=0,
               input_hw=None, kernel_hw=None):
    """Dense and effectual multiply-accumulates of one layer phase (docs/SPEC.md, Sparsity).

    *Dense* MACs are all MACs of the dense phase whose input index lies inside
    the tensor (padding is never work). *Effectual* MACs are those whose two
    operands are nonzero and whose output is not masked (BP only).

    Parameters
    ----------
    phase : {"ff", "bp", "wg"}
    x, w, dy, mask : integer arrays as for :func:`conv_ff`, :func:`conv_bp`,
        :func:`conv_wg`; FF needs ``x, w``; BP needs ``dy, w`` and the input
        size (``input_hw``, or the shape of ``x`` or ``mask``); WG needs
        ``x, dy`` and the kernel size (``kernel_hw`` or the shape of ``w``).

    Returns
    -------
    (int, int)
        ``(dense_macs, effectual_macs)``.
    """
    _check_phase(phase)

    def need(name, value):
        if value is None:
            raise ValueError(f"phase {phase} needs {name}")
        return value

    def nonzero(name, value):
        return (_as_int_array(name, value, 4, allow_bool=True)[0] != 0).astype(np.int64)

    if phase == "ff":
        xs, ws = nonzero("x", need("x", x)), nonzero("w", need("w", w))
        effectual = conv_ff(xs, ws, stride, pad)
        n, c, h, wd = xs.shape
        k, _, r_len, s_len = ws.shape
    elif phase == "bp":
        dys, ws = nonzero("dy", need("dy", dy)), nonzero("w", need("w", w))
        if input_hw is None:
            shaped = x if x is not None else mask
            input_hw = tuple(need("input_hw (or x or mask)", shaped).shape[2:])
        effectual = conv_bp(dys, ws, stride, pad, input_hw, mask=mask)
        n, k = dys.shape[:2]
        _, c, r_len, s_len = ws.shape
        h, wd = input_hw
    else:
        xs, dys = nonzero("x", need("x", x)), nonzero("dy", need("dy", dy))
        if kernel_hw is None:
            kernel_hw = tuple(need("kernel_hw (or w)", w).shape[2:])
        effectual = conv_wg(xs, dys, stride, pad, kernel_hw)
        n, c, h, wd = xs.shape
        k = dys.shape[1]
        r_len, s_len = kernel_hw
    out_h = output_size(h, r_len, stride, pad)
    out_w = output_size(wd, s_len, stride, pad)
    dense = (n * k * c * _valid_pairs(h, out_h, r_len, stride, pad)
             * _valid_pairs(wd, out_w, s_len, stride, pad))
    return dense, int(np.asarray(effectual).sum())


# -- row primitives -----------------------------------------------------------

def _as_row(name, value, allow_bool=False):
    return _as_int_array(name, value, 1, allow_bool=allow_bool)[0]


def row_output_length(phase, a_len, b_len, stride, pad, out_len=None):
    """Length of the output row of a primitive, checked against the operands.

    FF: ``a`` is an input row (W), ``b`` a filter row (S), output F.
    BP: ``a`` is a ``dy`` row (F), ``b`` a filter row (S), output W (``out_len``).
    WG: ``a`` is a ``dy`` row (F), ``b`` an input row (W), output S (``out_len``).
    """
    _check_phase(phase)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    a_len = _check_int("len(a)", a_len, 1)
    b_len = _check_int("len(b)", b_len, 1)
    if phase == "ff":
        length = output_size(a_len, b_len, stride, pad)
        if out_len is not None and out_len != length:
            raise ValueError(f"out_len must be {length} for this FF row, not {out_len!r}")
        return length
    if out_len is None:
        what = "the input row length W" if phase == "bp" else "the kernel width S"
        raise ValueError(f"phase {phase} needs out_len ({what})")
    out_len = _check_int("out_len", out_len, 1)
    in_len, kernel = (out_len, b_len) if phase == "bp" else (b_len, out_len)
    expected = output_size(in_len, kernel, stride, pad)
    if a_len != expected:
        raise ValueError(
            f"len(a) must be {expected} for a {phase} row with input {in_len}, "
            f"kernel {kernel}, stride {stride}, pad {pad}, not {a_len}")
    return out_len


@functools.lru_cache(maxsize=4096)
def _row_index_pairs(phase, a_len, b_len, out_len, stride, pad):
    """``(a_index, b_index, o_index)`` of every dense MAC of a row primitive
    (cached: shared between calls, read-only)."""
    if phase == "ff":        # o[f] += a[fU+s-P] * b[s]
        f, s = np.meshgrid(np.arange(out_len), np.arange(b_len), indexing="ij")
        a_index, b_index, o_index = f * stride + s - pad, s, f
        valid = (a_index >= 0) & (a_index < a_len)
    elif phase == "bp":      # o[fU+s-P] += a[f] * b[s]
        f, s = np.meshgrid(np.arange(a_len), np.arange(b_len), indexing="ij")
        a_index, b_index, o_index = f, s, f * stride + s - pad
        valid = (o_index >= 0) & (o_index < out_len)
    else:                    # o[s] += a[f] * b[fU+s-P]
        f, s = np.meshgrid(np.arange(a_len), np.arange(out_len), indexing="ij")
        a_index, b_index, o_index = f, f * stride + s - pad, s
        valid = (b_index >= 0) & (b_index < b_len)
    pairs = a_index[valid], b_index[valid], o_index[valid]
    for array in pairs:
        array.setflags(write=False)
    return pairs


def _row_setup(phase, a, b, stride, pad, out_len, mask):
    a = _as_row("a", a)
    b = _as_row("b", b)
    out_len = row_output_length(phase, a.size, b.size, stride, pad, out_len)
    mask = _check_row_mask(phase, mask, out_len)
    pairs = _row_index_pairs(phase, a.size, b.size, out_len, stride, pad)
    return a, b, out_len, mask, pairs


def _check_row_mask(phase, mask, out_len):
    if mask is None:
        return None
    if phase != "bp":
        raise ValueError(f"an output mask applies to phase bp only, not {phase}")
    mask = _as_row("mask", mask, allow_bool=True)
    if mask.size != out_len:
        raise ValueError(f"mask must have length {out_len}, not {mask.size}")
    return mask


def row_primitive(phase, a, b, stride, pad, out_len=None, mask=None):
    """One row primitive (docs/SPEC.md, Row primitives), exact.

    Parameters
    ----------
    phase : {"ff", "bp", "wg"}
    a : integer row
        The streamed (sparse) operand: an input row (FF) or a ``dy`` row (BP, WG).
    b : integer row
        The stationary operand: a filter row (FF, BP) or an input row (WG).
    stride, pad : int
    out_len : int
        Output length; derived for FF, required for BP (W) and WG (S).
    mask : row or None
        BP only: outputs where ``mask`` is zero are not computed (exactly 0).

    Returns
    -------
    numpy int64 row of length ``out_len``.
    """
    return row_primitives(phase, _as_row("a", a)[None], _as_row("b", b)[None], stride, pad,
                          out_len, mask)[0]


def row_primitives(phase, a, b, stride, pad, out_len=None, mask=None):
    """:func:`row_primitive` of many primitives of the same geometry at once.

    ``a`` and ``b`` are 2-D: one streamed and one stationary row per
    primitive (``a[i]`` with ``b[i]``); ``mask`` (BP) is one row shared by
    all. Returns the ``int64`` output rows, one per primitive.
    """
    a = _as_int_array("a", a, 2)[0]
    b = _as_int_array("b", b, 2)[0]
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must hold as many rows, not {a.shape[0]} and {b.shape[0]}")
    out_len = row_output_length(phase, a.shape[1], b.shape[1], stride, pad, out_len)
    mask = _check_row_mask(phase, mask, out_len)
    a_index, b_index, o_index = _row_index_pairs(phase, a.shape[1], b.shape[1], out_len,
                                                 stride, pad)
    _check_no_overflow(a, b, max(a.shape[1], b.shape[1]))
    out = np.zeros((out_len, a.shape[0]), dtype=np.int64)
    np.add.at(out, o_index, (a[:, a_index] * b[:, b_index]).T)
    if mask is not None:
        out[mask == 0] = 0
    return out.T.copy()


def row_macs(phase, a, b, stride, pad, out_len=None, mask=None):
    """``(dense_macs, effectual_macs)`` of one row primitive (see :func:`count_macs`)."""
    a, b, out_len, mask, (a_index, b_index, o_index) = _row_setup(
        phase, a, b, stride, pad, out_len, mask)
    effectual = (a[a_index] != 0) & (b[b_index] != 0)
    if mask is not None:
        effectual &= mask[o_index] != 0
    return int(a_index.size), int(np.count_nonzero(effectual))


def row_macs_per_element(phase, a, b, stride, pad, out_len=None, mask=None):
    """Per streamed element ``a[i]``: ``(dense_macs[i], effectual_macs[i])`` as arrays.

    ``dense_macs[i]`` counts the MACs of the dense primitive that ``a[i]``
    takes part in; ``effectual_macs[i]`` those that are effectual. Summed,
    they give :func:`row_macs`.
    """
    a, b, out_len, mask, (a_index, b_index, o_index) = _row_setup(
        phase, a, b, stride, pad, out_len, mask)
    effectual = (a[a_index] != 0) & (b[b_index] != 0)
    if mask is not None:
        effectual &= mask[o_index] != 0
    dense = np.bincount(a_index, minlength=a.size)
    return dense, np.bincount(a_index[effectual], minlength=a.size)
