"""The on-disk store of an ensemble: manifest, realisation and summary files, verified on read.

Files
-----
``DIR/manifest.json`` (all settings), ``DIR/realisation_00042.npz`` (``delta_r`` as float32,
shape ``(n_times, n_pix, 3)``, and the settings that produced it; written to a temporary file and
moved into place with :func:`os.replace`, so a killed run never leaves a truncated file). Files
are trusted only after a check against the manifest (:func:`load_realisation`): on restart the
valid files are skipped and corrupt ones recomputed; :func:`summarize` refuses a file that
contradicts its manifest.

Each realisation also gets a compact summary ``DIR/summary_00042.npz`` (:func:`write_summary`):
``C_l`` of the three gradient maps, their shot noise and the mean-square displacement per time,
verified the same way (:func:`load_summary`). :func:`summarize` needs only these; the raw file can
be left out (``keep_raw=False``, ``qlt simulate --no-raw``) and is recomputed, bit for bit, by
rerunning with the same settings.


Every file is written by :func:`write_atomically` (also used by the other long commands).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ..machine import available_memory, format_bytes
from .files import (
    MANIFEST_NAME,
    CorruptRealisationError,
    indices_matching,
    os_error_line,
    prepare_run_directory,
    read_manifest_json,
    read_part,
    temporary_path,
    write_atomically,
)
from .map_statistics import (
    GRADIENT_AXES,
    check_lmax,
    realisation_statistics,
    summary_memory,
)
from .runner import stderr_line
from .settings import SimulationSettings, simulation_defaults

#: bumped whenever the per-realisation summaries change meaning (older summaries are recomputed)
SUMMARY_VERSION = 1
REALISATION_PATTERN = re.compile(r"^realisation_(\d{5})\.npz$")
SUMMARY_PATTERN = re.compile(r"^summary_(\d{5})\.npz$")


#: arrays every realisation file holds (files written since qltlib 0.1.0 also hold ``settings``)
REALISATION_FIELDS = ("index", "times", "delta_r", "max_speed_error")


def realisation_path(out_dir, index: int) -> Path:
    """``DIR/realisation_NNNNN.npz`` of realisation ``index``."""
    return Path(out_dir) / f"realisation_{int(index):05d}.npz"


def existing_realisations(out_dir) -> list[int]:
    """Indices of the realisation files in ``out_dir`` (sorted; not yet verified)."""
    return indices_matching(out_dir, REALISATION_PATTERN)


def summary_path(out_dir, index: int) -> Path:
    """``DIR/summary_NNNNN.npz``: the compact summary of realisation ``index``."""
    return Path(out_dir) / f"summary_{int(index):05d}.npz"


def existing_summaries(out_dir) -> list[int]:
    """Indices of the summary files in ``out_dir`` (sorted; not yet verified)."""
    return indices_matching(out_dir, SUMMARY_PATTERN)


def write_realisation(out_dir, result: dict) -> Path:
    """Write one realisation atomically (temporary file in the same directory + ``os.replace``).

    The file holds ``index``, ``times``, ``delta_r`` (float32), ``max_speed_error`` and, when
    ``result`` has them, the ``settings`` that produced it (JSON text), so that every file can be
    checked against the manifest of the directory it sits in (:func:`load_realisation`).
    """
    arrays = dict(index=np.int64(result["index"]), times=np.asarray(result["times"]),
                  delta_r=np.asarray(result["delta_r"], dtype=np.float32),
                  max_speed_error=np.float64(result["max_speed_error"]))
    if "directions" in result:
        arrays["directions"] = np.asarray(result["directions"], dtype=np.float32)
    if "settings" in result:
        arrays["settings"] = np.str_(json.dumps(result["settings"], sort_keys=True))
    return write_atomically(realisation_path(out_dir, result["index"]), arrays)


def _time_tolerance(settings: SimulationSettings) -> float:
    # output_schedule puts the last time on the step grid exactly and rounds the others to the
    # nearest step; every mode has k >= k0, so dt <= step_fraction * min(1/k0, r_g)
    return 0.5 * settings.step_fraction * min(1.0, 1.0 / settings.k0)


def load_realisation(out_dir, index: int, settings: SimulationSettings) -> dict:
    """Read and verify one realisation file against the settings of its directory.

    Every array is read in full, so the CRC-32 that the ``.npz`` (zip) container keeps for each
    array is checked: truncated files and flipped bits are both caught. The content must then
    fit ``settings``: the file's own ``index`` and ``settings`` (when stored), ``delta_r`` of
    shape ``(n_times, 12 nside^2, 3)`` with finite entries no farther from the origin than
    ``c T``, and the times reached within half a step of the requested ones.

    Returns
    -------
    dict
        The arrays of the file.

    Raises
    ------
    CorruptRealisationError
        One line naming the file and what is wrong with it.
    """
    arrays, contradiction = _read_checked(realisation_path(out_dir, index), out_dir, index, settings,
                                          REALISATION_FIELDS)
    times, delta_r = np.asarray(arrays["times"], dtype=float), arrays["delta_r"]
    expected_shape = (len(settings.times), settings.n_pix, 3)
    if delta_r.shape != expected_shape:
        raise contradiction(f"delta_r has shape {delta_r.shape}, nside {settings.nside} and "
                            f"{len(settings.times)} times need {expected_shape}")
    _check_times(times, settings, contradiction)
    distance = np.linalg.norm(np.asarray(delta_r, dtype=np.float64), axis=2)
    # a particle moves at c: float32 storage allows a relative excess of a few 1e-7
    if not np.all(np.isfinite(distance)) or np.any(distance > times[:, None] * (1 + 1e-5)):
        raise contradiction("delta_r holds non-finite values or particles farther than c T")
    if not np.isfinite(float(arrays["max_speed_error"])):
        raise contradiction("max_speed_error is not finite")
    return arrays


def _read_checked(path: Path, out_dir, index: int, settings: SimulationSettings, fields) -> tuple:
    """:func:`qltlib.particles.files.read_part` against a simulation's settings."""
    return read_part(path, out_dir, index, settings.as_dict(), fields, simulation_defaults())


