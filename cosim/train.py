"""Train the digits CNN with every convolution on the co-simulated accelerator.

The integer training loop of :mod:`pruning.integer_training` with the
accelerator's top level as its conv backend (:class:`RtlBackend`): every FF,
BP and WG convolution of every conv layer of every step is compiled
(:func:`gen.compiler.program.pack_program`), loaded over AXI4-Stream, run and read back
(:func:`cosim.layer.run_layer`, sparse mode). Next to it the golden loop
runs the same steps; after each step the weights must be equal bit for bit
(:func:`pruning.integer_training.train_lockstep`).

Per convolution the backend reports the RTL's compute cycles in sparse
mode and the dense-mode cycles of the same operands, from the cycle model
(:mod:`gen.model.cycles`, within 2% of the RTL on the regression) or, with
``dense="rtl"``, from a second RTL run in dense mode; plus the cycle and
energy models' sparse and dense figures (:func:`gen.model.network.mode_result`).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from gen.compiler.layer import check_layer
from gen.model.network import mode_result
from gen.compiler.layer import LayerMaps
from pruning.integer_training import (LAYERS, IntegerCNNTrainer, TrainingMismatch,
                                      TrainingSettings, train_lockstep)

from .accel_jobs import accelerator_session
from .layer import run_layer

__all__ = ["RtlBackend", "train_rtl", "summarize", "format_summary", "format_step", "plot",
           "DENSE_SOURCES", "PHASES"]

DENSE_SOURCES = ("model", "rtl")
#: The convolutions of a step, in the order the loop runs them (conv1 has no BP).
PHASES = [(layer, "ff") for layer in LAYERS] + [
    (layer, phase) for layer in reversed(LAYERS) for phase in ("wg", "bp")
    if (layer, phase) != (LAYERS[0], "bp")]


class RtlBackend:
    """A conv backend for :class:`~pruning.integer_training.IntegerCNNTrainer`: the top level.

    Parameters
    ----------
    config : hw.config.AccelConfig
    dense : {"model", "rtl"}
        Where the dense-mode cycles come from.
    simulator : str or None
        ``verilator`` (default) or ``icarus``.

    Each calling thread gets a simulator that stays up between calls
    (:func:`cosim.accel_jobs.accelerator_session`); :meth:`close` (or the
    end of a ``with`` block) stops them.
    """

    def __init__(self, config, *, dense="model", simulator=None):
        if dense not in DENSE_SOURCES:
            raise ValueError(f"dense must be one of {', '.join(DENSE_SOURCES)}, not {dense!r}")
        if not config.skipping:
            raise ValueError(f"config {config.name} is dense-only (skipping=False): it has no "
                             f"sparse mode to train with")
        self.config, self.dense, self.simulator = config, dense, simulator
        # One simulator per calling thread, started on first use and kept up:
        # starting one costs most of a second, a step runs eight convolutions.
        self._local = threading.local()
        self._sessions = []
        self._lock = threading.Lock()

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = accelerator_session(
                self.config, simulator=self.simulator, name="train")
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self):
        """Stop the simulators."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __call__(self, phase, *, label, x=None, w=None, dy=None, mask=None, stride, pad,
                 kernel=None):
        operands = dict(x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                        kernel=kernel if phase == "wg" else None)
        started = time.perf_counter()
        try:
            output, stats = run_layer(self.config, phase, **operands, dense=False,
                                      simulator=self.simulator, session=self._session())
            report = {"cycles": stats["cycles"], "model_cycles": stats["model_cycles"],
                      "effectual_macs": stats["effectual_macs"], "dense_macs": stats["dense_macs"],
                      "load_beats": stats["load_beats"], "output_beats": stats["output_beats"],
                      "saturated": stats["saturated"]}
            maps = LayerMaps.of(check_layer(self.config, phase, **operands))
            for mode in ("sparse", "dense"):
                result, _ = mode_result(self.config, maps, mode == "dense")
                report[f"model_{mode}"] = {"cycles": result["cycles"],
                                           "total_cycles": result["total_cycles"],
                                           "energy_pj": result["energy_pj"]["total"]}
            if self.dense == "rtl":
                dense_output, dense_stats = run_layer(self.config, phase, **operands, dense=True,
                                                      simulator=self.simulator,
                                                      session=self._session())
                if not (dense_output == output).all():
                    raise RuntimeError("the dense-mode result differs from the sparse one")
                report["dense_cycles"] = dense_stats["cycles"]
            else:
                report["dense_cycles"] = report["model_dense"]["cycles"]
        except RuntimeError as error:
            # run_layer compares with the golden model: a difference ends the run here.
            raise TrainingMismatch(f"{label} on the RTL: {error}") from error
        report["dense_source"] = self.dense
        report["seconds"] = time.perf_counter() - started
        return output, report


