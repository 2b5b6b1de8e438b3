"""Structure analysis on synthetic trajectories with known answers."""

import mdtraj as md
import numpy as np
import pytest

from porelab.sim.forcefield import ION_RESNAMES
from porelab.sim.structure import (
    HYDRATION_CUTOFF_NM,
    hydration_number_z,
    ion_density_r,
    ion_density_z,
    ion_species,
    plot_profiles,
)

ELEMENT = {"K+": "K", "Na+": "Na", "Li+": "Li", "Mg2+": "Mg", "Ca2+": "Ca", "Cl-": "Cl"}


def make_traj(xyz, species, n_water, box):
    """Trajectory of ions (one residue each, names from ION_RESNAMES) followed by n_water HOH oxygens."""
    xyz = np.asarray(xyz, dtype=np.float32)
    if xyz.ndim == 2:
        xyz = xyz[None]
    top = md.Topology()
    chain = top.add_chain()
    for sp in species:
        res = top.add_residue(ION_RESNAMES[sp], chain)
        top.add_atom(ION_RESNAMES[sp], md.element.get_by_symbol(ELEMENT[sp]), res)
    for _ in range(n_water):
        res = top.add_residue("HOH", chain)
        top.add_atom("O", md.element.oxygen, res)
    lengths = np.tile(np.asarray(box, dtype=np.float32), (xyz.shape[0], 1))
    return md.Trajectory(xyz, top, unitcell_lengths=lengths, unitcell_angles=np.full_like(lengths, 90.0))


def test_uniform_ions_give_flat_density_equal_to_n_over_v():
    rng = np.random.default_rng(0)
    box = np.array([3.0, 2.5, 6.0])
    n_ions, n_frames = 400, 100
    xyz = rng.random((n_frames, n_ions, 3)) * box
    xyz[:, ::3, 2] += box[2] * rng.integers(-2, 3, size=(n_frames, len(xyz[0, ::3])))  # unwrapped images
    traj = make_traj(xyz, ["K+"] * n_ions, 0, box)
    z, rho = ion_density_z(traj, "K+", bins=20)
    expected = n_ions / box.prod()
    per_bin = n_ions * n_frames / 20
    assert z.shape == rho.shape == (20,)
    assert z[0] == pytest.approx(0.15) and z[-1] == pytest.approx(5.85)
    assert rho.mean() == pytest.approx(expected, rel=1e-6)  # every ion is counted exactly once
    assert np.all(np.abs(rho / expected - 1) < 5 / np.sqrt(per_bin))


def test_ions_at_known_z_give_peaks_with_the_right_count():
    box = np.array([2.0, 2.0, 5.0])
    rng = np.random.default_rng(1)
    n_frames = 4
    xyz = np.zeros((n_frames, 8, 3))
    xyz[:, :, :2] = rng.random((n_frames, 8, 2)) * box[:2]
    xyz[:, :3, 2] = 1.23
    xyz[:, 3:, 2] = 3.71 - box[2]  # one box below: wraps to 3.71
    traj = make_traj(xyz, ["Cl-"] * 8, 0, box)
    z, rho = ion_density_z(traj, "Cl-", bins=50)
    dz = 0.1
    count = rho * box[0] * box[1] * dz
    assert count.sum() == pytest.approx(8.0)
    assert set(np.flatnonzero(count)) == {12, 37}
    assert count[12] == pytest.approx(3.0) and z[12] == pytest.approx(1.25)
    assert count[37] == pytest.approx(5.0) and z[37] == pytest.approx(3.75)


def test_radial_density_of_ions_uniform_in_a_cylinder_across_the_boundary():
    rng = np.random.default_rng(2)
    box = np.array([4.0, 4.0, 6.0])
    axis = np.array([3.8, 0.3])  # the cylinder crosses the x and y boundaries
    radius, z_lo, z_hi = 1.0, 2.0, 4.0
    n_in, n_out, n_frames = 200, 100, 50
    r = radius * np.sqrt(rng.random((n_frames, n_in)))
    phi = 2 * np.pi * rng.random((n_frames, n_in))
    inside = np.stack([axis[0] + r * np.cos(phi), axis[1] + r * np.sin(phi),
                       rng.uniform(z_lo, z_hi, (n_frames, n_in))], axis=-1)
    inside[..., :2] %= box[:2]
    # distractors: on the axis but outside the slab, and in the slab but far from the axis
    outside = np.concatenate([
        np.stack([np.full((n_frames, n_out), axis[0]), np.full((n_frames, n_out), axis[1]),
                  rng.uniform(4.2, 5.8, (n_frames, n_out))], axis=-1),
        np.stack([np.full((n_frames, n_out), 1.8), np.full((n_frames, n_out), 2.3),
                  rng.uniform(z_lo, z_hi, (n_frames, n_out))], axis=-1)], axis=1)
    traj = make_traj(np.concatenate([inside, outside], axis=1), ["Na+"] * (n_in + 2 * n_out), 0, box)
    edges = np.linspace(0, 1.6, 9)  # 0.2 nm bins; the cylinder wall at 1.0 is an edge
    r_c, rho = ion_density_r(traj, "Na+", axis, (z_lo, z_hi), edges)
    expected = n_in / (np.pi * radius**2 * (z_hi - z_lo))
    per_bin = n_in * n_frames * np.diff(edges[:6] ** 2) / radius**2
    assert r_c == pytest.approx(edges[:-1] + 0.1)
    assert np.all(np.abs(rho[:5] / expected - 1) < 5 / np.sqrt(per_bin))
    assert np.all(rho[5:] == 0)
    assert np.sum(rho * np.pi * np.diff(edges**2) * (z_hi - z_lo)) == pytest.approx(n_in)


