"""What this machine offers a run (memory, cores), and sizes and durations as a reader reads them.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

#: Memory of one Python process with numpy, healpy and numba loaded (bytes, measured ~0.3 GB).
PROCESS_BASE_BYTES = 400 * 2 ** 20


def available_memory() -> int:
    """Bytes of memory this machine can give one run: physical memory, or the cgroup limit if lower.

    The capacity, not what happens to be free now: a run that fits is not refused because other
    programs use memory at the moment, and the answer does not change from one call to the next.
    """
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            memory = min(memory, int(limit))
    except OSError:
        pass
    return memory


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:       # pragma: no cover - not Linux
        return os.cpu_count() or 1


def format_bytes(n: float) -> str:
    """``"1.5 GiB"`` or ``"300 MiB"``."""
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def format_seconds(s: float) -> str:
    """``"2.5 h"``, ``"12 min"`` or ``"40 s"`` (three significant digits at most)."""
    for unit, length in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= length:
            return f"{s / length:.3g} {unit}"
    return f"{s:.2g} s"


def memory_available_now() -> float:
    """Bytes a new allocation can get now (``MemAvailable``; total memory as fallback)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf
