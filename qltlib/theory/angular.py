"""Angular algebra of the pair propagator: Wigner symbols and the diagram matrix elements.

The matrix elements of paper eqs. (3.10)-(3.13) (chapter *Diagrams*):

.. math::
   M^{(0)}_{\\ell\\ell_0} &= \\delta_{\\ell\\ell_0},\\\\
   M^{(1a)}_{\\ell\\ell_0} &= -\\tfrac{8\\pi}{3}\\,\\delta_{\\ell\\ell_0}
        \\big(\\Lambda_0 - \\tfrac12\\Lambda_2\\big)\\,\\ell(\\ell+1),\\\\
   M^{(1c,0)}_{\\ell\\ell_0} &= \\tfrac{8\\pi}{3}\\sum_{\\ell_A}(2\\ell_A+1)\\kappa_{\\ell_A\\ell_A}
        \\begin{pmatrix}\\ell&\\ell_A&\\ell_0\\\\0&0&0\\end{pmatrix}^2(2\\ell_0+1)\\ell_0(\\ell_0+1),\\\\
   M^{(1c,2)}_{\\ell\\ell_0} &= \\tfrac{4\\pi}{3}\\frac{\\ell_0(\\ell_0+1)(2\\ell_0+1)(-1)^{\\ell_0}}
        {\\begin{pmatrix}\\ell_0&2&\\ell_0\\\\0&0&0\\end{pmatrix}}
        \\sum_{\\ell_A\\ell_B} i^{\\ell_A+\\ell_B}\\kappa_{\\ell_A\\ell_B}(2\\ell_A+1)(2\\ell_B+1)
        \\begin{Bmatrix}2&\\ell_0&\\ell_0\\\\\\ell&\\ell_A&\\ell_B\\end{Bmatrix}
        \\begin{pmatrix}2&\\ell_A&\\ell_B\\\\0&0&0\\end{pmatrix}
        \\begin{pmatrix}\\ell&\\ell_A&\\ell_0\\\\0&0&0\\end{pmatrix}
        \\begin{pmatrix}\\ell&\\ell_B&\\ell_0\\\\0&0&0\\end{pmatrix}.

The Wigner factors do not depend on the turbulence or on ``Delta T``; they are tabulated once per
``lmax`` (:class:`CouplingTables`), cached in memory and on disk, and contracted with the kernel
matrix ``kappa`` at each call. The selection rules make the tables compact: ``l_A`` runs over
``|l - l_0|, |l - l_0| + 2, ..., l + l_0`` and ``l_B - l_A`` is one of ``-2, 0, 2``.

:func:`brute_force_coupling` evaluates the same matrix elements by direct quadrature over the
sphere (no Wigner algebra), which is how the signs and phases are checked.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import gammaln

from ..paths import cache_dir

#: bump when the table layout or formulas change (invalidates the disk cache)
_TABLE_VERSION = 2


def _log_factorial(n):
    return gammaln(np.asarray(n, dtype=float) + 1.0)


def wigner3j_zero(l1, l2, l3) -> np.ndarray:
    """Wigner 3j symbol ``(l1 l2 l3; 0 0 0)`` for integer arrays (broadcast).

    Notes
    -----
    Closed form: zero unless the triangle holds and ``L = l1+l2+l3`` is even; then
    ``(-1)^{L/2} sqrt[(L-2l1)!(L-2l2)!(L-2l3)!/(L+1)!] (L/2)!/((L/2-l1)!(L/2-l2)!(L/2-l3)!)``.
    """
    l1, l2, l3 = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64) for a in (l1, l2, l3)))
    big = l1 + l2 + l3
    ok = (l3 >= np.abs(l1 - l2)) & (l3 <= l1 + l2) & (big % 2 == 0) & (l1 >= 0) & (l2 >= 0) & (l3 >= 0)
    g = big // 2
    # evaluate safely on invalid entries, then mask
    a1, a2, a3 = (np.where(ok, big - 2 * li, 0) for li in (l1, l2, l3))
    b1, b2, b3 = (np.where(ok, g - li, 0) for li in (l1, l2, l3))
    logval = 0.5 * (_log_factorial(a1) + _log_factorial(a2) + _log_factorial(a3) - _log_factorial(big + 1)) \
        + _log_factorial(g) - _log_factorial(b1) - _log_factorial(b2) - _log_factorial(b3)
    sign = np.where(g % 2 == 0, 1.0, -1.0)
    return np.where(ok, sign * np.exp(logval), 0.0)


def _triangle(a, b, c):
    return (c >= np.abs(a - b)) & (c <= a + b)


def _log_delta(a, b, c):
    return 0.5 * (_log_factorial(a + b - c) + _log_factorial(a - b + c) + _log_factorial(-a + b + c)
                  - _log_factorial(a + b + c + 1))


def wigner6j(j1, j2, j3, j4, j5, j6) -> np.ndarray:
    """Wigner 6j symbol ``{j1 j2 j3; j4 j5 j6}`` for non-negative integer arrays (broadcast).

    Notes
    -----
    Racah's single sum, evaluated term by term in logarithms. With one entry equal to 2 (the only
    case the diagrams need) the sum has at most five terms, so cancellation is mild; checked
    against ``sympy.physics.wigner.wigner_6j`` in ``tests/test_angular.py``.
    """
    js = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64) for a in (j1, j2, j3, j4, j5, j6)))
    j1, j2, j3, j4, j5, j6 = js
    ok = _triangle(j1, j2, j3) & _triangle(j1, j5, j6) & _triangle(j4, j2, j6) & _triangle(j4, j5, j3)
    z = lambda a: np.where(ok, a, 0)  # noqa: E731 - keep invalid entries finite
    j1, j2, j3, j4, j5, j6 = (z(j) for j in (j1, j2, j3, j4, j5, j6))
    a1, a2, a3, a4 = j1 + j2 + j3, j1 + j5 + j6, j4 + j2 + j6, j4 + j5 + j3
    b1, b2, b3 = j1 + j2 + j4 + j5, j2 + j3 + j5 + j6, j3 + j1 + j6 + j4
    logpre = _log_delta(j1, j2, j3) + _log_delta(j1, j5, j6) + _log_delta(j4, j2, j6) + _log_delta(j4, j5, j3)
    tmin = np.maximum.reduce([a1, a2, a3, a4])
    tmax = np.minimum.reduce([b1, b2, b3])
    nterm = int(np.max(np.where(ok, tmax - tmin + 1, 0))) if ok.any() else 0
    total = np.zeros(j1.shape)
    for i in range(nterm):
        t = tmin + i
        valid = ok & (t <= tmax)
        tt = np.where(valid, t, tmin)
        logterm = (_log_factorial(tt + 1) - _log_factorial(tt - a1) - _log_factorial(tt - a2)
                   - _log_factorial(tt - a3) - _log_factorial(tt - a4)
                   - _log_factorial(np.maximum(b1 - tt, 0)) - _log_factorial(np.maximum(b2 - tt, 0))
                   - _log_factorial(np.maximum(b3 - tt, 0)))
        sign = np.where(tt % 2 == 0, 1.0, -1.0)
        total += np.where(valid, sign * np.exp(logterm + logpre), 0.0)
    return np.where(ok, total, 0.0)


class CouplingTables:
    """Wigner factors of :math:numref:`eq-M1c0` and :math:numref:`eq-M1c2` for ``0 <= l, l_0 <= lmax``.

    Attributes
    ----------
    l_a : ndarray (lmax+1, lmax+1, lmax+1), int
        ``l_A = |l - l_0| + 2 j``; entries outside the triangle are flagged by zero coefficients.
    scalar : ndarray (lmax+1, lmax+1, lmax+1)
        Coefficient of ``kappa_{lA lA}`` in ``M^(1c,0)_{l l0}``.
    tensor : ndarray (lmax+1, lmax+1, lmax+1, 3)
        Coefficient of ``kappa_{lA, lA+d}`` (``d = -2, 0, 2``) in ``M^(1c,2)_{l l0}``, the phase
        ``i^{lA+lB}`` included (real: ``lA + lB`` is even).
    """

    OFFSETS = (-2, 0, 2)

    def __init__(self, lmax: int):
        lmax = int(lmax)
        self.lmax = lmax
        arrays = _load_or_build(lmax)
        self.l_a = arrays["l_a"]
        self.scalar = arrays["scalar"]
        self.tensor = arrays["tensor"]

    def contract(self, kappa: np.ndarray):
        """Return ``(M^(1c,0), M^(1c,2))`` for a kernel matrix ``kappa`` (shape >= 2lmax+1)."""
        lmax = self.lmax
        need = 2 * lmax + 1
        if kappa.shape[0] < need:
            raise ValueError(f"kappa must cover l_A up to 2*lmax = {2 * lmax}")
        la = self.l_a
        m_scalar = np.einsum("abj,abj->ab", self.scalar, kappa[la, la])
        m_tensor = np.zeros_like(m_scalar)
        for i, d in enumerate(self.OFFSETS):
            lb = np.clip(la + d, 0, need - 1)
            m_tensor += np.einsum("abj,abj->ab", self.tensor[..., i], kappa[la, lb])
        return m_scalar, m_tensor


def _build_tables(lmax: int) -> dict:
    ell = np.arange(lmax + 1)
    l = ell[:, None, None]
    l0 = ell[None, :, None]
    j = ell[None, None, :]
    l_a = np.abs(l - l0) + 2 * j
    in_triangle = l_a <= l + l0
    l_a = np.where(in_triangle, l_a, 0)
    w_a = np.where(in_triangle, wigner3j_zero(l, l_a, l0), 0.0)
    two_l0_plus1 = 2 * l0 + 1
    casimir0 = l0 * (l0 + 1)
    scalar = 8 * np.pi / 3 * (2 * l_a + 1) * w_a**2 * two_l0_plus1 * casimir0
    # tensor part: prefactor with the l_0 -> 0 limit taken (the term vanishes there)
    w_l0 = wigner3j_zero(l0, 2, l0)
    safe_w_l0 = np.where(l0 > 0, w_l0, 1.0)
    pref = np.where(l0 > 0, 4 * np.pi / 3 * casimir0 * two_l0_plus1 / safe_w_l0 * np.where(l0 % 2 == 0, 1.0, -1.0), 0.0)
    tensor = np.zeros(l_a.shape + (3,))
    for i, d in enumerate(CouplingTables.OFFSETS):
        l_b = l_a + d
        valid = in_triangle & (l_b >= 0) & (l_b <= l + l0) & (l_b >= np.abs(l - l0))
        l_b = np.where(valid, l_b, 0)
        phase = np.where(((l_a + l_b) // 2) % 2 == 0, 1.0, -1.0)  # i^(lA+lB), lA+lB even
        w_b = wigner3j_zero(l, l_b, l0)
        six = wigner6j(2, l0, l0, l, l_a, l_b)
        tensor[..., i] = np.where(valid, pref * phase * (2 * l_a + 1) * (2 * l_b + 1) * six
                                  * wigner3j_zero(2, l_a, l_b) * w_a * w_b, 0.0)
    return {"l_a": l_a.astype(np.int64), "scalar": scalar, "tensor": tensor}


_largest_tables: dict = {}


@lru_cache(maxsize=8)
def _load_or_build(lmax: int) -> dict:
    # tables for a smaller lmax are the leading block of a larger one
    big = _largest_tables.get("arrays")
    if big is not None and big["l_a"].shape[0] > lmax:
        n = lmax + 1
        return {k: np.ascontiguousarray(v[:n, :n, :n]) for k, v in big.items()}
    arrays = _load_or_build_exact(lmax)
    if big is None or big["l_a"].shape[0] < lmax + 1:
        _largest_tables["arrays"] = arrays
    return arrays


def _load_or_build_exact(lmax: int) -> dict:
    path = _cache_path(lmax)
    cached = _read_cached_tables(path, lmax)
    if cached is not None:
        return cached
    arrays = _build_tables(lmax)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename so that a concurrent or interrupted run never sees half a file
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs speed
    return arrays


def _cache_path(lmax: int) -> Path:
    tag = hashlib.sha1(f"v{_TABLE_VERSION}-lmax{lmax}".encode()).hexdigest()[:12]
    return cache_dir() / f"coupling_lmax{lmax}_{tag}.npz"


def tables_cached(lmax: int) -> bool:
    """Whether the tables of ``lmax`` need no building: held in memory, or on disk.

    Parameters
    ----------
    lmax : int
        Truncation of the tables.

    Returns
    -------
    bool
        ``True`` when a larger table is in memory (its leading block serves) or the disk
        cache has the file (whether it reads back whole is checked only when it is loaded).
    """
    big = _largest_tables.get("arrays")
    if big is not None and big["l_a"].shape[0] > lmax:
        return True
    return _cache_path(int(lmax)).is_file()


def _read_cached_tables(path: Path, lmax: int) -> dict | None:
    """Tables from the disk cache, or ``None`` if absent or unusable.

    A file that exists but cannot be read back whole (truncated, corrupt, wrong shapes) is
    reported on stderr in one line; the caller rebuilds it and overwrites the file.
    """
    if not path.exists():
        return None
    n = lmax + 1
    expected = {"l_a": (n, n, n), "scalar": (n, n, n), "tensor": (n, n, n, 3)}
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in expected}
        wrong = [key for key, shape in expected.items() if arrays[key].shape != shape]
        if wrong:
            raise ValueError(f"unexpected shape of {', '.join(wrong)}")
        if not all(np.all(np.isfinite(arrays[key])) for key in ("scalar", "tensor")):
            raise ValueError("non-finite entries")
        return arrays
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"qltlib: Wigner-table cache {path} is unreadable ({reason}); "
                         "rebuilding it\n")
        return None


def coupling_tables(lmax: int) -> CouplingTables:
    """Cached :class:`CouplingTables` for ``lmax``."""
    return CouplingTables(lmax)


# ---------------------------------------------------------------------------------------------
# Brute-force check: the same matrix elements by quadrature over the sphere, no Wigner algebra.
# ---------------------------------------------------------------------------------------------

def _sphere_rule(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    phi = 2 * np.pi * np.arange(2 * n) / (2 * n)
    ct = np.repeat(x, 2 * n)
    st = np.sqrt(1 - ct**2)
    ph = np.tile(phi, n)
    pts = np.stack([st * np.cos(ph), st * np.sin(ph), ct], axis=-1)
    wts = np.repeat(w, 2 * n) * (2 * np.pi / (2 * n))
    return pts, wts


def _legendre(l: int, x, derivative: int = 0):
    c = np.zeros(l + 1)
    c[l] = 1.0
    for _ in range(derivative):
        c = np.polynomial.legendre.legder(c)
    return np.polynomial.legendre.legval(x, c)


def brute_force_coupling(l: int, l0: int, l_a: int, l_b: int, n: int | None = None) -> float:
    """Coefficient of ``kappa_{lA lB}`` in ``M^(1c)_{l l0}`` by direct quadrature on the sphere.

    Evaluates :math:numref:`eq-M1c-angular` (chapter *Diagrams*) without Wigner algebra:

    ``(1/4pi)(2l0+1)/(4pi) (2lA+1)(2lB+1) i^(lB-lA) \\int dp_A \\int dp_B P_l(p_A.p_B)
    \\int dk (delta_ij - k_i k_j) P_lA(k.p_A) P_lB(k.p_B) [(p_A x d_A)_i (p_B x d_B)_j P_l0(p_A.p_B)]``

    with ``p_A`` fixed on the z axis (rotational invariance) and Gauss-Legendre x trapezoid
    rules that are exact for the polynomial integrand.
    """
    if (l_a + l_b) % 2:
        return 0.0
    if n is None:
        n = (l + l0 + l_a + l_b) // 2 + 4
    pts, wts = _sphere_rule(n)
    a = np.array([0.0, 0.0, 1.0])
    b, wb = pts, wts
    k, wk = pts, wts
    mu = b @ a
    axb = np.cross(a[None, :], b)
    d1 = _legendre(l0, mu, 1)
    d2 = _legendre(l0, mu, 2)
    # D_ij = (a x d_a)_i (b x d_b)_j P_l0(a.b) = -P'' (a x b)_i (a x b)_j + P' (mu delta_ij - b_i a_j)
    dmat = (-d2[:, None, None] * axb[:, :, None] * axb[:, None, :]
            + d1[:, None, None] * (mu[:, None, None] * np.eye(3)[None] - b[:, :, None] * a[None, None, :]))
    trace = np.einsum("bii->b", dmat)
    kdk = np.einsum("ki,bij,kj->kb", k, dmat, k)
    pa = _legendre(l_a, k @ a)
    pb = _legendre(l_b, k @ b.T)
    k_integral = wk @ ((trace[None, :] - kdk) * pa[:, None] * pb)
    phase = (-1.0) ** (((l_b - l_a) // 2) % 2)  # i^(lB - lA), lB - lA even
    total = 4 * np.pi * np.sum(wb * _legendre(l, mu) * k_integral)
    return float((2 * l0 + 1) / (4 * np.pi) ** 2 * (2 * l_a + 1) * (2 * l_b + 1) * phase * total)
