"""Files of every long command: atomic writes, verified reads, and the run directory's manifest.

A long command (``qlt simulate``, ``qlt transfer``) writes one directory per run:
``DIR/manifest.json`` (the settings, the number of parts asked for, how files are seeded and
what they hold) and one ``.npz`` file per finished part. Every file is written to a temporary
name in the same directory, synced and moved into place (:func:`write_atomically`), so a killed
run never leaves a truncated file under a final name; every file is read back in full (the zip
container's CRC-32 of each array is checked) and compared with the manifest before it is
trusted (:func:`read_part`).

A rerun with nothing to do changes no file: the manifest is written when the directory is new,
and rewritten (its ``realisations`` entry alone) only when a run asks for more parts
(:func:`prepare_run_directory`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import __version__

MANIFEST_NAME = "manifest.json"
SEEDING = "numpy.random.SeedSequence(entropy=seed, spawn_key=(index,))"


class CorruptRealisationError(ValueError):
    """A realisation file that cannot be read or contradicts the settings of its directory."""


class OutdatedPartError(CorruptRealisationError):
    """A part written by an older qltlib, before some of its terms were stored: its realisation
    is measured again. ``reason`` is the message without the file's name, so that many parts
    of the same age are reported in one line (:func:`report_bad_parts`)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name} {reason}")
        self.name, self.reason = name, reason


def report_bad_parts(report, problems, action: tuple) -> None:
    """One line per corrupt part, and one per group of outdated parts with the same reason.

    ``problems``: ``(index, CorruptRealisationError)`` pairs; ``action``: what is done with one
    part and with several (e.g. ``("recomputing it", "recomputing them")``).
    """
    if report is None:
        return
    outdated = {}
    for _, exc in problems:
        if isinstance(exc, OutdatedPartError):
            outdated.setdefault(exc.reason, []).append(exc.name)
        else:
            report(f"{exc}; {action[0]}")
    for reason, names in outdated.items():
        if len(names) == 1:
            report(f"{names[0]} {reason}; {action[0]}")
        else:
            verb = reason.replace("was written", "were written", 1)
            report(f"{len(names)} parts ({names[0]} ... {names[-1]}) {verb}; {action[1]}")


def verify_store_parts(store, pattern, n_realisations: int, load, path_of, report) -> tuple:
    """The parts of ``store`` below ``n_realisations`` that ``load(index)`` verifies, as
    ``{index: terms}``, and the indices of those found corrupt or outdated: deleted and reported
    (:func:`report_bad_parts`), so that the run computes them again.

    ``pattern``: the part files' names (index in group 1); ``path_of(index)``: a part's path.
    """
    good, problems = {}, []
    for index in indices_matching(store, pattern):
        if index >= n_realisations:
            continue
        try:
            good[index] = load(index)
        except CorruptRealisationError as exc:         # outdated parts too
            path_of(index).unlink(missing_ok=True)
            problems.append((index, exc))
    report_bad_parts(report, problems, ("recomputing it", "recomputing them"))
    return good, [index for index, _ in problems]


class SettingsMismatchError(ValueError):
    """An output directory holds a manifest written with different settings."""


def os_error_line(action: str, path, exc: OSError) -> str:
    """``"cannot ACTION PATH: REASON"``: one line for an operating-system error."""
    return f"cannot {action} {path}: {exc.strerror or type(exc).__name__}"


def temporary_path(path: Path, pid: int) -> Path:
    """Hidden temporary name of ``path`` for process ``pid`` (removed when that process ends)."""
    return path.with_name(f".{path.name}.{pid}.tmp")


