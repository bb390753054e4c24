"""The accelerator top level on Verilator: whole layers through AXI, registers, faults.

The quick subset of the regression (:mod:`cosim.regression`) runs here, one
case per test so that pytest workers share them; ``make cosim`` runs all.
"""

import numpy as np
import pytest

from cosim import runner
from cosim.accel_jobs import job_constants, timeout_cycles
from cosim.regression import cases, run_case
from gen.compiler.layer import check_layer
from gen.compiler.program import pack_program
from gen.compiler.runs import Capacity
from gen.compiler.schedule import schedule_layer
from hw.buffer import entry_beats
from hw.config import PRESETS
from hw.layouts import buffer_layouts
from hw.top import ERROR_BITS, REGISTERS
from pruning import golden

SMALL = PRESETS["small"]
# The small preset, and the same array with every queue depth and the beat width
# moved off the presets' values: the cycle model's latencies follow the config.
QUICK = [(PRESETS[name], case) for name in ("small", "queues")
         for case in cases(PRESETS[name], quick=True)]


@pytest.mark.parametrize("config, case", QUICK,
                         ids=[f"{config.name}-{c.name}-{c.phase}" for config, c in QUICK])
def test_quick_regression(config, case):
    entry = run_case(config, case)     # raises on any output that is not bit-exact
    assert entry["dense_macs"] > 0
    # The dense mode is the baseline: it must keep the PEs busy too.
    assert entry["dense_cycles"] > 0
    # Sparse mode sends no row group without an effectual MAC: nothing to run.
    assert (entry["sparse_cycles"] > 0) == (entry["effectual_macs"] > 0)
    # Sparse mode never does worse than dense mode on the same layer.
    assert entry["sparse_cycles"] <= entry["dense_cycles"]
    # The cycle model predicts the RTL's cycles of the same program.
    assert entry["model_within_tolerance"], entry


def _ff_runs(x, w, *, pad, capacity=None):
    """``(runs, expected)``: a dense FF layer's program and, per run and PE, the golden
    outputs in drain order (zeros for a PE without a row)."""
    spec = check_layer(SMALL, "ff", x=x, w=w, stride=1, pad=pad)
    schedule = schedule_layer(SMALL, spec, dense=True, capacity=capacity)
    result = golden.conv_phase("ff", x=x, w=w, stride=1, pad=pad)
    runs = pack_program(schedule)
    expected = [[[int(v) for drain in run.drains
                  for v in (schedule.mapping.output_view(result, drain.keys[unit], drain.columns)
                            if drain.keys[unit] is not None else [0] * drain.out_len)]
                 for unit in range(SMALL.pes)] for run in runs]
    return runs, expected


def _small_run():
    rng = np.random.default_rng(3)
    (run,), (expected,) = _ff_runs(rng.integers(-5, 6, (1, 2, 5, 6)),
                                   rng.integers(-5, 6, (3, 2, 3, 3)), pad=1)
    return run, expected


def _fault_job():
    def entry(run):
        return {"registers": run.registers, "loads": run.loads,
                "outputs_per_pe": run.outputs_per_pe,
                "timeout_cycles": timeout_cycles(SMALL, run)}

    # More outputs per PE than a bank holds (the compiler never makes such a run).
    rng = np.random.default_rng(4)
    beyond = Capacity(program=4096, operand=4096, stationary=512, mask=512,
                      outputs=4 * SMALL.output_depth)
    (overflow,), (overflow_expected,) = _ff_runs(rng.integers(-5, 6, (2, 1, 40, 16)),
                                                 rng.integers(-5, 6, (4, 1, 1, 1)), pad=0,
                                                 capacity=beyond)
    assert overflow.outputs_per_pe > SMALL.output_depth
    run, expected = _small_run()
    return {
        **job_constants(SMALL),
        "info": SMALL.pes | SMALL.max_row << 16, "program_depth": SMALL.program_depth,
        "max_stride": SMALL.max_stride, "max_kernel": SMALL.max_kernel,
        "output_depth": SMALL.output_depth, "unmapped": max(REGISTERS.values()) + 5,
        # One beat more than each buffer holds.
        "overlong": {name: depth * entry_beats(shape, SMALL.stream_width) + 1
                     for name, (shape, depth) in buffer_layouts(SMALL).items()},
        "run": entry(run), "expected": [value for values in expected for value in values],
        "overflow_run": entry(overflow), "overflow_expected": overflow_expected,
    }


