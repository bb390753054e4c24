"""The accelerator top level on Verilator: whole layers through AXI, registers, errors.

The quick subset of the regression (:mod:`cosim.regression`) runs here, one
case per test so that pytest workers share them; ``make cosim`` runs all.
"""

import numpy as np
import pytest

from cosim import runner
from cosim.regression import cases, run_case
from gen.cycles import TOLERANCE
from gen.primitives import LayerRows
from gen.program import Capacity, build_runs
from hw.buffer import entry_beats
from hw.config import PRESETS
from hw.layouts import command_layout
from hw.top import COUNTERS, DESTINATIONS, ERROR_BITS, REGISTERS, STATUS_BITS

SMALL = PRESETS["small"]
QUICK = cases(SMALL, quick=True)


@pytest.mark.parametrize("case", QUICK, ids=[f"{c.name}-{c.phase}" for c in QUICK])
def test_quick_regression(case):
    entry = run_case(SMALL, case)     # raises on any output that is not bit-exact
    assert entry["dense_macs"] > 0
    # The dense mode is the baseline: it must keep the PEs busy too.
    assert entry["dense_cycles"] > 0
    # Sparse mode sends no row group without an effectual MAC: nothing to run.
    assert (entry["sparse_cycles"] > 0) == (entry["effectual_macs"] > 0)
    # Sparse mode never does worse than dense mode on the same layer.
    assert entry["sparse_cycles"] <= entry["dense_cycles"]
    # The cycle model predicts the RTL's cycles of the same program.
    assert entry["model_error"] <= TOLERANCE, entry


def _small_run():
    rng = np.random.default_rng(3)
    x = rng.integers(-5, 6, (1, 2, 5, 6))
    w = rng.integers(-5, 6, (3, 2, 3, 3))
    layer = LayerRows("ff", x=x, w=w, stride=1, pad=1)
    groups = list(layer.groups(SMALL, SMALL.pes))
    (run,) = build_runs(SMALL, "ff", groups, stride=1, kernel=3, dense=True)
    return run


def test_registers_errors_and_interrupt():
    run = _small_run()
    job = {
        "registers": REGISTERS, "destinations": DESTINATIONS, "status_bits": STATUS_BITS,
        "error_bits": ERROR_BITS, "counters": COUNTERS, "stream_width": SMALL.stream_width,
        "info": SMALL.pes | SMALL.max_row << 16, "program_depth": SMALL.program_depth,
        "program_beats_per_entry": entry_beats(command_layout(SMALL), SMALL.stream_width),
        "max_stride": SMALL.max_stride, "max_kernel": SMALL.max_kernel,
        "run": {"registers": run.registers, "loads": run.loads, "expected": run.expected},
    }
    seen = runner.run(SMALL, "cosim.test_accelerator_registers", job, block="accelerator",
                      name="registers")
    assert seen["info"] == SMALL.pes | SMALL.max_row << 16
    assert seen["outputs"] == SMALL.pes * run.outputs_per_pe
    assert seen["COMMANDS = 0"] == 1 << ERROR_BITS["BAD_DESCRIPTOR"]
    assert seen["program packet too long"] == 1 << ERROR_BITS["LOAD_OVERFLOW"]


def test_runs_respect_the_capacity():
    rng = np.random.default_rng(5)
    x = rng.integers(-5, 6, (2, 3, 6, 6))
    w = rng.integers(-5, 6, (4, 3, 3, 3))
    groups = list(LayerRows("ff", x=x, w=w, stride=1, pad=1).groups(SMALL, SMALL.pes))
    capacity = Capacity(program=40, operand=16, stationary=8, mask=4, outputs=64)
    runs = build_runs(SMALL, "ff", groups, stride=1, kernel=3, dense=True, capacity=capacity)
    assert len(runs) > 1
    for run in runs:
        assert run.commands <= capacity.program
        assert run.outputs_per_pe <= capacity.outputs
    # Every bundle of every group is in exactly one run.
    assert sum(run.commands for run in runs) == sum(len(rows[0].tasks) for _, _, rows in groups)


def test_a_session_runs_job_after_job_like_separate_simulators():
    from cosim.accel_jobs import accelerator_session, make_entry, run_accelerator

    run = _small_run()
    entries = [make_entry([run], label="session")]
    alone = run_accelerator(SMALL, entries, name="alone")
    with accelerator_session(SMALL) as session:
        first = run_accelerator(SMALL, entries, session=session)
        # The design is left idle: the same job again gives the same answer.
        second = run_accelerator(SMALL, entries, session=session)
        work = session.work
    assert first == second == alone
    assert not work.exists()     # a session that ended well leaves nothing behind


def test_a_failing_job_ends_the_session_with_the_simulator_log():
    from cosim.accel_jobs import accelerator_session, make_entry, run_accelerator

    run = _small_run()
    wrong = [list(outputs) for outputs in run.expected]
    wrong[0][0] += 1
    bad = make_entry([type(run)(**{**run.__dict__, "expected": wrong})], label="bad")
    session = accelerator_session(SMALL)
    with pytest.raises(runner.CosimError, match="PE 0 output 0 is"):
        run_accelerator(SMALL, [bad], session=session)
    with pytest.raises(runner.CosimError):
        session.close()
    with pytest.raises(runner.CosimError, match="closed"):
        session.run([])
