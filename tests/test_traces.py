"""The fast traces (gen/traces.py) against the compiled program's (gen/program.py).

The cycle model of whole networks lays out the mapping by index arithmetic
instead of compiling every row; its traces must be those of the program the
RTL runs, bundle by bundle and PE by PE.
"""

import numpy as np
import pytest

from cosim.regression import cases
from gen.cycles import simulate, trace_run
from gen.layer import check_layer, compile_layer
from gen.traces import LayerMaps, layer_traces
from hw.config import PRESETS

FIELDS = ("beats", "row_last", "out_len", "takes", "works", "issue", "last_issue", "elements")


def _program_traces(config, spec, dense, capacity=None):
    _, runs = compile_layer(config, spec, dense=dense, capacity=capacity)
    return [trace_run(config, run) for run in runs]


def _assert_same(expected, got):
    assert len(got) == len(expected), "number of runs"
    for number, (want, have) in enumerate(zip(expected, got)):
        for name in FIELDS:
            assert np.array_equal(getattr(want, name), getattr(have, name)), (number, name)
        assert want.issued_macs == have.issued_macs, number
        # Buffer entries: the compiler shares equal rows by value, the traces by
        # which row they are (and rows of zeros by value), so never fewer.
        for name in ("program", "outputs"):
            assert want.entries[name] == have.entries[name], (number, name)
        for name in ("stationary", "mask", "operand"):
            assert want.entries[name] <= have.entries[name], (number, name)


def _cases(preset):
    config = PRESETS[preset]
    return [(config, case) for case in cases(config, quick=False)
            if not case.name.startswith("digits")]


SMALL_CASES = _cases("small")


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("config, case", SMALL_CASES,
                         ids=[f"{c.name}-{c.phase}" for _, c in SMALL_CASES])
def test_traces_equal_the_programs(config, case, dense):
    spec = check_layer(config, case.phase, **case.operands, stride=case.stride, pad=case.pad)
    expected = _program_traces(config, spec, dense, case.capacity)
    got, effectual = layer_traces(config, LayerMaps.of(spec), dense=dense,
                                  capacity=case.capacity)
    _assert_same(expected, got)
    assert sum(simulate(config, t).cycles for t in got) == \
        sum(simulate(config, t).cycles for t in expected)


@pytest.mark.parametrize("phase", ["ff", "bp", "wg"])
def test_two_lanes_and_long_kernels(phase):
    # lanes=2 (ceil per element), a 7x7 kernel: WG rows of two kernel rows of 16.
    config = PRESETS["dual"].replace(max_row=16)
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, (1, 2, 9, 11)) * (rng.random((1, 2, 9, 11)) < 0.6)
    w = rng.integers(-3, 4, (3, 2, 7, 7))
    dy = rng.integers(-3, 4, (1, 3, 5, 7)) * (rng.random((1, 3, 5, 7)) < 0.3)
    operands = {"ff": dict(x=x, w=w), "bp": dict(dy=dy, w=w, mask=(x > 0)),
                "wg": dict(x=x, dy=dy, kernel=(7, 7))}[phase]
    spec = check_layer(config, phase, **operands, stride=1, pad=1)
    for dense in (False, True):
        _assert_same(_program_traces(config, spec, dense),
                     layer_traces(config, LayerMaps.of(spec), dense=dense)[0])


def test_bp_without_mask_and_effectual_count():
    config = PRESETS["small"]
    rng = np.random.default_rng(1)
    w = rng.integers(-3, 4, (2, 3, 3, 3))
    dy = rng.integers(-3, 4, (2, 2, 4, 4)) * (rng.random((2, 2, 4, 4)) < 0.4)
    spec = check_layer(config, "bp", dy=dy, w=w, x=np.ones((2, 3, 4, 4), int), stride=1, pad=1)
    traces, effectual = layer_traces(config, LayerMaps.of(spec), dense=False)
    _assert_same(_program_traces(config, spec, False), traces)
    from pruning import golden
    assert effectual == golden.count_macs("bp", dy=dy, w=w, stride=1, pad=1, input_hw=(4, 4),
                                          kernel_hw=(3, 3))[1]


def test_dense_only_config_refuses_sparse_mode():
    config = PRESETS["small"].replace(skipping=False)
    spec = check_layer(config, "ff", x=np.ones((1, 1, 4, 4), int), w=np.ones((1, 1, 3, 3), int))
    with pytest.raises(ValueError, match="dense-only"):
        layer_traces(config, LayerMaps.of(spec), dense=False)
