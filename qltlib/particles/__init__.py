"""Test particles: turbulence, tracking, ensembles and the measured transition matrix.

The field and the integrator
    :mod:`~qltlib.particles.turbulence` (plane-wave fields), :mod:`~qltlib.particles.tracking`
    (Boris kernel, back-tracking), :mod:`~qltlib.particles.multirate` (slow modes evaluated
    less often), :mod:`~qltlib.particles.tracking_defaults` (its limits, without numba),
    :mod:`~qltlib.particles.healpix` (pixel centres).
Ensembles
    :mod:`~qltlib.particles.settings` (what a run is, its seeds, one realisation),
    :mod:`~qltlib.particles.store` (manifest and files, verified), :mod:`~qltlib.particles.estimates`
    (memory and time), :mod:`~qltlib.particles.runner` (worker processes for every long command),
    :mod:`~qltlib.particles.ensemble` (run and resume), :mod:`~qltlib.particles.map_statistics`
    (C_l and shot noise of one realisation), :mod:`~qltlib.particles.statistics` (the ensemble
    summary).
The measured propagator
    :mod:`~qltlib.particles.transfer` (pair transition matrix M_{l l0}(Delta T), Markov chain).

Modules are imported one by one: importing this package does not load numba or healpy.
"""
