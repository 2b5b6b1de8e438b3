"""Enthalpy and entropy from profiles at several temperatures, the extrema of G(z), and the mirror test."""

from __future__ import annotations

import numpy as np

from porelab.sim.engine import KB_KJ_PER_MOL_K
from porelab.sim.free_energy.mbar import Profile


def split_coefficients(temps, T0: float) -> dict[str, np.ndarray]:
    """Linear maps (n_T,) from the profiles G(T_i) to G(T0), -T0 dS and dH at T0.

    slope = least-squares dG/dT through the temperatures; -T dS = T0 slope; dH = G(T0) - T0 slope, with G(T0)
    the profile at T0 when it was run, else the fitted line at T0.
    """
    t = np.asarray(temps, float)
    if len(t) < 2 or np.ptp(t) == 0:
        raise ValueError("the enthalpy/entropy split needs at least two different temperatures")
    slope = (t - t.mean()) / ((t - t.mean()) ** 2).sum()
    at = np.isclose(t, T0)
    g0 = at.astype(float) if at.any() else 1 / len(t) + (T0 - t.mean()) * slope
    return {"G": g0, "mTS": T0 * slope, "H": g0 - T0 * slope}


def entropy_enthalpy(temps, G: np.ndarray, dG: np.ndarray, T0: float) -> dict[str, np.ndarray]:
    """Split profiles G, dG (n_T, n_z) kJ/mol at temperatures `temps` (K) into G, H, -TS at T0 with errors.

    Returns arrays (n_z,) keyed G, dG, H, dH, mTS, dmTS (kJ/mol); errors assume independent temperatures.
    """
    G, dG = np.asarray(G, float), np.asarray(dG, float)
    out = {}
    for key, c in split_coefficients(temps, T0).items():
        out[key] = c @ G
        out["d" + key] = np.sqrt((c ** 2) @ dG ** 2)
    return out


def _enthalpy_dominance(c: dict[str, np.ndarray], G: np.ndarray, dG: np.ndarray, n: int = 4000) -> float:
    """P(|dH| > |-T dS|) when the profiles G (n_T,) at one z carry independent Gaussian errors dG (n_T,)."""
    draws = G[None, :] + np.random.default_rng(0).standard_normal((n, len(G))) * dG[None, :]
    return float((np.abs(draws @ c["H"]) > np.abs(draws @ c["mTS"])).mean())


def landscape_features(profiles: list[Profile], T0: float, layer_z_nm, bulk_nm: float) -> list[dict]:
    """Barriers (local maxima) and wells (local minima) of G(z) at T0 with their enthalpy/entropy parts.

    An extremum is kept when its prominence exceeds max(0.5 kT, 2 x the median error of G); the global
    maximum and minimum outside the bulk reference region are always kept. `dominant` names the larger of
    |dH| and |-T dS|; `dominance_probability` is the chance that it really is the larger, given the
    (Gaussian, independent per temperature) errors of the profiles.
    """
    from scipy.signal import find_peaks  # scipy.signal only when a landscape is analysed

    temps = [p.T for p in profiles]
    p0 = profiles[int(np.argmin(np.abs(np.array(temps) - T0)))]
    z, G, dG = p0.z, p0.G, p0.dG
    kT = KB_KJ_PER_MOL_K * T0
    core = (z >= p0.z_edges[0] + bulk_nm) & (z <= p0.z_edges[-1] - bulk_nm) & np.isfinite(G)
    idx = np.flatnonzero(core)
    if len(idx) == 0:
        return []
    g = G[idx]
    prom = max(0.5 * kT, 2 * float(np.nanmedian(dG[idx])))
    found = {}
    for sign, kind in ((1, "barrier"), (-1, "well")):
        peaks, _ = find_peaks(sign * g, prominence=prom)
        for p in peaks:
            found[int(idx[p])] = kind
    found.setdefault(int(idx[np.argmax(g)]), "barrier")
    found.setdefault(int(idx[np.argmin(g)]), "well")
    split = len(temps) >= 2
    if split:
        c = split_coefficients(temps, T0)
        Gt = np.array([p.G for p in profiles])
        dGt = np.array([p.dG for p in profiles])
        parts = entropy_enthalpy(temps, Gt, dGt, T0)
    layers = np.asarray(layer_z_nm)
    rows = []
    for b in sorted(found):
        row = {"kind": found[b], "z_nm": float(z[b]), "z_from_nearest_layer_nm": float(z[b] - layers[
            np.argmin(np.abs(layers - z[b]))]), "dG_kJ_mol": float(G[b]), "dG_err": float(dG[b]),
            "dG_kT": float(G[b] / kT), "global": b in (int(idx[np.argmax(g)]), int(idx[np.argmin(g)]))}
        if split and np.isfinite(Gt[:, b]).all() and np.isfinite(dGt[:, b]).all():
            H, mTS = parts["H"][b], parts["mTS"][b]
            p_h = _enthalpy_dominance(c, Gt[:, b], dGt[:, b])
            row |= {"dH_kJ_mol": float(H), "dH_err": float(parts["dH"][b]), "mTdS_kJ_mol": float(mTS),
                    "mTdS_err": float(parts["dmTS"][b]),
                    "dominant": "enthalpy" if abs(H) >= abs(mTS) else "entropy",
                    "dominance_probability": p_h if abs(H) >= abs(mTS) else 1 - p_h}
        elif split:  # a temperature left this bin empty
            row |= {"dH_kJ_mol": None, "dH_err": None, "mTdS_kJ_mol": None, "mTdS_err": None, "dominant": None,
                    "dominance_probability": None}
        rows.append(row)
    return rows


def mirror_asymmetry(z: np.ndarray, G: np.ndarray, dG: np.ndarray, z_mirror: float) -> dict:
    """Compare G(z) with G(2 z_mirror - z) bin by bin (kJ/mol). chi2 ignores correlations between bins.

    Returns chi2, dof, p_value (of chi2 under symmetry), max_dev_sigma and the mirrored pairs' max |dG| gap.
    """
    from scipy.stats import chi2 as chi2_dist  # scipy.stats only when a profile is compared

    pairs = []
    for i, zi in enumerate(z):
        j = np.flatnonzero(np.isclose(z, 2 * z_mirror - zi, atol=1e-4))
        if len(j) and j[0] > i and np.isfinite(G[[i, j[0]]]).all() and np.isfinite(dG[[i, j[0]]]).all():
            pairs.append((i, int(j[0])))
    if not pairs:
        return {"chi2": None, "dof": 0, "p_value": None, "max_dev_sigma": None, "max_gap_kJ_mol": None}
    i, j = np.array(pairs).T
    dev = (G[i] - G[j]) / np.sqrt(dG[i] ** 2 + dG[j] ** 2 + 1e-12)
    c2 = float((dev ** 2).sum())
    return {"chi2": c2, "dof": len(pairs), "p_value": float(chi2_dist.sf(c2, len(pairs))),
            "max_dev_sigma": float(np.abs(dev).max()), "max_gap_kJ_mol": float(np.abs(G[i] - G[j]).max())}