def _check_times(times, settings: SimulationSettings, contradiction) -> None:
    if times.shape != (len(settings.times),) or \
            np.any(np.abs(times - np.array(settings.times)) > _time_tolerance(settings)):
        raise contradiction(f"times {times.tolist()} instead of {list(settings.times)}")


#: arrays of a summary file (:func:`write_summary`)
SUMMARY_FIELDS = ("version", "index", "times", "lmax", "C_ell_axis", "shot_noise_axis", "msd",
                  "msd_axis", "settings")


def realisation_summary(result: dict, settings: SimulationSettings) -> dict:
    """Summary of one realisation (``run_realisation`` output or a loaded file) for its file.

    The statistics of :func:`realisation_statistics` at ``lmax = 3 nside - 1`` (every resolved
    multipole), per gradient axis, from the float32 displacements as stored in the raw file, so
    that a summary made by the worker equals one made later from the raw file, bit for bit.
    """
    # C order as in the file: the reductions then add in the same order (the tracker's
    # arrays may be strided views)
    delta_r = np.ascontiguousarray(result["delta_r"], dtype=np.float32)
    stats = realisation_statistics(delta_r, result["times"], lmax=check_lmax(None, settings.nside))
    return {"version": np.int64(SUMMARY_VERSION), "index": np.int64(result["index"]),
            "times": np.asarray(result["times"], dtype=float), "lmax": np.int64(stats["lmax"]),
            "C_ell_axis": stats["C_ell_axis"], "shot_noise_axis": stats["shot_noise_axis"],
            "msd": stats["msd"], "msd_axis": stats["msd_axis"],
            "settings": np.str_(json.dumps(settings.as_dict(), sort_keys=True))}


def write_summary(out_dir, summary: dict) -> Path:
    """Write a :func:`realisation_summary` atomically as ``DIR/summary_NNNNN.npz``.

    Content: ``version``, ``index``, ``times`` (reached, ``1/Omega``), ``lmax = 3 nside - 1``,
    ``C_ell_axis`` ``(n_times, 3, lmax+1)`` (the maps ``dI = Delta r . G`` with ``G`` along
    ``x, y, z``, ``|G| = 1/r_g``; shot noise not subtracted), ``shot_noise_axis``
    ``(n_times, 3)``, ``msd`` ``(n_times,)`` = ``<|Delta r|^2>`` over pixels (``r_g^2``),
    ``msd_axis`` ``(n_times, 3)`` = ``<Delta x_i^2>``, ``settings`` (JSON).
    """
    return write_atomically(summary_path(out_dir, int(summary["index"])),
                             {name: summary[name] for name in SUMMARY_FIELDS})


