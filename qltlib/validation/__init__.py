"""The theory against the test particles (chapter *Validation by test particles*).

:mod:`~qltlib.validation.simulation_fit`
    the steady state fitted to an ensemble's C_l (free or fixed amplitude, alpha profiles);
:mod:`~qltlib.validation.convergence`
    steady times, paired changes between times, plateau models of the diffusion coefficient;
:mod:`~qltlib.validation.claims`
    the steady-state analysis and the verdicts on the paper's claims;
:mod:`~qltlib.validation.one_step_check`
    the parameter-free one-step predictor against the ensembles (chapter *A parameter-free
    predictor*).
"""
