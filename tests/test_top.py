"""The accelerator top level in amaranth.sim: random layer phases of the random regression,
every stream and queue inside it (controller, array, PEs, buffers) watched in every cycle."""

import pytest

from cosim.random_layers import draw_case
from gen.cycles import predict_runs, within_tolerance
from gen.layer import check_layer, compile_layer
from hw.config import PRESETS

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
    _, runs = compile_layer(SMALL, spec, dense=dense, capacity=case.capacity)
    assert runs
    results, monitor = run_accelerator_sim(SMALL, runs)
    for number, (run, result) in enumerate(zip(runs, results)):
        for unit, wanted in enumerate(run.expected):
            got = result["outputs"][unit]
            assert len(got) == len(wanted), (number, unit)
            assert all(w is None or g == w for g, w in zip(got, wanted)), (number, unit)
    # The same RTL as the Verilog: the cycle model holds here too.
    cycles = sum(result["cycles"] for result in results)
    assert within_tolerance(predict_runs(SMALL, runs)["cycles"], cycles), case.describe()
    assert len(monitor.watched) >= 40
    for unit in range(SMALL.pes):
        assert monitor.transfers(f"top.array.task_queue_{unit}") > 0
    assert monitor.transfers("top.controller.bundle") == sum(run.commands for run in runs)


def test_the_cases_cover_the_phases_and_the_hard_parts():
    cases = [draw_case(SMALL, 0, index) for index in CASES]
    assert {case.phase for case in cases} == {"ff", "bp", "wg"}
    assert any(case.stride > 1 for case in cases)
    assert any(case.capacity is not None for case in cases)
    assert any(max(case.operands[name].shape[3] for name in ("x", "dy") if name in case.operands)
               > SMALL.max_row for case in cases)
