"""Observed data: provenance, registry and the validating loader (qltlib.observations.data)."""
import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from qltlib.observations.data import (
    DataFormatError,
    dataset_metadata,
    list_datasets,
    load_dataset,
    read_pseudo_cl_csv,
)
from qltlib.paths import DATA_DIR

MAIN_CSV = DATA_DIR / "icecube_12yr" / "icecube12yr_pseudoCl_vs_l_digitised.csv"
#: the shared data directory the IceCube files were copied from: ``../shared/data`` next to the
#: repository checkout, or the directory named by ``QLT_SHARED_DATA``
SHARED_DATA = Path(os.environ.get("QLT_SHARED_DATA")
                   or Path(__file__).resolve().parents[2].parent / "shared" / "data")
ICECUBE_ENERGIES = [13, 24, 42, 67, 130, 240, 470, 1500, 5300]

HEADER = ("E_label,E_median_TeV,l,Cl_tilde,log10_Cl_tilde,stat_err_visible,stat_lo,stat_hi,"
          "box_lo,box_hi,noise1s_lo,noise1s_hi,noise2s_lo,noise2s_hi,noise3s_lo,noise3s_hi,flag")


def _row(energy=10, ell=1, cl="1e-8", log10=None):
    log10 = f"{math.log10(float(cl)):.3f}" if log10 is None else log10
    return f"{energy} TeV,{energy},{ell},{cl},{log10},0,,,,,1e-12,2e-12,,,,,"


def _write_csv(path, rows, header=HEADER):
    path.write_text("# synthetic test file\n" + header + "\n" + "\n".join(rows) + "\n")
    return path


def _good_rows(energies=(10, 20), lmax=6):
    return [_row(e, l, f"{1e-8 / l ** 2:.3e}") for e in energies for l in range(1, lmax + 1)]


def test_icecube_loads_with_all_energies_and_multipoles():
    data = load_dataset("icecube-12yr")
    np.testing.assert_allclose(data.energies, ICECUBE_ENERGIES)
    for energy in ICECUBE_ENERGIES:
        ebin = data.bin(energy)
        np.testing.assert_array_equal(ebin.ell, np.arange(1, 41))
        assert ebin.ell.dtype.kind == "i"
        assert np.all(ebin.cl_tilde > 0) and np.all(ebin.cl_tilde < 1e-5)
        lo, hi = ebin.noise_bands[1]
        both = np.isfinite(lo) & np.isfinite(hi)
        assert np.all(lo[both] <= hi[both])
        assert ebin.flags[-1] == "marker_clipped_at_axis"   # l = 40 marker cut by the axis
    assert data.dec_max_deg == -20.0 and data.m0_filtered
    assert data.digitisation_error_dex == pytest.approx(0.03)
    first = data.bin(13)
    assert first.cl_tilde[0] == pytest.approx(3.84e-8)      # first row of the CSV, unchanged


def _recorded_digests() -> dict:
    """``{file name: SHA-256}`` as recorded in the data set's README (its provenance)."""
    text = (DATA_DIR / "icecube_12yr" / "README.md").read_text()
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M)}


def test_data_files_are_the_recorded_copies_of_the_shared_originals():
    """The copies match the SHA-256 their README records; where the shared source material is
    present (``../shared/data`` or ``$QLT_SHARED_DATA``), the originals match them too."""
    recorded = _recorded_digests()
    assert set(recorded) == {"icecube12yr_pseudoCl_vs_l_digitised.csv",
                             "icecube12yr_crosscheck_gif_vs_png.csv"}
    for name, digest in recorded.items():
        assert hashlib.sha256((DATA_DIR / "icecube_12yr" / name).read_bytes()).hexdigest() == digest
        if SHARED_DATA.is_dir():
            assert hashlib.sha256((SHARED_DATA / name).read_bytes()).hexdigest() == digest, name


def test_registry_lists_icecube_and_names_the_missing_data_sets():
    assert list_datasets() == ["icecube-12yr"]
    everything = list_datasets(include_missing=True)
    assert "hawc-2018" in everything and "icecube-hawc-2019" in everything
    meta = dataset_metadata("icecube-12yr")
    assert meta["citation"]["doi"] == "10.3847/1538-4357/adb1de"
    assert meta["sky_coverage"]["dec_cut_assumed"] is True
    with pytest.raises(ValueError, match="not available"):
        load_dataset("hawc-2018")
    with pytest.raises(ValueError, match="unknown data set 'nope'; available: icecube-12yr"):
        load_dataset("nope")


def test_unknown_energy_lists_the_available_ones():
    data = load_dataset("icecube-12yr")
    with pytest.raises(ValueError, match=r"available energies \(TeV\): 13, 24, 42"):
        data.bin(14)


