"""How a layer phase's output rows map onto the PE array: row enumeration per phase,
transposition, kernel-row blocks and splits.

FF rows ``y[n,k,e]`` accumulate over ``(c, r)``; BP rows ``dx[n,c,h]`` over
``(k, r)`` with ``e = (h + P - r) / U``; WG rows ``dw[k,c,b]`` over
``(r, n, e)``, where block ``b`` holds ``kernel_rows`` kernel rows ``r`` one
after the other (``S`` taps each; longer rows amortize the PE's per-row
cost, and a WG row of one kernel row has only ``S`` outputs). A row is named
by a key ``(i, j, l)`` in that order; ``j`` is the channel (FF ``k``, BP and
WG ``c``) along which rows share their streamed rows, which is how the PE
array splits them (docs/SPEC.md, "Row primitives").

``transposed`` (BP and WG, stride 1 only) swaps the streamed and the
stationary operand, so that rows share their streamed rows along another
dimension when the channels ``C`` do not fill the array (a first layer has
one). With stride 1 a row primitive is symmetric in its two rows: BP's
``dx[v] += dy[f] * w[s]`` at ``v = f + s - P`` is again a BP primitive with
the filter row streamed and the ``dy`` row (``F`` wide) as the kernel, so
the BP rows ``dx[n,c,h]`` of all ``(n, h)`` share the streamed row
``w[k,c,r]``: keys ``(c, n*H + h, 0)``. WG's ``dw[s] += dy[f] * x[f + s -
P]`` is an FF primitive of the ``x`` row with the ``dy`` row as the kernel,
so the rows ``dw[k,c,r]`` of all ``k`` share the streamed row
``x[n,c,e+r-P]``: keys ``(c, k, r)``. The MACs are the same pairs of
operands, so dense and effectual MACs do not change; only which operand is
compressed and skipped element by element (the streamed one) and which is
skipped row by row (the stationary one). ``task_phase`` and ``task_kernel``
are what the hardware then runs.

``splits`` cuts every row's primitives into that many consecutive pieces,
each a partial row of its own (a group per piece, the same members), which
the host adds: a layer with few row groups, or with rows longer than the
array's queues, gives the balancing too few, too large items (a first
layer's BP is one group of 16 rows whose work differs fourfold). The pieces
of the rows of a group stay aligned, so they still share their streamed rows.
"""

from __future__ import annotations

import numpy as np

from pruning import golden

from .tiling import row_tiling, wg_kernel_rows

__all__ = ["Mapping", "MIN_GROUPS", "MIN_PIECE"]

# Fewest row groups a layer is given (by splitting its rows) for the
# balancing of rows over the PEs to have something to work with, and the
# fewest primitives a piece of a split row keeps (each piece costs a row
# end and a drain).
MIN_GROUPS = 16
MIN_PIECE = 4


def _sizes(spec):
    """``(n, c, k, h, w, e, r, s)`` of a layer phase (a :class:`~gen.compiler.layer.LayerSpec`
    or anything with its fields: ``phase``, operands, ``input_hw``, ``kernel_hw``)."""
    h_len, w_len = spec.input_hw
    r_len, s_len = spec.kernel_hw
    e_len = golden.output_size(h_len, r_len, spec.stride, spec.pad)
    if spec.phase == "ff":
        n_len, c_len = spec.x.shape[:2]
        k_len = spec.w.shape[0]
    elif spec.phase == "bp":
        n_len, k_len = spec.dy.shape[:2]
        c_len = spec.w.shape[1]
    else:
        n_len, c_len = spec.x.shape[:2]
        k_len = spec.dy.shape[1]
    return n_len, c_len, k_len, h_len, w_len, e_len, r_len, s_len


