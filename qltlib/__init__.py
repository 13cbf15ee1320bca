"""qltlib: numerics for the executable monograph on cosmic-ray small-scale anisotropies in
quasi-linear theory (Mertsch & Ahlers, ICRC2019, arXiv:1909.09052).

The tree follows the book's pillars; a subpackage never imports from one listed after it.

Foundations (imported by every pillar)
    :mod:`~qltlib.units` (conventions and the paper's parameters), :mod:`~qltlib.paths` (where
    the data live), :mod:`~qltlib.machine` (memory and cores of this machine),
    :mod:`~qltlib.plotting` (axes of the book's figures).
:mod:`qltlib.theory` -- the analytic theory (chapters 2-6)
    :mod:`~qltlib.theory.spectrum` (turbulence spectra g(k)), :mod:`~qltlib.theory.kernels`
    (h_l, Lambda_l, kappa), :mod:`~qltlib.theory.angular` (Wigner tables, diagram matrix
    elements), :mod:`~qltlib.theory.transport` (standard-QLT rates, pair transition matrix,
    steady state).
:mod:`qltlib.particles` -- test particles (chapters 7, 8 and 9)
    turbulence, tracking, the ensemble runner, its store and statistics, the measured
    transition matrix, the one-step recursion.
:mod:`qltlib.observations` -- data (chapter 10)
    :mod:`~qltlib.observations.data` (registry and loader), :mod:`~qltlib.observations.sky`
    (partial-sky pseudo-C_l), :mod:`~qltlib.observations.fit` (likelihood fit).
:mod:`qltlib.validation` -- theory against test particles
    :mod:`~qltlib.validation.simulation_fit`, :mod:`~qltlib.validation.convergence`,
    :mod:`~qltlib.validation.claims`, :mod:`~qltlib.validation.one_step_check` (chapter 9).
:mod:`qltlib.cli` -- the ``qlt`` command
    one module per sub-command, :mod:`~qltlib.cli.main` the entry point.
"""
__version__ = "0.1.0"
