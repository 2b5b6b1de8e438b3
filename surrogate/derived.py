"""Observables derived from predicted fluxes: ln ICR, ln ON current and ln selectivity at chosen |E|, with their
epistemic and total spread, computed by porelab.sim.observables (the one place that derives them).

A pair is two samples (rows) of the same design and conditions at +|E| and -|E|. For each pair:
  mean       the observable of the mean fluxes;
  epistemic  the std over the members' mean fluxes (ensemble members, trees, or GP posterior draws);
  std        sqrt(epistemic^2 + the variance of the change of the observable when each member's fluxes are
             drawn from its aleatoric spread) (the law of total variance; about `n_draws` Monte Carlo draws in
             all, at least one per member), so std >= epistemic always. Draws of +E and -E share their member.
The ln ICR spreads are multiplied by the model's post-hoc factor `Prediction.icr_std_factor` (one number, or one
per sample: the pair takes its +|E| row's).
A campaign's adapter packs them into a surrogate.target_prediction.TargetPrediction, which acquisition scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from porelab.sim.observables import current_from_fluxes_nA, log_icr, log_on_current, log_selectivity
from porelab.surrogate.dataset import Samples
from porelab.surrogate.prediction import Prediction
from porelab.surrogate.targets import SPECIES_NAMES

TARGETS = ("log_icr", "log_on_current", "log_selectivity")  # natural logs; ICR and S unitless, current in nA


def pick_pairs(samples: Samples, field_abs_V_per_nm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows (i_pos, i_neg), each (n_groups,), of one ±|E| pair per group (design + conditions), in group order:
    the |E| nearest `field_abs_V_per_nm`, or the largest when None. ValueError when a group has no pair."""
    on, off, fabs = samples.icr_pairs()
    best: dict[int, tuple[float, int]] = {}
    for k, (g, e) in enumerate(zip(samples.group[on], fabs, strict=True)):
        score = -abs(e - field_abs_V_per_nm) if field_abs_V_per_nm is not None else e
        if int(g) not in best or score > best[int(g)][0]:
            best[int(g)] = (score, k)
    n_groups = len(samples.electrolytes)
    missing = [g for g in range(n_groups) if g not in best]
    if missing:
        raise ValueError(f"query {missing[0]} has no field at both +E and -E: ICR needs both signs")
    k = np.array([best[g][1] for g in range(n_groups)], int)
    return on[k], off[k]


def _concentrations(samples: Samples, rows: np.ndarray) -> np.ndarray:
    """(len(rows), S) mol/L of each species in the sample's electrolyte (0 = absent)."""
    per_group = np.array([[el.get(s, 0.0) for s in SPECIES_NAMES] for el in samples.electrolytes], float)
    return per_group.reshape(-1, len(SPECIES_NAMES))[samples.group[rows]]


def _observables(flux: np.ndarray, present: np.ndarray, conc: np.ndarray, p: int, names: Sequence[str],
                 selectivity: tuple[Sequence[str], Sequence[str]] | None) -> dict[str, np.ndarray]:
    """Observables (R, p) from fluxes (R, 2p, S) ions/ns of p pairs laid out [+E rows, -E rows]."""
    cur = current_from_fluxes_nA(flux, present)  # (R, 2p) nA
    ip, im = cur[:, :p], cur[:, p:]
    out = {"log_icr": log_icr(ip, im), "log_on_current": log_on_current(ip, im)}
    if "log_selectivity" in names:
        num = np.isin(SPECIES_NAMES, list(selectivity[0]))
        den = np.isin(SPECIES_NAMES, list(selectivity[1]))
        on_side = np.abs(ip) >= np.abs(im)  # (R, p): the ON field of each pair in each draw
        flux_on = np.where(on_side[..., None], flux[:, :p], flux[:, p:])
        out["log_selectivity"] = log_selectivity(flux_on, conc, num, den)
    return {k: out[k] for k in names}


def derive(pred: Prediction, samples: Samples, i_pos: np.ndarray, i_neg: np.ndarray,
           names: Sequence[str] = ("log_icr", "log_on_current"),
           selectivity: tuple[Sequence[str], Sequence[str]] | None = None, n_draws: int = 128,
           seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{name: (mean, std, epistemic)}, each (p,), for the pairs (i_pos, i_neg) of rows of `samples`.

    names: any of TARGETS; log_selectivity needs `selectivity` = (numerator species, denominator species).
    """
    bad = [n for n in names if n not in TARGETS]
    if bad:
        raise ValueError(f"target {bad[0]!r} is unknown; choose from {', '.join(TARGETS)}")
    if "log_selectivity" in names and selectivity is None:
        raise ValueError("log_selectivity needs the selectivity's numerator and denominator species")
    i_pos, i_neg = np.asarray(i_pos, int), np.asarray(i_neg, int)
    p = len(i_pos)
    if p == 0:
        return {n: (np.zeros(0), np.zeros(0), np.zeros(0)) for n in names}
    rows = np.concatenate([i_pos, i_neg])
    present = pred.present[rows]
    cols = np.flatnonzero(present.any(axis=0))  # species in some electrolyte: the only ones computed
    conc = _concentrations(samples, i_pos)

    def flux(y: np.ndarray) -> np.ndarray:  # (R, 2p, len(cols)) transformed -> (R, 2p, S) ions/ns, 0 if absent
        out = np.zeros((*y.shape[:2], len(SPECIES_NAMES)))
        out[..., cols] = pred.transform.inverse(y)
        return out

    mm, ms = pred.members_mean[:, rows][..., cols], pred.members_std[:, rows][..., cols]  # (M, 2p, C)
    n_members = len(mm)
    k = max(1, round(n_draws / n_members))  # aleatoric draws per member
    eps = np.random.default_rng(seed).standard_normal((k, *mm.shape))
    draws = (mm[None] + ms[None] * eps).reshape(k * n_members, *mm.shape[1:])
    point = _observables(flux(pred.mean[rows][None][..., cols]), present, conc, p, names, selectivity)
    members = _observables(flux(mm), present, conc, p, names, selectivity)
    noisy = _observables(flux(draws), present, conc, p, names, selectivity)
    out = {}
    for n in names:
        f = pred.icr_factor(i_pos) if n == "log_icr" else 1.0
        epi = members[n].std(axis=0)
        within = (noisy[n].reshape(k, n_members, p) - members[n][None]).var(axis=(0, 1))
        out[n] = (point[n][0], f * np.sqrt(epi**2 + within), f * epi)
    return out
