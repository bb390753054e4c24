"""The accelerator top level in amaranth.sim: random layer phases of the random regression,
every stream and queue inside it (controller, array, PEs, buffers) watched in every cycle."""

import numpy as np
import pytest

from cosim.layer import add_drains
from cosim.random_layers import draw_case
from gen.compiler.layer import check_layer
from gen.compiler.program import pack_program
from gen.compiler.schedule import schedule_layer
from gen.model.cycles import predict, within_tolerance
from hw.config import PRESETS
from pruning import golden

from accel_sim import run_accelerator_sim

SMALL = PRESETS["small"]
# Cases of the random regression's seed 0 small enough for amaranth.sim: every phase,
# strides of 1 to 4, rows wider than max_row, several runs (shrunken buffers).
CASES = [3, 4, 5, 8, 19]


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("index", CASES)
def test_top_level_streams_keep_the_protocol(index, dense):
    case = draw_case(SMALL, 0, index)
    spec = check_layer(SMALL, case.phase, **case.operands, stride=case.stride, pad=case.pad)
    schedule = schedule_layer(SMALL, spec, dense=dense, capacity=case.capacity)
    runs = pack_program(schedule)
    assert runs
    results, monitor = run_accelerator_sim(SMALL, runs)
    output = np.zeros(spec.output_shape, np.int64)
    for run, result in zip(runs, results):
        assert all(len(values) == run.outputs_per_pe for values in result["outputs"])
        add_drains(SMALL, schedule.mapping, output, run.drains, result["outputs"])
    expected, _ = golden.saturating_phase(spec.phase, acc_width=SMALL.acc_width, x=spec.x,
                                          w=spec.w, dy=spec.dy, mask=spec.mask,
                                          stride=spec.stride, pad=spec.pad,
                                          input_hw=spec.input_hw, kernel_hw=spec.kernel_hw)
    assert np.array_equal(output, expected), case.describe()
    # The same RTL as the Verilog: the cycle model holds here too.
    cycles = sum(result["cycles"] for result in results)
    assert within_tolerance(predict(SMALL, schedule.traces())["cycles"], cycles), case.describe()
    assert len(monitor.watched) >= 40
    for unit in range(SMALL.pes):
        assert monitor.transfers(f"top.array.task_queue_{unit}") > 0
    assert monitor.transfers("top.controller.bundle") == sum(run.commands for run in runs)


def test_paced_beats_followed_by_dropped_ones_are_modelled():
    # The random regression's seed 1, case 6 on two lanes (WG, an 11x5 kernel): beats
    # that the full element queue holds back, then beats whose elements all drop, and
    # the issue stage waits for the beats after them. Modelled from the beats alone
    # (each a cycle after the one before), it came out 1.23% short (960 of 972).
    dual = PRESETS["dual"]
    case = draw_case(dual, 1, 6)
    spec = check_layer(dual, case.phase, **case.operands, stride=case.stride, pad=case.pad)
    schedule = schedule_layer(dual, spec, dense=False, capacity=case.capacity)
    results, _ = run_accelerator_sim(dual, pack_program(schedule))
    cycles = sum(result["cycles"] for result in results)
    assert within_tolerance(predict(dual, schedule.traces())["cycles"], cycles), cycles


def test_the_cases_cover_the_phases_and_the_hard_parts():
    cases = [draw_case(SMALL, 0, index) for index in CASES]
    assert {case.phase for case in cases} == {"ff", "bp", "wg"}
    assert any(case.stride > 1 for case in cases)
    assert any(case.capacity is not None for case in cases)
    assert any(max(case.operands[name].shape[3] for name in ("x", "dy") if name in case.operands)
               > SMALL.max_row for case in cases)
