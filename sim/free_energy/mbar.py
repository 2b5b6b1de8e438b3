"""MBAR profiles from umbrella windows: G(z) along the pore axis and G(z, r), relative to the bulk density."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from porelab.sim.engine import KB_KJ_PER_MOL_K
from porelab.sim.free_energy.target import wrap
from porelab.sim.pymbar_quiet import quiet_pymbar


def uncorrelated(z: np.ndarray) -> np.ndarray:
    """Indices of uncorrelated samples of one window's z series (pymbar statistical inefficiency)."""
    if len(z) < 4 or np.ptp(z) == 0:
        return np.arange(len(z))
    with quiet_pymbar():
        from pymbar import timeseries  # imported inside quiet_pymbar: it logs a banner when imported

        return np.asarray(timeseries.subsample_correlated_data(z), int)


@dataclass
class Profile:
    """Free energy of the ion at one temperature, kJ/mol, relative to the bulk density (NaN: no samples)."""

    T: float  # K
    z_edges: np.ndarray  # (n_z + 1,) nm
    r_edges: np.ndarray  # (n_r + 1,) nm
    G: np.ndarray  # (n_z,) r-integrated profile along z
    dG: np.ndarray  # (n_z,) MBAR analytical uncertainty relative to the bulk
    G_zr: np.ndarray  # (n_z, n_r) surface over (z, r)
    n_samples: int  # uncorrelated samples used

    @property
    def z(self) -> np.ndarray:
        """Bin centres (n_z,) nm."""
        return 0.5 * (self.z_edges[1:] + self.z_edges[:-1])


def mbar_profile(z_k: list[np.ndarray], r_k: list[np.ndarray], z0s, k_z: float, T: float, box_z: float,
                 z_edges: np.ndarray, r_edges: np.ndarray, bulk_nm: float) -> Profile:
    """Unbiased profiles from umbrella samples z_k[k], r_k[k] (nm) of windows centred at z0s (nm), k_z kJ/mol/nm^2.

    Bins along z (and over (z, r) for r < r_edges[-1]) are extra MBAR states; G = 0 is the mean density of
    the outer `bulk_nm` of the z range on both sides.
    """
    kT = KB_KJ_PER_MOL_K * T
    z, r = np.concatenate(z_k), np.concatenate(r_k)
    n_k = np.array([len(a) for a in z_k])
    u_kn = 0.5 * k_z / kT * wrap(z[None, :] - np.asarray(z0s)[:, None], box_z) ** 2
    with quiet_pymbar():
        from pymbar import MBAR  # imported inside quiet_pymbar: it logs a banner when imported

        mbar = MBAR(u_kn, n_k)
    n_z = len(z_edges) - 1
    iz = np.digitize(z, z_edges) - 1
    inside = (iz >= 0) & (iz < n_z)
    bulk = inside & ((z < z_edges[0] + bulk_nm) | (z >= z_edges[-1] - bulk_nm))
    if not bulk.any():
        raise ValueError("no samples in the bulk reference region; sample longer or widen bulk_nm")
    filled = [b for b in range(n_z) if (iz == b).any()]
    u_ln = np.array([np.where(iz == b, 0.0, np.inf) for b in filled] + [np.where(bulk, 0.0, np.inf)])
    with quiet_pymbar():
        res = mbar.compute_perturbed_free_energies(u_ln)
    widths = np.diff(z_edges)
    G, dG = np.full(n_z, np.nan), np.full(n_z, np.nan)
    for i, b in enumerate(filled):
        G[b] = kT * (res["Delta_f"][-1, i] + math.log(widths[b] / (2 * bulk_nm)))
        dG[b] = kT * res["dDelta_f"][-1, i]
    # surface: unbiased weights binned over (z, r), per unit volume, against the bulk density inside r < R0
    log_w = -logsumexp(mbar.f_k[:, None] - u_kn + np.log(n_k)[:, None], axis=0)
    w = np.exp(log_w - logsumexp(log_w))
    p_zr, _, _ = np.histogram2d(z, r, bins=[z_edges, r_edges], weights=w)
    vol = widths[:, None] * np.pi * np.diff(r_edges ** 2)[None, :]
    r0 = r_edges[-1]
    rho_bulk = w[bulk & (r < r0)].sum() / (2 * bulk_nm * np.pi * r0 ** 2)
    with np.errstate(divide="ignore"):
        G_zr = -kT * np.log(p_zr / vol / rho_bulk)
    G_zr[~np.isfinite(G_zr)] = np.nan
    return Profile(T=T, z_edges=z_edges, r_edges=r_edges, G=G, dG=dG, G_zr=G_zr, n_samples=int(n_k.sum()))


def profiles_from_windows(windows: list[dict], box_z: float, z_edges, r_edges, bulk_nm: float,
                          part: str = "all") -> Profile:
    """MBAR profile from window records (keys z, r, z0, k_z, T); part 'all', 'first' or 'second' half."""
    z_k, r_k = [], []
    for w in windows:
        z, r = np.asarray(w["z"]), np.asarray(w["r"])
        if part != "all":
            h = len(z) // 2
            z, r = (z[:h], r[:h]) if part == "first" else (z[h:], r[h:])
        keep = uncorrelated(z)
        z_k.append(z[keep])
        r_k.append(r[keep])
    z0s = np.array([float(w["z0"]) for w in windows])
    return mbar_profile(z_k, r_k, z0s, float(windows[0]["k_z"]), float(windows[0]["T"]), box_z,
                        np.asarray(z_edges), np.asarray(r_edges), bulk_nm)
