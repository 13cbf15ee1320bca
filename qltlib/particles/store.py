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

from .. import __version__
from ..machine import available_memory, format_bytes
from .map_statistics import (
    GRADIENT_AXES,
    check_lmax,
    realisation_statistics,
    summary_memory,
)
from .runner import stderr_line
from .settings import SettingsMismatchError, SimulationSettings, settings_conflicts

MANIFEST_NAME = "manifest.json"
#: bumped whenever the per-realisation summaries change meaning (older summaries are recomputed)
SUMMARY_VERSION = 1
REALISATION_PATTERN = re.compile(r"^realisation_(\d{5})\.npz$")
SUMMARY_PATTERN = re.compile(r"^summary_(\d{5})\.npz$")


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

class CorruptRealisationError(ValueError):
    """A realisation file that cannot be read or contradicts the settings of its directory."""


#: arrays every realisation file holds (files written since qltlib 0.1.0 also hold ``settings``)
REALISATION_FIELDS = ("index", "times", "delta_r", "max_speed_error")


def realisation_path(out_dir, index: int) -> Path:
    """``DIR/realisation_NNNNN.npz`` of realisation ``index``."""
    return Path(out_dir) / f"realisation_{int(index):05d}.npz"


def _indices_matching(out_dir, pattern) -> list[int]:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = (pattern.match(p.name) for p in out_dir.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def existing_realisations(out_dir) -> list[int]:
    """Indices of the realisation files in ``out_dir`` (sorted; not yet verified)."""
    return _indices_matching(out_dir, REALISATION_PATTERN)


def summary_path(out_dir, index: int) -> Path:
    """``DIR/summary_NNNNN.npz``: the compact summary of realisation ``index``."""
    return Path(out_dir) / f"summary_{int(index):05d}.npz"


def existing_summaries(out_dir) -> list[int]:
    """Indices of the summary files in ``out_dir`` (sorted; not yet verified)."""
    return _indices_matching(out_dir, SUMMARY_PATTERN)


def _temporary_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def _write_atomically(path: Path, arrays: dict) -> Path:
    """``np.savez`` to a temporary file in the same directory, synced, then ``os.replace``:
    a killed writer never leaves a truncated file under the final name."""
    tmp = _temporary_path(path, os.getpid())
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


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
    return _write_atomically(realisation_path(out_dir, result["index"]), arrays)


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
    """Read every array of ``path`` (CRC-checked) and check ``fields``, ``settings`` and ``index``.

    Returns ``(arrays, contradiction)``, the latter a factory of the error for further checks.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:       # any failure to read (BadZipFile, CRC, header, I/O) is corruption
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise CorruptRealisationError(f"{path.name} is unreadable ({type(exc).__name__}: {reason})") from None

    def contradiction(what):
        return CorruptRealisationError(f"{path.name} contradicts the manifest of {Path(out_dir)}: {what}")

    absent = [name for name in fields if name not in arrays]
    if absent:
        raise contradiction(f"it lacks {', '.join(absent)}")
    if "settings" in arrays:
        try:
            stored = json.loads(str(arrays["settings"]))
        except ValueError:
            raise contradiction("its stored settings are not JSON") from None
        expected = settings.as_dict()
        differ = settings_conflicts(expected, stored)
        if differ:
            raise contradiction("settings " + ", ".join(
                f"{key} = {stored.get(key)!r} (manifest {expected.get(key)!r})" for key in differ))
    if arrays["index"].shape != () or int(arrays["index"]) != int(index):
        raise contradiction(f"it holds realisation {arrays['index'].tolist()!r}")
    return arrays, contradiction


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
    return _write_atomically(summary_path(out_dir, int(summary["index"])),
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


def _manifest(settings: SimulationSettings, n_realisations: int) -> dict:
    return {"settings": settings.as_dict(), "realisations": int(n_realisations),
            "seeding": "numpy.random.SeedSequence(entropy=seed, spawn_key=(index,))",
            "file_content": "delta_r float32 (n_times, n_pix, 3) in r_g; times in 1/Omega",
            "qltlib_version": __version__}


def _os_error_line(action: str, path, exc: OSError) -> str:
    return f"cannot {action} {path}: {exc.strerror or type(exc).__name__}"


def prepare_output(out_dir, settings: SimulationSettings, n_realisations: int) -> Path:
    """Create ``out_dir`` with its manifest, or check that an existing manifest matches.

    Raises
    ------
    SettingsMismatchError
        If ``out_dir`` already holds a manifest with different settings.
    ValueError
        If ``out_dir`` is a file, cannot be created or written, or holds a corrupt manifest.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output {out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(_os_error_line("create output directory", out_dir, exc)) from None
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        old = load_manifest(out_dir)
        differ = settings_conflicts(old["settings"], settings.as_dict())
        if differ:
            raise SettingsMismatchError(
                f"{out_dir} holds a run with different settings ({', '.join(differ)}); "
                f"use another --out directory")
        n_realisations = max(n_realisations, int(old.get("realisations", 0)))
    tmp = _temporary_path(manifest_path, os.getpid())
    try:
        for stale in out_dir.glob(".*.tmp"):      # left behind by a killed run
            stale.unlink()
        tmp.write_text(json.dumps(_manifest(settings, n_realisations), indent=2) + "\n")
        os.replace(tmp, manifest_path)
    except OSError as exc:
        raise ValueError(_os_error_line("write to output directory", out_dir, exc)) from None
    return out_dir


def load_manifest(out_dir) -> dict:
    """The manifest of a simulation directory, checked for form.

    Raises
    ------
    ValueError
        One line naming the file: no manifest, not JSON, or settings that are not valid.
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"no {MANIFEST_NAME} in {out_dir}: not a simulation directory")
    try:
        manifest = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(_os_error_line("read", path, exc)) from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the manifest is corrupt") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        raise ValueError(f"{path} has no settings; the manifest is corrupt")
    try:
        SimulationSettings.from_dict(manifest["settings"])
    except ValueError as exc:
        raise ValueError(f"{path} holds invalid settings ({exc}); the manifest is corrupt") from None
    realisations = manifest.get("realisations", 0)
    if isinstance(realisations, bool) or not isinstance(realisations, int) or realisations < 0:
        raise ValueError(f"{path}: 'realisations' must be a non-negative integer, got {realisations!r}")
    return manifest


# ---------------------------------------------------------------------------------------------
# ensemble driver: worker processes
# ---------------------------------------------------------------------------------------------
#
# Ctrl-C must be safe at every moment. A SIGINT that arrives while numba's threading layer runs
# the parallel kernel (or loads / compiles it) can crash the process, and a process pool whose
# workers share the terminal's process group receives the same SIGINT. So the tracking kernel
# never runs in the process that owns SIGINT: every realisation is computed in a worker process
# (also for a single worker) started in its own process group, with SIGINT ignored, and fed one
# realisation index per line on its stdin. Only the driver sees Ctrl-C; it SIGKILLs the workers
# (safe at any instruction), removes their temporary files and returns. Finished files are
# complete by construction (temporary file + os.replace). A worker whose stdin closes -- the
# driver finished or died, even by SIGKILL -- exits at once, from a watchdog thread.

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


def summary_from_raw(out_dir, index: int, settings: SimulationSettings) -> dict:
    """:func:`realisation_summary` of the verified raw file of realisation ``index``.

    Raises
    ------
    CorruptRealisationError
        The raw file is unreadable or contradicts the manifest (one line naming it).
    ValueError
        Too little memory for the transform.
    """
    _check_summary_memory(settings)
    try:
        data = load_realisation(out_dir, index, settings)
    except CorruptRealisationError as exc:
        raise CorruptRealisationError(f"{exc} (`qlt simulate` with the manifest's settings "
                                      f"recomputes it)") from None
    return realisation_summary(data, settings)


def store_summary(out_dir, summary: dict) -> bool:
    """Write a summary; ``False`` (and nothing left behind) where the directory is read-only."""
    try:
        write_summary(out_dir, summary)
        return True
    except OSError:
        _temporary_path(summary_path(out_dir, int(summary["index"])), os.getpid()).unlink(missing_ok=True)
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
            raise ValueError(_os_error_line("write to", out_dir, exc)) from None
        written.append(index)
    return {"out": str(out_dir), "written": written, "kept": kept,
            "summaries": len(existing_summaries(out_dir))}
