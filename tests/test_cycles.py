"""The cycle model's front end: ``estimate_layer`` and ``python -m gen estimate``.

How close its cycles are to the RTL's is checked where the RTL runs: every
case of the co-simulation regression compares them
(``tests/test_cosim_accelerator.py``, ``make cosim``).
"""

import json

import numpy as np
import pytest

from gen.__main__ import main
from gen.compiler.layer import STATS_KEYS
from gen.model.cycles import simulate
from gen.model.estimate import estimate_layer
from gen.model.trace import Trace
from hw.config import PRESETS
from pruning import golden

SMALL = PRESETS["small"]


def _layer(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-9, 10, (1, 3, 6, 7)) * (rng.random((1, 3, 6, 7)) < 0.5)
    w = rng.integers(-9, 10, (5, 3, 3, 3))
    dy = rng.integers(-9, 10, (1, 5, 6, 7)) * (rng.random((1, 5, 6, 7)) < 0.2)
    return x, w, dy


@pytest.mark.parametrize("phase", ["ff", "bp", "wg"])
def test_estimate_counts_the_macs_of_the_golden_model(phase):
    x, w, dy = _layer()
    operands = {"ff": dict(x=x, w=w), "bp": dict(dy=dy, w=w, mask=(x > 0).astype(int)),
                "wg": dict(x=x, dy=dy, kernel=(3, 3))}[phase]
    dense_macs, effectual = golden.count_macs(phase, **{k: v for k, v in operands.items()
                                                        if k != "kernel"},
                                              stride=1, pad=1, input_hw=(6, 7),
                                              kernel_hw=(3, 3))
    for dense in (False, True):
        stats = estimate_layer(SMALL, phase, **operands, stride=1, pad=1, dense=dense)
        assert set(STATS_KEYS) | {"runs", "load_beats", "output_beats"} <= set(stats)
        assert (stats["dense_macs"], stats["effectual_macs"]) == (dense_macs, effectual)
        # Sparse mode issues exactly the effectual MACs, dense mode every valid one.
        assert stats["issued_macs"] == (dense_macs if dense else effectual)
        assert stats["backend"] == "model" and stats["mode"] == ("dense" if dense else "sparse")
        assert 0 < stats["busy_cycles"] <= stats["cycles"]
        assert stats["stall_cycles"] == stats["cycles"] - stats["busy_cycles"]
        # At most one MAC per PE per cycle.
        assert stats["cycles"] * SMALL.pes >= stats["issued_macs"]


def test_empty_program_takes_no_cycles():
    assert simulate(SMALL, Trace.empty(0, SMALL.pes)).cycles == 0
    x, w, _ = _layer()
    stats = estimate_layer(SMALL, "ff", x=np.zeros_like(x), w=w, stride=1, pad=1)
    assert stats["cycles"] == 0 and stats["runs"] == 0


def test_estimate_refuses_bad_input():
    x, w, _ = _layer()
    with pytest.raises(ValueError, match="phase must be one of"):
        estimate_layer(SMALL, "xx", x=x, w=w)
    with pytest.raises(ValueError, match="unsupported stride 9"):
        estimate_layer(SMALL, "ff", x=x, w=w, stride=9)
    with pytest.raises(ValueError, match="dense-only"):
        estimate_layer(SMALL.replace(skipping=False), "ff", x=x, w=w, pad=1)


def test_command_line_writes_the_stats_of_cosim_layer(tmp_path, capsys):
    x, w, _ = _layer(1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    stats_path = tmp_path / "out" / "stats.json"
    main(["estimate", "--phase", "ff", "--x", str(tmp_path / "x.npy"), "--w",
          str(tmp_path / "w.npy"), "--stride", "1", "--pad", "1", "--config", "small",
          "--stats", str(stats_path)])
    stats = json.loads(stats_path.read_text())
    assert set(STATS_KEYS) <= set(stats)
    main(["estimate", "--phase", "ff", "--x", str(tmp_path / "x.npy"), "--w",
          str(tmp_path / "w.npy"), "--stride", "1", "--pad", "1", "--config", "small",
          "--stats", str(stats_path), "--program", str(tmp_path / "program.json")])
    program = json.loads((tmp_path / "program.json").read_text())
    assert len(program["runs"]) == stats["runs"]
    assert sum(len(beats) for run in program["runs"] for beats in run["loads"].values()) == \
        stats["load_beats"]
    assert program["runs"][0]["registers"]["COMMANDS"] == program["runs"][0]["entries"]["program"]
    assert stats == estimate_layer(SMALL, "ff", x=x, w=w, stride=1, pad=1)
    assert "cycles predicted" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["estimate", "--phase", "bp", "--w", str(tmp_path / "w.npy"), "--stride", "1",
              "--pad", "1", "--config", "small", "--stats", str(stats_path)])
    assert "phase bp needs dy" in capsys.readouterr().err


def test_queue_timing_counts_the_tail_a_following_primitive_waits_for():
    """``tail_cycles``: the issue cycles of a primitive's last ``depth - per_beat + 1``
    elements with a MAC (all of them when fewer), what the cycle model counts the next
    primitive's room in the element queue from."""
    from gen.compiler.work import queue_timing

    cycles = np.array([3, 0, 2, 5, 1, 0], np.int64)      # 0: dropped, never queued
    *_, last_mac, tail_cycles, _ = queue_timing(cycles, 2, 3)
    assert (last_mac, tail_cycles) == (1, 2 + 5 + 1)
    *_, tail_cycles, _ = queue_timing(np.array([0, 4], np.int64), 2, 3)
    assert tail_cycles == 4
    *_, tail_cycles, _ = queue_timing(np.array([3, 2, 5, 1], np.int64), 3, 4)
    assert tail_cycles == 3 + 2 + 5 + 1
