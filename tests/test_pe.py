"""SparsePE and its window decoder in amaranth.sim, against the golden row primitives."""

import itertools

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from gen.compiler.tasks import Packer, make_output_row, make_output_rows
from hw.config import AccelConfig, PRESETS
from hw.pe import overhead_bound
from hw.window import WindowDecoder
from pruning import golden

from pe_sim import run_pe

SMALL = PRESETS["small"]


def random_row(rng, phase, kernel, stride, pad, width, density, primitives=1, mask_density=0.5,
               config=SMALL, dense=False, value_range=None):
    """An output row of ``primitives`` random primitives (input row length ``width``)."""
    limit = value_range or config.data_max
    f_len = golden.output_size(width, kernel, stride, pad)

    def sparse(size, p):
        return rng.integers(-limit, limit + 1, size=size) * (rng.random(size) < p)

    prims = []
    for _ in range(primitives):
        if phase == "ff":
            prims.append((sparse(width, density), sparse(kernel, 0.8)))
        elif phase == "bp":
            prims.append((sparse(f_len, density), sparse(kernel, 0.8)))
        else:
            prims.append((sparse(f_len, density), sparse(width, 0.6)))
    mask = (rng.random(width) < mask_density) if phase == "bp" else None
    return make_output_row(config, phase, prims, stride=stride, pad=pad, kernel=kernel,
                           in_width=width, mask=mask, dense=dense)


def check_rows(rows, outputs, seed):
    for number, (row, got) in enumerate(zip(rows, outputs)):
        if not np.array_equal(np.array(got, dtype=np.int64), row.expected):
            first = int(np.flatnonzero(np.array(got) != row.expected)[0])
            raise AssertionError(
                f"seed {seed}: row {number} differs first at output {first}: "
                f"PE {got[first]}, golden {row.expected[first]}\n"
                f"tasks: {row.tasks}")


# -- window decoder -------------------------------------------------------------

def set_task(ctx, decoder, packer, task):
    """Give ``decoder`` ``task``, with the nonzero bits of its stationary row as the PE's
    row store gives them."""
    ctx.set(decoder.task.as_value(), packer.task(task))
    ctx.set(decoder.nonzero, sum(1 << k for k, value in enumerate(task.stationary) if value))


@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("kernel,stride,pad", [(1, 1, 0), (3, 1, 1), (3, 2, 1), (5, 4, 2),
                                               (11, 1, 5), (11, 3, 0), (2, 4, 1)])
def test_window_matches_golden_per_element(phase, kernel, stride, pad):
    """Issue bits per element equal the golden dense/effectual MACs of that element."""
    config = SMALL
    rng = np.random.default_rng(kernel * 31 + stride * 7 + pad)
    width = config.max_row
    row = random_row(rng, phase, kernel, stride, pad, width, density=1.0)
    task = row.tasks[0]
    a_values = dict((index, value) for value, index in task.elements)
    b = np.array(task.stationary)
    mask = np.array(task.mask) if phase == "bp" else None
    a_len = width if phase == "ff" else task.out_width
    a = np.array([a_values.get(i, 0) for i in range(a_len)])
    golden_len = None if phase == "ff" else len(row.expected)
    dense, effectual = golden.row_macs_per_element(phase, a, b, stride, pad, golden_len, mask)
    dut = WindowDecoder(config)
    packer = Packer(config)

    async def testbench(ctx):
        for dense_mode in (0, 1):
            set_task(ctx, dut, packer, task.__class__(**{**task.__dict__,
                                                          "dense": bool(dense_mode)}))
            for i in range(a_len):
                ctx.set(dut.value, int(a[i]))
                ctx.set(dut.index, i)
                issue = ctx.get(dut.window.issue)
                eff = ctx.get(dut.window.effectual)
                expected = dense[i] if dense_mode else effectual[i]
                assert bin(issue).count("1") == expected, (phase, i, dense_mode)
                assert bin(eff).count("1") == effectual[i], (phase, i)

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()


# -- whole PE ---------------------------------------------------------------------

_PAUSES = np.random.default_rng(99).random((3, 97)) < 0.6
PATTERNS = {
    "full": (None, None, None),
    "idle": ([1, 1, 0], [1, 0, 1, 1, 0], None),
    "backpressure": (None, None, [1, 0, 0, 1]),
    "random": tuple(list(map(int, row)) for row in _PAUSES),
}