def load_summary(out_dir, index: int, settings: SimulationSettings) -> dict:
    """Read and verify one summary file against the settings of its directory.

    Like :func:`load_realisation`: every array is read (CRC-32 of the container), the stored
    settings, ``index``, ``version`` and ``lmax = 3 nside - 1`` must match, the shapes fit
    the times and ``nside``, the times lie within half a step of the requested ones, and the
    values are finite, ``C_l >= 0`` and ``0 <= <|Delta r|^2> <= (c T)^2`` with the per-axis
    parts adding up to it.

    Raises
    ------
    CorruptRealisationError
        One line naming the file and what is wrong with it.
    """
    arrays, contradiction = _read_checked(summary_path(out_dir, index), out_dir, index, settings,
                                          SUMMARY_FIELDS)
    if arrays["version"].shape != () or int(arrays["version"]) != SUMMARY_VERSION:
        raise contradiction(f"summary version {arrays['version'].tolist()!r}, this qltlib writes "
                            f"{SUMMARY_VERSION}")
    lmax, n_times = check_lmax(None, settings.nside), len(settings.times)
    if arrays["lmax"].shape != () or int(arrays["lmax"]) != lmax:
        raise contradiction(f"lmax {arrays['lmax'].tolist()!r}, nside {settings.nside} needs {lmax}")
    shapes = {"C_ell_axis": (n_times, len(GRADIENT_AXES), lmax + 1),
              "shot_noise_axis": (n_times, len(GRADIENT_AXES)), "msd": (n_times,),
              "msd_axis": (n_times, len(GRADIENT_AXES))}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise contradiction(f"{name} has shape {arrays[name].shape}, expected {shape}")
        if not np.all(np.isfinite(arrays[name])):
            raise contradiction(f"{name} holds non-finite values")
    times = np.asarray(arrays["times"], dtype=float)
    _check_times(times, settings, contradiction)
    msd, msd_axis = arrays["msd"], arrays["msd_axis"]
    if np.any(arrays["C_ell_axis"] < 0) or np.any(msd_axis < 0) \
            or np.any(msd > times ** 2 * (1 + 1e-5)) \
            or not np.allclose(msd_axis.sum(axis=1), msd, rtol=1e-9, atol=0.0):
        raise contradiction("negative C_l, or mean-square displacements beyond (c T)^2 or "
                            "inconsistent between the axes")
    return arrays


#: what a realisation file holds (recorded in the manifest of a new directory)
FILE_CONTENT = "delta_r float32 (n_times, n_pix, 3) in r_g; times in 1/Omega"


def prepare_output(out_dir, settings: SimulationSettings, n_realisations: int,
                   keep_raw: bool = True) -> Path:
    """Create ``out_dir`` with its manifest, or check that an existing manifest matches.

    A new manifest records ``keep_raw`` (whether realisations keep their raw file), which
    ``qlt simulate --resume`` follows; an existing one is left as it is unless more
    realisations are asked for (:func:`qltlib.particles.files.prepare_run_directory`, whose
    errors it raises; a corrupt manifest is a ValueError naming it).
    """
    if (Path(out_dir) / MANIFEST_NAME).exists():
        load_manifest(out_dir)
    return prepare_run_directory(out_dir, settings.as_dict(), n_realisations, simulation_defaults(),
                                 {"file_content": FILE_CONTENT, "keep_raw": bool(keep_raw)})


def load_manifest(out_dir) -> dict:
    """The manifest of a simulation directory, checked for form and for valid settings.

    Raises
    ------
    ValueError
        One line naming the file: no directory, no manifest, not JSON, or invalid settings.
    """
    manifest = read_manifest_json(out_dir, "simulation")
    try:
        SimulationSettings.from_dict(manifest["settings"])
    except ValueError as exc:
        path = Path(out_dir) / MANIFEST_NAME
        raise ValueError(f"{path} holds invalid settings ({exc}); the manifest is corrupt") from None
    return manifest


def raw_files_kept(out_dir, manifest: dict) -> bool:
    """Whether the run of ``out_dir`` keeps raw files: as its manifest records, or, for a
    manifest older than that entry, whether the directory holds any raw file."""
    if "keep_raw" in manifest:
        return bool(manifest["keep_raw"])
    return bool(existing_realisations(out_dir))


def write_results(out_dir, result: dict, settings: SimulationSettings, keep_raw: bool = True) -> None:
    """Files of one finished realisation: the raw file if ``keep_raw``, else its summary.

    A raw file's summary is made later, from the raw file, by :func:`verify_existing` on
    resume or by :func:`summarize` (bit for bit the same): the summary needs healpy, whose
    import (over a second, matplotlib and astropy included) would otherwise delay the start of
    every worker.
    """
    if keep_raw:
        write_realisation(out_dir, result)
    else:
        write_summary(out_dir, realisation_summary(result, settings))


