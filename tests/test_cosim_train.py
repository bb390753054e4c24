"""Training on the RTL (cosim.train): every convolution of a step on the accelerator's top level.

``make train-rtl`` runs 50 steps of the default network; here a narrower
network runs one step, which exercises every phase of every layer on the
RTL and the lockstep comparison with the golden loop.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from cosim import train
from cosim.train import PHASES, RtlBackend, format_summary, train_rtl
from gen.model.cycles import TOLERANCE
from hw.config import PRESETS, AccelConfig
from pruning.integer_training import TrainingMismatch, TrainingSettings, golden_backend

SMALL = PRESETS["small"]
TINY = TrainingSettings(channels=(2, 4, 4), batch=4)


def test_one_step_on_the_rtl(tmp_path, capsys):
    summary = train_rtl(SMALL, TINY, 1, out=tmp_path, progress=False)
    assert summary["steps"] == 1 and summary["config"] == "small"
    phases = summary["phases"]
    for phase in ("ff", "bp", "wg"):
        totals = phases[phase]
        assert 0 < totals["effectual_macs"] < totals["dense_macs"]
        # Sparse mode skips work the dense baseline does on the same operands.
        assert 0 < totals["sparse_cycles"] < totals["dense_cycles"]
        error = abs(totals["model_sparse_cycles"] / totals["sparse_cycles"] - 1)
        assert error <= TOLERANCE, (phase, error)
    saved = json.loads((tmp_path / "train.json").read_text())
    (step,) = saved["steps"]
    assert [(c["layer"], c["phase"]) for c in step["convolutions"]] == PHASES
    assert all(c["dense_source"] == "model" and c["cycles"] > 0 for c in step["convolutions"])
    assert set(step["densities"]) == {"x", "dy", "dy_pruned", "mask"}
    for name in ("loss.png", "cycles.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("step   1: loss") and "cycles sparse (RTL)/dense (model)" in line
    report = format_summary(summary)
    assert "| all |" in report and "bit for bit" in report


def test_a_difference_on_the_rtl_stops_the_run_with_its_step_and_phase(monkeypatch):
    def differing(config, phase, **operands):
        raise RuntimeError("RTL result differs from the golden model first at (0, 0, 0, 0)")
    monkeypatch.setattr(train, "run_layer", differing)
    with RtlBackend(SMALL) as backend, pytest.raises(
            TrainingMismatch, match=r"step 1 conv1 ff on the RTL: RTL result differs"):
        backend("ff", label="step 1 conv1 ff", x=np.ones((1, 1, 8, 8), int),
                w=np.ones((2, 1, 3, 3), int), stride=1, pad=1)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="dense must be one of model, rtl, not 'fast'"):
        RtlBackend(SMALL, dense="fast")
    with pytest.raises(ValueError, match="dense-only"):
        RtlBackend(AccelConfig(skipping=False))
    with pytest.raises(ValueError, match="data_width 8 differs"):
        train_rtl(SMALL, TrainingSettings(data_width=8), 1)
    with pytest.raises(TypeError, match="settings"):
        train_rtl(SMALL, {"batch": 4}, 1)


def test_the_command_line_refuses_bad_arguments():
    result = subprocess.run([sys.executable, "-m", "cosim", "train-rtl", "--steps", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "must be a positive integer" in result.stderr
    result = subprocess.run([sys.executable, "-m", "cosim", "train-rtl", "--p", "1.5"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "p must be in [0, 1)" in result.stderr


@pytest.mark.parametrize("dense", ["model", "rtl"])
def test_golden_backend_and_rtl_backend_agree_on_a_layer(dense):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 50, size=(2, 2, 8, 8)) * (rng.random((2, 2, 8, 8)) < 0.5)
    w = rng.integers(-50, 51, size=(3, 2, 3, 3))
    expected, _ = golden_backend("ff", label="t", x=x, w=w, stride=1, pad=1, kernel=(3, 3))
    with RtlBackend(SMALL, dense=dense) as backend:
        result, report = backend("ff", label="t", x=x, w=w, stride=1, pad=1, kernel=(3, 3))
    assert np.array_equal(result, expected)
    assert report["dense_source"] == dense
    assert report["cycles"] > 0 and report["dense_cycles"] > report["cycles"]
    # Dense from the RTL or from the model: the model is within its tolerance of the RTL.
    assert abs(report["dense_cycles"] / report["model_dense"]["cycles"] - 1) <= TOLERANCE
    assert report["model_dense"]["energy_pj"] > report["model_sparse"]["energy_pj"]