def test_every_fault_is_flagged_and_the_next_run_is_clean():
    """Bus errors, bad descriptors, overlong packets, START and loads while busy, an
    output bank overflow, resets in a run and in its readout: each shows in ERROR
    (or on the bus), and then a run gives the golden outputs and the same counters."""
    seen = runner.run(SMALL, "cosim.bench_faults", _fault_job(), block="accelerator",
                      name="faults")
    assert seen["bus errors"] == "SLVERR"
    assert seen["COMMANDS = 0"] == seen["PHASE = 3"] == 1 << ERROR_BITS["BAD_DESCRIPTOR"]
    for name in ("program", "operand", "stationary", "mask"):
        assert seen[f"{name} packet too long"] == 1 << ERROR_BITS["LOAD_OVERFLOW"]
    assert seen["START and STRIDE while busy"] == 1 << ERROR_BITS["BUSY"]
    assert seen["loads during a run"] == 1 << ERROR_BITS["LOAD_WHILE_BUSY"]
    assert seen["output bank overflow"] == 1 << ERROR_BITS["OUTPUT_OVERFLOW"]
    assert seen["reset during a run"] == seen["reset during the readout"] == 0
    # The reference run and one clean run after every fault.
    assert seen["clean runs"] == 1 + 1 + 1 + 4 + 1 + 1 + 1 + 2


def test_runs_respect_the_capacity():
    rng = np.random.default_rng(5)
    spec = check_layer(SMALL, "ff", x=rng.integers(-5, 6, (2, 3, 6, 6)),
                       w=rng.integers(-5, 6, (4, 3, 3, 3)), stride=1, pad=1)
    capacity = Capacity(program=40, operand=16, stationary=8, mask=4, outputs=64)
    schedule = schedule_layer(SMALL, spec, dense=True, capacity=capacity)
    runs = pack_program(schedule)
    assert len(runs) > 1
    for run in runs:
        for name in ("program", "operand", "stationary", "mask", "outputs"):
            assert run.entries[name] <= getattr(capacity, name), name
        assert run.commands <= capacity.program
        assert run.outputs_per_pe <= capacity.outputs
    # Every bundle of every group is in exactly one run, after the loads of its rows that
    # do not come with it.
    traces = schedule.traces()
    loading = [(trace.load_line >= 0).any(axis=1) for trace in traces]
    loads = sum(int((rows & ~trace.works.any(axis=1)).sum())
                for rows, trace in zip(loading, traces))
    # (Filter rows of 3 fit a line: every load comes with its primitive.)
    assert sum(int(rows.sum()) for rows in loading) and loads == 0
    assert sum(run.commands for run in runs) == sum(
        group.bundles for group in schedule.groups) + loads


def test_a_session_runs_job_after_job_like_separate_simulators():
    from cosim.accel_jobs import accelerator_session, make_entry, run_accelerator

    run, expected = _small_run()
    entries = [make_entry(SMALL, [run], label="session")]
    alone = run_accelerator(SMALL, entries, name="alone")
    with accelerator_session(SMALL) as session:
        first = run_accelerator(SMALL, entries, session=session)
        # The design is left idle: the same job again gives the same answer.
        second = run_accelerator(SMALL, entries, session=session)
        work = session.work
    assert first == second == alone
    assert first[0][0]["outputs"] == expected
    assert not work.exists()     # a session that ended well leaves nothing behind


def test_a_failing_job_ends_the_session_with_the_simulator_log():
    from cosim.accel_jobs import accelerator_session, make_entry, run_accelerator

    run, _ = _small_run()
    bad = make_entry(SMALL, [run], label="bad")
    bad["runs"][0]["outputs_per_pe"] += 1      # the bench then counts too few outputs
    session = accelerator_session(SMALL)
    with pytest.raises(runner.CosimError, match="outputs, expected"):
        run_accelerator(SMALL, [bad], session=session)
    with pytest.raises(runner.CosimError):
        session.close()
    with pytest.raises(runner.CosimError, match="closed"):
        session.run([])