def random_rows_and_patterns(phase, pattern, *, dense=False):
    """``(seed, rows, patterns)``: five random rows of ``phase`` (kernels 1 to 11, strides
    1 to 4) and ``run_pe``'s keyword arguments for stream pattern ``pattern``."""
    seed = {"ff": 1, "bp": 2, "wg": 3}[phase] * 10 + list(PATTERNS).index(pattern)
    rng = np.random.default_rng(seed)
    rows = []
    for kernel, stride, pad in [(3, 1, 1), (5, 2, 2), (1, 4, 0), (11, 1, 5), (7, 3, 3)]:
        width = int(rng.integers(kernel, SMALL.max_row + 1))
        rows.append(random_row(rng, phase, kernel, stride, pad, width, density=0.4,
                               primitives=int(rng.integers(1, 4)), dense=dense))
    cyc = lambda p: itertools.cycle(p) if p else None
    task_p, element_p, result_p = PATTERNS[pattern]
    return seed, rows, dict(task_pattern=cyc(task_p), element_pattern=cyc(element_p),
                            result_pattern=cyc(result_p))


@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("phase", golden.PHASES)
def test_pe_random_rows(phase, pattern):
    seed, rows, patterns = random_rows_and_patterns(phase, pattern)
    watched = []
    outputs, state = run_pe(SMALL, rows, monitor=watched, **patterns)
    check_rows(rows, outputs, seed)
    assert state["issued_macs"] == state["effectual_macs"] == sum(r.effectual_macs for r in rows)
    assert state["idle"] == 1 and state["saturated"] == 0
    # Every stream and the element queue kept the handshake rules (checked every
    # cycle), and carried everything.
    (monitor,) = watched
    assert set(monitor.watched) == {"top.task", "top.operand", "top.result", "top.banks.result",
                                    "top.queue", "top.queue.pop"}
    # The tasks, and a load per line of each row the scratchpad did not hold.
    entries = Packer(SMALL).task_stream([task for row in rows for task in row.tasks])
    assert monitor.transfers("top.task") == len(entries) > sum(len(row.tasks) for row in rows)
    assert monitor.transfers("top.result") == sum(row.out_len for row in rows)
    assert monitor.transfers("top.queue") > 0 and monitor.transfers("top.operand") > 0


@pytest.mark.parametrize("phase", golden.PHASES)
def test_dense_only_pe_issues_every_valid_mac(phase):
    """skipping=False: the window issues every valid slot whatever the task's mode,
    and the PE's results stay exact on sparse tasks (zeros add nothing)."""
    config = SMALL.replace(skipping=False)
    rng = np.random.default_rng(31)
    rows = [random_row(rng, phase, kernel, stride, pad, 16, density=0.5, primitives=2,
                       config=config) for kernel, stride, pad in [(3, 1, 1), (5, 2, 2)]]
    outputs, state = run_pe(config, rows)
    check_rows(rows, outputs, 31)
    assert state["effectual_macs"] == sum(r.effectual_macs for r in rows)
    dense_rows = [random_row(np.random.default_rng(32), phase, 3, 1, 1, 12, density=0.5,
                             primitives=2, config=config, dense=True)]
    outputs, state = run_pe(config, dense_rows)
    check_rows(dense_rows, outputs, 32)
    assert state["issued_macs"] == sum(r.dense_macs for r in dense_rows)
    # On a sparse task the dense-only window issues exactly what the sparse-aware
    # window issues for the same task in dense mode.
    bench = Module()
    bench.submodules.dense_only = dense_only = WindowDecoder(config)
    bench.submodules.sparse_aware = sparse_aware = WindowDecoder(SMALL)
    packer = Packer(SMALL)
    task = rows[0].tasks[0]
    issued = []

    async def testbench(ctx):
        set_task(ctx, dense_only, packer, task)
        set_task(ctx, sparse_aware, packer, task.__class__(**{**task.__dict__, "dense": True}))
        for value, index in task.elements:
            for dut in (dense_only, sparse_aware):
                ctx.set(dut.value, value)
                ctx.set(dut.index, index)
            issued.append(ctx.get(dense_only.window.issue))
            assert issued[-1] == ctx.get(sparse_aware.window.issue), (value, index)

    sim = Simulator(bench)
    sim.add_testbench(testbench)
    sim.run()
    assert issued and any(issued)


@pytest.mark.parametrize("banks", [2, 3, 5])
def test_psum_banks_light_rows(banks):
    """Runs of light rows (a few MACs against a long drain) fill every bank, under
    result backpressure; rows come out in order and exact, and more banks never
    cost cycles."""
    config = SMALL.replace(psum_banks=banks)
    rng = np.random.default_rng(banks)
    rows = [random_row(rng, "bp", 3, 1, 1, 16, density=0.1 if n % 4 else 0.8,
                       primitives=1, config=config) for n in range(24)]
    outputs, state = run_pe(config, rows, result_pattern=itertools.cycle([1, 1, 0]))
    check_rows(rows, outputs, banks)
    assert state["idle"] == 1
    if banks > 2:
        _, two_banks = run_pe(SMALL.replace(psum_banks=2), rows,
                              result_pattern=itertools.cycle([1, 1, 0]))
        assert state["cycles"] <= two_banks["cycles"]


