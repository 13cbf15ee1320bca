"""Observed angular pseudo-power spectra: registry, validating loader, containers.

Chapter *Comparison with observations* (:ref:`ch-observations`). Every data set is one CSV file
in the layout of ``data/icecube_12yr/icecube12yr_pseudoCl_vs_l_digitised.csv`` plus one
metadata entry in the registry ``data/datasets.json``; adding a further data set (HAWC,
IceCube+HAWC) needs nothing else.

The loader refuses a malformed file with :class:`DataFormatError` (a :class:`ValueError`) whose
one-line message names the file and the problem. It checks:

* the required columns ``E_median_TeV``, ``l``, ``Cl_tilde`` are present;
* the units declared in the registry are the supported ones (energy in TeV, C_l dimensionless);
* every required value is a finite number, ``l`` is an integer >= 1, the energy is positive;
* ``Cl_tilde`` is positive (logarithms are taken) and below 1 (a dimensionless relative-intensity
  power of order one or more means the file is in other units);
* optional band/error columns are empty or positive and finite, with ``lo <= hi``;
* ``log10_Cl_tilde``, where present, agrees with ``Cl_tilde`` to 0.01 dex;
* no (energy, l) pair occurs twice, and the energies match the registry entry.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..paths import DATA_DIR

#: Registry shipped with the book (``$QLT_DATA_DIR/datasets.json`` if that is set).
DEFAULT_REGISTRY = DATA_DIR / "datasets.json"

REQUIRED_COLUMNS = ("E_median_TeV", "l", "Cl_tilde")
#: Optional numeric columns holding C_l-like values (must be positive where present).
OPTIONAL_CL_COLUMNS = ("stat_lo", "stat_hi", "box_lo", "box_hi",
                       "noise1s_lo", "noise1s_hi", "noise2s_lo", "noise2s_hi",
                       "noise3s_lo", "noise3s_hi")
SUPPORTED_UNITS = {"energy": "TeV", "cl": "dimensionless"}
#: Tolerance of the ``log10_Cl_tilde`` consistency check (the CSV rounds it to 3 decimals).
LOG10_TOLERANCE_DEX = 0.01
#: Relative tolerance when matching a requested energy to a bin.
ENERGY_MATCH_RTOL = 1e-6


class DataFormatError(ValueError):
    """A data file or registry entry is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class EnergyBin:
    """Pseudo-power spectrum of one energy bin.

    Attributes
    ----------
    energy_tev : float
        Median primary energy in TeV.
    label : str
        Legend label (e.g. ``"13 TeV"``).
    ell : ndarray of int
        Multipoles, increasing.
    cl_tilde : ndarray
        Pseudo-power C~_l (dimensionless).
    stat_lo, stat_hi : ndarray
        Ends of the statistical error bar; NaN where it is not visible beyond the marker.
    box_lo, box_hi : ndarray
        Unlabelled box around each point (probably systematic; unverified); NaN if absent.
    noise_bands : dict
        ``{1: (lo, hi), 2: (lo, hi), 3: (lo, hi)}`` isotropic-noise bands (NaN where clipped).
    flags : tuple of str
        Per-point flags (``""`` if none), e.g. ``"marker_clipped_at_axis"``.
    """

    energy_tev: float
    label: str
    ell: np.ndarray
    cl_tilde: np.ndarray
    stat_lo: np.ndarray
    stat_hi: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray
    noise_bands: dict
    flags: tuple

    def select(self, lmin: int, lmax: int) -> np.ndarray:
        """Boolean mask of the points with ``lmin <= l <= lmax``."""
        return (self.ell >= lmin) & (self.ell <= lmax)


@dataclass
class Dataset:
    """A validated data set: metadata from the registry and one :class:`EnergyBin` per energy."""

    name: str
    path: Path
    meta: dict
    bins: dict = field(default_factory=dict)

    @property
    def energies(self) -> np.ndarray:
        """Median energies in TeV, increasing."""
        return np.array(sorted(self.bins))

    @property
    def dec_max_deg(self) -> float:
        """Northern edge of the field of view (equatorial declination, degrees)."""
        return float(self.meta.get("sky_coverage", {}).get("dec_max_deg", 90.0))

    @property
    def dec_min_deg(self) -> float:
        """Southern edge of the field of view (equatorial declination, degrees)."""
        return float(self.meta.get("sky_coverage", {}).get("dec_min_deg", -90.0))

    @property
    def m0_filtered(self) -> bool:
        """Whether the reference method removed the m = 0 modes (time scrambling)."""
        return bool(self.meta.get("m0_filtered", True))

    @property
    def digitisation_error_dex(self) -> float:
        """Accuracy of the numbers in dex (0 for published tables)."""
        return float(self.meta.get("digitisation_error_dex", 0.0))

    def bin(self, energy_tev: float) -> EnergyBin:
        """The bin at median energy ``energy_tev`` (TeV).

        Raises
        ------
        ValueError
            If no bin has that energy; the message lists the available ones.
        """
        for energy, ebin in self.bins.items():
            if math.isclose(energy, float(energy_tev), rel_tol=ENERGY_MATCH_RTOL):
                return ebin
        available = ", ".join(f"{e:g}" for e in self.energies)
        raise ValueError(f"energy {energy_tev:g} TeV is not in data set {self.name!r}; "
                         f"available energies (TeV): {available}")


