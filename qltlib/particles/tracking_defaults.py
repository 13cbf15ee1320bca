"""Defaults and limits of the tracking kernel (:mod:`qltlib.particles.tracking`), importable without numba.

``qlt simulate`` builds its parser and validates its settings from these; the kernel itself,
and with it numba, is imported only by the process that integrates trajectories.
"""

#: Largest phase increment per step for which the Taylor polynomial below is accurate to
#: better than 1e-9 (``0.5^9/9! = 5.4e-9``); larger steps are refused.
MAX_PHASE_STEP = 0.5
#: Default number of steps between exact re-synchronisations of the mode phases.
DEFAULT_RESYNC_EVERY = 512
#: Multirate tolerance of the ensembles (``qlt simulate``): each slow mode's field error stays
#: below 1e-3 of its amplitude; along a trajectory the field error is then ~1e-5 of the rms
#: field (``benchmarks/multirate_budget.py``), far below any ensemble's statistical error.
DEFAULT_MULTIRATE_TOLERANCE = 1.0e-3
#: Names of the working precisions of the per-mode arithmetic (float64 or float32).
WORKING_PRECISION_NAMES = ("float64", "float32")