def write_atomically(path: Path, arrays: dict) -> Path:
    """``np.savez`` to a temporary file in the same directory, synced, then ``os.replace``:
    a killed writer never leaves a truncated file under the final name."""
    tmp = temporary_path(path, os.getpid())
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def indices_matching(out_dir, pattern) -> list[int]:
    """Sorted part indices of the files in ``out_dir`` whose names match ``pattern`` (group 1)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = (pattern.match(p.name) for p in out_dir.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def _plain(value):
    """JSON-comparable form of a setting (tuples and lists compare equal)."""
    return json.loads(json.dumps(value))


def settings_conflicts(reference: dict, other: dict, defaults: dict) -> list[str]:
    """Names of the settings on which two settings dictionaries disagree (sorted).

    Every key of either dictionary is compared, so settings added later are checked without
    further code. A key missing from one side takes its value in ``defaults`` (the value that
    reproduces what the code did when that side was written).
    """
    missing = object()

    def value(settings, key):
        if key in settings:
            return _plain(settings[key])
        return _plain(defaults[key]) if key in defaults else missing

    return sorted(key for key in set(reference) | set(other) if value(reference, key) != value(other, key))


def read_part(path: Path, out_dir, index: int, expected: dict, fields, defaults: dict) -> tuple:
    """Read every array of ``path`` (CRC-checked) and check ``fields``, its settings and ``index``.

    Parameters
    ----------
    path : Path
        The part's file.
    out_dir : path
        Its run directory (named in messages).
    index : int
        The part it must hold.
    expected : dict
        The manifest's settings; a stored ``settings`` array (JSON) must agree with them.
    fields : sequence of str
        Arrays the file must hold.
    defaults : dict
        Values of settings a side does not record (:func:`settings_conflicts`).

    Returns
    -------
    (arrays, contradiction)
        The arrays, and a factory of the error for the caller's further checks.

    Raises
    ------
    CorruptRealisationError
        One line naming the file and what is wrong with it.
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
        differ = settings_conflicts(expected, stored, defaults)
        if differ:
            raise contradiction("settings " + ", ".join(
                f"{key} = {stored.get(key)!r} (manifest {expected.get(key)!r})" for key in differ))
    if arrays["index"].shape != () or int(arrays["index"]) != int(index):
        raise contradiction(f"it holds realisation {arrays['index'].tolist()!r}")
    return arrays, contradiction


def _check_writable(out_dir: Path) -> None:
    """Create and remove a probe file: a directory that cannot take files fails here, at once."""
    probe = temporary_path(out_dir / "write-probe", os.getpid())
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(os_error_line("write to output directory", out_dir, exc)) from None


def prepare_run_directory(out_dir, settings: dict, n_realisations: int, defaults: dict,
                          description: dict, option: str = "--out") -> Path:
    """Create ``out_dir`` with its manifest, or check that an existing manifest matches.

    Writes nothing into a directory whose manifest already has these settings and at least
    ``n_realisations`` parts (a rerun changes no file); asks for more parts by rewriting the
    manifest's ``realisations`` entry alone. Removes temporary files of killed runs, and checks
    that the directory takes new files, before any computation.

    Parameters
    ----------
    settings : dict
        The run's settings (JSON-serialisable).
    n_realisations : int
        Parts asked for.
    defaults : dict
        See :func:`settings_conflicts`.
    description : dict
        Further manifest entries of a new directory (seeding, file content, ...).
    option : str
        The command-line option that names the directory (for messages).

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
        raise ValueError(os_error_line("create output directory", out_dir, exc)) from None
    _check_writable(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        manifest = read_manifest_json(out_dir)
        differ = settings_conflicts(manifest["settings"], settings, defaults)
        if differ:
            raise SettingsMismatchError(
                f"{out_dir} holds a run with different settings ({', '.join(differ)}); "
                f"use another {option} directory")
        if int(manifest.get("realisations", 0)) >= int(n_realisations):
            manifest = None                      # nothing to record: leave the file as it is
        else:
            manifest["realisations"] = int(n_realisations)
    else:
        manifest = {"settings": settings, "realisations": int(n_realisations), "seeding": SEEDING,
                    **description, "qltlib_version": __version__}
    try:
        for stale in out_dir.glob(".*.tmp"):      # left behind by a killed run
            stale.unlink()
        if manifest is not None:
            tmp = temporary_path(manifest_path, os.getpid())
            tmp.write_text(json.dumps(manifest, indent=2) + "\n")
            os.replace(tmp, manifest_path)
    except OSError as exc:
        raise ValueError(os_error_line("write to output directory", out_dir, exc)) from None
    return out_dir


def read_manifest_json(out_dir, what: str = "run") -> dict:
    """The manifest of a run directory, checked for form (``settings`` dict, ``realisations``).

    Raises
    ------
    ValueError
        One line naming the file: no such directory, no manifest, not JSON, or a bad entry.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ValueError(f"no such directory: {out_dir}")
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"no {MANIFEST_NAME} in {out_dir}: not a {what} directory")
    try:
        manifest = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(os_error_line("read", path, exc)) from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the manifest is corrupt") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        raise ValueError(f"{path} has no settings; the manifest is corrupt")
    realisations = manifest.get("realisations", 0)
    if isinstance(realisations, bool) or not isinstance(realisations, int) or realisations < 0:
        raise ValueError(f"{path}: 'realisations' must be a non-negative integer, got {realisations!r}")
    return manifest