class Mapping:
    """One way to run a layer phase on the array: shape, task geometry, kernel-row
    blocks, transposition and splits (see the module's notes).

    ``spec``: the layer phase (a :class:`~gen.compiler.layer.LayerSpec`, or its
    nonzero maps, :class:`~gen.compiler.layer.LayerMaps`); only shapes matter here.
    """

    def __init__(self, spec, *, kernel_rows=1, transposed=False, splits=1):
        phase = spec.phase
        self.phase, self.stride, self.pad = phase, spec.stride, spec.pad
        if isinstance(splits, bool) or not isinstance(splits, int):
            raise TypeError(f"splits must be an int, not {splits!r}")
        if splits < 1:
            raise ValueError(f"splits must be at least 1, not {splits!r}")
        if phase != "wg" and kernel_rows != 1:
            raise ValueError(f"kernel_rows is a WG parameter; {phase} rows hold one, "
                             f"not {kernel_rows}")
        self.splits, self.kernel_rows, self.transposed = splits, kernel_rows, transposed
        self._grids = {}
        (self.n_len, self.c_len, self.k_len, self.h_len, self.w_len, self.e_len, self.r_len,
         self.s_len) = _sizes(spec)
        self.shape = {"ff": (self.n_len, self.k_len, self.e_len),
                      "bp": (self.n_len, self.c_len, self.h_len),
                      "wg": (self.k_len, self.c_len, -(-self.r_len // kernel_rows))}[phase]
        self.task_phase, self.task_kernel = phase, self.s_len
        if transposed:
            if phase == "ff" or self.stride != 1 or kernel_rows != 1:
                raise ValueError(f"only BP and WG rows of stride 1 and one kernel row can be "
                                 f"transposed, not {phase} with stride {self.stride}, "
                                 f"kernel_rows {kernel_rows}")
            self.task_phase = {"bp": "bp", "wg": "ff"}[phase]
            self.task_kernel = golden.output_size(self.w_len, self.s_len, self.stride, self.pad)
            self.shape = ((self.c_len, self.n_len * self.h_len, 1) if phase == "bp"
                          else (self.c_len, self.k_len, self.r_len))

    def __repr__(self):
        return (f"Mapping({self.phase}, shape={self.shape}, transposed={self.transposed}, "
                f"kernel_rows={self.kernel_rows}, splits={self.splits})")

    @classmethod
    def candidates(cls, config, spec, pes):
        """The mappings the compiler chooses between for ``pes`` PEs, split as
        :meth:`split` says: the natural rows (WG rows holding as many kernel rows as
        fit, :func:`~gen.compiler.tiling.wg_kernel_rows`), and the transposed ones when
        the channels ``C`` of a BP or WG layer do not fill the PEs and the layer can be
        transposed (stride 1, the ``dy`` row no wider than ``max_kernel``)."""
        kernel_rows = wg_kernel_rows(config, spec.kernel_hw) if spec.phase == "wg" else 1
        natural = cls(spec, kernel_rows=kernel_rows)
        mappings = [natural]
        if spec.phase != "ff" and spec.stride == 1 and natural.c_len < pes and \
                golden.output_size(natural.w_len, natural.s_len, spec.stride, spec.pad) \
                <= config.max_kernel:
            mappings.append(cls(spec, transposed=True))
        return [mapping.split(config, spec, pes) for mapping in mappings]

    def split(self, config, spec, pes):
        """This mapping, its rows split into pieces when the layer has fewer than
        ``MIN_GROUPS`` row groups, or when a row has more primitives than the array's
        queues hold (``array_queue_depth``): a PE can run ahead of the slowest one only
        by a queue, so the balancing works on rows no longer than that. A piece keeps
        at least ``MIN_PIECE`` primitives and at least as many as the row has outputs
        (each piece is drained)."""
        outer, channels, inner = self.shape
        groups = outer * -(-channels // pes) * inner
        longest = len(self.primitives(0, [0], 0)[0])
        wanted = max(-(-MIN_GROUPS // groups), -(-longest // config.array_queue_depth))
        splits = max(1, min(wanted, longest // max(MIN_PIECE, self._longest_output(config))))
        if splits == 1:
            return self
        return type(self)(spec, kernel_rows=self.kernel_rows, transposed=self.transposed,
                          splits=splits)

    def _longest_output(self, config):
        """Outputs of the longest tile of the first row."""
        if self.phase == "wg" and not self.transposed:
            return self.s_len * len(self.block_rows(0))
        return max(columns.stop - columns.start for columns, _ in self.tiling(config))

    def tiling(self, config):
        """:func:`~gen.compiler.tiling.row_tiling` of this mapping's rows."""
        return row_tiling(config, self.task_phase, in_width=self.w_len, kernel=self.task_kernel,
                          stride=self.stride, pad=self.pad)

    def block_rows(self, block):
        """The kernel rows ``r`` of WG block ``block``."""
        first = block * self.kernel_rows
        return range(first, min(first + self.kernel_rows, self.r_len))

    def out_len(self, block):
        """Outputs of a (natural) WG row of block ``block``: its kernel rows times S."""
        return self.s_len * len(self.block_rows(block))

    @property
    def wg_rows(self):
        """Rows hold WG kernel rows (natural WG): the row is one tile of ``out_len``."""
        return self.phase == "wg" and not self.transposed

    # -- operands ----------------------------------------------------------------------

    def operand_rows(self, spec):
        """``(a_rows, b_rows, mask_rows)``: the streamed and the stationary tensor of
        ``spec`` as 2-D arrays of rows, and the BP mask rows (all ones without a mask;
        one unused row for FF and WG), in the order :meth:`primitives` indexes them."""
        streamed, stationary = {("ff", False): (spec.x, spec.w), ("bp", False): (spec.dy, spec.w),
                                ("wg", False): (spec.dy, spec.x), ("bp", True): (spec.w, spec.dy),
                                ("wg", True): (spec.x, spec.dy)}[self.phase, self.transposed]
        a_rows = np.ascontiguousarray(streamed.reshape(-1, streamed.shape[-1]))
        b_rows = np.ascontiguousarray(stationary.reshape(-1, stationary.shape[-1]))
        if self.phase != "bp":
            masks = np.ones((1, self.w_len), np.uint8)       # never read
        elif spec.mask is None:       # BP without a mask computes every output
            masks = np.ones((self.n_len * self.c_len * self.h_len, self.w_len), np.uint8)
        else:
            masks = np.ascontiguousarray(spec.mask.reshape(-1, self.w_len) != 0, np.uint8)
        return a_rows, b_rows, masks

    def primitives(self, i, js, l):
        """The primitives of the rows ``(i, j, l)`` for the channels ``js``, in task
        order: ``(a_index, b_index, offset, mask_index)``. ``a_index`` (T,) is
        the streamed row of each, ``b_index`` (T, len(js)) the stationary row of each
        member (-1: a placeholder, a primitive the other rows of the group have and
        this one has not: transposed BP rows at an image's edge), ``offset`` (T,) the
        WG output index of tap 0 (``r * S`` within the block), ``mask_index`` (len(js),)
        the BP mask row of each member. Row numbers index :meth:`operand_rows`."""
        js = np.asarray(js, np.int64)
        stride, pad = self.stride, self.pad
        n_len, c_len, k_len = self.n_len, self.c_len, self.k_len
        h_len, e_len, r_len = self.h_len, self.e_len, self.r_len
        mask_index = np.zeros(len(js), np.int64)
        if self.transposed and self.phase == "bp":
            c = i
            n, h = np.divmod(js, h_len)
            k, r = self._grid(range(k_len), range(r_len))
            e = h[None, :] + pad - r[:, None]
            valid = (e >= 0) & (e < e_len)
            b_index = np.where(valid, (n[None, :] * k_len + k[:, None]) * e_len + e, -1)
            a_index = (k * c_len + c) * r_len + r
            mask_index = (n * c_len + c) * h_len + h
            return a_index, b_index, np.zeros_like(a_index), mask_index
        if self.transposed:
            c, r = i, l
            n, e = self._grid(range(n_len), range(e_len))
            keep = (e + r - pad >= 0) & (e + r - pad < h_len)
            n, e = n[keep], e[keep]
            a_index = (n * c_len + c) * h_len + e + r - pad
            b_index = (n[:, None] * k_len + js[None, :]) * e_len + e[:, None]
            return a_index, b_index, np.zeros_like(a_index), mask_index
        if self.phase == "ff":
            n, e = i, l
            c, r = self._grid(range(c_len), range(r_len))
            h = e * stride + r - pad
            keep = (h >= 0) & (h < h_len)
            c, r, h = c[keep], r[keep], h[keep]
            a_index = (n * c_len + c) * h_len + h
            b_index = (js[None, :] * c_len + c[:, None]) * r_len + r[:, None]
            return a_index, b_index, np.zeros_like(a_index), mask_index
        if self.phase == "bp":
            n, h = i, l
            k, r = self._grid(range(k_len), range(r_len))
            moved = h + pad - r
            keep = (moved % stride == 0) & (moved // stride >= 0) & (moved // stride < e_len)
            k, r, e = k[keep], r[keep], moved[keep] // stride
            a_index = (n * k_len + k) * e_len + e
            b_index = (k[:, None] * c_len + js[None, :]) * r_len + r[:, None]
            mask_index = (n * c_len + js) * h_len + h
            return a_index, b_index, np.zeros_like(a_index), mask_index
        k, block = i, l
        rows = self.block_rows(block)
        # Kernel rows innermost: the input rows of consecutive primitives slide by the
        # stride, so a PE's scratchpad keeps most of them for the next ones.
        n, e, r = self._grid(range(n_len), range(e_len), rows)
        h = e * stride + r - pad
        keep = (h >= 0) & (h < h_len)
        r, n, e, h = r[keep], n[keep], e[keep], h[keep]
        a_index = (n * k_len + k) * e_len + e
        b_index = (n[:, None] * c_len + js[None, :]) * h_len + h[:, None]
        return a_index, b_index, (r - rows[0]) * self.s_len, mask_index

    def _grid(self, *ranges):
        """Every combination of the values of ``ranges`` (the first slowest), one flat
        array per range; made once per mapping (read only: :meth:`primitives` asks for
        the same grids for every row)."""
        key = tuple((r.start, r.stop) for r in ranges)
        if key not in self._grids:
            grids = [v.ravel() for v in np.meshgrid(*(np.arange(r.start, r.stop)
                                                      for r in ranges), indexing="ij")]
            for grid in grids:
                grid.flags.writeable = False
            self._grids[key] = grids
        return self._grids[key]

    def output_view(self, output, key, columns):
        """The part of the layer's ``output`` that row ``key``'s ``columns`` hold,
        shaped like the row's values (a view: assign or add into it)."""
        if self.transposed and self.phase == "bp":
            c, position, _ = key
            n, h = divmod(position, self.h_len)
            return output[n, c, h, columns]
        if self.transposed:
            c, k, r = key
            return output[k, c, r, columns]
        if self.phase != "wg":
            return output[(*key, columns)]
        k, c, block = key
        rows = self.block_rows(block)
        return output[k, c, rows.start:rows.stop].reshape(-1)[columns]