def _progress_bar(done, total, started, text, width=30):
    filled = width * done // total
    elapsed = time.perf_counter() - started
    eta = elapsed / done * (total - done) if done else 0.0
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} steps, "
            f"{elapsed / 60:.1f} min, ETA {eta / 60:.1f} min | {text}")


def format_step(record):
    """One line per step: loss, sparse and dense cycles per phase, densities."""
    convs = record.convolutions
    phases = {phase: (sum(c["cycles"] for (_, p), c in convs.items() if p == phase),
                      sum(c["dense_cycles"] for (_, p), c in convs.items() if p == phase))
              for phase in ("ff", "bp", "wg")}
    d = record.densities
    source = next(iter(convs.values()))["dense_source"]
    return (f"step {record.step:3d}: loss {record.loss:.4f} | cycles sparse (RTL)/dense ({source}) "
            + " ".join(f"{phase.upper()} {sparse}/{dense}" for phase, (sparse, dense)
                       in phases.items())
            + " | density x " + "/".join(f"{d['x'][layer]:.2f}" for layer in LAYERS)
            + " dy " + "/".join(f"{d['dy_pruned'][layer]:.2f}" for layer in LAYERS)
            + " mask " + "/".join(f"{d['mask'][layer]:.2f}" for layer in LAYERS if layer in d['mask']))


def format_summary(summary):
    """The end-of-run report: loss, accuracy and the cycles of all steps per phase."""
    source = summary["dense_source"]
    lines = [
        f"{summary['steps']} steps in {summary['seconds'] / 60:.1f} min; after every step the "
        f"weights equal the golden integer loop's, bit for bit.",
        f"loss: {summary['mean_loss_first_5']:.3f} (mean of the first {summary['window']} "
        f"steps) -> {summary['mean_loss_last_5']:.3f} (mean of the last {summary['window']})",
        f"test accuracy: {100 * summary['initial_accuracy']:.1f}% before -> "
        f"{100 * summary['test_accuracy']:.1f}% after, on {summary['test_images']} held-out "
        f"digits (chance 10%)",
        "",
        f"| phase | sparse cycles (RTL) | dense cycles ({source}) | speedup | ideal "
        f"(dense/effectual MACs) | cycle model on the sparse runs | energy efficiency (model) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for phase, totals in summary["phases"].items():
        model_error = totals["model_sparse_cycles"] / max(totals["sparse_cycles"], 1) - 1
        lines.append(
            f"| {phase.upper() if phase != 'all' else 'all'} | {totals['sparse_cycles']:,} | "
            f"{totals['dense_cycles']:,} | {_times(totals['speedup'])} | "
            f"{_times(totals['dense_macs'] / max(totals['effectual_macs'], 1))} | "
            f"{100 * model_error:+.2f}% | {_times(totals['energy_efficiency'])} |")
    if summary.get("figures"):
        lines += ["", "figures: " + ", ".join(summary["figures"])]
    return "\n".join(lines)


def _times(ratio):
    return f"{ratio:.2f}x" if ratio is not None else "n/a"


def record_json(record):
    return {
        "step": record.step, "loss": record.loss, "correct": record.correct,
        "batch": record.batch, "saturated": record.saturated, "seconds": record.seconds,
        "densities": record.densities,
        "convolutions": [{"layer": layer, "phase": phase, **record.convolutions[(layer, phase)]}
                         for layer, phase in PHASES],
    }


def train_rtl(config, settings, steps, *, dense="model", simulator=None, out=None,
              progress=True):
    """Train ``steps`` steps on the RTL in lockstep with the golden loop; returns a summary dict.

    Prints one line per step (and a progress bar on stderr); with ``out``,
    writes ``train.json``, ``loss.png`` and ``cycles.png`` there.
    """
    if not isinstance(settings, TrainingSettings):
        raise TypeError(f"settings must be a TrainingSettings, not {settings!r}")
    if settings.data_width != config.data_width:
        raise ValueError(f"settings.data_width {settings.data_width} differs from the "
                         f"{config.name} preset's data_width {config.data_width}")
    backend = RtlBackend(config, dense=dense, simulator=simulator)
    started = time.perf_counter()
    initial_accuracy = IntegerCNNTrainer(settings).accuracy()
    if progress:
        print(_progress_bar(0, steps, started, "building the RTL and the first step"),
              file=sys.stderr, flush=True)

    def on_step(record):
        print(format_step(record), flush=True)
        if progress:
            print(_progress_bar(record.step, steps, started,
                                f"loss {record.loss:.3f}, weights equal to the golden loop's"),
                  file=sys.stderr, flush=True)

    # Two workers: a layer's WG and BP simulate at once (the simulator is a
    # process of its own; the machines have two cores).
    with backend:
        trainer, records = train_lockstep(settings, steps, backend, on_step=on_step, workers=2)
    summary = summarize(records)
    summary.update(config=config.name, pes=config.pes, steps=steps, dense_source=dense,
                   initial_accuracy=initial_accuracy,
                   settings={**settings.__dict__, "channels": list(settings.channels)},
                   test_accuracy=trainer.accuracy(), test_images=len(trainer.test_labels),
                   seconds=time.perf_counter() - started)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.json").write_text(json.dumps(
            {"summary": summary, "steps": [record_json(r) for r in records]}, indent=1) + "\n")
        summary["figures"] = [str(path) for path in plot(records, summary, out)]
    return summary


