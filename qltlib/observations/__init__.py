"""Observations: data sets, the partial-sky forward model and the likelihood fit (chapter 10).

:mod:`~qltlib.observations.data`
    registry and validating loader of observed pseudo-power spectra;
:mod:`~qltlib.observations.sky`
    from a full-sky C_l to the pseudo-C_l of a declination band (MASTER coupling);
:mod:`~qltlib.observations.fit`
    likelihood fit of the steady state to one energy bin.
"""
