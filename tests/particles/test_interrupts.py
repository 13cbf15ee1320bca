"""Ctrl-C during `qlt simulate`, `qlt transfer` and `qlt spectrum --method transfer` is safe at
every moment (issues 11, 19 and 21).

Each test starts the command, waits for one moment of its life (the driver importing numba, a
worker loading the compiled kernel, a worker inside the parallel kernel of its first
realisation, between realisations, late in the run; one and two workers), sends SIGINT to the
driver, and checks: exit status 130 within 5 s, one line on stderr and nothing on stdout, no
worker process left, no temporary file, and every finished file intact (it passes the check
against the manifest).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_checks import sigint_as_at_a_terminal

from qltlib.particles.files import read_manifest_json as load_manifest_json
from qltlib.particles.settings import SimulationSettings
from qltlib.particles.store import (
    existing_realisations,
    existing_summaries,
    load_manifest,
    load_realisation,
    load_summary,
)
from qltlib.particles.transfer_run import existing_parts, load_part, settings_from_dict

REPO = Path(__file__).resolve().parents[2]
#: one realisation takes seconds (768 particles x 5000 steps x 1024 modes): a signal sent once
#: the worker's kernel runs lands inside it
LONG = ["--nside", "8", "--times", "50,100", "--modes", "1024", "--k0", "1e-2", "--k1", "1e1"]
#: ~50 ms per realisation on an idle machine: many files appear while the run goes on
SHORT = ["--nside", "4", "--times", "5,10", "--modes", "512", "--k0", "1e-2", "--k1", "1e1"]
EXIT_WITHIN = 5.0
#: `qlt transfer`: 1800 particles x 5000 steps x 1024 modes per realisation (seconds) ...
TRANSFER_LONG = ["--alpha", "2000", "--lmax", "4", "--grid", "30", "--modes", "1024",
                 "--k0", "1e-2", "--k1", "1e2"]
#: ... and 32 particles x 250 steps x 64 modes (milliseconds)
TRANSFER_SHORT = ["--alpha", "10", "--lmax", "2", "--grid", "4", "--modes", "64"]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _stat(pid):
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1]); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _has_numba(pid):
    try:
        return "llvmlite" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _alive(pid):
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


#: the long commands this harness drives: kind -> (arguments before the options, the option
#: naming the output); the kinds other than simulate keep their parts in a transfer part store
KINDS = {"simulate": (["simulate"], "--out"), "transfer": (["transfer"], "--store"),
         "spectrum": (["spectrum", "--method", "transfer"], "--store")}


class Run:
    """A long `qlt` command (``command``: a kind of :data:`KINDS`) in a subprocess, watched
    through /proc."""

    def __init__(self, out, args, workers, n, own_group=False, command="simulate"):
        self.out = out
        self.command = command
        head, where = KINDS[command]
        cmd = [sys.executable, "-m", "qltlib.cli", *head, *args, "--realisations", str(n),
               "--workers", str(workers), "--seed", "5", "--no-progress", where, str(out)]
        # own_group: the command leads its own process group, as a shell job in a terminal does
        self.own_group = own_group
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=own_group,
                                     preexec_fn=sigint_as_at_a_terminal)
        self.workers = {}       # pid -> thread count when the worker had just mapped llvmlite

    def finished(self):
        """Indices of the finished parts on disk (not yet verified)."""
        return existing_realisations(self.out) if self.command == "simulate" else existing_parts(self.out)

    def verify(self, indices):
        """Every finished part passes the check against the manifest (raises if not)."""
        if self.command == "simulate":
            settings = SimulationSettings.from_dict(load_manifest(self.out)["settings"])
            for index in indices:
                load_realisation(self.out, index, settings)
            for index in existing_summaries(self.out):
                load_summary(self.out, index, settings)
        else:
            settings = settings_from_dict(load_manifest_json(self.out)["settings"])
            for index in indices:
                load_part(self.out, index, settings)

    def watch(self):
        for pid in _children(self.proc.pid):
            if self.workers.get(pid) is None and _has_numba(pid):
                self.workers[pid] = _threads(pid)
            self.workers.setdefault(pid, None)

    def kernels_running(self):
        """Workers whose numba thread pool runs: two threads more than right after `import numba`
        (the worker's stdin watchdog thread and at least one pool thread)."""
        return [pid for pid, base in self.workers.items() if base is not None and _threads(pid) >= base + 2]

    def wait_for(self, condition, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            self.watch()
            if condition(self):
                return
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "moment never reached"
            time.sleep(0.01)

    def interrupt(self):
        """SIGINT to the driver (to its whole process group, as Ctrl-C in a terminal sends it, when
        it leads one); returns (exit code, stdout, stderr, seconds to exit)."""
        self.watch()
        self.files_at_signal = self.finished()
        if self.own_group:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        try:
            stdout, stderr = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            for pid in self.workers:
                os.killpg(pid, signal.SIGKILL)
            raise
        return self.proc.returncode, stdout, stderr, time.monotonic() - sent


def _check_clean_interrupt(run):
    code, stdout, stderr, seconds = run.interrupt()
    assert code == 130, (code, stderr[-2000:])
    assert seconds < EXIT_WITHIN
    assert stdout == ""
    # the estimate of a long run and the first-use compile notice precede the interrupt
    lines = [line for line in stderr.strip().splitlines() if not line.startswith(f"qlt {run.command}: note:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 1.0
    while any(_alive(pid) for pid in run.workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [pid for pid in run.workers if _alive(pid)], "worker process left running"
    assert not list(run.out.glob(".*.tmp"))
    kept = run.finished()
    assert set(run.files_at_signal) <= set(kept)
    if kept:
        run.verify(kept)                                      # raises if not intact
    assert str(len(kept)) in lines[0] or (not kept and "nothing finished" in lines[0])
    return kept


def test_interrupt_while_the_driver_starts_the_run(tmp_path):
    """The driver no longer imports numba (quick start), so the moment "driver imports numba" is
    gone; it is interrupted as soon as it has written the manifest, while it checks the
    directory and starts its worker."""
    run = Run(tmp_path / "run", LONG, workers=1, n=2)
    run.wait_for(lambda r: (r.out / "manifest.json").exists(), timeout=60)
    assert _check_clean_interrupt(run) == []


def test_interrupt_while_the_worker_loads_the_kernel(tmp_path):
    run = Run(tmp_path / "run", LONG, workers=1, n=2)
    run.wait_for(lambda r: any(base is not None for base in r.workers.values()))
    assert _check_clean_interrupt(run) == []


@pytest.mark.slow
def test_interrupt_inside_the_first_parallel_kernel(tmp_path):
    """Defect 1: this moment ended with a segmentation fault (exit 139), 7 times of 7."""
    run = Run(tmp_path / "run", LONG, workers=1, n=2)
    run.wait_for(lambda r: r.kernels_running())
    time.sleep(0.2)
    assert existing_realisations(run.out) == [], "first realisation finished too early for this test"
    assert _check_clean_interrupt(run) == []


def test_interrupt_between_realisations_keeps_finished_files(tmp_path):
    run = Run(tmp_path / "run", SHORT, workers=1, n=200)
    run.wait_for(lambda r: len(existing_realisations(r.out)) >= 2)
    kept = _check_clean_interrupt(run)
    assert 2 <= len(kept) < 200


@pytest.mark.slow
def test_interrupt_two_workers_in_their_first_realisations(tmp_path):
    """Defect 2: the command printed its line but went on computing for 10 minutes."""
    run = Run(tmp_path / "run", LONG, workers=2, n=4)
    run.wait_for(lambda r: len([b for b in r.workers.values() if b is not None]) == 2)
    time.sleep(0.5)
    assert existing_realisations(run.out) == []
    assert len(run.workers) == 2
    assert _check_clean_interrupt(run) == []


def test_ctrl_c_in_a_terminal_reaches_the_driver_only(tmp_path):
    """A terminal sends SIGINT to the whole foreground process group; the workers, in groups of
    their own, must not see it (in a shared group they died with tracebacks or ran on)."""
    run = Run(tmp_path / "run", LONG, workers=2, n=4, own_group=True)
    run.wait_for(lambda r: len(r.kernels_running()) == 2 or
                 len([b for b in r.workers.values() if b is not None]) == 2)
    time.sleep(0.3)
    assert _check_clean_interrupt(run) == []


@pytest.mark.slow
def test_interrupt_two_workers_late_in_the_run(tmp_path):
    run = Run(tmp_path / "run", SHORT, workers=2, n=200)
    run.wait_for(lambda r: len(existing_realisations(r.out)) >= 6)
    kept = _check_clean_interrupt(run)
    assert 6 <= len(kept) < 200


def test_killed_driver_leaves_no_worker(tmp_path):
    """SIGKILL cannot be handled: the workers notice their closed stdin and exit by themselves."""
    run = Run(tmp_path / "run", LONG, workers=1, n=2)
    run.wait_for(lambda r: any(base is not None for base in r.workers.values()))
    run.proc.kill()
    run.proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in run.workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.workers and not [pid for pid in run.workers if _alive(pid)]


def test_a_worker_killed_from_outside_is_one_line_exit_1(tmp_path):
    """A worker that dies (e.g. killed for memory) ends the run with one line, not a traceback."""
    run = Run(tmp_path / "run", LONG, workers=1, n=2)
    run.wait_for(lambda r: any(base is not None for base in r.workers.values()))
    worker = next(pid for pid, base in run.workers.items() if base is not None)
    os.kill(worker, signal.SIGKILL)
    stdout, stderr = run.proc.communicate(timeout=30)
    assert run.proc.returncode == 1 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "worker process for realisation 0 died (signal 9)" in lines[0], stderr
    assert not list(run.out.glob(".*.tmp"))


# --- qlt transfer: the same runner, the same guarantees -------------------------------------

def test_transfer_interrupt_at_the_start(tmp_path):
    run = Run(tmp_path / "store", TRANSFER_LONG, workers=1, n=3, command="transfer")
    run.wait_for(lambda r: (r.out / "manifest.json").exists(), timeout=60)
    assert _check_clean_interrupt(run) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_transfer_interrupt_inside_the_kernel(tmp_path, workers):
    """Issue 19: this moment ended with exit 1 and a 38-line traceback, or a segfault."""
    run = Run(tmp_path / "store", TRANSFER_LONG, workers=workers, n=3, command="transfer")
    if workers == 1:
        run.wait_for(lambda r: r.kernels_running())
        time.sleep(0.2)
    else:   # one numba thread each: no pool thread to see; both have loaded the kernel
        run.wait_for(lambda r: len([b for b in r.workers.values() if b is not None]) == 2)
        time.sleep(1.0)
    assert run.finished() == [], "first realisation finished too early for this test"
    assert _check_clean_interrupt(run) == []


#: what must agree between a resumed and an uninterrupted run, per command
RESULT_KEYS = {"transfer": ("matrix", "matrix_err"), "spectrum": ("C_ell", "C_ell_err", "K")}


@pytest.mark.parametrize("command, workers", [("transfer", 1), ("transfer", 2), ("spectrum", 1)])
def test_interrupt_between_realisations_then_resume_gives_the_same_result(tmp_path, command,
                                                                          workers):
    run = Run(tmp_path / "store", TRANSFER_SHORT, workers=workers, n=60, command=command)
    run.wait_for(lambda r: len(r.finished()) >= 3)
    kept = _check_clean_interrupt(run)
    assert 3 <= len(kept) < 60
    common = [*TRANSFER_SHORT, "--realisations", "60", "--seed", "5", "--no-progress",
              "--workers", str(workers)]

    def complete(store):
        proc = subprocess.run([sys.executable, "-m", "qltlib.cli", *KINDS[command][0], *common,
                               "--store", str(store)],
                              cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    resumed, fresh = complete(run.out), complete(tmp_path / "fresh")
    assert resumed["skipped"] == len(kept) and resumed["written"] == 60 - len(kept)
    assert fresh["written"] == 60 and resumed["realisations"] == 60
    for key in RESULT_KEYS[command]:
        assert resumed[key] == fresh[key], key


def test_transfer_to_an_unwritable_place_fails_at_once(tmp_path):
    for args in (["--out", "/proc/x.npz"], ["--store", "/proc/transfer-store"]):
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "qltlib.cli", "transfer", *TRANSFER_SHORT,
                               "--realisations", "2", "--no-progress", *args], cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert time.monotonic() - start < EXIT_WITHIN


# --- qlt spectrum --method transfer: the same runner and store ---------------------------------

def test_spectrum_transfer_interrupt_inside_the_kernel(tmp_path):
    run = Run(tmp_path / "store", TRANSFER_LONG, workers=1, n=3, command="spectrum")
    run.wait_for(lambda r: r.kernels_running())
    time.sleep(0.2)
    assert run.finished() == [], "first realisation finished too early for this test"
    assert _check_clean_interrupt(run) == []