def summarize(records):
    """Totals over the steps: cycles per phase (sparse RTL, dense), speedups, model energy."""
    totals = {}
    for phase in ("ff", "bp", "wg", "all"):
        chosen = [c for r in records for (_, p), c in r.convolutions.items()
                  if phase in ("all", p)]
        sparse = sum(c["cycles"] for c in chosen)
        dense = sum(c["dense_cycles"] for c in chosen)
        energy = {mode: sum(c[f"model_{mode}"]["energy_pj"] for c in chosen)
                  for mode in ("sparse", "dense")}
        totals[phase] = {
            "sparse_cycles": sparse, "dense_cycles": dense,
            "speedup": dense / sparse if sparse else None,
            "model_sparse_cycles": sum(c["model_cycles"] for c in chosen),
            "effectual_macs": sum(c["effectual_macs"] for c in chosen),
            "dense_macs": sum(c["dense_macs"] for c in chosen),
            "energy_efficiency": energy["dense"] / energy["sparse"] if energy["sparse"] else None,
        }
    return {"phases": totals, "window": len(records[:5]),
            "first_loss": records[0].loss, "last_loss": records[-1].loss,
            "mean_loss_first_5": sum(r.loss for r in records[:5]) / len(records[:5]),
            "mean_loss_last_5": sum(r.loss for r in records[-5:]) / len(records[-5:])}


def plot(records, summary, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.step for r in records]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(steps, [r.loss for r in records], marker=".", label="loss of the step's batch")
    window = 5
    if len(records) >= window:
        smooth = [sum(r.loss for r in records[i - window + 1:i + 1]) / window
                  for i in range(window - 1, len(records))]
        axis.plot(steps[window - 1:], smooth, color="tab:red",
                  label=f"mean of the last {window}")
    axis.set_xlabel("training step")
    axis.set_ylabel("cross-entropy loss")
    axis.set_title(f"digits CNN trained on the RTL ({summary['config']} preset), "
                   f"test accuracy {100 * summary['test_accuracy']:.1f}%")
    axis.legend()
    loss_path = _save(figure, out / "loss.png")

    figure, axis = plt.subplots(figsize=(8, 4))
    names = [f"{layer} {phase.upper()}" for layer, phase in PHASES]
    sparse = [sum(r.convolutions[key]["cycles"] for r in records) for key in PHASES]
    dense = [sum(r.convolutions[key]["dense_cycles"] for r in records) for key in PHASES]
    width = 0.4
    axis.bar([i - width / 2 for i in range(len(PHASES))], dense, width,
             label=f"dense mode ({summary['dense_source']})")
    bars = axis.bar([i + width / 2 for i in range(len(PHASES))], sparse, width,
                    label="sparse mode (RTL)")
    axis.bar_label(bars, labels=[f"{d / s:.1f}x" if s else "" for d, s in zip(dense, sparse)],
                   fontsize=8)
    axis.set_xticks(range(len(PHASES)))
    axis.set_xticklabels(names, rotation=30, ha="right")
    axis.set_ylabel(f"compute cycles over {len(records)} steps")
    total = summary["phases"]["all"]
    axis.set_title(f"cycles per convolution, {summary['config']} preset: "
                   f"{total['speedup']:.2f}x in all")
    axis.set_ylim(top=1.3 * max(dense + sparse + [1]))
    axis.legend(loc="upper center", ncol=2)
    return [loss_path, _save(figure, out / "cycles.png")]


def _save(figure, path):
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