def _registry_path(registry) -> Path:
    return DEFAULT_REGISTRY if registry is None else Path(registry)


def read_registry(registry=None) -> dict:
    """Parse and check the registry JSON (default ``data/datasets.json``).

    Raises
    ------
    DataFormatError
        If the file is missing, not JSON, or an entry lacks ``name``/``file`` or has
        unsupported units.
    """
    path = _registry_path(registry)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(f"{path}: data-set registry not found") from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: registry is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    entries = content.get("datasets")
    if not isinstance(entries, list):
        raise DataFormatError(f"{path}: registry has no 'datasets' list")
    names = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry or "file" not in entry:
            raise DataFormatError(f"{path}: registry entry {i} needs 'name' and 'file'")
        if entry["name"] in names:
            raise DataFormatError(f"{path}: data set {entry['name']!r} is registered twice")
        names.add(entry["name"])
        units = entry.get("units", SUPPORTED_UNITS)
        for key, expected in SUPPORTED_UNITS.items():
            if units.get(key, expected) != expected:
                raise DataFormatError(f"{path}: data set {entry['name']!r} declares {key} unit "
                                      f"{units.get(key)!r}; supported: {expected!r}")
    content.setdefault("missing", [])
    content["_path"] = path
    return content


def list_datasets(registry=None, include_missing: bool = False) -> list:
    """Names of the registered data sets (and, optionally, of the known missing ones)."""
    content = read_registry(registry)
    names = [entry["name"] for entry in content["datasets"]]
    if include_missing:
        names += [entry["name"] for entry in content["missing"]]
    return names


def dataset_metadata(name: str, registry=None) -> dict:
    """Registry entry of data set ``name``.

    Raises
    ------
    ValueError
        For an unknown name, or a data set listed as missing (the message says why it is
        missing); both list the available data sets.
    """
    content = read_registry(registry)
    for entry in content["datasets"]:
        if entry["name"] == name:
            return dict(entry)
    available = ", ".join(entry["name"] for entry in content["datasets"])
    for entry in content["missing"]:
        if entry.get("name") == name:
            raise ValueError(f"data set {name!r} is not available: {entry.get('reason', 'missing')} "
                             f"Available: {available}")
    raise ValueError(f"unknown data set {name!r}; available: {available}")


def _parse_float(text: str, path: Path, lineno: int, column: str, required: bool) -> float:
    text = text.strip()
    if text == "":
        if required:
            raise DataFormatError(f"{path}: line {lineno}: column {column!r} is empty")
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(f"{path}: line {lineno}: column {column!r} is not a number "
                              f"({text!r})") from None
    if not math.isfinite(value):
        raise DataFormatError(f"{path}: line {lineno}: column {column!r} is not finite ({text!r})")
    return value


