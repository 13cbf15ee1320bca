"""The analytic theory: quasi-linear transport of pair correlations (chapters 2-6).

:mod:`~qltlib.theory.spectrum`
    turbulence spectra g(k), shared with the test particles;
:mod:`~qltlib.theory.kernels`
    time and wavenumber kernels h_l, Lambda_l and kappa_{lA lB};
:mod:`~qltlib.theory.angular`
    Wigner 3j/6j tables and the diagram matrix elements (cached on disk);
:mod:`~qltlib.theory.transport`
    standard-QLT rates, the pair transition matrix, the steady-state C_l and its cost.
"""
