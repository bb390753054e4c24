"""The schedule (gen/compiler/schedule.py), its runs and its program, without RTL.

A software PE executes the tasks the program is made of (the elements and
stationary rows :func:`gen.compiler.program.bundle_tasks` packs) by the
golden model's row rule, and the drained rows are placed back by the
mapping: every schedule must give the golden layer, with the golden MAC
counts, whatever mapping, tiling, split or run packing it chose.
"""

import itertools

import numpy as np
import pytest

from cosim.layer import add_drained
from gen.compiler.layer import LayerMaps, check_layer, count_macs, golden_output
from gen.compiler.mapping import Mapping
from gen.compiler.program import bundle_tasks, pack_program
from gen.compiler.runs import Capacity, closes_piece, load_entries
from gen.compiler.schedule import balance, schedule_layer
from gen.compiler.scratchpad import ArrayRows, group_rows
from gen.compiler.tasks import Packer
from gen.compiler.tiling import wg_kernel_rows
from hw.config import PRESETS
from pruning import golden

SMALL = PRESETS["small"]
EIGHT = SMALL.replace(pe_rows=2, pe_cols=4)


def software_rows(task_rows, out_len):
    """What a PE drains for a row of ``task_rows`` (its tasks in order): per streamed
    element ``a[i]`` and tap ``s``, FF ``y[(i + P - s) / U] += a[i] * b[s]``, BP
    ``dx[i*U + s - P] += a[i] * b[s]`` (masked), WG ``dw[s] += a[i] * b[i*U + s - P]``,
    within the task's ``F``, ``W`` and ``S``, from its ``offset`` (docs/SPEC.md)."""
    row = np.zeros(out_len, np.int64)
    for task in task_rows:
        if not task.present:
            continue
        stride, pad = task.stride, task.pad
        for value, i in task.elements:
            for s in range(task.kernel):
                if task.phase == "ff":
                    moved = i + pad - s
                    if moved < 0 or moved % stride or moved // stride >= task.out_width:
                        continue
                    row[task.offset + moved // stride] += value * task.stationary[s]
                    continue
                moved = i * stride + s - pad
                if not 0 <= moved < task.in_width:
                    continue
                if task.phase == "bp":
                    if task.mask[moved]:
                        row[task.offset + moved] += value * task.stationary[s]
                else:
                    row[task.offset + s] += value * task.stationary[moved]
    return row


def execute(config, spec, schedule):
    """The layer as the schedule's runs compute it (software PEs), and the number of
    bundles the runs hold."""
    output = np.zeros(spec.output_shape, np.int64)
    packer = Packer(config)
    bundles = 0
    for parts, _ in schedule.runs:
        for group, first, stop, partial in parts:
            tasks = bundle_tasks(schedule, group, first, stop, partial)
            bundles += len(tasks)
            per_pe = [software_rows([bundle[0][unit] for bundle in tasks], group.out_len)
                      for unit in range(schedule.pes)]
            # A bundle's tasks share their geometry and streamed elements (the packer
            # checks it) and fit the PE.
            assert group.out_len <= config.max_row
            packer.bundle_stream(tasks)
            for bundle, _ in tasks:
                for task in bundle:
                    assert max(task.in_width, task.out_width, len(task.stationary),
                               *(index + 1 for _, index in task.elements)) <= config.max_row
            assert [bundle[0][0].row_last for bundle in tasks].count(True) == 1
            assert tasks[-1][0][0].row_last
            add_drained(config, schedule.mapping, output, group.keys, group.columns, per_pe)
    return output, bundles


def layer(rng, phase, *, shape=(2, 3, 6, 7), filters=4, kernel=(3, 3), stride=1, pad=1,
          density=0.5):
    n_len, c_len, h_len, w_len = shape
    x = rng.integers(-9, 10, shape) * (rng.random(shape) < density)
    w = rng.integers(-9, 10, (filters, c_len, *kernel)) * (rng.random((filters, c_len, *kernel))
                                                          < 0.8)
    out = [golden.output_size(s, r, stride, pad) for s, r in zip((h_len, w_len), kernel)]
    dy = rng.integers(-9, 10, (n_len, filters, *out)) * (rng.random((n_len, filters, *out))
                                                         < 0.3)
    operands = {"ff": dict(x=x, w=w), "bp": dict(dy=dy, w=w, mask=x > 0),
                "wg": dict(x=x, dy=dy, kernel=kernel)}[phase]
    return check_layer(SMALL, phase, **operands, stride=stride, pad=pad)


def check_schedule(config, spec, *, dense, capacity=None):
    schedule = schedule_layer(config, spec, dense=dense, capacity=capacity)
    output, bundles = execute(config, spec, schedule)
    assert np.array_equal(output, golden_output(spec))
    dense_macs, effectual = count_macs(spec)
    assert schedule.effectual_macs == effectual
    traces = schedule.traces()
    # The traces hold the same bundles, and a load bundle per stationary line loaded
    # apart from the last line of each row, which comes with its primitive.
    assert sum(trace.bundles - int(((trace.load_line >= 0).any(axis=1)
                                    & ~trace.works.any(axis=1)).sum())
               for trace in traces) == bundles
    # The program is made of the same bundles; its entries are the schedule's.
    runs = pack_program(schedule)
    assert [run.commands for run in runs] == [trace.bundles for trace in traces]
    assert [run.entries for run in runs] == [trace.entries for trace in traces]
    for run, trace in zip(runs, traces):
        assert run.beats == trace.beats.tolist() and run.elements == trace.elements.tolist()
        for name in ("program", "operand", "stationary", "mask", "outputs"):
            assert run.entries[name] <= getattr(capacity or Capacity.of(config), name)
    if dense:
        assert sum(t.issued_macs for t in traces) >= dense_macs
    else:
        assert sum(t.issued_macs for t in traces) == effectual
    return schedule


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("geometry", [
    dict(), dict(shape=(1, 1, 6, 7), filters=6), dict(shape=(2, 5, 5, 7), filters=2),
    dict(stride=2, kernel=(5, 3), pad=2, shape=(1, 2, 9, 7)),
    dict(shape=(1, 2, 5, 21), kernel=(5, 3), stride=4, pad=2),      # tiled: 21 > max_row
    dict(shape=(1, 2, 4, 40), kernel=(3, 3), stride=1, pad=1),
], ids=["3x3", "one-channel", "two-filters", "stride-2", "stride-4-tiled", "wide"])
def test_every_schedule_computes_the_golden_layer(phase, geometry, dense):
    """Natural and transposed mappings, WG kernel-row blocks, split rows, tiles, PEs
    without a row of their own; the program's entries are the schedule's."""
    rng = np.random.default_rng(len(str(geometry)) + len(phase))
    spec = layer(rng, phase, **geometry)
    check_schedule(SMALL, spec, dense=dense)
    check_schedule(EIGHT, spec, dense=dense)


@pytest.mark.parametrize("phase", golden.PHASES)
def test_runs_split_rows_that_do_not_fit(phase):
    """Shrunken buffers: groups cut into partial rows over several runs, each piece closed
    (WG: by an empty task of the row's last kernel row)."""
    rng = np.random.default_rng(9)
    spec = layer(rng, phase, shape=(2, 3, 6, 6))
    capacity = Capacity(program=6, operand=16, stationary=8, mask=4, outputs=64)
    schedule = check_schedule(SMALL, spec, dense=False, capacity=capacity)
    parts = [part for parts, _ in schedule.runs for part in parts]
    assert len(schedule.runs) > 1 and any(partial for *_, partial in parts)
    for group, first, stop, partial in parts:
        last = bundle_tasks(schedule, group, first, stop, partial)[-1][0][0]
        assert last.row_last and last.offset == group.closing_offset
        if partial and closes_piece(group, stop):
            assert not last.elements


def test_the_mapping_with_the_lower_estimate_is_chosen():
    """A one-channel BP layer is transposed (its rows share the filter rows instead),
    in both modes; dense mode gets its own best mapping."""
    rng = np.random.default_rng(2)
    spec = layer(rng, "bp", shape=(2, 1, 8, 8), filters=6)
    for dense in (False, True):
        chosen = schedule_layer(EIGHT, spec, dense=dense)
        estimates = []
        for mapping in Mapping.candidates(EIGHT, spec, EIGHT.pes):
            alone = schedule_layer(EIGHT, spec, dense=dense, runs=False, mapping=mapping)
            estimates.append(alone.estimate)
        assert chosen.mapping.transposed
        assert chosen.estimate == min(estimates)
    natural, transposed = Mapping.candidates(EIGHT, spec, EIGHT.pes)
    assert transposed.task_kernel == spec.input_hw[1] and transposed.task_phase == "bp"
    assert not natural.transposed


def test_wg_rows_hold_the_kernel_rows_that_fit():
    rng = np.random.default_rng(5)
    spec = layer(rng, "wg", shape=(1, 3, 9, 11), kernel=(5, 5), pad=2)
    mapping = Mapping.candidates(SMALL, spec, SMALL.pes)[0]
    assert not mapping.transposed and mapping.kernel_rows == wg_kernel_rows(SMALL, (5, 5)) == 3
    assert mapping.out_len(0) == 15 and mapping.out_len(1) == 10


def test_mapping_parameters_are_checked():
    spec = layer(np.random.default_rng(0), "ff")
    with pytest.raises(TypeError, match="splits must be an int, not 2.0"):
        Mapping(spec, splits=2.0)
    with pytest.raises(ValueError, match="splits must be at least 1, not 0"):
        Mapping(spec, splits=0)
    with pytest.raises(ValueError, match="kernel_rows is a WG parameter"):
        Mapping(spec, kernel_rows=2)
    with pytest.raises(ValueError, match="only BP and WG rows of stride 1"):
        Mapping(spec, transposed=True)


def test_balance_puts_the_biggest_rows_on_the_least_loaded_pes():
    """Longest processing time first: over many groups the busiest PE stays within one
    row's work of the average, where a fixed channel-to-PE map is far off."""
    rng = np.random.default_rng(4)
    skew = np.linspace(0.05, 1, 8)
    load, fixed, biggest = np.zeros(8, np.int64), np.zeros(8, np.int64), 0
    for _ in range(200):
        work = (rng.integers(1, 100, 8) * skew).astype(np.int64) + 1
        placed = balance(load, work)
        assert sorted(placed) == list(range(8))
        fixed += work
        biggest = max(biggest, work.max())
    assert load.max() <= load.mean() + biggest
    assert fixed.max() > 1.3 * load.max()
    # Ties: the lower PE gets the lower member.
    assert balance(np.zeros(3, np.int64), np.array([5, 5, 5])).tolist() == [0, 1, 2]


def test_entries_are_shared_by_any_assignment():
    """An entry holds the members' rows in member order, so groups that put the same
    members on other PEs read the same stationary entries; each PE's source is its
    member, and the rows of a bundle start on one scratchpad line in every PE."""
    rng = np.random.default_rng(3)
    spec = layer(rng, "ff", shape=(2, 3, 8, 9), density=0.4)
    schedule = schedule_layer(SMALL, spec, dense=False)
    keys_by_placement = {}
    for group in schedule.groups:
        members = len(group.member_pes)
        assert list(group.source[group.member_pes]) == list(range(members))
        ones = np.ones(group.bundles, np.int64)
        keys = load_entries(group, 0, ones * (group.tile >= 0))
        keys_by_placement.setdefault(group.source.tobytes(), set()).update(keys)
    # The balancing put the members on the PEs in more than one way, and all of them
    # read one entry per (input channel, kernel row): 3 x 3 filter rows of 3 taps.
    assert len(keys_by_placement) > 1
    assert len(set().union(*keys_by_placement.values())) == 3 * 3
    rows = ArrayRows.of(SMALL)
    for group in schedule.groups:
        firsts, _, _ = group_rows(rows, group, 0, group.bundles)
        assert (firsts == firsts[:, :1]).all()


def test_maps_and_values_give_the_same_schedule():
    """Only where the operands are nonzero matters: the nonzero maps (what the network
    report has) give the values' traces."""
    rng = np.random.default_rng(8)
    for phase, dense in itertools.product(golden.PHASES, (False, True)):
        spec = layer(rng, phase, shape=(2, 3, 6, 9))
        from_values = schedule_layer(SMALL, spec, dense=dense).traces()
        from_maps = schedule_layer(SMALL, LayerMaps.of(spec), dense=dense).traces()
        assert len(from_values) == len(from_maps)
        for a, b in zip(from_values, from_maps):
            for name in ("beats", "takes", "works", "issue", "lead_beats", "tail_lag"):
                assert np.array_equal(getattr(a, name), getattr(b, name)), (phase, name)
            assert a.entries == b.entries


def test_dense_only_config_refuses_sparse_mode():
    config = SMALL.replace(skipping=False)
    spec = check_layer(config, "ff", x=np.ones((1, 1, 4, 4), int), w=np.ones((1, 1, 3, 3), int))
    with pytest.raises(ValueError, match="dense-only"):
        schedule_layer(config, spec, dense=False)


def test_mask_entries_are_told_apart_by_their_shape():
    """Groups share a BP mask entry only when their members' mask rows are equal: the
    bytes of 4 all-ones rows of 8 are those of 2 rows of 16 (the random regression's
    seed 7 case 16: 6 channels on 4 PEs, 24-wide rows in tiles of 16 and 8)."""
    rng = np.random.default_rng(16)
    dy = rng.integers(1, 10, (3, 2, 1, 8))
    w = rng.integers(1, 10, (2, 6, 2, 1))
    spec = check_layer(SMALL, "bp", dy=dy, w=w, x=np.zeros((3, 6, 3, 24), int), stride=3, pad=0)
    schedule = schedule_layer(SMALL, spec, dense=False)
    shapes, seen = set(), {}
    for group in schedule.groups:
        rows = tuple(tuple(schedule.masks[row, group.columns].tolist())
                     for row in group.mask_rows[group.member_pes])
        shapes.add((len(rows), len(rows[0])))
        assert seen.setdefault(group.mask_key, rows) == rows
    assert {(4, 8), (2, 16)} <= shapes