def read_pseudo_cl_csv(path) -> dict:
    """Read and validate one pseudo-C_l CSV file.

    Parameters
    ----------
    path : str or Path
        CSV file; lines starting with ``#`` are comments (provenance header).

    Returns
    -------
    dict
        ``{energy_tev: EnergyBin}``.

    Raises
    ------
    DataFormatError
        One-line message with the file, the line and the problem (see the module docstring for
        the checks).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: data file not found") from None
    # keep physical line numbers for the messages: comments are blanked, not removed
    lines = [("" if line.lstrip().startswith("#") else line) for line in text.splitlines()]
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise DataFormatError(f"{path}: no header line (file holds only comments)")
    header_lineno, header_line = numbered[0]
    header = [name.strip() for name in next(csv.reader([header_line]))]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise DataFormatError(f"{path}: missing required column(s) {', '.join(missing)} "
                              f"(header on line {header_lineno})")
    if len(numbered) == 1:
        raise DataFormatError(f"{path}: no data rows")

    rows = {}
    labels, flags = {}, {}
    for lineno, line in numbered[1:]:
        values = next(csv.reader([line]))
        if len(values) != len(header):
            raise DataFormatError(f"{path}: line {lineno}: {len(values)} fields, header has "
                                  f"{len(header)}")
        record = dict(zip(header, values))
        energy = _parse_float(record["E_median_TeV"], path, lineno, "E_median_TeV", True)
        ell = _parse_float(record["l"], path, lineno, "l", True)
        cl = _parse_float(record["Cl_tilde"], path, lineno, "Cl_tilde", True)
        if energy <= 0:
            raise DataFormatError(f"{path}: line {lineno}: E_median_TeV must be positive, got {energy:g}")
        if ell != int(ell) or ell < 1:
            raise DataFormatError(f"{path}: line {lineno}: l must be an integer >= 1, got "
                                  f"{record['l'].strip()!r}")
        if cl <= 0:
            raise DataFormatError(f"{path}: line {lineno}: Cl_tilde must be positive (its log is "
                                  f"taken), got {cl:g}")
        if cl >= 1:
            raise DataFormatError(f"{path}: line {lineno}: Cl_tilde = {cl:g} >= 1 is not a "
                                  "dimensionless relative-intensity power (wrong units?)")
        if "log10_Cl_tilde" in record and record["log10_Cl_tilde"].strip():
            logval = _parse_float(record["log10_Cl_tilde"], path, lineno, "log10_Cl_tilde", False)
            if abs(logval - math.log10(cl)) > LOG10_TOLERANCE_DEX:
                raise DataFormatError(f"{path}: line {lineno}: log10_Cl_tilde = {logval:g} "
                                      f"disagrees with Cl_tilde = {cl:g}")
        optional = {}
        for column in OPTIONAL_CL_COLUMNS:
            value = (_parse_float(record[column], path, lineno, column, False)
                     if column in record else math.nan)
            if not math.isnan(value) and value <= 0:
                raise DataFormatError(f"{path}: line {lineno}: column {column!r} must be positive "
                                      f"or empty, got {value:g}")
            optional[column] = value
        for lo, hi in (("stat_lo", "stat_hi"), ("box_lo", "box_hi"), ("noise1s_lo", "noise1s_hi"),
                       ("noise2s_lo", "noise2s_hi"), ("noise3s_lo", "noise3s_hi")):
            if optional[lo] > optional[hi]:  # False whenever one of them is NaN
                raise DataFormatError(f"{path}: line {lineno}: {lo} > {hi}")
        key = (energy, int(ell))
        if key in rows:
            raise DataFormatError(f"{path}: line {lineno}: duplicate point E = {energy:g} TeV, "
                                  f"l = {int(ell)}")
        rows[key] = (cl, optional)
        labels.setdefault(energy, record.get("E_label", f"{energy:g} TeV").strip())
        flags[key] = record.get("flag", "").strip()

    bins = {}
    for energy in sorted({e for e, _ in rows}):
        ells = sorted(l for e, l in rows if e == energy)
        column = {name: np.array([rows[(energy, l)][1][name] for l in ells])
                  for name in OPTIONAL_CL_COLUMNS}
        bins[energy] = EnergyBin(
            energy_tev=energy, label=labels[energy], ell=np.array(ells, dtype=int),
            cl_tilde=np.array([rows[(energy, l)][0] for l in ells]),
            stat_lo=column["stat_lo"], stat_hi=column["stat_hi"],
            box_lo=column["box_lo"], box_hi=column["box_hi"],
            noise_bands={n: (column[f"noise{n}s_lo"], column[f"noise{n}s_hi"]) for n in (1, 2, 3)},
            flags=tuple(flags[(energy, l)] for l in ells))
    return bins


def load_dataset(name: str, registry=None) -> Dataset:
    """Load and validate the registered data set ``name``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"icecube-12yr"`` (see :func:`list_datasets`).
    registry : str or Path, optional
        Registry JSON; default ``data/datasets.json``.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown or missing data set (:func:`dataset_metadata`); :class:`DataFormatError` for a
        malformed file or a file whose energies disagree with the registry.
    """
    content = read_registry(registry)
    meta = dataset_metadata(name, content["_path"])
    path = (content["_path"].parent / meta["file"]).resolve()
    bins = read_pseudo_cl_csv(path)
    declared = meta.get("energies_tev")
    if declared is not None:
        found = sorted(bins)
        if len(found) != len(declared) or not all(
                math.isclose(a, float(b), rel_tol=ENERGY_MATCH_RTOL) for a, b in zip(found, sorted(declared))):
            raise DataFormatError(f"{path}: energies {', '.join(f'{e:g}' for e in found)} TeV "
                                  f"differ from the registry entry of {name!r}")
    return Dataset(name=name, path=path, meta=meta, bins=bins)
