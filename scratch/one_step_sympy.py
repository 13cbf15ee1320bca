"""Machine checks of the one-step recursion (scratch/one_step_derivation.md).

    /work/main/.venv/bin/python scratch/one_step_sympy.py

Each check prints its name and ``True`` (an AssertionError otherwise).
"""
import sympy as sp

th, ph = sp.symbols("theta phi", real=True)
pvec = sp.Matrix([sp.sin(th) * sp.cos(ph), sp.sin(th) * sp.sin(ph), sp.cos(th)])


def sphere(expr):
    """Integral over the unit sphere."""
    return sp.simplify(sp.integrate(sp.integrate(expr * sp.sin(th), (ph, 0, 2 * sp.pi)), (th, 0, sp.pi)))


def check(name, ok):
    assert ok, name
    print(f"{name}: {bool(ok)}")


# 1. int p_i p_j dOmega = 4 pi/3 delta_ij  =>  C_1 of the linear map u.p is 4 pi |u|^2/9
second = sp.Matrix(3, 3, lambda i, j: sphere(pvec[i] * pvec[j]))
check("int p p^T = (4 pi/3) 1", sp.simplify(second - 4 * sp.pi / 3 * sp.eye(3)) == sp.zeros(3))
u = sp.Matrix(sp.symbols("u0:3", real=True))
# C_1 = (1/4pi) int int P_1(p.q) f(p) f(q) = (1/4pi) u^T (int p p^T)(int q q^T) u
c1_linear = sp.simplify((u.T * second * second * u)[0] / (4 * sp.pi))
check("C_1[u.p] = 4 pi |u|^2 / 9", sp.simplify(c1_linear - 4 * sp.pi / 9 * (u.T * u)[0]) == 0)
# and a linear map has no power at l = 2, 3 (P_2, P_3 orthogonal to the degree-1 product)
x = sp.symbols("x")
for ell in (0, 2, 3):
    # int int P_l(p.q) (u.p)(u.q): along z, the q integral of P_l(p.q) q_z is (4pi/3) p_z delta_{l1}
    q_int = sphere(sp.legendre(ell, pvec[2]) * pvec[2])       # with p = z: int P_l(q_z) q_z
    check(f"int P_{ell}(p.q) q dq = 0", q_int == 0)

# 2. the mean over G along x, y, z equals the isotropic mean of a quadratic form in G
axes_mean = sum((sp.eye(3)[:, i] * sp.eye(3)[:, i].T for i in range(3)), sp.zeros(3)) / 3
check("(1/3) sum_i e_i e_i^T = <g g^T>_iso = 1/3", axes_mean == second / (4 * sp.pi))

# 3. uniform field: R(s) = rotation by w s about z (any axis by isotropy), A = int_0^T R(s) ds
w, T, s = sp.symbols("omega T s", positive=True)


def rot(a):
    return sp.Matrix([[sp.cos(a), -sp.sin(a), 0], [sp.sin(a), sp.cos(a), 0], [0, 0, 1]])


A = rot(w * s).applyfunc(lambda e: sp.integrate(e, (s, 0, T)))
R = rot(w * T)
check("tr A = T + 2 sin(wT)/w", sp.simplify(A.trace() - (T + 2 * sp.sin(w * T) / w)) == 0)
check("|A|_F^2 = T^2 + 4(1 - cos wT)/w^2",
      sp.simplify((A.T * A).trace() - (T ** 2 + 4 * (1 - sp.cos(w * T)) / w ** 2)) == 0)
check("tr(A R^T) = tr A", sp.simplify((A * R.T).trace() - A.trace()) == 0)

# one-step terms of the helix, Delta r_1 = -A p, p' = R p (G averaged: factor 1/3 of |.|_F^2)
S1 = 4 * sp.pi / 9 * (A.T * A).trace() / 3
X1 = 2 * 4 * sp.pi / 9 * (-(A * R.T).trace()) / 3
m1 = -A.trace() / 3
P1 = R.trace() / 3

# 4. renewed uniform field: the second step has A2 = A(n), R2 = R(n) about a random axis n,
#    independent of the first. Two-step map: Delta r = -(A1 + A2 R1) p. Average over n in
#    {+-x, +-y, +-z} (exact for the linear and quadratic terms below).


