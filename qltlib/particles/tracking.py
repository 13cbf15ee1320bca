"""Test-particle integrator: Boris rotation in a plane-wave field, compiled with numba.

Conventions (chapter *Validation*, :math:numref:`eq-val-eom` and :math:numref:`eq-val-backtrack`)
--------------------------------------------------------------------------------------------------
Units ``c = r_g = Omega = 1``. A particle of charge sign ``s`` moves as

    dr/dt = v,     dv/dt = s v x omega(r),     |v| = 1,

(``omega = q dB / p`` for the reference charge, so ``s = +1`` is the physical particle).
*Back-tracking*: the particle observed at the origin at time ``t`` with momentum direction
``p`` is followed to earlier times ``t0 = t - T``. With ``tau = t - t'`` and ``u = -p`` the
equations become those of a *forward* particle of charge ``-s`` and velocity ``u``; hence
:func:`backtrack` starts particles at the origin with ``v = -p`` and ``charge_sign = -1`` and
returns ``Delta r = r(t0) - r_sun`` after ``tau = T``.

Scheme
------
Drift-kick-drift leapfrog: ``x_{n+1/2} = x_n + v_n dt/2``, Boris rotation of ``v`` in
``omega(x_{n+1/2})`` (exact rotation about ``omega`` by ``2 arctan(|omega| dt / 2)``, so
``|v|`` is conserved to round-off), ``x_{n+1} = x_{n+1/2} + v_{n+1} dt/2``. The scheme is
second order, symplectic and time-reversible (with ``v -> -v`` *and* ``s -> -s``).

Performance
-----------
The field at the half-step position needs ``cos(k_n.x + beta_n)`` for every mode. Calling
``cos`` per mode per step dominates the cost, so the kernel keeps ``c_n + i s_n =
exp(i(k_n.x + beta_n))`` per particle and advances it by the phase increment
``delta_n = k_n.v dt`` (``|delta_n| <= k1 dt = step_fraction``) with a complex
multiplication by ``exp(i delta_n)``, evaluated by a short Taylor polynomial (truncation error
``< delta^9 / 9!``, ``1.4e-12`` at ``delta = 0.2``). The phases are re-synchronised exactly
(``libm`` ``cos``/``sin``) every ``resync_every`` steps, which bounds the drift of both the
polynomial and the round-off. The mode loop is branch-free over structure-of-arrays mode data
and vectorises (SIMD) under ``fastmath``; particles are distributed over threads with
``prange``.

The per-mode arithmetic runs in a selectable *working precision*. ``float32`` doubles the SIMD
width (about 2x the throughput); it perturbs the field by ~1e-6 relative (phase rounding between
re-synchronisations, which are always float64), far below the statistical errors of an ensemble.
Individual trajectories are chaotic, so they separate from their float64 twins after a few
``1/Omega`` — as they would for any 1e-6 change of the step — while the ensemble statistics agree
(chapter *Validation*, convergence section). Positions, velocities and the Boris rotation are
float64 in both cases. The float32 digits depend on the machine code generated for the CPU
(SIMD width and fused multiply-adds fix the rounding order of the vectorised mode sum);
ensemble statistics do not.

Multirate field evaluation of the slow modes: :mod:`qltlib.particles.multirate`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from .multirate import multirate_plan, round_up_to_block
from .tracking_defaults import (
    DEFAULT_RESYNC_EVERY,
    DEFAULT_STEP_FRACTION,
    MAX_PHASE_STEP,
    WORKING_PRECISION_NAMES,
)
from .turbulence import PlaneWaveTurbulence

#: Working precisions of the per-mode arithmetic.
WORKING_PRECISIONS = {name: np.dtype(name).type for name in WORKING_PRECISION_NAMES}


@numba.njit(inline="always", fastmath=True)
def _rotate_phase(cos_phase, sin_phase, n, d, one, s1, s2, s3, c1, c2, c3, c4):
    """Multiply ``cos_phase[n] + i sin_phase[n]`` by ``exp(i d)`` (Taylor polynomial, |d| <= 0.5)."""
    d2 = d * d
    sin_d = d * (one - d2 * s1 * (one - d2 * s2 * (one - d2 * s3)))
    cos_d = one - d2 * c1 * (one - d2 * c2 * (one - d2 * c3 * (one - d2 * c4)))
    c_old = cos_phase[n]
    s_old = sin_phase[n]
    c = c_old * cos_d - s_old * sin_d
    s = s_old * cos_d + c_old * sin_d
    cos_phase[n] = c
    sin_phase[n] = s
    return c, s


@numba.njit(fastmath=True)
def _band_model(band, cos_phase, sin_phase, kx_w, ky_w, kz_w, ax_w, ay_w, az_w, model, zero):
    """Second-order Taylor model of the field of one band's modes at their current phases.

    The arrays are the band's slices, so that loop indices start at zero: with a run-time start
    numba must allow negative indices (wrap-around), which defeats vectorisation. Writes
    ``model[band, 0:3]`` (value), ``3:12`` (gradient ``d omega_i / d x_j``, row-major) and
    ``12:30`` (Hessian ``d^2 omega_i / d x_j d x_k`` for ``jk = xx, yy, zz, xy, xz, yz``), one
    field component per pass (ten accumulators fit the vector registers; thirty would spill).
    """
    _component_model(band, 0, cos_phase, sin_phase, ax_w, kx_w, ky_w, kz_w, model, zero)
    _component_model(band, 1, cos_phase, sin_phase, ay_w, kx_w, ky_w, kz_w, model, zero)
    _component_model(band, 2, cos_phase, sin_phase, az_w, kx_w, ky_w, kz_w, model, zero)


@numba.njit(fastmath=True)
def _component_model(band, i, cos_phase, sin_phase, amplitude, kx_w, ky_w, kz_w, model, zero):
    """Value, gradient and Hessian of field component ``i`` of one band (see :func:`_band_model`).

    For ``a cos(k.x + beta)``: gradient ``-a k sin``, Hessian ``-a k k cos``.
    """
    w = zero
    gx = zero
    gy = zero
    gz = zero
    hxx = zero
    hyy = zero
    hzz = zero
    hxy = zero
    hxz = zero
    hyz = zero
    for n in range(cos_phase.size):
        ac = amplitude[n] * cos_phase[n]
        a_s = amplitude[n] * sin_phase[n]
        kx = kx_w[n]
        ky = ky_w[n]
        kz = kz_w[n]
        w += ac
        gx -= a_s * kx
        gy -= a_s * ky
        gz -= a_s * kz
        hxx -= ac * kx * kx
        hyy -= ac * ky * ky
        hzz -= ac * kz * kz
        hxy -= ac * kx * ky
        hxz -= ac * kx * kz
        hyz -= ac * ky * kz
    model[band, i] = w
    model[band, 3 + 3 * i] = gx
    model[band, 4 + 3 * i] = gy
    model[band, 5 + 3 * i] = gz
    model[band, 12 + 6 * i] = hxx
    model[band, 13 + 6 * i] = hyy
    model[band, 14 + 6 * i] = hzz
    model[band, 15 + 6 * i] = hxy
    model[band, 16 + 6 * i] = hxz
    model[band, 17 + 6 * i] = hyz


@numba.njit(fastmath=True)
def _advance_band(cos_phase, sin_phase, kx_w, ky_w, kz_w, ex, ey, ez, work):
    """Advance one band's phases (slices) by ``k . e`` with the Taylor rotation."""
    one = work[0]
    s1 = work[1]
    s2 = work[2]
    s3 = work[3]
    c1 = work[4]
    c2 = work[5]
    c3 = work[6]
    c4 = work[7]
    for n in range(cos_phase.size):
        d = kx_w[n] * ex + ky_w[n] * ey + kz_w[n] * ez
        _rotate_phase(cos_phase, sin_phase, n, d, one, s1, s2, s3, c1, c2, c3, c4)