def verify_existing(out_dir, settings: SimulationSettings, n_realisations: int, report=stderr_line,
                    keep_raw: bool = True):
    """Check the files of every realisation below ``n_realisations``; remove the corrupt ones.

    A realisation is finished when its summary verifies (:func:`load_summary`) and, with
    ``keep_raw``, its raw file too (:func:`load_realisation`). A verified raw file whose summary
    is missing or corrupt is completed here, from the raw file (no tracking); a raw file is
    written without its summary when ``keep_raw`` (:func:`write_results`). Corrupt files are
    reported (one line each) and deleted.

    Returns
    -------
    (good, repaired) : lists of indices
        Finished realisations, and those where a corrupt file was found (recomputed by the run
        unless the raw file gave the summary back).
    """
    good, repaired = [], []
    indices = sorted(set(existing_realisations(out_dir)) | set(existing_summaries(out_dir)))
    for index in indices:
        if index >= n_realisations:
            continue
        found = {}
        for kind, path, load in (("raw", realisation_path(out_dir, index), load_realisation),
                                 ("summary", summary_path(out_dir, index), load_summary)):
            if not path.exists():
                found[kind] = None
                continue
            try:
                found[kind] = load(out_dir, index, settings)
            except CorruptRealisationError as exc:
                report(f"{exc}; recomputing it")
                path.unlink()
                found[kind] = None
                if index not in repaired:
                    repaired.append(index)
        if found["summary"] is None and found["raw"] is not None:
            write_summary(out_dir, realisation_summary(found["raw"], settings))
            found["summary"] = True
        if found["summary"] is not None and (found["raw"] is not None or not keep_raw):
            good.append(index)
    return good, repaired


def _check_summary_memory(settings: SimulationSettings) -> None:
    need = summary_memory(settings.nside, len(settings.times), check_lmax(None, settings.nside))
    memory = available_memory()
    if need > memory:
        raise ValueError(f"summarising nside {settings.nside} at lmax {check_lmax(None, settings.nside)} "
                         f"needs about {format_bytes(need)} of memory; this machine has "
                         f"{format_bytes(memory)}")


def summary_from_raw(out_dir, index: int, settings: SimulationSettings, raw: dict | None = None) -> dict:
    """:func:`realisation_summary` of the verified raw file of realisation ``index``
    (``raw``: its arrays, already verified by the caller).

    Raises
    ------
    CorruptRealisationError
        The raw file is unreadable or contradicts the manifest (one line naming it).
    ValueError
        Too little memory for the transform.
    """
    _check_summary_memory(settings)
    if raw is None:
        try:
            raw = load_realisation(out_dir, index, settings)
        except CorruptRealisationError as exc:
            raise CorruptRealisationError(f"{exc} (`qlt simulate --resume {out_dir}` "
                                          f"recomputes it)") from None
    return realisation_summary(raw, settings)


def store_summary(out_dir, summary: dict) -> bool:
    """Write a summary; ``False`` (and nothing left behind) where the directory is read-only."""
    try:
        write_summary(out_dir, summary)
        return True
    except OSError:
        temporary_path(summary_path(out_dir, int(summary["index"])), os.getpid()).unlink(missing_ok=True)
        return False


def write_summaries(out_dir) -> dict:
    """Give every raw realisation file of ``out_dir`` a verified summary file.

    Converts a run made before summaries existed (or repairs missing and corrupt summaries);
    afterwards the raw files may be deleted, :func:`summarize` needs only the summaries.

    Returns
    -------
    dict
        ``out``, ``written`` (indices whose summary was computed now), ``kept`` (valid summaries
        already there), ``summaries`` (summary files now in the directory).
    """
    manifest = load_manifest(out_dir)
    settings = SimulationSettings.from_dict(manifest["settings"])
    written, kept = [], []
    for index in existing_realisations(out_dir):
        try:
            load_summary(out_dir, index, settings)
            kept.append(index)
            continue
        except CorruptRealisationError:
            pass
        summary = summary_from_raw(out_dir, index, settings)
        try:
            write_summary(out_dir, summary)
        except OSError as exc:
            raise ValueError(os_error_line("write to", out_dir, exc)) from None
        written.append(index)
    return {"out": str(out_dir), "written": written, "kept": kept,
            "summaries": len(existing_summaries(out_dir))}
