"""Every key of the JSON that the ``qlt`` sub-commands print, with its meaning and units.

One source for three readers: each sub-command's ``--help`` ends with its table
(:func:`epilog`), the book's page ``reference_outputs.md`` is this module's Markdown
(:func:`markdown_page`; regenerate it with
``python -m qltlib.cli.outputs > reference_outputs.md``),
and ``tests/cli/test_output_docs.py`` runs every command and fails when a printed key is missing
here or a key listed here is never printed.

Keys are written as paths: ``settings.alpha`` is the key ``alpha`` of the object under
``settings``; ``steady_time_by_ell[].ell`` the key ``ell`` of each object in the list
``steady_time_by_ell``. An object's own key (``settings``) is listed too. A key printed only in
some runs names the condition (:attr:`Key.when`).

Units throughout: ``c = 1``, lengths in the gyroradius ``r_g``, times in ``1/Omega``
(``Omega = c/r_g``), wavenumbers ``k`` in ``1/r_g``, the diffusion coefficient ``K`` in
``r_g c``, ``kg2 = K|G|^2`` in units of ``c k0`` (:mod:`qltlib.units`). The ``C_l`` of the
theory are dimensionless (relative intensity); those of a simulation are the power of the maps
``dI = Delta r . G`` with ``|G| = 1/r_g``, in units of ``(r_g |G|)^2 = 1``.

To document a new key, add a :class:`Key` to the command's table below (with ``when=`` if it
is printed only in some runs); the test then requires it in the output, and the help and the
book page show it after ``python -m qltlib.cli.outputs > reference_outputs.md``.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

#: units stated once at the top of every table
UNITS = ("c = 1, lengths in r_g, times in 1/Omega (Omega = c/r_g), k in 1/r_g, K in r_g c, "
         "kg2 = K|G|^2 in c k0")


@dataclass(frozen=True)
class Key:
    """One documented key of a command's JSON.

    Attributes
    ----------
    path : str
        ``a.b`` (key ``b`` of the object under ``a``) or ``a[].b`` (key ``b`` of every object
        in the list ``a``).
    text : str
        Meaning and units, one sentence or two.
    when : str or None
        The condition under which the key is printed; ``None``: always.
    """

    path: str
    text: str
    when: str | None = None


@dataclass(frozen=True)
class OutputTable:
    """The documented keys of one command's JSON.

    Attributes
    ----------
    command : str
        The command as typed, e.g. ``"qlt summarize DIR --write-summaries"``.
    summary : str
        What the JSON is, one sentence.
    keys : tuple of Key
    """

    command: str
    summary: str
    keys: tuple

    def paths(self, conditional: bool = True) -> set:
        """The documented paths (``conditional=False``: only those printed in every run)."""
        return {k.path for k in self.keys if conditional or k.when is None}


def _settings_keys(prefix: str) -> tuple:
    """The keys of :meth:`~qltlib.particles.settings.SimulationSettings.as_dict` under
    ``prefix``."""
    return (
        Key(prefix, "the run's settings, as in its manifest.json (the arguments of qlt simulate)"),
        Key(f"{prefix}.nside", "HEALPix nside: one particle per pixel, 12 nside^2 per "
                               "realisation"),
        Key(f"{prefix}.times", "the requested back-tracking times Omega t, as given to --times; "
                               "units 1/Omega"),
        Key(f"{prefix}.n_modes", "plane waves per field realisation"),
        Key(f"{prefix}.seed", "ensemble seed; realisation i uses SeedSequence(seed, "
                              "spawn_key=(i,))"),
        Key(f"{prefix}.spectrum", "shape of the turbulence spectrum g(k) (white, kolmogorov, "
                                  "logflat, flat3d)"),
        Key(f"{prefix}.k0", "smallest wavenumber of the band, 1/r_g"),
        Key(f"{prefix}.k1", "largest wavenumber of the band, 1/r_g"),
        Key(f"{prefix}.step_fraction", "time step as a fraction of min(1/k_max, r_g), "
                                       "dimensionless"),
        Key(f"{prefix}.resync_every", "steps between exact phase re-synchronisations"),
        Key(f"{prefix}.precision", "working precision of the per-mode arithmetic (float32 or "
                                   "float64)"),
        Key(f"{prefix}.multirate_tolerance", "multirate field evaluation: bound on a slow mode's "
                                             "field error relative to its amplitude; 0: exact"),
    )


def _alpha_keys(interval: str) -> tuple:
    return (
        Key("alpha", "the fitted alpha = k1 c Delta T (dimensionless), searched in 10..1000"),
        Key("alpha.value", "best fit"),
        Key("alpha.err", "1 sigma error; null where alpha sits on an edge of the range or the "
                         "interval is one-sided"),
        Key("alpha.interval68", f"[lower, upper]: 68 per cent interval ({interval}); an end is "
                                f"null beyond the range or on the edge where alpha sits"),
        Key("alpha.interval_kind", "two-sided, upper limit (no lower end), lower limit (no "
                                   "upper end), unconstrained or undetermined"),
    )


def _kg2_keys(meaning: str) -> tuple:
    return (
        Key("kg2", f"the amplitude K|G|^2 of the steady state, in c k0 ({meaning})"),
        Key("kg2.value", "best fit (or the fixed value), c k0"),
        Key("kg2.err", "1 sigma error, c k0; null where kg2 is on its bound"),
        Key("kg2.unit", "the string \"c k0\""),
    )


_QLT = "--method qlt"
_TRANSFER = "--method transfer"


def _step_check_keys(prefix: str, mean_test: bool, verdicts: str) -> tuple:
    """The keys of a step check under ``prefix``: the Markov closure's has the mean test;
    ``verdicts`` says what the check gives on the stored scans."""
    mean = (
        Key(f"{prefix}.mean_excess", "mean displacement of two chained half steps (the Markov "
                                     "closure) over the step's measured one, minus 1, "
                                     "dimensionless", when=_TRANSFER),
        Key(f"{prefix}.mean_excess_err", "its paired standard error, dimensionless",
            when=_TRANSFER),
    ) if mean_test else ()
    return (
        Key(f"{prefix}.alpha_half", "alpha of the half step: k1 c times the integration step "
                                    "nearest below Delta T/2, dimensionless", when=_TRANSFER),
        Key(f"{prefix}.ell", "multipoles whose change is checked (those the default error "
                             "target covers, l <= 8)", when=_TRANSFER),
        Key(f"{prefix}.dlnC", f"C_l(alpha)/C_l(alpha_half) - 1 at {prefix}.ell, "
                              "dimensionless", when=_TRANSFER),
        Key(f"{prefix}.dlnC_err", "its paired standard error, dimensionless", when=_TRANSFER),
        Key(f"{prefix}.dlnK", "K(alpha)/K(alpha_half) - 1, dimensionless", when=_TRANSFER),
        Key(f"{prefix}.dlnK_err", "its paired standard error, dimensionless", when=_TRANSFER),
        Key(f"{prefix}.K_half", "K predicted from the half step, r_g c", when=_TRANSFER),
        Key(f"{prefix}.K_half_err", "its jackknife standard error, r_g c", when=_TRANSFER),
        *mean,
        Key(f"{prefix}.moved", "what changed by more than 10 per cent beyond two errors: "
                               "\"K\", \"C_<l>\"" + (", \"mean\"" if mean_test else "")
                               + " (a list)", when=_TRANSFER),
        Key(f"{prefix}.unresolved", "what did not move but whose two errors exceed 10 per "
                                    "cent (a list; more realisations tell)", when=_TRANSFER),
        Key(f"{prefix}.verdict", "\"failed\" when anything moved, else \"unresolved\" when "
                                 f"anything is, else \"passed\"; {verdicts}", when=_TRANSFER),
        Key(f"{prefix}.settled", "true when the verdict is \"passed\"", when=_TRANSFER),
    )


#: what the Markov closure's step check gives on the stored scans
_MARKOV_VERDICTS = ("on the stored scans: white passes at alpha 3200 (half step 1600, 100 "
                    "realisations), and it fails wherever the prediction misses its long "
                    "ensemble (kolmogorov up to 128000, flat3d up to 64000, logflat up to 1600) "
                    "and for white at 1600 (C_1 -15 per cent from 800)")
#: ... and the quenched closure's, between the stored kolmogorov steps
_QUENCHED_VERDICTS = ("between the stored kolmogorov steps from alpha 12800 to 128000 its K "
                      "and C_1 never moved (K -8, -5, -8 per cent per step) where the Markov "
                      "closure's did; C_2 moved once (25600 to 64000) and with 20 realisations "
                      "most multipoles stay unresolved")


_SPECTRUM = OutputTable(
    "qlt spectrum",
    "The steady-state angular power spectrum: of quasi-linear theory (paper eq. 3.7; --method "
    "qlt, the default) or of the exact one-step recursion with every term measured by test "
    "particles (--method transfer; validated for the flat spectrum).",
    (
        Key("ell", "multipoles l = 1..lmax (no monopole); C_ell[j] is multipole ell[j] = j + 1"),
        Key("C_ell", "steady-state C_l. --method qlt: dimensionless (power of the relative "
                     "intensity), for the gradient settings.kg2; --method transfer: the power "
                     "of dI = Delta r . G with |G| = 1/r_g, (r_g |G|)^2, as qlt summarize"),
        Key("K", "diffusion coefficient, r_g c. --method qlt: 1/(3 nu_1) of the same transition "
                 "matrix; --method transfer: predicted, -m_inf/3 with m_inf = m1/(1 - P1) of the "
                 "one-step recursion"),
        Key("nu_1", "single-particle dipole relaxation rate, units Omega = c/r_g", when=_QLT),
        Key("C_ell_err", "jackknife standard error of C_ell over the field realisations, "
                         "(r_g |G|)^2", when=_TRANSFER),
        Key("K_err", "jackknife standard error of K over the field realisations, r_g c",
            when=_TRANSFER),
        Key("P1", "velocity memory of one step, <p . p'> over Delta T (mean over directions "
                  "and realisations), dimensionless; on the white spectrum K and the dipole stop "
                  "changing with alpha once it is about 0.15", when=_TRANSFER),
        Key("P1_err", "standard error of P1 over the field realisations, dimensionless",
            when=_TRANSFER),
        Key("step_check", "the same particles at half the step against the step: does the "
                          "result still move with alpha? (paired over the realisations, "
                          "jackknife errors)", when=_TRANSFER),
        *_step_check_keys("step_check", mean_test=True, verdicts=_MARKOV_VERDICTS),
        Key("quenched", "the quenched closure, from the same particles: the rest of the path "
                        "meets the same field realisation, whose own tensor response carries "
                        "the memory of each direction (per realisation, then the mean); with "
                        "the Markov closure of C_ell and K it brackets the memory: where the "
                        "two differ, the step is shorter than the memory along the "
                        "realisations' fields (chapter 9, section 'A closure that keeps the "
                        "direction')", when=_TRANSFER),
        Key("quenched.C_ell", "its steady C_l, l = 1..lmax, (r_g |G|)^2", when=_TRANSFER),
        Key("quenched.C_ell_err", "standard error of the mean over the realisations, "
                                  "(r_g |G|)^2", when=_TRANSFER),
        Key("quenched.K", "its diffusion coefficient -tr(mu_inf)/9, mean over the "
                          "realisations, r_g c", when=_TRANSFER),
        Key("quenched.K_err", "standard error of the mean, r_g c", when=_TRANSFER),
        Key("quenched.P_parallel", "velocity memory of one step along each realisation's most "
                                   "persistent direction (largest eigenvalue of the tensor "
                                   "<p' p>, 3x; mean over realisations), dimensionless; P1 is "
                                   "its mean over directions", when=_TRANSFER),
        Key("quenched.step_check", "the quenched closure's own step check: the same "
                                   "particles at half the step against the step, keys and "
                                   "verdict as step_check without mean_excess (the mean test "
                                   "belongs to the Markov closure); on the stored kolmogorov "
                                   "scans its K falls by 5-8 per cent per step from alpha "
                                   "12800 to 128000 while the Markov closure's rises by 52, 44 "
                                   "and 8 per cent, and the two meet at 128000 (chapter 9, "
                                   "section 'How long a path remembers its field')",
            when=_TRANSFER),
        *_step_check_keys("quenched.step_check", mean_test=False,
                          verdicts=_QUENCHED_VERDICTS),
        Key("method", "the string \"transfer\"", when=_TRANSFER),
        Key("realisations", "field realisations measured (verified parts of the store)",
            when=_TRANSFER),
        Key("notes", "one line per caveat: what the validation shows, the dependence on "
                     "alpha, the units of C_ell, the step check's verdict; C_l or K not "
                     "positive; a standard error above 10 per cent at l <= 8 (the default "
                     "stops adding realisations at 100)",
            when=_TRANSFER),
        Key("store", "the part store (--store, or a cache directory keyed by the settings, "
                     "shared with qlt transfer)", when=_TRANSFER),
        Key("written", "number of realisations measured by this run", when=_TRANSFER),
        Key("skipped", "number of verified realisations found in the store and not measured "
                       "again", when=_TRANSFER),
        Key("wall_seconds", "wall time, s", when=_TRANSFER),
        Key("settings", "the inputs"),
        Key("settings.spectrum", "shape of the turbulence spectrum g(k)"),
        Key("settings.k0", "smallest wavenumber of the band, 1/r_g"),
        Key("settings.k1", "largest wavenumber of the band, 1/r_g"),
        Key("settings.index", "power-law index of g(k) (0 white, -5/3 kolmogorov, -1 logflat, "
                              "2 flat3d)"),
        Key("settings.alpha", "alpha = k1 c Delta T, dimensionless (--method qlt accepts >= 10)"),
        Key("settings.lmax", "truncation of the steady-state system (--method transfer: L of "
                             "the recursion, l, l0 = 1..L)"),
        Key("settings.kg2", "K|G|^2, c k0", when=_QLT),
        Key("settings.coupling", "true: pair diagrams 1c included; false: diagrams 0 and 1a only",
            when=_QLT),
        Key("settings.source", "source factor s_1/(K|G|^2): derived (8 pi/3) or paper (8 pi/9)",
            when=_QLT),
        Key("settings.n_theta", "Gauss-Legendre rings of the test particles' grid", when=_TRANSFER),
        Key("settings.n_particles", "test particles per realisation, 2 n_theta^2", when=_TRANSFER),
        Key("settings.n_modes", "plane waves per field realisation", when=_TRANSFER),
        Key("settings.seed", "ensemble seed; realisation i uses SeedSequence(seed, "
                             "spawn_key=(i,))", when=_TRANSFER),
        Key("settings.step_fraction", "time step as a fraction of min(1/k_max, r_g)",
            when=_TRANSFER),
        Key("settings.resync_every", "steps between exact phase re-synchronisations",
            when=_TRANSFER),
        Key("settings.precision", "working precision of the per-mode arithmetic", when=_TRANSFER),
        Key("settings.delta_t", "the step Delta T = alpha/(c k1), 1/Omega"),
        Key("settings.units", "these units, as text"),
    ),
)

_SIMULATE = OutputTable(
    "qlt simulate --out DIR",
    "What was done: the run's files are in DIR (read them with qlt summarize DIR).",
    (
        Key("out", "the output directory"),
        Key("written", "number of realisations computed by this run"),
        Key("skipped", "number of verified realisations found in DIR and not recomputed"),
        Key("repaired", "indices of corrupt files found in DIR and recomputed (a list)"),
        Key("total", "finished realisations in DIR now"),
        Key("wall_seconds", "wall time of the run, s"),
        *_settings_keys("settings"),
    ),
)

_SUMMARIZE = OutputTable(
    "qlt summarize DIR",
    "The ensemble summary of a simulation directory. Per-time arrays follow times; C_l arrays "
    "are indexed by l from 0 (the monopole) unlike qlt spectrum's, which start at l = 1.",
    (
        Key("times", "the requested back-tracking times Omega t (settings.times, as typed), "
                     "1/Omega; every per-time array is indexed like it"),
        Key("times_reached", "the times the tracking reached: whole steps dt, within half a "
                             "step of times (e.g. 640.0000000000001 for 640), 1/Omega"),
        Key("ell", "multipoles 0..lmax, from the monopole (qlt spectrum's start at 1): "
                   "C_ell[i][l] is multipole l = ell[l] at times[i]"),
        Key("C_ell", "[time][l]: ensemble mean of the C_l of dI = Delta r . G, shot noise "
                     "subtracted, (r_g |G|)^2 with |G| = 1/r_g; l = 0, the map's mean, carries "
                     "no physics"),
        Key("C_ell_raw", "[time][l]: the same before the shot noise is subtracted"),
        Key("C_ell_err", "[time][l]: standard error of C_ell over realisations (null with one "
                         "realisation)"),
        Key("C_ell_axis", "[time][axis][l]: C_ell for G along x, y and z separately, shot noise "
                          "subtracted, (r_g |G|)^2"),
        Key("shot_noise", "[time]: white-noise level 4 pi sigma^2/N_pix of the maps, "
                          "(r_g |G|)^2"),
        Key("diffusion_coefficient", "[time]: running D(t) = <Delta x_i^2>/(2t), r_g c"),
        Key("diffusion_coefficient_err", "[time]: its standard error over realisations, r_g c"),
        Key("diffusion_plateau", "K estimated as the slope of <|Delta r|^2>/6 over the last "
                                 "interval, r_g c"),
        Key("diffusion_plateau_err", "its standard error, r_g c (null with one realisation)"),
        Key("realisations", "realisations found in DIR"),
        Key("expected", "the ensemble size of the manifest; realisations < expected: "
                        "incomplete"),
        Key("missing", "indices below expected without a file"),
        *_settings_keys("settings"),
    ),
)

_WRITE_SUMMARIES = OutputTable(
    "qlt summarize DIR --write-summaries",
    "What was done: every raw realisation file of DIR has its summary file.",
    (
        Key("out", "the directory"),
        Key("written", "number of summary files computed now from raw files"),
        Key("kept", "number of valid summary files already there"),
        Key("summaries", "summary files in DIR now"),
    ),
)

#: the noise term of a fit to data
_NOISE_KEYS = (
        Key("noise", "isotropic noise level N of the pseudo-C_l, dimensionless like C_l"),
        Key("noise.value", "best fit"),
        Key("noise.err", "1 sigma error; null where the noise is on its bound (negligible)"),
)
#: what every fit to one energy bin of a data set prints about its statistics and the data
_DATA_FIT_KEYS = (
        Key("p_value", "chi2 survival function at chi2 for ndof; below 0.05 a poor-fit note"),
        Key("converged", "the re-weighted fit settled and the optimiser succeeded"),
        Key("at_bound", "names of the parameters on an edge of their range"),
        Key("reweightings", "re-weightings of the least squares until they settled"),
        Key("dataset", "the registered data set (data/datasets.json)"),
        Key("energy_tev", "median energy of the bin, TeV"),
        Key("lmin", "lowest multipole fitted"),
        Key("lmax", "highest multipole fitted"),
        Key("n_points", "data points fitted"),
        Key("dec_min_deg", "southern edge of the field of view, equatorial declination, deg"),
        Key("dec_max_deg", "northern edge of the field of view, deg"),
        Key("m0_filtered", "whether the data's m = 0 modes are filtered out (and the model's)"),
        Key("fsky_normalise", "whether the model pseudo-power is divided by f_sky"),
)

_FIT = OutputTable(
    "qlt fit --dataset NAME --energy-tev E",
    "Maximum-likelihood fit of the steady state, through the detector's field of view, to one "
    "energy bin of an observed pseudo-C_l.",
    (
        *_alpha_keys("from the sandwich covariance of ln alpha"),
        *_kg2_keys("fitted"),
        *_NOISE_KEYS,
        Key("chi2", "sum over the fitted l of (ln C~_obs - <ln C~>)^2 / s_l^2 at the best fit"),
        Key("ndof", "degrees of freedom: n_points - 3"),
        *_DATA_FIT_KEYS,
        Key("spectrum", "shape of the turbulence spectrum g(k)"),
        Key("k0", "smallest wavenumber of the band, 1/r_g"),
        Key("k1", "largest wavenumber of the band, 1/r_g"),
        Key("lmax_theory", "truncation of the steady-state system"),
        Key("digitisation_dex", "point-to-point error of the digitised numbers, dex"),
        Key("notes", "one line per caveat (bounds, one-sided intervals, poor fit)"),
    ),
)

_FIT_ONE_STEP = OutputTable(
    "qlt fit --one-step PATH --dataset NAME --energy-tev E",
    "Fit of the one-step steady state C^os (measured by test particles; no alpha) to one energy "
    "bin: mu_l = A sum_l' M_ll' C^os_l' + N n_l, two parameters.",
    (
        Key("method", "the string \"transfer\": the shape is the one-step steady state"),
        Key("amplitude", "A = (r_g |G|)^2, the squared relative density gradient in units of "
                         "1/r_g^2 (dimensionless)"),
        Key("amplitude.value", "best fit"),
        Key("amplitude.err", "1 sigma error; null where A is on its bound"),
        Key("amplitude.unit", "the string \"(r_g |G|)^2\""),
        Key("gradient", "|G| = sqrt(A)/r_g, the relative density gradient"),
        Key("gradient.value", "best fit, 1/r_g"),
        Key("gradient.err", "1 sigma error, 1/r_g; null where A has none"),
        Key("gradient.unit", "the string \"1/r_g\""),
        Key("K", "the diffusion coefficient predicted by the same measurement, -m_inf/3"),
        Key("K.value", "jackknife estimate, r_g c"),
        Key("K.err", "jackknife error over realisations, r_g c"),
        Key("K.unit", "the string \"r_g c\""),
        Key("dipole", "the dipole amplitude 3 K |G| / c implied by the fitted gradient and K "
                      "(dimensionless)"),
        Key("dipole.value", "best fit"),
        Key("dipole.err", "1 sigma error (A and K); null where A has none"),
        *_NOISE_KEYS,
        Key("chi2", "sum over the fitted l of (ln C~_obs - <ln C~>)^2 / s_l^2 at the best fit; "
                    "s_l^2 includes the shape's own error"),
        Key("ndof", "degrees of freedom: n_points - 2"),
        *_DATA_FIT_KEYS,
        Key("tail_share", "largest fraction of the fitted signal at a fitted l that comes from "
                          "l > one_step.lmax, where the shape is a power-law continuation; "
                          "above 0.05 a note"),
        Key("digitisation_dex", "point-to-point error of the digitised numbers, dex"),
        Key("one_step", "the measurement whose steady state is the shape"),
        Key("one_step.spectrum", "shape of g(k)"),
        Key("one_step.k0", "smallest wavenumber of the band, 1/r_g"),
        Key("one_step.k1", "largest wavenumber of the band, 1/r_g"),
        Key("one_step.alpha", "alpha = k1 c Delta T of the measured step"),
        Key("one_step.lmax", "L, the last measured multipole"),
        Key("one_step.n_theta", "Gauss-Legendre rings of the measurement"),
        Key("one_step.n_modes", "plane waves per field realisation"),
        Key("one_step.realisations", "field realisations measured"),
        Key("one_step.floor_subtracted", "whether the grid's aliasing floor was subtracted from "
                                         "the measured terms (always true for qlt fit)"),
        Key("one_step.source", "PATH as given: a .npz of a measurement or a part store"),
        Key("notes", "one line per caveat (bounds, poor fit, a large tail_share)"),
    ),
)

_FIT_SIMULATION = OutputTable(
    "qlt fit --simulation DIR",
    "Chi2 fit of the steady state to the shot-noise-subtracted C_l of a test-particle "
    "ensemble at one back-tracking time.",
    (
        *_alpha_keys("where chi2 rises by 1"),
        *_kg2_keys("free, or fixed by the simulated K with --amplitude diffusion: K/k0"),
        Key("chi2", "sum over the fitted l of (C_sim - model)^2 / err^2"),
        Key("ndof", "degrees of freedom: fitted multipoles minus fitted parameters"),
        Key("p_value", "chi2 survival function at chi2 for ndof; below 0.05 a poor-fit note"),
        Key("converged", "the optimiser succeeded"),
        Key("at_bound", "names of the parameters on an edge of their range"),
        Key("time", "back-tracking time Omega t of the fit, as in settings.times, 1/Omega"),
        Key("time_choice", "how time was chosen: given (--time), steady time, or last time "
                           "(the ensemble is not shown steady)"),
        Key("steady_time", "the ensemble's steady time by steady_time_rule, 1/Omega; null "
                           "when some resolved C_l is not shown steady"),
        Key("steady_time_rule", "the rule, in words; it depends on the ensemble's errors, so "
                                "runs through the same fields may differ"),
        Key("steady_time_by_ell", "the test per multipole (l = 1, 2, 4, 8, 16): the largest "
                                  "time sets steady_time"),
        Key("steady_time_by_ell[].ell", "multipole l"),
        Key("steady_time_by_ell[].time", "earliest time from which C_l is one constant, "
                                         "1/Omega; null if not shown"),
        Key("steady_time_by_ell[].late_time", "last time at which C_l is resolved (relative "
                                              "error <= 0.5), 1/Omega"),
        Key("steady_time_by_ell[].p_value", "p-value of the constant from time to late_time; "
                                            "null if not steady"),
        Key("steady_time_by_ell[].resolved", "whether C_l is resolved at some time"),
        Key("lmax_theory", "truncation of the steady-state system"),
        Key("amplitude", "free or diffusion (kg2 fixed by the simulated K)"),
        Key("ell", "the fitted multipoles (l >= 2; those with relative error > 1 left out)"),
        Key("C_ell_sim", "simulated C_l at ell, shot noise subtracted, (r_g |G|)^2 with "
                         "|G| = 1/r_g"),
        Key("C_ell_err", "standard errors of C_ell_sim over realisations, (r_g |G|)^2"),
        Key("C_ell_model", "best-fit steady state at ell, (r_g |G|)^2"),
        Key("spectrum", "shape of g(k), from the manifest"),
        Key("k0", "smallest wavenumber of the band, 1/r_g"),
        Key("k1", "largest wavenumber of the band, 1/r_g"),
        Key("realisations", "realisations in the ensemble"),
        Key("diffusion_coefficient", "the simulated K used by --amplitude diffusion, r_g c"),
        Key("diffusion_coefficient_err", "its standard error, r_g c"),
        Key("diffusion_estimate", "how diffusion_coefficient was estimated, in words"),
        Key("notes", "one line per caveat (the time chosen, multipoles left out, bounds, "
                     "poor fit)"),
        Key("simulation", "the directory DIR as given"),
    ),
)

_TRANSFER = OutputTable(
    "qlt transfer",
    "The pair transition matrix M_{l l0}(Delta T) measured by test particles.",
    (
        Key("alpha", "alpha = k1 c Delta T, dimensionless"),
        Key("delta_t", "Delta T = alpha/(c k1), 1/Omega"),
        Key("ell", "multipoles 0..lmax of the rows l and columns l0 (from the monopole)"),
        Key("matrix", "[l][l0]: M_{l l0}, mean over realisations, dimensionless"),
        Key("matrix_err", "[l][l0]: its standard error over realisations"),
        Key("realisations", "field realisations measured"),
        Key("power_above_lmax", "[l0]: power scattered to lmax < l < n_theta (lost to the "
                                "truncation)"),
        Key("power_above_lmax_err", "[l0]: its standard error"),
        Key("aliasing_scale", "[l0]: (2 l0 + 1) sum_i w_i^2/(4 pi)^2, the scale of the error "
                              "from structure below the node spacing"),
        Key("settings", "the inputs"),
        Key("settings.alpha", "alpha = k1 c Delta T"),
        Key("settings.lmax", "largest multipole l, l0"),
        Key("settings.n_theta", "Gauss-Legendre rings (null: 2 (lmax + 1))"),
        Key("settings.n_modes", "plane waves per field realisation"),
        Key("settings.seed", "ensemble seed"),
        Key("settings.spectrum", "shape of g(k)"),
        Key("settings.k0", "smallest wavenumber of the band, 1/r_g"),
        Key("settings.k1", "largest wavenumber of the band, 1/r_g"),
        Key("settings.step_fraction", "time step as a fraction of min(1/k_max, r_g)"),
        Key("settings.resync_every", "steps between exact phase re-synchronisations"),
        Key("settings.precision", "working precision of the per-mode arithmetic"),
        Key("settings.n_particles", "particles per realisation, 2 n_theta^2"),
        Key("settings.units", "the units, as text"),
        Key("store", "the part store: one verified file per finished realisation (--store, "
                     "or a cache directory keyed by the settings)"),
        Key("written", "number of realisations measured by this run"),
        Key("skipped", "number of verified realisations found in the store and not measured "
                       "again"),
        Key("wall_seconds", "wall time, s"),
        Key("out", "the .npz file written", when="--out FILE"),
    ),
)

#: the tables, by the name the tests and :func:`epilog` use
TABLES = {
    "spectrum": _SPECTRUM,
    "simulate": _SIMULATE,
    "summarize": _SUMMARIZE,
    "summarize --write-summaries": _WRITE_SUMMARIES,
    "fit": _FIT,
    "fit --simulation": _FIT_SIMULATION,
    "fit --one-step": _FIT_ONE_STEP,
    "transfer": _TRANSFER,
}

_KEY_COLUMN = 30
_WIDTH = 92


def epilog(*names: str) -> str:
    """The tables ``names`` as plain text for an argparse epilog (kept as written).

    Parameters
    ----------
    *names : str
        Keys of :data:`TABLES`.

    Returns
    -------
    str
        One block per table: a heading line, then ``key  meaning`` lines wrapped to 92
        characters, indented.
    """
    blocks = ["\n".join(textwrap.wrap(f"output: one JSON object on stdout. Units: {UNITS}.",
                                      _WIDTH))]
    for name in names:
        table = TABLES[name]
        lines = [f"{table.command} prints:"]
        lines += ["  " + line for line in textwrap.wrap(table.summary, _WIDTH - 2)]
        for key in table.keys:
            text = key.text + (f" [only with {key.when}]" if key.when else "")
            body = textwrap.wrap(text, _WIDTH - _KEY_COLUMN - 4)
            head = f"  {key.path}"
            if len(head) + 2 > _KEY_COLUMN + 2:
                lines.append(head)
                head = ""
            lines.append(f"{head:<{_KEY_COLUMN + 2}}{body[0]}")
            lines += [" " * (_KEY_COLUMN + 2) + more for more in body[1:]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _markdown_cell(text: str) -> str:
    """``text`` safe in a Markdown table cell of MyST (pipes, emphasis, maths, HTML)."""
    for char in "\\|*$<[":
        text = text.replace(char, "\\" + char)
    return text


def markdown_page() -> str:
    """The book page ``reference_outputs.md``: every table of :data:`TABLES` in Markdown."""
    parts = [
        "(reference-outputs)=",
        "# Output keys of `qlt`",
        "",
        "Every sub-command of `qlt` prints one JSON object on stdout. This page lists every key,",
        "with its meaning and units; the same tables end each command's `--help`. Both come",
        "from `qltlib/cli/outputs.py`, and `tests/cli/test_output_docs.py` runs every command and",
        "fails when a printed key is missing here or a listed key is never printed. This page is",
        "generated: `python -m qltlib.cli.outputs > reference_outputs.md`.",
        "",
        f"Units: {_markdown_cell(UNITS)}. A key `a.b` is the key `b` of the object under `a`;",
        "`a[].b` the key `b` of every object in the list `a`.",
    ]
    for table in TABLES.values():
        parts += ["", f"## `{table.command}`", "", _markdown_cell(table.summary), "",
                  "| key | meaning and units |", "| --- | --- |"]
        for key in table.keys:
            when = f" (only with `{key.when}`)" if key.when else ""
            parts.append(f"| `{key.path}` | {_markdown_cell(key.text)}{when} |")
    return "\n".join(parts) + "\n"


def json_paths(value, prefix: str = "") -> set:
    """Every key path of a parsed JSON value, in the notation of :class:`Key`.

    Parameters
    ----------
    value : object
        Parsed JSON (dicts, lists, scalars).
    prefix : str
        Path of ``value`` itself (empty at the top).

    Returns
    -------
    set of str
        ``a``, ``a.b``, ``a[].b``, ...: every dict key, recursively, through dicts and lists.
    """
    paths = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= json_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= json_paths(item, f"{prefix}[]")
    return paths


def main() -> int:
    """Print :func:`markdown_page` (``python -m qltlib.cli.outputs > reference_outputs.md``)."""
    import sys

    sys.stdout.write(markdown_page())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
