"""The analysed free-energy run: profiles, halves, split, extrema and mirror test (`analyse`), and its JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from porelab.sim.free_energy.mbar import Profile, profiles_from_windows
from porelab.sim.free_energy.settings import FESettings
from porelab.sim.free_energy.thermodynamics import entropy_enthalpy, landscape_features, mirror_asymmetry


@dataclass
class FreeEnergyResult:
    """Profiles at every temperature (+ halves), the split at T0, the extrema table and the mirror test."""

    T0: float
    profiles: list[Profile]  # one per temperature, ascending T
    halves: list[tuple[Profile, Profile]]  # first/second half of every window, per temperature
    split: dict[str, np.ndarray] | None  # G, dG, H, dH, mTS, dmTS (n_z,) at T0; None with one temperature
    features: list[dict]
    symmetry: dict
    z0s: np.ndarray  # (n_windows,) nm
    k_z: float
    radius_nm: float
    layer_z_nm: list[float]
    z_mirror: float
    meta: dict

    @property
    def at_T0(self) -> Profile:
        return self.profiles[int(np.argmin([abs(p.T - self.T0) for p in self.profiles]))]

    def to_dict(self) -> dict:
        def arr(a):
            return [None if not np.isfinite(x) else round(float(x), 4) for x in np.ravel(a)]

        p0 = self.at_T0
        doc = {**self.meta, "T0_K": self.T0, "temperatures_K": [p.T for p in self.profiles],
               "windows_nm": arr(self.z0s), "k_z_kJ_mol_nm2": self.k_z, "cylinder_radius_nm": self.radius_nm,
               "layer_z_nm": list(self.layer_z_nm), "z_mirror_nm": self.z_mirror,
               "profile_kind": "r-integrated over the cylinder r < R0; zero = bulk density at both ends",
               "z_nm": arr(p0.z),
               "profiles": [{"T_K": p.T, "G_kJ_mol": arr(p.G), "G_err": arr(p.dG), "n_uncorrelated": p.n_samples,
                             "G_first_half": arr(a.G), "G_second_half": arr(b.G)}
                            for p, (a, b) in zip(self.profiles, self.halves, strict=True)],
               "split_at_T0": None if self.split is None else {k: arr(v) for k, v in self.split.items()},
               "features": self.features, "symmetry": self.symmetry,
               "surface_at_T0": {"z_edges_nm": arr(p0.z_edges), "r_edges_nm": arr(p0.r_edges),
                                 "G_kJ_mol": [arr(row) for row in p0.G_zr]}}
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)


def analyse(samples: dict[float, list[dict]], T0: float, box_z: float, radius_nm: float, layer_z_nm,
            settings: FESettings, meta: dict | None = None) -> FreeEnergyResult:
    """MBAR profiles, halves, split and extrema from `UmbrellaRun.run()` records."""
    temps = sorted(samples)
    first = samples[temps[0]]
    z0s = np.array([float(w["z0"]) for w in first])
    spacing = float(np.diff(z0s).min())
    bin_nm = settings.bin_nm or spacing / 2
    n_z = max(2, round((z0s[-1] - z0s[0]) / bin_nm))
    z_edges = np.linspace(z0s[0], z0s[-1], n_z + 1)
    n_r = max(1, round(radius_nm / settings.r_bin_nm))
    r_edges = np.linspace(0.0, radius_nm, n_r + 1)
    profiles, halves = [], []
    for T in temps:
        profiles.append(profiles_from_windows(samples[T], box_z, z_edges, r_edges, settings.bulk_nm))
        halves.append(tuple(profiles_from_windows(samples[T], box_z, z_edges, r_edges, settings.bulk_nm, part)
                            for part in ("first", "second")))
    split = None
    if len(temps) >= 2:
        split = entropy_enthalpy(temps, np.array([p.G for p in profiles]), np.array([p.dG for p in profiles]), T0)
    z_mirror = 0.5 * (min(layer_z_nm) + max(layer_z_nm))
    p0 = profiles[int(np.argmin(np.abs(np.array(temps) - T0)))]
    return FreeEnergyResult(
        T0=T0, profiles=profiles, halves=halves, split=split,
        features=landscape_features(profiles, T0, layer_z_nm, settings.bulk_nm),
        symmetry=mirror_asymmetry(p0.z, p0.G, p0.dG, z_mirror), z0s=z0s, k_z=float(first[0]["k_z"]),
        radius_nm=radius_nm, layer_z_nm=list(layer_z_nm), z_mirror=z_mirror, meta=meta or {})
