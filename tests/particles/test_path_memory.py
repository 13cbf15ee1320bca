"""Path memories (qltlib.particles.path_memory): exact values in a uniform field, the runner's
resume, corrupt parts, the JSON round trip."""
import json

import numpy as np
import pytest

from qltlib.particles.path_memory import (
    PathMemory,
    load_memory_part,
    memory_part_path,
    memory_terms,
    run_path_memory,
)
from qltlib.particles.settings import SimulationSettings, pixel_directions
from qltlib.particles.turbulence import uniform_field

TINY = SimulationSettings(nside=1, times=(0.5, 1.0), n_modes=16, spectrum="kolmogorov",
                          k0=1e-2, k1=1e1)


def test_uniform_field_remembers_its_field_and_turns_the_velocity():
    # omega = z everywhere: the field at the path's end is the observer's (C_B = 1), and the
    # momentum turns about z by Omega t, so <p'.p> = <p_z^2> + <1 - p_z^2> cos(Omega t)
    settings = SimulationSettings(nside=2, times=(0.5, 1.0, 2.0), step_fraction=0.01)
    terms = memory_terms(settings, 0, field=uniform_field([0.0, 0.0, 1.0]))
    pz2 = np.mean(pixel_directions(2)[:, 2] ** 2)
    expected = pz2 + (1 - pz2) * np.cos(np.array(settings.times))
    assert np.allclose(terms["velocity_overlap"], expected, atol=1e-4)
    assert np.allclose(terms["field_overlap"], 1.0) and terms["field_square"] == pytest.approx(1.0)
    # straight segments of a helix: |Delta r|^2 = p_z^2 t^2 + (1 - p_z^2) 4 sin^2(t/2)
    t = np.array(settings.times)
    helix = pz2 * t ** 2 + (1 - pz2) * 4 * np.sin(t / 2) ** 2
    assert np.allclose(terms["square_displacement"], helix, rtol=1e-3)


def test_memories_start_at_one_and_the_ratio_is_of_means():
    parts = [{"field_overlap": np.array([2.0, 1.0]), "velocity_overlap": np.array([0.5, 0.1]),
              "square_displacement": np.array([6.0, 24.0]), "field_square": 2.0},
             {"field_overlap": np.array([0.0, 1.0]), "velocity_overlap": np.array([0.3, 0.1]),
              "square_displacement": np.array([6.0, 12.0]), "field_square": 1.0}]
    memory = PathMemory.from_parts(SimulationSettings(times=(1.0, 2.0)), parts)
    assert np.allclose(memory.field, [2 / 3, 2 / 3])          # (2 + 0) / (2 + 1), (1 + 1) / 3
    assert np.allclose(memory.velocity, [0.4, 0.1]) and memory.velocity_err[1] == 0
    assert np.allclose(memory.diffusion, [1.0, 1.5])
    assert np.allclose(memory.slope, [1.0, 2.0])              # (18 - 6) / 6 from t = 1 to 2
    assert memory.at(2.0)["diffusion"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="not an output time"):
        memory.at(3.0)
    again = PathMemory.from_json(json.loads(json.dumps(memory.to_json())))
    assert np.array_equal(again.field_err, memory.field_err) and again.realisations == 2


def test_run_resumes_changes_nothing_when_done_and_remeasures_a_corrupt_part(tmp_path):
    first = run_path_memory(TINY, 2, store=tmp_path, progress=False, report=lambda line: None)
    assert first["written"] == [0, 1]
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = run_path_memory(TINY, 2, store=tmp_path, progress=False)
    assert again["written"] == []
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps
    assert np.array_equal(again["memory"].field, first["memory"].field)
    memory_part_path(tmp_path, 1).write_bytes(b"not a zip file")
    lines = []
    repaired = run_path_memory(TINY, 3, store=tmp_path, progress=False, report=lines.append)
    assert repaired["written"] == [1, 2]
    assert any("memory_00001.npz is unreadable" in line for line in lines)
    assert np.array_equal(load_memory_part(tmp_path, 1, TINY)["field_overlap"],
                          memory_terms(TINY, 1)["field_overlap"])


def test_a_store_with_other_settings_is_refused(tmp_path):
    run_path_memory(TINY, 1, store=tmp_path, progress=False)
    other = SimulationSettings(nside=1, times=(0.5, 1.0), n_modes=16, spectrum="white",
                               k0=1e-2, k1=1e1)
    with pytest.raises(ValueError, match="different settings"):
        run_path_memory(other, 1, store=tmp_path, progress=False)