@numba.njit(fastmath=True)
def _reexpand_model(model, band, dx, dy, dz, out):
    """Band ``band``'s quadratic re-expanded about a point displaced by ``d`` from its centre.

    ``model[band]`` holds ``c + J d + H(d, d)/2`` about the band's centre; ``out[0:30]`` receives
    (in float64) the same polynomial's value, gradient and Hessian at ``centre + d``. The
    re-expansion is exact algebra; its round-off stays small because ``|k d|`` is at most a few
    tens within one re-synchronisation period.
    """
    for i in range(3):
        hxx = np.float64(model[band, 12 + 6 * i])
        hyy = np.float64(model[band, 13 + 6 * i])
        hzz = np.float64(model[band, 14 + 6 * i])
        hxy = np.float64(model[band, 15 + 6 * i])
        hxz = np.float64(model[band, 16 + 6 * i])
        hyz = np.float64(model[band, 17 + 6 * i])
        gx = np.float64(model[band, 3 + 3 * i])
        gy = np.float64(model[band, 4 + 3 * i])
        gz = np.float64(model[band, 5 + 3 * i])
        hdx = hxx * dx + hxy * dy + hxz * dz
        hdy = hxy * dx + hyy * dy + hyz * dz
        hdz = hxz * dx + hyz * dy + hzz * dz
        out[i] = np.float64(model[band, i]) + gx * dx + gy * dy + gz * dz \
            + 0.5 * (hdx * dx + hdy * dy + hdz * dz)
        out[3 + 3 * i] = gx + hdx
        out[4 + 3 * i] = gy + hdy
        out[5 + 3 * i] = gz + hdz
        out[12 + 6 * i] = hxx
        out[13 + 6 * i] = hyy
        out[14 + 6 * i] = hzz
        out[15 + 6 * i] = hxy
        out[16 + 6 * i] = hxz
        out[17 + 6 * i] = hyz


