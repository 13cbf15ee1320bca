"""qltlib: numerics for the executable monograph on cosmic-ray small-scale anisotropies in
quasi-linear theory (Mertsch & Ahlers, ICRC2019, arXiv:1909.09052).

One module per concept: :mod:`~qltlib.units` (conventions), :mod:`~qltlib.spectrum`
(turbulence spectra g(k)), :mod:`~qltlib.kernels` (Lambda_l, h_l, kappa), :mod:`~qltlib.angular`
(Wigner tables and the diagram matrix elements), :mod:`~qltlib.transport` (standard-QLT rates,
pair transition matrix, steady state), :mod:`~qltlib.cli` (the ``qlt`` command).
"""
__version__ = "0.1.0"
