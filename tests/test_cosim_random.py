"""The constrained-random regression (``python -m cosim random``): a fixed-seed handful on
the top level, the draw itself, and what a failure prints."""

import shlex

import numpy as np
import pytest

from cosim import random_layers
from cosim.__main__ import main as cosim_main
from cosim.random_layers import draw_case, run_random
from gen.compiler.layer import check_layer
from hw.config import PRESETS
from pruning import golden

SMALL, NARROW = PRESETS["small"], PRESETS["narrow"]


def test_a_case_is_drawn_from_its_seed_and_index_alone():
    first = draw_case(SMALL, 5, 17)
    again = draw_case(SMALL, 5, 17)
    assert first.describe() == again.describe()
    for name, value in first.operands.items():
        assert np.array_equal(value, again.operands[name])
    assert draw_case(SMALL, 5, 18).describe() != first.describe()
    assert first.command("small") == "python -m cosim random --seed 5 --case 17 --config small"


def test_the_draw_covers_what_the_config_supports():
    configs = [config for config in (SMALL, NARROW) for _ in range(300)]
    drawn = [draw_case(config, 3, index % 300) for index, config in enumerate(configs)]
    phases = {case.phase for case in drawn}
    masks = {case.mask_kind for case in drawn if case.phase == "bp"}
    strides = {case.stride for case in drawn}
    pads = {case.pad for case in drawn}
    kernels = {case.kernel for case in drawn}
    assert phases == {"ff", "bp", "wg"} and masks == {"relu", "random", "none"}
    assert strides == set(range(1, SMALL.max_stride + 1))
    assert pads == set(range(SMALL.max_pad + 1))
    assert max(max(k) for k in kernels) == SMALL.max_kernel
    assert any(r != s for r, s in kernels)
    widths = [(c.operands["x"] if "x" in c.operands else c.operands["dy"]).shape[3]
              for c in drawn]
    assert max(widths) > SMALL.max_row            # rows that need tiling
    assert any(c.capacity is not None for c in drawn) and any(c.patterns for c in drawn)
    assert {c.values for c in drawn} == set(random_layers._VALUE_KINDS)
    assert any(all(not v.any() for k, v in c.operands.items() if k != "kernel")
               for c in drawn)                    # all zero
    assert any(c.densities["x"] == 1.0 and c.densities["dy"] == 1.0 for c in drawn)
    saturating = 0
    for case, config in zip(drawn, configs):
        spec = check_layer(config, case.phase, **case.operands, stride=case.stride,
                           pad=case.pad)
        assert spec.x is None or spec.x.min() >= config.data_min
        if config is NARROW:
            _, saturated = golden.saturating_phase(
                spec.phase, acc_width=config.acc_width, x=spec.x, w=spec.w, dy=spec.dy,
                mask=spec.mask, stride=spec.stride, pad=spec.pad, input_hw=spec.input_hw,
                kernel_hw=spec.kernel_hw)
            saturating += saturated
    assert saturating >= 10          # the narrow accumulator saturates on some


@pytest.mark.parametrize("config", [SMALL, NARROW], ids=["small", "narrow"])
def test_a_fixed_seed_handful_passes_on_the_rtl(config):
    results = run_random(config, seed=11, indices=range(10), jobs=1, progress=False)
    failures = [f"case {r.case.index}: {r.error}" for r in results if not r.passed]
    assert not failures, "\n".join(failures)
    assert all(r.entry["dense_cycles"] > 0 for r in results)


def test_a_failing_case_prints_the_command_that_reproduces_it(monkeypatch, capsys, tmp_path):
    real = random_layers.run_case

    def broken(config, case, **options):
        if case.index == 1:
            raise RuntimeError("RTL result differs from the golden model first at (0, 0, 0, 0)")
        return real(config, case, **options)

    monkeypatch.setattr(random_layers, "run_case", broken)
    with pytest.raises(SystemExit) as stop:
        cosim_main(["random", "--seed", "4", "--count", "3", "--config", "small", "--jobs", "1",
                    "--json", "", "--save", str(tmp_path)])
    assert stop.value.code == 1
    out = capsys.readouterr().out
    assert "case 1 FAILED" in out and "differs from the golden model" in out
    assert "reproduce: python -m cosim random --seed 4 --case 1 --config small" in out
    assert out.rstrip().endswith("2 passed, 1 failed")
    # The operands are saved, and the printed layer command runs them alone.
    case = draw_case(SMALL, 4, 1)
    layer_command = next(line for line in out.splitlines() if "operands in" in line)
    words = shlex.split(layer_command.split(": ", 1)[1])
    assert words[:4] == ["python", "-m", "cosim", "layer"]
    for name, value in case.operands.items():
        if name != "kernel":
            assert np.array_equal(np.load(tmp_path / "seed4-case1" / f"{name}.npy"), value)
    cosim_main(words[3:])
    spec = check_layer(SMALL, case.phase, **case.operands, stride=case.stride, pad=case.pad)
    assert np.load(tmp_path / "seed4-case1" / "out.npy").shape == spec.output_shape


def test_a_session_that_hangs_fails_its_case_and_the_run_goes_on(monkeypatch):
    from cosim import accel_jobs

    monkeypatch.setattr(accel_jobs, "timeout_cycles", lambda config, run: 50)
    results = run_random(SMALL, seed=11, indices=[0, 1], jobs=1, progress=False)
    assert [r.passed for r in results] == [False, False]
    assert all("hangs" in r.error for r in results)


@pytest.mark.parametrize("arguments,error,message", [
    (dict(seed=-1), ValueError, "seed must be >= 0, not -1"),
    (dict(seed="1"), TypeError, "seed must be an int, not '1'"),
    (dict(indices=[0, 2.5]), TypeError, "case index must be an int, not 2.5"),
    (dict(phases=["fw"]), ValueError, "phases must be some of ff, bp, wg, not \\('fw',\\)"),
    (dict(jobs=0), ValueError, "jobs must be a positive int, not 0"),
    (dict(config=SMALL.replace(skipping=False)), ValueError, "is dense-only"),
])
def test_bad_arguments_are_refused_before_anything_runs(arguments, error, message):
    options = {**dict(config=SMALL, seed=1, indices=[0], phases=("ff",), jobs=1), **arguments}
    config = options.pop("config")
    with pytest.raises(error, match=message):
        run_random(config, progress=False, **options)
