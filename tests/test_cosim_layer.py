"""Whole layers through the host driver on the RTL (PE back end), and its command line."""

import json

import numpy as np
import pytest

from cosim.__main__ import main as cosim_main
from cosim.layer import STATS_KEYS, check_layer, run_layer
from hw.config import PRESETS
from pruning import capture_digits, golden

SMALL = PRESETS["small"]


def sparse(rng, shape, density, limit=300):
    return rng.integers(-limit, limit + 1, size=shape) * (rng.random(shape) < density)


@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("kernel,stride,pad,hw", [((3, 3), 1, 1, (6, 7)), ((1, 1), 2, 0, (5, 9)),
                                                  ((5, 3), 2, 2, (7, 8))])
def test_random_layers_bit_exact(phase, kernel, stride, pad, hw):
    rng = np.random.default_rng(sum(kernel) * 10 + stride)
    x = sparse(rng, (2, 3, *hw), 0.5)
    w = sparse(rng, (2, 3, *kernel), 0.9)
    out_hw = [golden.output_size(i, r, stride, pad) for i, r in zip(hw, kernel)]
    dy = sparse(rng, (2, 2, *out_hw), 0.3)
    mask = (x > 0) if phase == "bp" else None
    # The driver's slicing and assembly; the array has tests of its own.
    output, stats = run_layer(SMALL, phase, x=x, w=w if phase != "wg" else None,
                              dy=None if phase == "ff" else dy, mask=mask, stride=stride,
                              pad=pad, kernel=kernel, backend="pe")
    expected = golden.conv_phase(phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad)
    assert output.dtype == np.int64 and np.array_equal(output, expected)
    dense, effectual = golden.count_macs(phase, x=x, w=w, dy=dy, mask=mask, stride=stride,
                                         pad=pad)
    assert (stats["dense_macs"], stats["effectual_macs"]) == (dense, effectual)
    assert stats["issued_macs"] == effectual
    assert set(STATS_KEYS) <= set(stats)
    assert 0 < stats["pe_utilization"] <= 1


def test_captured_layer_all_phases_dense_and_sparse():
    layer = capture_digits(0.9, batch_size=1, seed=0)[2]   # conv3: 32 -> 32 channels, 4x4
    # The first 8 input and output channels of the real tensors keep the run short.
    x, w, dy, mask = layer.x[:, :8], layer.w[:8, :8], layer.dy[:, :8], layer.mask[:, :8]
    for phase in golden.PHASES:
        operands = dict(x=x, w=w, dy=dy, mask=mask if phase == "bp" else None)
        if phase == "ff":
            operands["dy"] = None
        sparse_out, sparse_stats = run_layer(SMALL, phase, **operands, stride=layer.stride,
                                             pad=layer.pad)
        dense_out, dense_stats = run_layer(SMALL, phase, **operands, stride=layer.stride,
                                           pad=layer.pad, dense=True)
        assert np.array_equal(sparse_out, dense_out)
        assert dense_stats["issued_macs"] == dense_stats["dense_macs"]
        assert sparse_stats["cycles"] < dense_stats["cycles"]


def test_all_zero_input():
    x = np.zeros((1, 2, 5, 5), np.int64)
    w = np.ones((2, 2, 3, 3), np.int64)
    output, stats = run_layer(SMALL, "ff", x=x, w=w, stride=1, pad=1)
    assert not output.any() and stats["effectual_macs"] == 0


@pytest.mark.parametrize("changes,message", [
    (dict(stride=5), "unsupported stride 5: the small preset supports 1..4"),
    (dict(pad=7), "unsupported pad 7"),
    (dict(w=np.ones((2, 4, 3, 3), int)), "w has 4 input channels but x has 3"),
    (dict(x=np.full((1, 3, 5, 5), 1 << 20)), "outside the 16-bit range"),
    (dict(w=None), "phase ff needs w"),
    (dict(w=np.ones((2, 3, 12, 12), int)), "unsupported kernel 12x12"),
    (dict(x=np.ones((1, 3, 5, 5))), "x must hold integers, not float64"),
])
def test_bad_layers_are_refused_before_simulation(changes, message):
    args = dict(x=np.ones((1, 3, 5, 5), int), w=np.ones((2, 3, 3, 3), int), stride=1, pad=1)
    args.update(changes)
    with pytest.raises(ValueError, match=message):
        check_layer(SMALL, "ff", **args)


def test_bp_and_wg_geometry_checks():
    w = np.ones((2, 3, 3, 3), int)
    with pytest.raises(ValueError, match="dy is 4x4 but the layer's output is 5x5"):
        check_layer(SMALL, "bp", dy=np.ones((1, 2, 4, 4), int), w=w, x=np.ones((1, 3, 5, 5), int),
                    stride=1, pad=1)
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 3, 5, 5\)"):
        check_layer(SMALL, "bp", dy=np.ones((1, 2, 5, 5), int), w=w, x=np.ones((1, 3, 5, 5), int),
                    mask=np.ones((1, 3, 6, 5), int), stride=1, pad=1)
    with pytest.raises(ValueError, match="phase wg needs the kernel size"):
        check_layer(SMALL, "wg", x=np.ones((1, 3, 5, 5), int), dy=np.ones((1, 2, 5, 5), int),
                    stride=1, pad=1)
    with pytest.raises(ValueError, match="a mask applies to phase bp only"):
        check_layer(SMALL, "ff", x=np.ones((1, 3, 5, 5), int), w=w,
                    mask=np.ones((1, 3, 5, 5), int), stride=1, pad=1)


