"""Whole networks through the cycle and energy models (gen/model/network.py, energy.py)."""

import numpy as np
import pytest
from amaranth import Shape
from torch import nn

from gen.compiler.layer import check_layer
from gen.compiler.network import extract_layers
from gen.compiler.program import pack_program
from gen.compiler.schedule import schedule_layer
from gen.model.energy import EnergyTable, count_events, energy_pj
from gen.model.estimate import estimate_layer
from gen.model.network import estimate_network, phase_maps, random_operands, summarize
from hw.buffer import entry_beats
from hw.config import PRESETS
from hw.layouts import buffer_layouts

SMALL = PRESETS["small"]


def tiny_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 5))


DENSITIES = {"0": {"x": 1.0, "dy": 0.3}, "3": {"x": 0.5, "dy": 0.2},
             "6": {"x": 0.4, "dy": 0.6, "w": 0.9}}


def test_network_phases_match_the_layer_model():
    layers = extract_layers(tiny_net(), (1, 8, 8))
    operands = random_operands(layers, DENSITIES, batch=2, seed=3)
    results = estimate_network(SMALL, layers, operands)
    assert [(e["layer"], e["phase"]) for e in results] == [
        ("0", "ff"), ("0", "wg"), ("3", "ff"), ("3", "bp"), ("3", "wg"),
        ("6", "ff"), ("6", "bp"), ("6", "wg")]
    for entry, layer in ((e, next(l for l in layers if l.name == e["layer"])) for e in results):
        maps = phase_maps(layer, operands[layer.name], entry["phase"])
        ops = {"ff": dict(x=maps.x, w=maps.w), "bp": dict(dy=maps.dy, w=maps.w, mask=maps.mask),
               "wg": dict(x=maps.x, dy=maps.dy, kernel=maps.kernel_hw)}[entry["phase"]]
        if entry["phase"] == "bp" and maps.mask is None:
            ops["x"] = maps.x if maps.x is not None else np.zeros(
                (2, layer.in_channels, *layer.input_hw), np.uint8)
        for mode in ("dense", "sparse"):
            # A layer's operands (the path of the RTL) and the network's maps agree.
            stats, runs = estimate_layer(SMALL, entry["phase"], **ops, stride=layer.stride,
                                         pad=layer.pad, dense=mode == "dense", return_runs=True)
            assert entry[mode]["cycles"] == stats["cycles"], (entry["layer"], entry["phase"])
            # The stationary bits are the entries the programs load, at their stored width.
            shape, _ = buffer_layouts(SMALL)["stationary"]
            entries = sum(len(run.loads["stationary"]) for run in runs) // entry_beats(
                shape, SMALL.stream_width)
            assert entry[mode]["stationary_bits"] == entries * Shape.cast(shape).width > 0
            assert entry[mode]["issued_macs"] == stats["issued_macs"]
            assert entry[mode]["runs"] == stats["runs"]
        assert (entry["dense_macs"], entry["effectual_macs"]) == \
            (stats["dense_macs"], stats["effectual_macs"])
        assert entry["sparse"]["cycles"] <= entry["dense"]["cycles"]
    # BP of a layer whose x is a ReLU output (through max-pool) skips masked outputs.
    assert next(e for e in results if e["layer"] == "3" and e["phase"] == "bp")["densities"][
        "mask"] < 1
    summary = summarize(results)
    step = summary["step"]
    assert step["dense"]["cycles"] == sum(e["dense"]["cycles"] for e in results)
    assert step["speedup"] == step["dense"]["cycles"] / step["sparse"]["cycles"]
    assert summary["step_without_first_wg"]["dense"]["cycles"] == \
        step["dense"]["cycles"] - results[1]["dense"]["cycles"]
    assert step["energy_efficiency"] > 1
    assert step["sparse"]["stationary_bits"] == sum(e["sparse"]["stationary_bits"]
                                                    for e in results)


