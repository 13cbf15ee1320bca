"""The one runner of every long command: numbered parts computed in worker processes.

A long command (``qlt simulate``, ``qlt transfer``, and whatever tracks particles next) splits
its work into numbered *parts* (one field realisation each) that it can compute and write
independently. It describes them by a :class:`TaskSpec`: the import path of a factory and its
JSON arguments. The factory, called in a worker as ``factory(out_dir, **arguments)``, returns a
*task* with two methods:

``compute(index)``
    the numbers of part ``index`` (a picklable result);
``write(result)``
    the files of that part in ``out_dir``, written atomically, so that a part is on disk
    completely or not at all.

:func:`run_parts` computes the parts ``todo`` locally (in worker processes) or on a Dask
cluster, and calls ``done(index)`` as each one is on disk.

Why worker processes, also for one worker
-----------------------------------------
Ctrl-C must be safe at every moment. A SIGINT that arrives while numba's threading layer runs
the parallel kernel (or loads / compiles it) can crash the process, and a process pool whose
workers share the terminal's process group receives the same SIGINT. So the compiled kernels
never run in the process that owns SIGINT: every part is computed in a worker process started
in its own process group, with SIGINT ignored, and fed one part index per line on its stdin.
Only the driver sees Ctrl-C; it SIGKILLs the workers (safe at any instruction), removes their
temporary files and re-raises. Finished parts are complete by construction (temporary file +
:func:`os.replace`). A worker whose stdin closes -- the driver finished or died, even by
SIGKILL -- exits at once, from a watchdog thread.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..machine import usable_cores

_WORKER_COMMAND = "from qltlib.particles.runner import worker_main; worker_main()"


def stderr_line(message: str) -> None:
    """Default reporter of the long commands: one line on stderr, flushed at once."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TaskSpec:
    """What a worker needs to compute parts: ``factory(out_dir, **arguments)`` gives the task.

    Attributes
    ----------
    factory : str
        ``"package.module:name"`` of a callable importable in a fresh interpreter.
    arguments : dict
        JSON-serialisable keyword arguments of the factory.
    """

    factory: str
    arguments: dict = field(default_factory=dict)

    def make(self, out_dir):
        """The task object, built in this process."""
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)(Path(out_dir), **self.arguments)

    def as_json(self) -> str:
        return json.dumps({"factory": self.factory, "arguments": self.arguments})


def worker_main() -> None:
    """Entry point of a worker process (``python -c _WORKER_COMMAND OUT_DIR``).

    Reads a :class:`TaskSpec` (JSON) from the first stdin line, then part indices, one per line;
    computes and writes each part itself and answers one JSON line per index on stdout.
    """
    import queue
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C belongs to the driver
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)            # stray prints of compiled libraries go to the log, not the replies
    out_dir = Path(sys.argv[1])
    commands = sys.stdin.buffer
    first = commands.readline()
    if not first:
        os._exit(0)
    spec = json.loads(first)
    task = TaskSpec(spec["factory"], spec["arguments"]).make(out_dir)
    indices = queue.Queue()

    def read_indices():
        for line in commands:
            indices.put(int(line))
        os._exit(0)          # the driver closed the pipe or is gone: stop, even inside the kernel

    threading.Thread(target=read_indices, daemon=True).start()
    while True:
        index = indices.get()
        try:
            task.write(task.compute(index))
            replies.write(json.dumps({"index": index}) + "\n")
        except Exception as exc:
            # a ValueError is bad input (e.g. output times closer than one step): the driver
            # raises it again as such; anything else is a failure of the worker
            replies.write(json.dumps({"index": index, "bad_input": isinstance(exc, ValueError),
                                      "error": str(exc) if isinstance(exc, ValueError)
                                      else f"{type(exc).__name__}: {exc}"}) + "\n")


class WorkerError(RuntimeError):
    """A worker process died or failed on a part (not caused by the input)."""


class _WorkerProcess:
    """Driver-side handle of one worker process."""

    def __init__(self, spec: TaskSpec, out_dir: Path, numba_threads: int | None):
        import subprocess
        import tempfile

        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        if numba_threads is not None:
            env.setdefault("NUMBA_NUM_THREADS", str(numba_threads))
        self.out_dir = out_dir
        self.log = tempfile.TemporaryFile()
        self.index = None
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_COMMAND, str(out_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, process_group=0)
        self._send(spec.as_json())

    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(self.failure()) from None

    def assign(self, index: int) -> None:
        self.index = int(index)
        self._send(str(self.index))

    def failure(self) -> str:
        """One line on why the worker stopped (for a worker that died)."""
        code = self.proc.wait()
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        how = f"signal {-code}" if code < 0 else f"status {code}"
        return (f"worker process for realisation {self.index} died ({how})"
                + (f": {lines[-1]}" if lines else ""))

    def close(self, kill: bool) -> None:
        """End the worker (SIGKILL if ``kill``, else close its stdin) and remove its temporary files.

        After a normal end the worker's own stderr (warnings of the libraries) is passed on.
        """
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        self.proc.stdout.close()
        if not kill:
            self.log.seek(0)
            sys.stderr.write(self.log.read().decode(errors="replace"))
        self.log.close()
        for tmp in self.out_dir.glob(f".*.{self.proc.pid}.tmp"):
            tmp.unlink(missing_ok=True)