def about(n, M):
    """Matrix M (built about z) rotated to the axis n in {x, y, z} with sign."""
    i, sign = n
    perm = {2: sp.eye(3), 0: sp.Matrix([[0, 0, 1], [1, 0, 0], [0, 1, 0]]),
            1: sp.Matrix([[0, 1, 0], [0, 0, 1], [1, 0, 0]])}[i]
    flip = sp.diag(1, sign, sign)       # a rotation by pi about x maps z -> sign z
    Q = perm * flip
    return Q * M * Q.T


axes = [(i, sg) for i in range(3) for sg in (1, -1)]
direct = sum((4 * sp.pi / 9 * ((A + about(n, A) * R).T * (A + about(n, A) * R)).trace() / 3
              for n in axes), 0) / len(axes)
# recursion: C(2T) = M C(T) + S + m(T) X with M = 1 (rotations), C(T) = S, m(T) = m1
recursion = S1 + S1 + m1 * X1
check("renewed uniform field: C_1(2T) direct = recursion", sp.simplify(direct - recursion) == 0)
# and the mean: m(2T) = m1 + P1 m1
m2_direct = sum((-(A + about(n, A) * R).trace() / 3 for n in axes), 0) / len(axes)
check("renewed uniform field: m(2T) = m1 + P1 m1", sp.simplify(m2_direct - (m1 + P1 * m1)) == 0)
# the same field kept for the second step (no renewal) breaks the closure:
same = 4 * sp.pi / 9 * ((A + A * R).T * (A + A * R)).trace() / 3
check("fixed uniform field: recursion not exact",
      sp.simplify((same - recursion).subs({w: 1, T: 1})) != 0)

# 5. ballistic: C_1(t) = 4 pi t^2/9 solves C(t) = C(t-T) + S + m(t-T) X with S = 4 pi T^2/9,
#    X = -8 pi T/9, m(t) = -t
t = sp.symbols("t", positive=True)
ball = 4 * sp.pi / 9 * (t - T) ** 2 + 4 * sp.pi / 9 * T ** 2 + (-(t - T)) * (-8 * sp.pi * T / 9)
check("ballistic recursion: C_1 = 4 pi t^2/9", sp.simplify(ball - 4 * sp.pi / 9 * t ** 2) == 0)
check("helix terms -> ballistic as w -> 0",
      sp.simplify(sp.limit(S1, w, 0) - 4 * sp.pi * T ** 2 / 9) == 0
      and sp.simplify(sp.limit(X1, w, 0) + 8 * sp.pi * T / 9) == 0)

# 6. diffusion: Delta r(t) = -int_0^t p(s) ds, C(s) = <p(0).p(s)> = exp(-nu s) (Markov velocity)
nu, u1, u2 = sp.symbols("nu u1 u2", positive=True)
vacf = sp.exp(-nu * s)
m_t = -sp.integrate(vacf, (s, 0, t))                                   # <p(0).Delta r(t)>
msd = 2 * sp.integrate((t - s) * vacf, (s, 0, t))                      # <|Delta r|^2>
check("m(t) = -(1/2) d<|Delta r|^2>/dt", sp.simplify(m_t + sp.diff(msd, t) / 2) == 0)
K = sp.integrate(vacf, (s, 0, sp.oo)) / 3
check("m_inf = -3K", sp.simplify(sp.limit(m_t, t, sp.oo) + 3 * K) == 0)
m1_exp, P1_exp = m_t.subs(t, T), sp.exp(-nu * T)
check("one-step m_inf = m1/(1-P1) = -3K for every T (Markov velocity)",
      sp.simplify(m1_exp / (1 - P1_exp) + 3 * K) == 0)
# D(t) = <Delta x^2>/(2t) = msd/(6t) and its slope form d<Delta x^2>/(2dt) both -> K
check("msd/(6t) -> K", sp.simplify(sp.limit(msd / (6 * t), t, sp.oo) - K) == 0)

# 7. the mean part of the steady dipole: dI = m G.p has C_1 = 4 pi m^2/9 |G|^2 (G averaged),
#    i.e. 4 pi K^2 with m = -3K: the floor of the steady C_1
Ksym = sp.symbols("K", positive=True)
check("C_1 of the mean map = 4 pi K^2", sp.simplify(4 * sp.pi / 9 * (3 * Ksym) ** 2 - 4 * sp.pi * Ksym ** 2) == 0)
print("all checks passed")
