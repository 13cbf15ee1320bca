"""Multirate field evaluation of the slowly varying modes for the tracking kernel.

Multirate evaluation (``multirate_tolerance > 0``)
------------------------------------------------
A mode's phase changes by at most ``|k_n| dt`` per step, so the modes with ``k_n r_g << 1``
(three fifths of a log-spaced five-decade band) hardly change between steps. They are grouped
into *bands* (:func:`multirate_plan`), each represented by the second-order Taylor expansion of
its field about the point where it was last evaluated, and re-evaluated every
``band_interval`` steps (powers of two dividing ``resync_every``). The Lagrange remainder bounds
each slow mode's error by ``multirate_tolerance`` times its amplitude; the band intervals
follow from that bound, and the grouping from a cost model (dynamic programming over the
interval classes, with band boundaries on whole SIMD blocks). The band models are summed,
re-expanded about one reference point, into one quadratic evaluated at every step (float64).
:func:`multirate_field_error` measures the field error along a path against exact evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .tracking_defaults import DEFAULT_RESYNC_EVERY, MAX_PHASE_STEP
from .turbulence import PlaneWaveTurbulence


@dataclass(frozen=True)
class MultiratePlan:
    """Which modes are evaluated at every step and which in slow bands (:func:`multirate_plan`).

    Attributes
    ----------
    order : ndarray of int
        Permutation of the field's modes, by decreasing ``|k|``.
    n_exact : int
        The first ``n_exact`` modes of ``order`` are evaluated at every step.
    band_start, band_stop, band_interval : ndarray of int64
        Band ``b`` holds modes ``order[band_start[b]:band_stop[b]]`` and is re-evaluated every
        ``band_interval[b]`` steps (a power of two).
    tolerance : float
        Bound on the Taylor-model error of every slow mode, relative to its amplitude.
    phase_span : float
        ``theta = (6 tolerance)^(1/3)``: the largest phase ``k . Delta x`` a slow mode moves
        between two evaluations of its band.
    """

    order: np.ndarray
    n_exact: int
    band_start: np.ndarray
    band_stop: np.ndarray
    band_interval: np.ndarray
    tolerance: float
    phase_span: float

    @property
    def relative_cost(self) -> float:
        """Estimated per-step cost relative to exact evaluation of every mode.

        Counts one unit per exactly evaluated mode and three per slow mode and band evaluation
        (phase advance, value, gradient and Hessian), divided by the band's interval.
        """
        n_modes = self.order.size
        if n_modes == 0:
            return 1.0
        slow = np.sum((self.band_stop - self.band_start) * 3.0 / self.band_interval)
        return float((self.n_exact + slow) / n_modes)


#: Cost model of :func:`_choose_bands`, in units of one exact mode-step: re-evaluating a band
#: costs ``BAND_MODE_COST`` per mode plus ``BAND_FIXED_COST``.
BAND_MODE_COST = 4.5
BAND_FIXED_COST = 150.0
#: Mode loops run in blocks of this many modes: the vector width times the unrolling of the
#: compiled loops (16 float32 lanes x 4 with AVX-512). A shorter remainder runs in scalar code,
#: several times slower per mode, so band boundaries are put on multiples of the block and the
#: last band is padded with zero-amplitude modes.
SIMD_BLOCK = 64


def round_up_to_block(n: int, block: int = SIMD_BLOCK) -> int:
    return -(-int(n) // block) * block


def _choose_bands(sorted_interval):
    """Group modes (sorted by increasing allowed interval) into bands of least estimated cost.

    Each mode may be updated at its allowed interval or more often. Band boundaries are class
    boundaries rounded up to a multiple of :data:`SIMD_BLOCK` (moving a few modes into a faster
    band), a band uses the interval of its fastest mode, and the modes before the first band are
    evaluated exactly. Dynamic programming over the candidate boundaries (at most
    ``log2(resync_every) + 2`` of them).

    Returns
    -------
    starts, stops, intervals : lists of int
        The bands; the last band may end before a block boundary (the caller pads it).
    """
    sorted_interval = np.asarray(sorted_interval, dtype=np.int64)
    n = sorted_interval.size
    changes = [i for i in range(1, n) if sorted_interval[i] != sorted_interval[i - 1]]
    cuts = sorted({0, n} | {min(round_up_to_block(i), n) for i in changes})

    def band_cost(i, j):          # modes cuts[i]:cuts[j] as one band
        m = int(sorted_interval[cuts[i]])
        if m == 1:
            return math.inf
        return (BAND_MODE_COST * round_up_to_block(cuts[j] - cuts[i]) + BAND_FIXED_COST) / m

    # best[j]: least cost of modes 0:cuts[j]; choice[j] = i: modes cuts[i]:cuts[j] form one
    # band, choice[j] = -1: modes 0:cuts[j] are evaluated exactly
    best = [0.0] * len(cuts)
    choice = [-1] * len(cuts)
    for j in range(1, len(cuts)):
        best[j] = float(cuts[j])
        for i in range(j):
            cost = best[i] + band_cost(i, j)
            if cost < best[j]:
                best[j], choice[j] = cost, i
    starts, stops, intervals = [], [], []
    j = len(cuts) - 1
    while j > 0 and choice[j] >= 0:
        i = choice[j]
        starts.append(cuts[i])
        stops.append(cuts[j])
        intervals.append(int(sorted_interval[cuts[i]]))
        j = i
    return starts[::-1], stops[::-1], intervals[::-1]

def multirate_plan(wavenumbers, dt: float, tolerance: float,
                   resync_every: int = DEFAULT_RESYNC_EVERY) -> MultiratePlan:
    """Assign every mode an update interval from the error it may make between updates.

    Parameters
    ----------
    wavenumbers : array_like, shape (N,)
        ``|k_n|`` (units ``1/r_g``).
    dt : float
        Time step (units ``1/Omega``; the particle moves ``dt`` per step since ``|v| = 1``).
    tolerance : float
        Bound on the error of a slow mode's field between updates, relative to its amplitude
        ``|A_n|``. ``0`` evaluates every mode at every step (exact evaluation).
    resync_every : int
        Steps between exact re-synchronisations; every band interval divides it.

    Returns
    -------
    MultiratePlan

    Notes
    -----
    A band's field is represented by its second-order Taylor expansion about the half-step
    position ``x_u`` where the band was last evaluated. For one mode, with phase change
    ``phi = k_n . (x - x_u)``, the Lagrange remainder of ``cos`` bounds the error by
    ``|A_n| |phi|^3 / 6``. Until the next update ``|x - x_u| <= (m - 1) dt`` for interval ``m``,
    so a mode may use the largest power of two ``m`` with ``|k_n| (m - 1) dt <= theta``,
    ``theta = (6 tolerance)^(1/3)`` (and ``|k_n| m dt <= 0.5`` for the phase recurrence that
    advances its phase at each update). Modes with ``m <  Chapter *Validation*, section on multirate evaluation.
    """
    k = np.abs(np.asarray(wavenumbers, dtype=float)).ravel()
    if not (math.isfinite(tolerance) and 0.0 <= tolerance <= 1e-2):
        raise ValueError(f"multirate tolerance must lie in [0, 0.01], got {tolerance!r}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"time step must be positive, got {dt!r}")
    resync_every = int(resync_every)
    order = np.argsort(-k, kind="stable")
    theta = (6.0 * tolerance) ** (1.0 / 3.0)
    # largest power of two dividing resync_every: bands must be rebuilt at every resync
    max_interval = resync_every & -resync_every
    interval = np.ones(k.size, dtype=np.int64)
    if tolerance > 0:
        m = max_interval
        while m >= 2:
            fits = (k * (m - 1) * dt <= theta) & (k * m * dt <= MAX_PHASE_STEP) & (interval == 1)
            interval[fits] = m
            m //= 2
    sorted_interval = interval[order]               # non-decreasing, since k is decreasing
    starts, stops, intervals = _choose_bands(sorted_interval)
    n_exact = starts[0] if starts else k.size
    as_int = lambda values: np.asarray(values, dtype=np.int64)        # noqa: E731
    return MultiratePlan(order=order, n_exact=n_exact, band_start=as_int(starts),
                         band_stop=as_int(stops), band_interval=as_int(intervals),
                         tolerance=float(tolerance), phase_span=float(theta))


def multirate_field_error(field: PlaneWaveTurbulence, path, dt: float, tolerance: float,
                          resync_every: int = DEFAULT_RESYNC_EVERY) -> dict:
    """Field error of multirate evaluation along a given path, against exact evaluation.

    Re-implements, in float64 numpy, what the kernel evaluates: modes of the plan's bands are
    represented by their second-order Taylor model about the point where the band was last
    evaluated (every ``band_interval`` points, and at every ``resync_every``-th point), the
    others exactly. Separates the truncation of the Taylor models from the kernel's round-off.

    Parameters
    ----------
    field : PlaneWaveTurbulence
    path : array_like, shape (n_points, 3)
        Successive field-evaluation points, one per step (a particle moves ``dt`` per step).
    dt : float
        Step (fixes the plan).
    tolerance : float
        Multirate tolerance (:func:`multirate_plan`).
    resync_every : int

    Returns
    -------
    dict
        ``error`` (``(n_points, 3)``, model minus exact), ``exact`` (the exact field),
        ``bound`` (``tolerance * sum |A_n|`` over the slow modes: the Lagrange bound when
        consecutive points are at most ``dt`` apart), ``plan``.

    Notes
    -----
    Chapter *Validation*, multirate section.
    """
    path = np.asarray(path, dtype=float).reshape(-1, 3)
    plan = multirate_plan(np.linalg.norm(field.wavevectors, axis=1), dt, tolerance, resync_every)
    k = field.wavevectors[plan.order]
    amplitude = field.amplitude_vectors[plan.order]
    beta = field.phases[plan.order]
    exact = np.cos(path @ k.T + beta) @ amplitude
    model = np.cos(path @ k[:plan.n_exact].T + beta[:plan.n_exact]) @ amplitude[:plan.n_exact]
    for start, stop, interval in zip(plan.band_start, plan.band_stop, plan.band_interval):
        kb, ab, bb = k[start:stop], amplitude[start:stop], beta[start:stop]
        for first in range(0, len(path), int(interval)):
            last = min(first + int(interval), len(path))
            if resync_every % interval:
                raise ValueError("band intervals must divide resync_every")
            centre = path[first]
            phase = kb @ centre + bb
            e = path[first:last] - centre                      # (m, 3)
            ke = e @ kb.T                                      # (m, modes)
            # c + J e + H(e, e)/2 for a cos(k.x + beta): a [cos - sin (k.e) - cos (k.e)^2 / 2]
            taylor = np.cos(phase) - np.sin(phase) * ke - 0.5 * np.cos(phase) * ke ** 2
            model[first:last] += taylor @ ab
    slow_amplitude = np.sum(np.linalg.norm(amplitude[plan.n_exact:], axis=1))
    return {"error": model - exact, "exact": exact, "bound": tolerance * slow_amplitude,
            "plan": plan}