def _assert_one_line_error(path, match):
    with pytest.raises(DataFormatError, match=match) as info:
        read_pseudo_cl_csv(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert isinstance(info.value, ValueError)


def test_missing_column_is_refused(tmp_path):
    header = HEADER.replace("Cl_tilde,log10_Cl_tilde", "C_l,log10_Cl_tilde")
    path = _write_csv(tmp_path / "nocl.csv", _good_rows(), header=header)
    _assert_one_line_error(path, "missing required column.*Cl_tilde")


def test_nan_is_refused(tmp_path):
    rows = _good_rows()
    rows[3] = _row(10, 4, "nan", log10="")
    path = _write_csv(tmp_path / "nan.csv", rows)
    _assert_one_line_error(path, r"line 6: column 'Cl_tilde' is not finite")


@pytest.mark.parametrize("value", ["0", "-1e-9"])
def test_non_positive_cl_is_refused(tmp_path, value):
    rows = _good_rows()
    rows[0] = _row(10, 1, value, log10="")
    path = _write_csv(tmp_path / "neg.csv", rows)
    _assert_one_line_error(path, "Cl_tilde must be positive")


@pytest.mark.parametrize("ell", ["0", "2.5", "x"])
def test_bad_multipole_is_refused(tmp_path, ell):
    rows = _good_rows()
    rows[1] = f"10 TeV,10,{ell},1e-9,-9.000,0,,,,,,,,,,,"
    path = _write_csv(tmp_path / "ell.csv", rows)
    _assert_one_line_error(path, "column 'l'|l must be an integer")


def test_other_malformations_are_refused(tmp_path):
    rows = _good_rows()
    rows.append(rows[0])
    _assert_one_line_error(_write_csv(tmp_path / "dup.csv", rows), "duplicate point")
    rows = _good_rows()
    rows[0] = _row(10, 1, "2.0", log10="")
    _assert_one_line_error(_write_csv(tmp_path / "units.csv", rows), "wrong units")
    rows = _good_rows()
    rows[0] = _row(10, 1, "1e-8", log10="-7.000")
    _assert_one_line_error(_write_csv(tmp_path / "log.csv", rows), "log10_Cl_tilde")
    rows = _good_rows()
    rows[0] = "10 TeV,10,1,1e-8,-8.000,0,,,,,3e-12,2e-12,,,,,"
    _assert_one_line_error(_write_csv(tmp_path / "band.csv", rows), "noise1s_lo > noise1s_hi")
    rows = _good_rows()
    rows[0] = rows[0] + ",extra"
    _assert_one_line_error(_write_csv(tmp_path / "fields.csv", rows), "fields, header has")
    _assert_one_line_error(tmp_path / "absent.csv", "not found")


def _registry(tmp_path, entries):
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps({"datasets": entries, "missing": []}))
    return path


def test_registry_extension_with_a_synthetic_data_set(tmp_path):
    (tmp_path / "toy").mkdir()
    _write_csv(tmp_path / "toy" / "toy.csv", _good_rows(energies=(2, 30)))
    icecube = dataset_metadata("icecube-12yr")
    icecube["file"] = str(MAIN_CSV)       # absolute path: registry entries may point anywhere
    toy = {"name": "toy-hawc", "file": "toy/toy.csv", "description": "synthetic, for the test",
           "units": {"energy": "TeV", "cl": "dimensionless"},
           "sky_coverage": {"coordinates": "equatorial", "dec_min_deg": -25.0, "dec_max_deg": 65.0},
           "m0_filtered": True, "energies_tev": [2, 30]}
    registry = _registry(tmp_path, [icecube, toy])
    assert list_datasets(registry) == ["icecube-12yr", "toy-hawc"]
    data = load_dataset("toy-hawc", registry)
    np.testing.assert_allclose(data.energies, [2, 30])
    assert (data.dec_min_deg, data.dec_max_deg) == (-25.0, 65.0)
    np.testing.assert_allclose(data.bin(30).cl_tilde, [1e-8 / l ** 2 for l in range(1, 7)], rtol=1e-3)
    assert load_dataset("icecube-12yr", registry).energies.size == 9


def test_registry_entry_inconsistent_with_its_file_is_refused(tmp_path):
    _write_csv(tmp_path / "toy.csv", _good_rows(energies=(2, 30)))
    entry = {"name": "toy", "file": "toy.csv", "energies_tev": [2, 31]}
    with pytest.raises(DataFormatError, match="differ from the registry"):
        load_dataset("toy", _registry(tmp_path, [entry]))
    entry = {"name": "toy", "file": "toy.csv", "units": {"energy": "GeV"}}
    with pytest.raises(DataFormatError, match="energy unit 'GeV'"):
        load_dataset("toy", _registry(tmp_path, [entry]))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        list_datasets(tmp_path / "bad.json")