@pytest.mark.parametrize("dense", [False, True])
def test_wg_rows_of_several_kernel_rows(dense):
    """A WG output row holding kernel rows r = 0..R-1 (``offset = r*S``): every
    tap lands in its kernel row, and the row is as long as all of them; also
    when the last kernel row has no work (an empty task closes the row)."""
    rng = np.random.default_rng(21)
    rows = []
    for kernel, kernel_rows, stride, pad, width in [(3, 3, 1, 1, 8), (5, 3, 2, 2, 13),
                                                     (2, 8, 1, 0, 16), (3, 4, 1, 1, 16)]:
        f_len = golden.output_size(width, kernel, stride, pad)
        prims = []
        for r in range(kernel_rows):
            for _ in range(int(rng.integers(0, 3))):
                dy = rng.integers(-99, 100, f_len) * (rng.random(f_len) < 0.5)
                if r == kernel_rows - 1 and len(rows) % 2:
                    dy = np.zeros(f_len, dtype=np.int64)     # no work in the last kernel row
                prims.append((dy, rng.integers(-99, 100, width), r * kernel))
        (_, row), = make_output_rows(SMALL, "wg", prims, stride=stride, pad=pad,
                                     kernel=kernel, in_width=width, dense=dense,
                                     kernel_rows=kernel_rows)
        assert row.out_len == kernel * kernel_rows
        assert row.tasks[-1].offset == kernel * (kernel_rows - 1)
        rows.append(row)
    outputs, state = run_pe(SMALL, rows)
    check_rows(rows, outputs, 21)
    assert state["effectual_macs"] == sum(r.effectual_macs for r in rows)


@pytest.mark.parametrize("phase", golden.PHASES)
def test_dense_mode_same_result_all_macs(phase):
    rng = np.random.default_rng(5)
    rows = [random_row(rng, phase, 3, 1, 1, 12, density=0.3, primitives=2, dense=True),
            random_row(rng, phase, 5, 2, 0, 16, density=0.3, primitives=1, dense=True)]
    outputs, state = run_pe(SMALL, rows)
    check_rows(rows, outputs, 5)
    assert state["issued_macs"] == sum(r.dense_macs for r in rows)
    assert state["effectual_macs"] == sum(r.effectual_macs for r in rows)
    assert state["busy_cycles"] == sum(r.issue_cycles(1) for r in rows)


@pytest.mark.parametrize("phase", golden.PHASES)
def test_cycles_are_effectual_macs_plus_overhead(phase):
    rng = np.random.default_rng(8)
    rows = [random_row(rng, phase, 3, 1, 1, 16, density=0.5, primitives=4) for _ in range(4)]
    outputs, state = run_pe(SMALL, rows)
    check_rows(rows, outputs, 8)
    issue = sum(r.issue_cycles(1) for r in rows)
    assert issue == sum(r.effectual_macs for r in rows)
    tasks = [task for row in rows for task in row.tasks]
    bound = overhead_bound([row.timing(SMALL) for row in rows],
                           len(Packer(SMALL).task_stream(tasks)) - len(tasks))
    assert issue <= state["cycles"] <= issue + bound, (state, issue, bound)


def test_all_zero_rows_and_empty_tasks():
    rng = np.random.default_rng(3)
    zero = make_output_row(SMALL, "ff", [(np.zeros(10, int), np.ones(3, int))] * 3,
                           stride=1, pad=1, kernel=3, in_width=10)
    assert len(zero.tasks) == 1 and zero.tasks[0].empty
    rows = [zero, random_row(rng, "ff", 3, 1, 1, 10, 0.5), zero]
    outputs, state = run_pe(SMALL, rows)
    check_rows(rows, outputs, 3)


def test_two_lanes():
    config = PRESETS["dual"]
    rng = np.random.default_rng(4)
    rows = [random_row(rng, phase, k, u, p, 20, density=0.5, primitives=2, config=config)
            for phase in golden.PHASES for k, u, p in [(3, 1, 1), (5, 1, 2), (4, 2, 1)]]
    outputs, state = run_pe(config, rows, result_pattern=itertools.cycle([1, 0, 1]))
    check_rows(rows, outputs, 4)
    assert state["busy_cycles"] == sum(r.issue_cycles(2) for r in rows)
    assert state["busy_cycles"] < sum(r.effectual_macs for r in rows)


def test_saturation_sets_sticky_flag():
    # 8-bit operands, 16-bit sums: three products of 127*127 overflow, all the
    # same sign, so the saturated value is also the clipped exact sum.
    config = AccelConfig(data_width=8, acc_width=16, max_row=16)
    a = np.full(8, 127)
    row = make_output_row(config, "ff", [(a, np.full(3, 127))] * 2, stride=1, pad=1, kernel=3,
                          in_width=8)
    outputs, state = run_pe(config, [row])
    assert state["saturated"] == 1
    assert outputs[0] == list(np.clip(row.expected, config.acc_min, config.acc_max))