def test_hydration_number_counts_oxygens_within_the_cutoff_across_the_boundary():
    box = np.array([3.0, 3.0, 4.0])
    cut = HYDRATION_CUTOFF_NM["K+"]
    assert HYDRATION_CUTOFF_NM["Cl-"] > HYDRATION_CUTOFF_NM["Na+"] > HYDRATION_CUTOFF_NM["Li+"]
    k_ion = np.array([0.05, 2.95, 3.98])  # in a corner: most of its shell lies across the boundary
    cl_ion = np.array([1.5, 1.5, 1.0])
    directions = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1],
                           [1, 1, 1]]) / np.array([1, 1, 1, 1, 1, 1, np.sqrt(3)])[:, None]
    k_shell = k_ion + 0.9 * cut * directions[:5]
    k_second = k_ion + 1.2 * cut * directions[5:]  # outside the default cutoff
    cl_shell = cl_ion + 0.95 * HYDRATION_CUTOFF_NM["Cl-"] * directions[[0, 2, 4]]
    far = np.array([[1.5, 1.5, 3.0]])
    xyz = np.concatenate([[k_ion, cl_ion], k_shell, k_second, cl_shell, far]) % box  # wrapped into the box
    traj = make_traj(xyz, ["K+", "Cl-"], len(xyz) - 2, box)
    raw = np.linalg.norm(xyz[2:7] - k_ion, axis=1)
    assert (raw > 2).sum() >= 3  # most of the K+ shell is only near through the periodic boundary

    edges = np.linspace(0, 4, 9)
    z, n_k = hydration_number_z(traj, "K+", edges)
    assert n_k[7] == 5 and np.isnan(n_k[:7]).all()
    _, n_k_wide = hydration_number_z(traj, "K+", edges, cutoff=1.25 * cut)
    assert n_k_wide[7] == 7
    _, n_cl = hydration_number_z(traj, "Cl-", edges)
    assert n_cl[2] == 3 and np.isnan(np.delete(n_cl, 2)).all()


def test_hydration_number_averages_over_ions_and_frames():
    box = np.array([3.0, 3.0, 3.0])
    ion = np.array([1.5, 1.5, 1.5])
    cut = HYDRATION_CUTOFF_NM["Mg2+"]
    shell = ion + 0.8 * cut * np.eye(3)
    away = ion + 3 * cut * np.eye(3)
    frame_a = np.concatenate([[ion], shell])  # 3 waters in the shell
    frame_b = np.concatenate([[ion], shell[:1], away[1:]])  # 1 water in the shell
    traj = make_traj(np.stack([frame_a, frame_b]), ["Mg2+"], 3, box)
    _, n = hydration_number_z(traj, "Mg2+", bins=3)
    assert n[1] == pytest.approx(2.0)


def test_missing_or_unknown_species_raise_a_clear_error():
    traj = make_traj([[0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [1.2, 1.0, 1.0]], ["K+", "Cl-"], 1, [2, 2, 2])
    assert ion_species(traj) == ["K+", "Cl-"]
    with pytest.raises(ValueError, match=r"'Na\+'.*not in the trajectory; present: K\+, Cl-"):
        ion_density_z(traj, "Na+")
    with pytest.raises(ValueError, match=r"'Ca2\+'"):
        hydration_number_z(traj, "Ca2+")
    with pytest.raises(ValueError, match=r"'Mg2\+'"):
        ion_density_r(traj, "Mg2+", (1, 1), (0, 2))
    with pytest.raises(ValueError, match=r"unknown ion species 'Xe'"):
        ion_density_z(traj, "Xe")
    dry = make_traj([[0.5, 0.5, 0.5]], ["K+"], 0, [2, 2, 2])
    with pytest.raises(ValueError, match="no water oxygens"):
        hydration_number_z(dry, "K+")


def test_plot_profiles_writes_a_png(tmp_path):
    rng = np.random.default_rng(3)
    box = np.array([2.5, 2.5, 5.0])
    xyz = rng.random((3, 40, 3)) * box
    traj = make_traj(xyz, ["K+"] * 5 + ["Cl-"] * 5, 30, box)
    out = plot_profiles(traj, None, (1.25, 1.25), [2.33, 2.67], tmp_path / "profiles.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"'Na\+'"):
        plot_profiles(traj, ["Na+"], (1.25, 1.25), [2.5], tmp_path / "x.png")