def test_command_line_contract(tmp_path, capsys):
    rng = np.random.default_rng(3)
    x = sparse(rng, (2, 3, 7, 6), 0.5)
    dy = sparse(rng, (2, 4, 4, 3), 0.4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "dy.npy", dy)
    out, stats = tmp_path / "dw.npy", tmp_path / "stats.json"
    cosim_main(["layer", "--phase", "wg", "--x", str(tmp_path / "x.npy"), "--dy",
                str(tmp_path / "dy.npy"), "--kernel", "3", "3", "--stride", "2", "--pad", "1",
                "--out", str(out), "--stats", str(stats), "--config", "small"])
    assert np.array_equal(np.load(out), golden.conv_wg(x, dy, 2, 1, (3, 3)))
    written = json.loads(stats.read_text())
    for key in ("cycles", "dense_macs", "effectual_macs", "issued_macs", "pe_utilization",
                "saturated"):
        assert key in written
    # A bad input: one line on stderr, exit code 1, no traceback.
    np.save(tmp_path / "xf.npy", x.astype(float))
    with pytest.raises(SystemExit) as exit_info:
        cosim_main(["layer", "--phase", "ff", "--x", str(tmp_path / "xf.npy"), "--w",
                    str(tmp_path / "x.npy"), "--stride", "1", "--pad", "0", "--out", str(out),
                    "--stats", str(stats), "--config", "small"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "error: x must hold integers, not float64"
    assert "Traceback" not in err


@pytest.mark.parametrize("phase", golden.PHASES)
def test_layers_wider_than_max_row_are_tiled(phase):
    """Rows of 37 and 40 elements on the small preset (max_row 16): tiled, never refused."""
    rng = np.random.default_rng(40)
    for kernel, stride, pad, hw in [((3, 3), 1, 1, (3, 37)), ((5, 11), 2, 5, (6, 40)),
                                    ((1, 1), 4, 0, (2, 37))]:
        x = sparse(rng, (1, 2, *hw), 0.6)
        w = sparse(rng, (2, 2, *kernel), 0.9)
        out_hw = [golden.output_size(i, r, stride, pad) for i, r in zip(hw, kernel)]
        dy = sparse(rng, (1, 2, *out_hw), 0.4)
        mask = (x > 0) if phase == "bp" else None
        output, stats = run_layer(SMALL, phase, x=x, w=w if phase != "wg" else None,
                                  dy=None if phase == "ff" else dy, mask=mask, stride=stride,
                                  pad=pad, kernel=kernel, backend="pe")
        expected = golden.conv_phase(phase, x=x, w=w, dy=dy, mask=mask, stride=stride,
                                     pad=pad)
        assert np.array_equal(output, expected), (phase, kernel, stride, pad)
        dense, effectual = golden.count_macs(phase, x=x, w=w, dy=dy, mask=mask, stride=stride,
                                             pad=pad)
        assert (stats["dense_macs"], stats["effectual_macs"]) == (dense, effectual)


def test_dense_only_config_refuses_sparse_mode():
    """A build without the skipping logic cannot run sparse mode: refused before
    anything is built."""
    dense_only = SMALL.replace(skipping=False)
    x, w = np.ones((1, 2, 5, 5), int), np.ones((3, 2, 3, 3), int)
    with pytest.raises(ValueError, match=r"dense-only \(skipping=False\); run it in dense mode"):
        run_layer(dense_only, "ff", x=x, w=w, stride=1, pad=1)


@pytest.mark.parametrize("value,weight", [(40, 40), (40, -40), (127, -128)])
def test_saturated_sums_and_flag_on_the_top_level(value, weight):
    """Each output's 90 products of one sign leave the narrow preset's 18-bit range.
    The layer is split into pieces (few row groups): with 40 x 40 no piece saturates
    on its own, and the host's saturating sum of the pieces must clip and flag."""
    config = PRESETS["narrow"]
    x = np.full((1, 10, 3, 3), value)
    w = np.full((2, 10, 3, 3), weight)
    bound = config.acc_max if value * weight > 0 else config.acc_min
    for dense in (False, True):
        output, stats = run_layer(config, "ff", x=x, w=w, stride=1, pad=0, dense=dense)
        assert (output == bound).all() and stats["saturated"] == 1
    if abs(value * weight) == 1600:
        # 72 products of 40 x 40 fit: exact, no flag.
        output, stats = run_layer(config, "ff", x=x[:, :8], w=w[:, :8], stride=1, pad=0)
        assert (output == 72 * value * weight).all() and stats["saturated"] == 0