def _run_local(spec: TaskSpec, out_dir: Path, todo: list, workers: int, done) -> None:
    """Compute parts ``todo`` in ``workers`` worker processes; ``done(index)`` per finished part."""
    import collections
    import selectors

    queue = collections.deque(todo)
    # numba threads over particles in each worker; split the cores between the workers
    threads = None if workers == 1 else max(1, usable_cores() // workers)
    pool = []
    selector = selectors.DefaultSelector()
    finished = False
    try:
        for _ in range(min(workers, len(queue))):
            worker = _WorkerProcess(spec, out_dir, threads)
            pool.append(worker)
            selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
            worker.assign(queue.popleft())
        busy = len(pool)
        while busy:
            for key, _ in selector.select(timeout=1.0):
                worker = key.data
                line = worker.proc.stdout.readline()
                if not line:
                    raise WorkerError(worker.failure())
                reply = json.loads(line)
                if reply.get("bad_input"):
                    raise ValueError(reply["error"])
                if "error" in reply:
                    raise WorkerError(f"realisation {reply['index']} failed: {reply['error']}")
                done(reply["index"])
                if queue:
                    worker.assign(queue.popleft())
                else:
                    selector.unregister(worker.proc.stdout)
                    busy -= 1
        finished = True
    finally:
        without_sigint(lambda: [worker.close(kill=not finished) for worker in pool])
        selector.close()


def without_sigint(action):
    """Run ``action`` with Ctrl-C held back (a second Ctrl-C must not leave workers behind)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return action()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return action()
    finally:
        signal.signal(signal.SIGINT, previous)


def connect_dask(address: str, timeout: float):
    """A :class:`dask.distributed.Client` for ``address``; ValueError (one line) if unreachable."""
    try:
        from dask.distributed import Client
    except ImportError as exc:  # pragma: no cover - dask is an optional dependency
        raise ValueError(f"--scheduler needs dask.distributed, which is not installed ({exc})") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot reach Dask scheduler at {address!r}: {reason}") from None


def _run_dask(spec: TaskSpec, out_dir: Path, todo: list, client, done) -> None:
    """Compute parts ``todo`` on a Dask cluster; write each result here as it arrives."""
    from dask.distributed import as_completed

    task = spec.make(out_dir)
    futures = {client.submit(task.compute, i, pure=False): i for i in todo}
    try:
        for fut in as_completed(futures):
            task.write(fut.result())
            done(futures[fut])
    finally:
        for fut in futures:
            fut.cancel()
        client.close()


def check_workers(workers) -> int:
    """``workers`` as a positive int; ValueError (one line) otherwise."""
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)


def check_realisations(n_realisations) -> int:
    """``n_realisations`` as a positive int; ValueError (one line) otherwise."""
    if isinstance(n_realisations, bool) or int(n_realisations) != n_realisations or n_realisations < 1:
        raise ValueError(f"number of realisations must be a positive integer, got {n_realisations!r}")
    return int(n_realisations)


def run_announced(spec: TaskSpec, out_dir, todo, total: int, seconds_per_part: float,
                  memory_bytes: float, workers: int = 1, client=None, progress: bool = True,
                  report=stderr_line) -> list:
    """:func:`run_parts`, after what a long command says before it starts (through ``report``):
    the up-front estimate of a run longer than
    :data:`~qltlib.particles.estimates.LONG_RUN_SECONDS` and, for local workers, the first-use
    compile notice of the tracking kernel."""
    from .estimates import announce_run
    from .tracking_defaults import kernel_compile_notice

    todo = list(todo)
    announce_run(report, seconds_per_part, len(todo), 1 if client is not None else workers,
                 memory_bytes)
    if todo and client is None and (notice := kernel_compile_notice()):
        report(notice)
    return run_parts(spec, out_dir, todo, workers=workers, client=client, progress=progress,
                     total=total)


def run_parts(spec: TaskSpec, out_dir, todo, done=None, workers: int = 1, client=None,
              progress: bool = False, total: int | None = None) -> list:
    """Compute and write the parts ``todo`` of a long command; ``done(index)`` as each is on disk.

    Parameters
    ----------
    spec : TaskSpec
        The factory of the task (see the module docstring).
    out_dir : path
        Directory the task writes to (exists).
    todo : sequence of int
        Part indices still to compute.
    done : callable, optional
        Called with each index once its files are written (bookkeeping).
    workers : int
        Local worker processes; one uses every core (numba threads), several share them.
    client : dask.distributed.Client or None
        Compute on this Dask cluster (:func:`connect_dask`) instead of local workers; the
        client is closed at the end.
    progress : bool
        A tqdm bar on stderr over ``total`` parts (default ``len(todo)``), starting at the parts
        already finished.
    total : int, optional
        Size of the whole run, finished parts included.

    Returns
    -------
    list of int
        The parts written now, in index order.

    Raises
    ------
    ValueError
        Bad input found by a worker.
    WorkerError
        A worker died (e.g. killed for memory) or failed on a part.
    KeyboardInterrupt
        After every worker is gone and its temporary files removed; finished parts stay.
    """
    todo = list(todo)
    total = len(todo) if total is None else int(total)
    written = []

    from tqdm.auto import tqdm
    bar = tqdm(total=total, initial=total - len(todo), disable=not progress,
               desc="realisations", unit="real", file=sys.stderr)

    def finished(index):
        written.append(int(index))
        bar.update()
        if done is not None:
            done(index)

    try:
        if todo and client is not None:
            _run_dask(spec, Path(out_dir), todo, client, finished)
        elif todo:
            _run_local(spec, Path(out_dir), todo, check_workers(workers), finished)
    finally:
        bar.close()
    return sorted(written)