@numba.njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _boris_plane_wave_kernel(x0, v0, kx, ky, kz, ax, ay, az, beta, kx_w, ky_w, kz_w, ax_w, ay_w,
                             az_w, n_exact, band_start, band_stop, band_interval, charge_sign, dt,
                             output_steps, resync_every):
    """Integrate particles (rows of ``x0``, ``v0``) and record positions and velocities.

    Modes are sorted by decreasing ``|k|``. The first ``n_exact`` are evaluated at every step
    (phase recurrence); mode band ``b`` (modes ``band_start[b]:band_stop[b]``) is represented by a
    second-order Taylor model about the position where it was last evaluated, re-evaluated every
    ``band_interval[b]`` steps (a power of two dividing ``resync_every``). ``kx, ky, kz, beta``
    and ``ax, ay, az`` (float64) serve the exact re-synchronisation; ``k*_w`` (wavevectors) and
    ``a*_w`` (amplitudes) are the same in the *working precision* of the per-mode arithmetic
    (float64 or float32; the kernel is compiled for either). Positions, velocities, the Boris
    rotation and the combined slow-band model are float64.

    Returns positions and velocities, both ``(P, n_out, 3)``, at the integer steps
    ``output_steps`` (sorted, > 0).
    """
    n_particles = x0.shape[0]
    n_modes = kx.size
    n_bands = band_start.size
    n_out = output_steps.size
    n_steps = output_steps[n_out - 1]
    positions_out = np.empty((n_particles, n_out, 3))
    velocities_out = np.empty((n_particles, n_out, 3))
    half_dt_charge = 0.5 * dt * charge_sign
    for p in numba.prange(n_particles):
        # per-particle phase state exp(i(k_n.x + beta_n)) and scalars in the working precision
        cos_phase = np.empty_like(kx_w)
        sin_phase = np.empty_like(kx_w)
        model = np.zeros((max(n_bands, 1), 30), dtype=kx_w.dtype)
        centres = np.zeros((max(n_bands, 1), 3))          # where each band was last evaluated
        # each band's model re-expanded about the reference point (xr, yr, zr), and their sum
        contribution = np.zeros((max(n_bands, 1), 30))
        slow = np.zeros(30)
        fresh = np.zeros(30)
        work = np.empty(16, dtype=kx_w.dtype)
        # Taylor coefficients: sin d = d(1 - d2/6 (1 - d2/20 (1 - d2/42))),
        # cos d = 1 - d2/2 (1 - d2/12 (1 - d2/30 (1 - d2/56)))
        work[0] = 1.0
        work[1] = 1.0 / 6.0
        work[2] = 1.0 / 20.0
        work[3] = 1.0 / 42.0
        work[4] = 0.5
        work[5] = 1.0 / 12.0
        work[6] = 1.0 / 30.0
        work[7] = 1.0 / 56.0
        work[8] = 0.0
        one = work[0]
        s1 = work[1]
        s2 = work[2]
        s3 = work[3]
        c1 = work[4]
        c2 = work[5]
        c3 = work[6]
        c4 = work[7]
        zero = work[8]
        vx = v0[p, 0]
        vy = v0[p, 1]
        vz = v0[p, 2]
        # xh: position where the field is evaluated (x_{n+1/2}); start at x_0
        xh = x0[p, 0]
        yh = x0[p, 1]
        zh = x0[p, 2]
        xr = xh
        yr = yh
        zr = zh
        j_out = 0
        for step in range(0, n_steps + 1):
            # the first drift is half a step (x_0 -> x_{1/2}), then full steps
            drift = 0.0 if step == 0 else (0.5 if step == 1 else 1.0)
            xh += drift * dt * vx
            yh += drift * dt * vy
            zh += drift * dt * vz
            wx = 0.0
            wy = 0.0
            wz = 0.0
            if step % resync_every == 0:
                # exact (float64, libm) phases bound the drift of the recurrence; every band model
                # is rebuilt here (band intervals divide resync_every)
                for n in range(n_modes):
                    phase = kx[n] * xh + ky[n] * yh + kz[n] * zh + beta[n]
                    c = math.cos(phase)
                    s = math.sin(phase)
                    cos_phase[n] = c
                    sin_phase[n] = s
                    if n < n_exact:
                        wx += ax[n] * c
                        wy += ay[n] * c
                        wz += az[n] * c
                # the reference point of the slow model moves here, so that |x - x_ref| stays
                # below resync_every steps
                xr = xh
                yr = yh
                zr = zh
                for j in range(30):
                    slow[j] = 0.0
                for b in range(n_bands):
                    lo = band_start[b]
                    hi = band_stop[b]
                    _band_model(b, cos_phase[lo:hi], sin_phase[lo:hi], kx_w[lo:hi], ky_w[lo:hi],
                                kz_w[lo:hi], ax_w[lo:hi], ay_w[lo:hi], az_w[lo:hi], model, zero)
                    centres[b, 0] = xh
                    centres[b, 1] = yh
                    centres[b, 2] = zh
                    for j in range(30):
                        contribution[b, j] = np.float64(model[b, j])
                        slow[j] += contribution[b, j]
            else:
                work[9] = drift * dt * vx          # cast to the working precision
                work[10] = drift * dt * vy
                work[11] = drift * dt * vz
                dvx = work[9]
                dvy = work[10]
                dvz = work[11]
                acc_x = zero
                acc_y = zero
                acc_z = zero
                for n in range(n_exact):
                    d = kx_w[n] * dvx + ky_w[n] * dvy + kz_w[n] * dvz
                    c, s = _rotate_phase(cos_phase, sin_phase, n, d, one, s1, s2, s3, c1, c2, c3, c4)
                    acc_x += ax_w[n] * c
                    acc_y += ay_w[n] * c
                    acc_z += az_w[n] * c
                wx = np.float64(acc_x)
                wy = np.float64(acc_y)
                wz = np.float64(acc_z)
                for b in range(n_bands):
                    # intervals are increasing powers of two: once one band is not due, none is
                    if step & (band_interval[b] - 1) != 0:
                        break
                    # advance the band's phases over the path since its last evaluation
                    work[12] = xh - centres[b, 0]
                    work[13] = yh - centres[b, 1]
                    work[14] = zh - centres[b, 2]
                    lo = band_start[b]
                    hi = band_stop[b]
                    # slices: zero-based loops vectorise (see _band_model)
                    _advance_band(cos_phase[lo:hi], sin_phase[lo:hi], kx_w[lo:hi], ky_w[lo:hi],
                                  kz_w[lo:hi], work[12], work[13], work[14], work)
                    _band_model(b, cos_phase[lo:hi], sin_phase[lo:hi], kx_w[lo:hi], ky_w[lo:hi],
                                kz_w[lo:hi], ax_w[lo:hi], ay_w[lo:hi], az_w[lo:hi], model, zero)
                    centres[b, 0] = xh
                    centres[b, 1] = yh
                    centres[b, 2] = zh
                    _reexpand_model(model, b, xr - xh, yr - yh, zr - zh, fresh)
                    for j in range(30):
                        slow[j] += fresh[j] - contribution[b, j]
                        contribution[b, j] = fresh[j]
            if n_bands > 0:
                # the slow bands: c + J e + H(e, e)/2 about the reference point
                ex = xh - xr
                ey = yh - yr
                ez = zh - zr
                exx = 0.5 * ex * ex
                eyy = 0.5 * ey * ey
                ezz = 0.5 * ez * ez
                exy = ex * ey
                exz = ex * ez
                eyz = ey * ez
                wx += slow[0] + slow[3] * ex + slow[4] * ey + slow[5] * ez + slow[12] * exx \
                    + slow[13] * eyy + slow[14] * ezz + slow[15] * exy + slow[16] * exz + slow[17] * eyz
                wy += slow[1] + slow[6] * ex + slow[7] * ey + slow[8] * ez + slow[18] * exx \
                    + slow[19] * eyy + slow[20] * ezz + slow[21] * exy + slow[22] * exz + slow[23] * eyz
                wz += slow[2] + slow[9] * ex + slow[10] * ey + slow[11] * ez + slow[24] * exx \
                    + slow[25] * eyy + slow[26] * ezz + slow[27] * exy + slow[28] * exz + slow[29] * eyz
            if step == 0:
                continue
            # Boris rotation: t = s omega dt/2, v' = v + v x t, v <- v + v' x 2t/(1+t^2)
            tx = half_dt_charge * wx
            ty = half_dt_charge * wy
            tz = half_dt_charge * wz
            f = 2.0 / (1.0 + tx * tx + ty * ty + tz * tz)
            px = vx + (vy * tz - vz * ty)
            py = vy + (vz * tx - vx * tz)
            pz = vz + (vx * ty - vy * tx)
            vx += f * (py * tz - pz * ty)
            vy += f * (pz * tx - px * tz)
            vz += f * (px * ty - py * tx)
            if step == output_steps[j_out]:
                # x_n = x_{n-1/2} + v_n dt/2
                positions_out[p, j_out, 0] = xh + 0.5 * dt * vx
                positions_out[p, j_out, 1] = yh + 0.5 * dt * vy
                positions_out[p, j_out, 2] = zh + 0.5 * dt * vz
                velocities_out[p, j_out, 0] = vx
                velocities_out[p, j_out, 1] = vy
                velocities_out[p, j_out, 2] = vz
                j_out += 1
    return positions_out, velocities_out


