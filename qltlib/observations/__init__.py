"""Observations: data sets, the partial-sky forward model and the fits (chapter 10).

:mod:`~qltlib.observations.data`
    registry and validating loader of observed pseudo-power spectra;
:mod:`~qltlib.observations.sky`
    from a full-sky C_l to the pseudo-C_l of a declination band (MASTER coupling);
:mod:`~qltlib.observations.likelihood`
    the statistics of an observed pseudo-C_l, shared by every fit (moments of ln C~_l,
    re-weighted estimating equations, data selection);
:mod:`~qltlib.observations.fit`
    fit of the analytic steady state (alpha, K|G|^2, noise) to one energy bin;
:mod:`~qltlib.observations.shape_fit`
    fit of a measured one-step steady state (amplitude, noise; no alpha) to one energy bin.
"""
