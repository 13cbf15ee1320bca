"""Units and conventions used everywhere in :mod:`qltlib` (stated once, here).

The book follows Mertsch & Ahlers (ICRC2019) and fixes:

* natural units with the speed of light ``c = 1``;
* lengths in units of the gyroradius ``r_g = p / (q dB_rms)`` in the RMS turbulent field;
* times in units of ``1 / Omega`` with ``Omega = c / r_g`` (so one unit of time is one unit of
  length travelled at ``c``);
* wavenumbers in units of ``1 / r_g``;
* the turbulent gyrovector ``omega(r) = q dB(r) / p`` is normalised so that ``<omega^2> = 1``;
* no regular field (``B_0 = 0``): unperturbed trajectories are straight lines;
* the mean phase-space density at the observer is ``phi = 1``, so ``C_l`` is the angular power
  of the relative intensity ``dI = f / phi - 1`` that observatories publish;
* the gradient combination ``K |G|^2`` is quoted in units of ``c k_0`` as in the paper, i.e. the
  number passed around in code is ``K |G|^2 / (c k_0)``.
"""

SPEED_OF_LIGHT = 1.0
GYRORADIUS = 1.0
MEAN_SQUARE_GYROFREQUENCY = 1.0   # <omega^2> in units of Omega^2
MEAN_PHASE_SPACE_DENSITY = 1.0    # phi_sun

#: Paper's turbulence band (Sect. 4): k_0 r_g = 1e-3, k_1 r_g = 1e2.
PAPER_K0 = 1.0e-3
PAPER_K1 = 1.0e2
#: Paper's gradient normalisation for Fig. 2: K |G|^2 = 1e-4 c k_0.
PAPER_KG2_IN_CK0 = 1.0e-4
#: Paper's preferred alpha = k_1 c Delta T.
PAPER_ALPHA = 50.0
#: Paper's noise level for Fig. 2 (right); the text prints 1.5e9, an extraction error.
PAPER_NOISE = 1.5e-9