@dataclass(frozen=True)
class TrackResult:
    """Positions and velocities returned by :func:`integrate` / :func:`backtrack`.

    Attributes
    ----------
    times : ndarray, shape (n_times,)
        The output times actually reached (integer multiples of ``dt``), units ``1/Omega``.
    positions : ndarray, shape (n_times, P, 3)
        Positions at ``times`` (for :func:`backtrack`: ``Delta r = r(t0) - r_sun``), units ``r_g``.
    velocities : ndarray, shape (n_times, P, 3)
        Velocities at ``times`` (unit vectors up to round-off). For :func:`backtrack` the
        momentum direction of the particle at the earlier time ``t - T_i`` is ``-velocities[i]``.
    dt : float
        Step used.
    n_steps : int
        Number of steps to the last output time.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    dt: float
    n_steps: int

    @property
    def final_velocities(self) -> np.ndarray:
        """Velocities after the last step, shape ``(P, 3)``."""
        return self.velocities[-1]


def step_size(field: PlaneWaveTurbulence, step_fraction: float) -> float:
    """Nominal step ``dt = step_fraction * min(1/k_max, r_g)`` (units ``1/Omega``).

    The step resolves the shortest wavelength (``k_max dt = step_fraction``) and the gyration.
    """
    if not (np.isfinite(step_fraction) and 0.0 < step_fraction <= MAX_PHASE_STEP):
        raise ValueError(f"step fraction must lie in (0, {MAX_PHASE_STEP}], got {step_fraction!r}")
    k_max = float(np.max(np.linalg.norm(field.wavevectors, axis=1)))
    return step_fraction * min(1.0 / k_max, 1.0) if k_max > 0 else step_fraction


def output_schedule(times, dt_nominal: float):
    """Turn requested output times into integer step counts with a common step ``dt``.

    ``dt`` is the largest step ``<= dt_nominal`` that divides the last time into an integer number
    of steps *and* puts every other time on the step grid (searched among ``n, n+1, ..., 2n``
    steps); when no such step exists the other times are rounded to the nearest step. The times
    actually reached are returned.

    Returns
    -------
    steps : ndarray of int64, dt : float, times : ndarray
    """
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times <= 0):
        raise ValueError(f"times must be positive finite numbers, got {times.tolist()!r}")
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"times must be strictly increasing, got {times.tolist()!r}")
    n_min = int(math.ceil(times[-1] / dt_nominal - 1e-9))
    fractions = times / times[-1]
    n_last = n_min
    for candidate in range(n_min, 2 * n_min + 1):
        if np.all(np.abs(fractions * candidate - np.rint(fractions * candidate)) < 1e-9 * candidate):
            n_last = candidate
            break
    dt = times[-1] / n_last
    steps = np.maximum(np.rint(fractions * n_last).astype(np.int64), 1)
    if np.any(np.diff(steps) <= 0):
        raise ValueError("output times closer than one step; decrease --step-fraction")
    return steps, dt, steps * dt


def integrate(field: PlaneWaveTurbulence, positions, velocities, times, charge_sign: float = 1.0,
              step_fraction: float = DEFAULT_STEP_FRACTION, resync_every: int = DEFAULT_RESYNC_EVERY,
              precision: str = "float64", multirate_tolerance: float = 0.0) -> TrackResult:
    """Integrate particles forward in time through ``field``.

    Parameters
    ----------
    field : PlaneWaveTurbulence
        The plane-wave gyrovector field (units ``Omega``).
    positions, velocities : array_like, shape (P, 3)
        Initial positions (``r_g``) and unit velocity vectors.
    times : array_like
        Increasing positive output times (``1/Omega``).
    charge_sign : float
        ``+1`` for the reference charge, ``-1`` for the opposite charge.
    step_fraction : float
        ``dt = step_fraction * min(1/k_max, r_g)``; ``<= 0.5`` (validity of the phase recurrence).
    resync_every : int
        Steps between exact re-evaluations of the mode phases.
    precision : {"float64", "float32"}
        Working precision of the per-mode phase recurrence and field sum (positions, velocities
        and the Boris rotation are always float64). ``float32`` doubles the SIMD width; its
        relative field error (~1e-6) is far below the statistical errors of the ensemble.
    multirate_tolerance : float
        ``0`` (default): every mode is evaluated at every step. ``> 0``: slowly varying modes are
        grouped into bands evaluated every few steps through a second-order Taylor model, each
        mode's error bounded by ``multirate_tolerance`` times its amplitude
        (:func:`multirate_plan`).

    Returns
    -------
    TrackResult

    Notes
    -----
    Boris / drift-kick-drift scheme, chapter *Validation*, :math:numref:`eq-val-eom`.
    """
    x0 = np.ascontiguousarray(np.asarray(positions, dtype=np.float64).reshape(-1, 3))
    v0 = np.ascontiguousarray(np.asarray(velocities, dtype=np.float64).reshape(-1, 3))
    if x0.shape != v0.shape:
        raise ValueError("positions and velocities must have the same shape (P, 3)")
    if precision not in WORKING_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(WORKING_PRECISIONS)}, got {precision!r}")
    if int(resync_every) < 1:
        raise ValueError(f"resync_every must be a positive integer, got {resync_every!r}")
    steps, dt, actual_times = output_schedule(times, step_size(field, step_fraction))
    plan = multirate_plan(np.linalg.norm(field.wavevectors, axis=1), dt, multirate_tolerance,
                          resync_every)
    k = field.wavevectors[plan.order].T
    a = field.amplitude_vectors[plan.order].T
    beta = field.phases[plan.order]
    band_stop = plan.band_stop.copy()
    if band_stop.size:
        # zero-amplitude k = 0 modes fill the last band to whole SIMD blocks (they add nothing)
        padding = round_up_to_block(k.shape[1] - plan.band_start[-1]) - (k.shape[1] - plan.band_start[-1])
        k = np.pad(k, ((0, 0), (0, padding)))
        a = np.pad(a, ((0, 0), (0, padding)))
        beta = np.pad(beta, (0, padding))
        band_stop[-1] += padding
    k = np.ascontiguousarray(k, dtype=np.float64)
    a = np.ascontiguousarray(a, dtype=np.float64)
    beta = np.ascontiguousarray(beta, dtype=np.float64)
    work_dtype = WORKING_PRECISIONS[precision]
    k_work = np.ascontiguousarray(k, dtype=work_dtype)
    a_work = np.ascontiguousarray(a, dtype=work_dtype)
    pos, vel = _boris_plane_wave_kernel(x0, v0, k[0], k[1], k[2], a[0], a[1], a[2], beta,
                                        k_work[0], k_work[1], k_work[2], a_work[0], a_work[1],
                                        a_work[2], plan.n_exact, plan.band_start, band_stop,
                                        plan.band_interval, float(charge_sign), float(dt), steps,
                                        int(resync_every))
    return TrackResult(times=actual_times, positions=np.transpose(pos, (1, 0, 2)),
                       velocities=np.transpose(vel, (1, 0, 2)), dt=float(dt), n_steps=int(steps[-1]))


def backtrack(field: PlaneWaveTurbulence, directions, times,
              step_fraction: float = DEFAULT_STEP_FRACTION,
              resync_every: int = DEFAULT_RESYNC_EVERY, precision: str = "float64",
              multirate_tolerance: float = 0.0) -> TrackResult:
    """Back-track particles arriving at the origin with momentum directions ``directions``.

    Parameters
    ----------
    field : PlaneWaveTurbulence
        The turbulence realisation.
    directions : array_like, shape (P, 3)
        Unit momentum directions ``p`` at the observer (e.g. HEALPix pixel centres).
    times : array_like
        Back-tracking times ``T = t - t0`` (``1/Omega``), increasing.
    step_fraction, resync_every, precision, multirate_tolerance
        As in :func:`integrate`.

    Returns
    -------
    TrackResult
        ``positions[i]`` is ``Delta r = r(t - T_i) - r_sun`` for each particle.

    Notes
    -----
    A back-tracked particle of charge ``q`` is a forward particle of charge ``-q`` with reversed
    momentum (chapter *Validation*, :math:numref:`eq-val-backtrack`).
    """
    directions = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    return integrate(field, np.zeros_like(directions), -directions, times, charge_sign=-1.0,
                     step_fraction=step_fraction, resync_every=resync_every, precision=precision,
                     multirate_tolerance=multirate_tolerance)
