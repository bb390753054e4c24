"""The training speedup and energy report: AlexNet and ResNet-18 on a paper-scale preset.

``python -m gen report`` (``make report``) trains each network for a few
steps on scikit-learn's sample images with activation gradients pruned at
``p`` (:func:`pruning.sample_training.capture_network`), captures one more
step at batch 1 and 224 x 224, and runs every phase of every conv and
linear layer through the cycle and energy models in dense and sparse mode
(:func:`gen.model.network.estimate_network`). A densities file replaces the
training by random operands of given densities, for what-if studies; the
report writes the measured densities in that format.

It writes ``report.md`` (tables), ``report.json`` (everything), one
``<model>.png`` per network (per-layer speedup and energy efficiency by
phase) and ``summary.png`` (per network, beside the published figures).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pruning.models import build_model
from pruning.sample_training import capture_network

from ..compiler.network import extract_layers
from .energy import EVENTS, on_chip_storage
from .network import estimate_network, random_operands, summarize

__all__ = ["PUBLISHED", "build_report", "write_report"]

# What the published design reports over dense training on AlexNet/ResNet.
PUBLISHED = {"speedup": 2.7, "energy_efficiency": 2.2}
_PHASE_NAMES = {"ff": "FF", "bp": "BP", "wg": "WG"}
_STEP_NAMES = {"step": "whole step", "step_without_first_wg": "step without first WG"}


def _densities_of(captures):
    return {c.name: {"x": c.densities["x"], "dy": c.densities["dy"], "w": c.densities["w"]}
            for c in captures}


def build_report(config, models, *, p=0.9, steps=3, batch=1, seed=0, densities=None,
                 progress=True, build=None, jobs=1):
    """Measure ``models`` on ``config``; returns the report as a dict.

    ``build(name, seed=...)`` returns ``(model, (C, H, W))`` (default:
    :func:`pruning.models.build_model`); ``jobs``: processes that model the layers
    (:func:`~gen.model.network.estimate_network`)."""
    build = build or build_model
    storage = {name: {"kind": kind, "bits": bits}
               for name, (kind, bits) in on_chip_storage(config).items()}
    report = {"config": config.to_dict() | {"name": config.name}, "p": p, "steps": steps,
              "batch": batch, "seed": seed, "published": PUBLISHED,
              "on_chip_storage": {"memories": storage,
                                  "total_bits": sum(m["bits"] for m in storage.values())},
              "models": {}}
    for name in models:
        started = time.perf_counter()
        model, shape = build(name, seed=seed)
        layers = extract_layers(model, shape)
        if densities is None:
            if progress:
                print(f"{name}: {steps} training steps with dy pruned at p = {p:g}, then "
                      f"one captured step (batch {batch}, {shape[1]}x{shape[2]})",
                      file=sys.stderr, flush=True)
            captures, losses = capture_network(model, shape[1], p=p, steps=steps, batch=batch,
                                               seed=seed, progress=progress)
            operands = {c.name: {"x": c.x, "w": c.w, "dy": c.dy} for c in captures}
            source = {"training": {"losses": losses}, "densities": _densities_of(captures)}
        else:
            if name not in densities:
                raise ValueError(f"the densities file has no entry for model {name}")
            operands = random_operands(layers, densities[name], batch=batch, seed=seed)
            source = {"densities_file": True, "densities": densities[name]}
        captured = time.perf_counter()
        if progress:
            print(f"{name}: cycle and energy model of {len(layers)} layers, dense and sparse "
                  f"({config.name} preset, {config.pes} PEs)", file=sys.stderr, flush=True)
        results = estimate_network(config, layers, operands, progress=progress, jobs=jobs)
        report["models"][name] = {
            **source, "layers": results, "summary": summarize(results),
            "seconds": {"capture": captured - started,
                        "model": time.perf_counter() - captured}}
    return report


def _x(value):
    return "n/a" if value is None else f"{value:.2f}x"


def _megabytes(bits):
    return f"{bits:,} bits ({bits / 8e6:,.1f} MB)"


def _markdown(report, command):
    config = report["config"]
    lines = [f"# Sparse vs dense training on the {config['name']} preset",
             "",
             f"`{command}`: {config['pe_rows']}x{config['pe_cols']} = "
             f"{config['pe_rows'] * config['pe_cols']} PEs, {config['lanes']} lane(s), rows up "
             f"to {config['max_row']}; batch {report['batch']}, `dy` pruned at p = "
             f"{report['p']:g}. Cycles are the compute cycles of the cycle model "
             "(`gen/model/cycles.py`, within 1% of the RTL on the regression); *with transfers* "
             "adds the AXI4-Stream load and readout beats, which the top level does not "
             "overlap with compute. Energy: `gen/energy.py` (45 nm figures); *on-chip* leaves "
             "out DRAM.",
             "",
             "## Per network (one training step)",
             "",
             "| network | phase | dense MACs | effectual MACs | ideal speedup | dense cycles | "
             "sparse cycles | speedup | speedup with transfers | energy efficiency | "
             "on-chip energy efficiency |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, entry in report["models"].items():
        for phase, row in entry["summary"].items():
            lines.append(
                f"| {name} | {_PHASE_NAMES.get(phase) or _STEP_NAMES[phase]} | "
                f"{row['dense_macs']:,} | "
                f"{row['effectual_macs']:,} | {_x(row['ideal_speedup'])} | "
                f"{row['dense']['cycles']:,} | {row['sparse']['cycles']:,} | "
                f"{_x(row['speedup'])} | {_x(row['speedup_with_transfers'])} | "
                f"{_x(row['energy_efficiency'])} | {_x(row['on_chip_energy_efficiency'])} |")
    lines += ["", f"Published (the design this project follows, AlexNet/ResNet training): "
              f"{PUBLISHED['speedup']}x speedup, {PUBLISHED['energy_efficiency']}x energy "
              "efficiency. *Step without first WG* leaves out the WG phase of the first "
              "layer (3 input channels, stride above 1: it uses 3 of the PEs and cannot be "
              "transposed, so its dense baseline dominates the step).", ""]
    storage = report["on_chip_storage"]
    lines += [f"On-chip storage of the {config['name']} preset: "
              f"{_megabytes(storage['total_bits'])}, of it " + ", ".join(
                  f"{name} {memory['bits'] / 8e3:,.0f} KB ({memory['kind']})"
                  for name, memory in sorted(storage["memories"].items(),
                                             key=lambda item: -item[1]["bits"])) + ".", ""]
    lines += ["Stationary rows loaded per training step (into the stationary buffer, whole "
              "entries as stored: a scratchpad line of `line_words` operands per PE):", ""]
    for name, entry in report["models"].items():
        step = entry["summary"]["step"]
        lines.append(f"- {name}: dense {_megabytes(step['dense']['stationary_bits'])}, "
                     f"sparse {_megabytes(step['sparse']['stationary_bits'])}")
    lines.append("")
    for name, entry in report["models"].items():
        lines += [f"## {name} per layer", "",
                  "| layer | phase | x density | dy density | mask density | dense cycles | "
                  "sparse cycles | speedup | ideal | PE utilization dense | energy efficiency |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        pes = config["pe_rows"] * config["pe_cols"]
        for e in entry["layers"]:
            d, s = e["dense"], e["sparse"]
            density = {k: f"{v:.2f}" for k, v in e["densities"].items()}
            lines.append(
                f"| {e['layer']} | {_PHASE_NAMES[e['phase']]} | {density.get('x', '-')} | "
                f"{density.get('dy', '-')} | {density.get('mask', '-')} | {d['cycles']:,} | "
                f"{s['cycles']:,} | {_x(_ratio(d['cycles'], s['cycles']))} | "
                f"{_x(_ratio(e['dense_macs'], e['effectual_macs']))} | "
                f"{100 * e['dense_macs'] / max(1, d['cycles'] * pes * config['lanes']):.0f}% | "
                f"{_x(_ratio(d['energy_pj']['total'], s['energy_pj']['total']))} |")
        step = entry["summary"]["step"]
        lines += ["", f"Energy of the step: dense {step['dense']['energy_pj'] / 1e9:.2f} mJ, "
                  f"sparse {step['sparse']['energy_pj'] / 1e9:.2f} mJ; by event kind "
                  "(dense / sparse, mJ): " + ", ".join(
                      f"{kind} {_kind_total(entry['layers'], 'dense', kind) / 1e9:.2f} / "
                      f"{_kind_total(entry['layers'], 'sparse', kind) / 1e9:.2f}"
                      for kind in EVENTS) + ".", ""]
    return "\n".join(lines) + "\n"


def _kind_total(layers, mode, kind):
    return sum(e[mode]["energy_pj"][kind] for e in layers)


def _ratio(dense, sparse):
    return dense / sparse if sparse else None


def _figures(report, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, entry in report["models"].items():
        layers = list(dict.fromkeys(e["layer"] for e in entry["layers"]))
        figure, axes = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(layers) + 3), 7),
                                    sharex=True)
        width = 0.27
        for offset, phase in enumerate(("ff", "bp", "wg")):
            by_layer = {e["layer"]: e for e in entry["layers"] if e["phase"] == phase}
            xs = [i + (offset - 1) * width for i, layer in enumerate(layers) if layer in by_layer]
            chosen = [by_layer[layer] for layer in layers if layer in by_layer]
            speedup = [_ratio(e["dense"]["cycles"], e["sparse"]["cycles"]) or 0 for e in chosen]
            energy = [_ratio(e["dense"]["energy_pj"]["total"],
                             e["sparse"]["energy_pj"]["total"]) or 0 for e in chosen]
            axes[0].bar(xs, speedup, width, label=_PHASE_NAMES[phase])
            axes[1].bar(xs, energy, width, label=_PHASE_NAMES[phase])
        for axis, title, key in ((axes[0], "speedup (dense / sparse cycles)", "speedup"),
                                 (axes[1], "energy efficiency (dense / sparse energy)",
                                  "energy_efficiency")):
            axis.set_yscale("log")
            axis.axhline(1, color="black", linewidth=0.8)
            axis.axhline(entry["summary"]["step"][key], color="tab:red", linestyle="--",
                         label=f"whole step {entry['summary']['step'][key]:.2f}x")
            axis.axhline(PUBLISHED[key], color="gray", linestyle=":",
                         label=f"published {PUBLISHED[key]}x")
            axis.set_ylabel(title)
            axis.legend(fontsize=8, ncol=5)
        axes[1].set_xticks(range(len(layers)))
        axes[1].set_xticklabels(layers, rotation=60, ha="right", fontsize=8)
        axes[0].set_title(f"{name}: sparse over dense per layer "
                          f"({report['config']['name']} preset, p = {report['p']:g})")
        figure.tight_layout()
        path = out / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)

    names = list(report["models"])
    figure, axis = plt.subplots(figsize=(7, 4))
    bars = (("step", "speedup", "speedup"),
            ("step_without_first_wg", "speedup", "speedup without the first layer's WG"),
            ("step", "speedup_with_transfers", "speedup with transfers"),
            ("step", "energy_efficiency", "energy efficiency"))
    width = 0.2
    for offset, (step, key, label) in enumerate(bars):
        values = [report["models"][n]["summary"][step][key] or 0 for n in names]
        bars_drawn = axis.bar([i + (offset - 1.5) * width for i in range(len(names))], values,
                              width, label=label)
        axis.bar_label(bars_drawn, fmt="%.2fx", fontsize=8)
    axis.axhline(PUBLISHED["speedup"], color="gray", linestyle=":",
                 label=f"published speedup {PUBLISHED['speedup']}x")
    axis.axhline(PUBLISHED["energy_efficiency"], color="gray", linestyle="--",
                 label=f"published energy efficiency {PUBLISHED['energy_efficiency']}x")
    axis.set_xticks(range(len(names)))
    axis.set_xticklabels(names)
    axis.set_ylabel("sparse over dense, one training step")
    axis.legend(fontsize=8)
    axis.set_title(f"{report['config']['name']} preset, p = {report['p']:g}")
    figure.tight_layout()
    path = out / "summary.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)
    return paths


def write_report(report, out, command):
    """Write ``report.md``, ``report.json``, ``densities.json`` and the PNGs into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.md", out / "report.json", out / "densities.json"]
    paths[0].write_text(_markdown(report, command))
    paths[1].write_text(json.dumps(report, indent=1) + "\n")
    paths[2].write_text(json.dumps({name: entry["densities"]
                                    for name, entry in report["models"].items()},
                                   indent=1) + "\n")
    return paths + _figures(report, out)
