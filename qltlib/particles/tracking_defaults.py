"""Defaults and limits of the tracking kernel (:mod:`qltlib.particles.tracking`), importable without numba.

``qlt simulate`` builds its parser and validates its settings from these; the kernel itself,
and with it numba, is imported only by the process that integrates trajectories.
"""

#: Largest phase increment per step for which the Taylor polynomial below is accurate to
#: better than 1e-9 (``0.5^9/9! = 5.4e-9``); larger steps are refused.
MAX_PHASE_STEP = 0.5
#: Default time step ``dt = DEFAULT_STEP_FRACTION * min(1/k_max, r_g)`` of every run (16 steps per
#: shortest wavelength): every committed ensemble and transfer run uses it, and the appendix
#: *Convergence* shows D and C_l at 0.4 agree with half the step (0.2) within their errors.
DEFAULT_STEP_FRACTION = 0.4
#: Default number of steps between exact re-synchronisations of the mode phases.
DEFAULT_RESYNC_EVERY = 512
#: Multirate tolerance of the ensembles (``qlt simulate``): each slow mode's field error stays
#: below 1e-3 of its amplitude; along a trajectory the field error is then ~1e-5 of the rms
#: field (``benchmarks/multirate_budget.py``), far below any ensemble's statistical error.
DEFAULT_MULTIRATE_TOLERANCE = 1.0e-3
#: Names of the working precisions of the per-mode arithmetic (float64 or float32).
WORKING_PRECISION_NAMES = ("float64", "float32")


def kernel_compile_notice() -> str | None:
    """A line to print before the first run on this installation: the tracking kernel is
    compiled by numba on first use (tens of seconds) and cached on disk afterwards.

    ``None`` once numba's cache holds the kernel (``__pycache__`` next to the tracking module,
    or ``$NUMBA_CACHE_DIR``).
    """
    import os
    from pathlib import Path

    places = [Path(__file__).resolve().parent / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        places.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    for place in places:
        if place.is_dir() and next(place.rglob("tracking._boris_plane_wave_kernel-*.nbi"), None):
            return None
    return ("note: compiling the tracking kernel on first use (about half a minute; cached "
            "for later runs)")