def test_processes_model_the_phases_to_the_same_results():
    layers = extract_layers(tiny_net(), (1, 8, 8))
    operands = random_operands(layers, DENSITIES, batch=2, seed=3)
    alone = estimate_network(SMALL, layers, operands)
    shared = estimate_network(SMALL, layers, operands, jobs=2)
    assert shared == alone
    assert [list(entry) for entry in shared] == [list(entry) for entry in alone]
    with pytest.raises(ValueError, match="jobs must be at least 1, not 0"):
        estimate_network(SMALL, layers, operands, jobs=0)


def test_random_operands_and_maps_refuse_bad_input():
    layers = extract_layers(tiny_net(), (1, 8, 8))
    with pytest.raises(ValueError, match="no entry for layer 6"):
        random_operands(layers, {"0": DENSITIES["0"], "3": DENSITIES["3"]})
    with pytest.raises(ValueError, match="density of dy of layer 0 must be a number in 0..1"):
        random_operands(layers, {**DENSITIES, "0": {"x": 1.0, "dy": 1.5}})
    operands = random_operands(layers, DENSITIES)
    operands["3"]["x"] = operands["3"]["x"][:, :2]
    with pytest.raises(ValueError, match="layer 3: x has shape"):
        phase_maps(layers[1], operands["3"], "ff")
    with pytest.raises(ValueError, match="no operands for layer"):
        estimate_network(SMALL, layers, {"0": operands["0"]})
    with pytest.raises(ValueError, match="dense-only"):
        estimate_network(SMALL.replace(skipping=False), layers, operands)


def test_energy_table_follows_its_sources():
    table = EnergyTable()
    # Horowitz (ISSCC 2014), 45 nm: 64-bit SRAM reads of 10, 20 and 100 pJ.
    for size_kb, pj in ((8, 10.0), (32, 20.0), (1024, 100.0)):
        assert table.sram_pj_per_bit(size_kb * 8192) * 64 == pytest.approx(pj)
    assert table.sram_pj_per_bit(1024 * 8) < table.sram_pj_per_bit(8192 * 8)
    # 16-bit multiply (0.2 pJ at 8 bits, squared) and 48-bit add (0.1 pJ at 32 bits).
    assert table.mac_pj(SMALL) == pytest.approx(0.8 + 0.15)


_COMMAND = buffer_layouts(SMALL)["program"][0]


def _commands(run):
    """The command words of a run's program packet."""
    width = _COMMAND.size
    beats = -(-width // SMALL.stream_width)
    words = run.loads["program"]
    return [sum(word << (SMALL.stream_width * k) for k, word in enumerate(words[i:i + beats]))
            for i in range(0, len(words), beats)]


def test_energy_events_of_a_run():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, (1, 2, 5, 6)) * (rng.random((1, 2, 5, 6)) < 0.5)
    w = rng.integers(-5, 6, (3, 2, 3, 3))
    spec = check_layer(SMALL, "ff", x=x, w=w, stride=1, pad=1)
    energies = {}
    for dense in (True, False):
        schedule = schedule_layer(SMALL, spec, dense=dense)
        (run,), (trace,) = pack_program(schedule), schedule.traces()
        events = count_events(SMALL, trace)
        assert events["mac"] == trace.issued_macs
        # A line written into the scratchpad of every PE a command's loads name, and an
        # operand read per MAC; the stationary buffer read once per command with loads.
        commands = [_COMMAND.from_bits(bits) for bits in _commands(run)]
        loads = sum(int(command.loads) != 0 for command in commands)
        lines = sum(bin(int(command.loads)).count("1") for command in commands)
        assert loads and sorted(events["scratchpad"].values()) == sorted(
            [lines, trace.issued_macs])
        assert sum(events["stationary"].values()) == loads * SMALL.pes
        assert sum(events["mask"].values()) == 0          # FF reads no mask
        # Everything loaded crosses the AXI4-Stream: at most its beats' bits.
        loaded = events["dram"] - run.outputs_per_pe * SMALL.pes * SMALL.stream_width
        assert 0 < loaded <= run.load_beats * SMALL.stream_width
        energy = energy_pj(SMALL, events)
        assert energy["total"] == pytest.approx(sum(v for k, v in energy.items() if k != "total"))
        energies[dense] = energy["total"]
    assert energies[False] < energies[True]
