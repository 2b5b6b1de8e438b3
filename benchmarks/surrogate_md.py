"""The surrogate's skill on real MD (issue 23, part 2): held-out accuracy and calibration of ln ON current and ln ICR
on the shared MD dataset (data/md), for every model porelab has, with the noise ceiling of the labels.

Data: every successful record of the MD store (`MeasurementStore(data/md).measurements("md")`, whatever it holds
when run: rerun as it grows). Targets (active_learning.campaign.targets.targets with the default goal: the largest
|E| measured, the MD's +-2 V/nm): ln ON current, ON = max(|I(+E)|, |I(-E)|) in nA with that side's 95 % interval,
and ln ICR, ICR = |I(+E)| / |I(-E)| from the crossing counts (sim.observables.count_icr), in the orientation
recorded. The same numbers a campaign ranks by and the surrogate's labels are made of (surrogate.labels).

Censored labels are not scored as values. ln ICR known only as a bound ("> x": no crossing at -E; "< x": none at +E)
and ln ON current known only from above (no net current at either sign) are left out of R2, RMSE, NLL and
coverage, counted, and scored on their own: `mean_hit` = the predicted mean lies on the bound's side, `pi_hit` = the
95 % predictive interval reaches it (P(beyond the bound) >= 2.5 %), `nll` = -ln P(beyond the bound) (the censored
likelihood). An unresolved ICR (no crossing at either sign: nothing known) is only counted.

Split: fixed by design, grouped (a design's two fields are one record, so never split): leave-one-design-out up to
8 designs, else 4-fold grouped CV (seeded permutation). Models, each refitted on the training folds only:
  mean        the training labels' mean and standard deviation (the null model);
  gnn, rf, gp the campaign's surrogates (active_learning.campaign.model.CampaignModel, defaults, novelty floor on)
              trained on MD alone; targets derived from predicted per-species fluxes (surrogate.derived);
  twin        the continuum twin (sim.continuum.run_continuum, default settings) at the same design and fields; its
              predictive std = the RMS of its residuals on the training designs' exact labels (the training
              labels' std when fewer than 2);
  twin_cal    the twin calibrated on the training folds (active_learning.campaign.twin): eps_r (the one knob that
              changes the ICR at +-2 V/nm; the pore's D factor does not move the current there, the pore is not what
              limits it) chosen on a grid, and one global diffusion scale s (every D times s: steady PNP fluxes scale
              exactly with it, ICR unchanged) fitted in closed form to the exact ln ON labels; loss = squared error
              of exact ln ON (after s) and ln ICR labels + squared violation of censored bounds;
  mf_<kind>   multi-fidelity (surrogate.fidelity, delta approach, CampaignModel(target_fidelity="md")) on the
              training designs' MD + the twin at every dataset design and `--extra-continuum` more designs of the
              dataset's own order (benchmarks/md_dataset.py; the twin is cheap and asked anywhere, held-out designs
              included: it never sees their MD); mf_<kind>_cal the same with the fold's calibrated twin.
Metrics on exact labels: R2 = 1 - SS_res/SS_tot about the held-out labels' mean, RMSE, mean Gaussian NLL and 95 %
coverage with the model's total predictive std (surrogate.metrics.regression_metrics), each with a 95 % bootstrap
interval (2000 resamples of designs, paired across models; resamples holding fewer than 3 distinct designs are left
out of the R2 intervals, their R2 is undefined; with fewer than 5 exact labels R2 gets no interval); `p_best` = the
share of resamples in which the model has the lowest RMSE. Noise ceiling: the R2 a perfect model would get against
the noisy labels, 1 - mean(label var) / var(labels), label var from each record's own 95 % interval
((ln hi - ln lo) / 2 / 1.96; one-sided where the interval reaches zero current). Learning curve: the same CV on
random subsets of 4, 8, 16, 32, ... designs (`--reps` subsets each; all designs once), R2 with a bootstrap interval
over subsets and designs.
Goals (issue 23): ln ON R2 >= 0.8; ln ICR R2 >= 0.5, or >= 80 % of the ceiling with the R2 interval's lower end
above 0 (better than the null); 95 % coverage in [0.9, 0.98].

Writes benchmarks/results/surrogate_md.{json,md,png}.
Run: nice -n 10 .venv/bin/python benchmarks/surrogate_md.py [--store data/md] [--reps 2] [--extra-continuum 32]
     (with the Makefile's glibc malloc settings, MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296
     MALLOC_TOP_PAD_=1073741824, the GNN trains faster; the command recorded names them when they are set)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from report import ROOT, shown_path, write_report  # benchmarks/report.py
from scipy.stats import norm

from porelab.active_learning.campaign.model import CampaignModel, ModelError
from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import InvalidMeasurement, targets
from porelab.active_learning.campaign.twin import EPS_GRID, Twin, scaled
from porelab.sim.measurement import Measurement
from porelab.sim.store import MeasurementStore
from porelab.surrogate.metrics import regression_metrics

OUT = ROOT / "benchmarks" / "results"
GOAL = Goal()  # ICR and ON current at the largest |E| measured; no constraint
TARGETS = ("log_on_current", "log_icr")
TARGET_LABEL = {"log_on_current": "ln ON current (nA)", "log_icr": "ln ICR"}
Z95 = float(norm.ppf(0.975))
MD_KINDS = ("gnn", "rf", "gp")
MF_KINDS = ("gnn", "rf")
MODELS = ("mean", *MD_KINDS, "twin", "twin_cal", *(f"mf_{k}" for k in MF_KINDS), *(f"mf_{k}_cal" for k in MF_KINDS))
N_BOOT = 2000
GOALS = {"log_on_current": {"r2": 0.8}, "log_icr": {"r2": 0.5, "r2_of_ceiling": 0.8}, "coverage_95": (0.9, 0.98)}


# --- labels ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    """A measured target on its ln scale: kind exact (value with interval lo..hi, None = unbounded), lower ("> value"),
    upper ("< value") or unknown (nothing known)."""

    value: float
    lo: float | None
    hi: float | None
    kind: str

    @property
    def sd(self) -> float:
        """The label's own noise: its 95 % interval's half-width / 1.96 (one-sided where an end is unknown)."""
        if self.kind != "exact":
            return math.nan
        if self.lo is not None and self.hi is not None:
            return (self.hi - self.lo) / (2 * Z95)
        return ((self.hi - self.value) if self.hi is not None else (self.value - self.lo)) / Z95


def labels(m: Measurement) -> dict[str, Label]:
    t = targets(m, GOAL)
    on = Label(t["log_on_current"], None, t["log_on_current_hi"], "upper") if t["on_current_upper_censored"] else \
        Label(t["log_on_current"], t["log_on_current_lo"], t["log_on_current_hi"], "exact")
    if t["icr_censored"]:
        icr = Label(t["log_icr"], t["log_icr_lo"], None, "unknown" if t["log_icr_lo"] is None else "lower")
    elif t["icr_upper_censored"]:
        icr = Label(t["log_icr"], None, t["log_icr_hi"], "upper")
    else:
        icr = Label(t["log_icr"], t["log_icr_lo"], t["log_icr_hi"], "exact")
    return {"log_on_current": on, "log_icr": icr}


def load_md(store: Path) -> list[Measurement]:
    out, seen = [], set()
    for m in MeasurementStore(store).measurements("md"):
        if m.status != "ok" or m.design_id in seen:
            continue
        try:
            labels(m)
        except InvalidMeasurement as err:
            print(f"skipped {m.design_id}: {err}")
            continue
        seen.add(m.design_id)
        out.append(m)
    return out


# --- models ------------------------------------------------------------------------------------------------------
def _fallback(labs: list[dict[str, Label]], n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The null model: the training labels' mean and std (exact labels; all point values when fewer than 2)."""
    out = {}
    for k in TARGETS:
        v = [lab[k].value for lab in labs if lab[k].kind == "exact"]
        v = v if len(v) >= 2 else [lab[k].value for lab in labs if lab[k].kind != "unknown"]
        mu, sd = (float(np.mean(v)), float(np.std(v, ddof=1))) if len(v) >= 2 else (float(np.mean(v or [0.0])), 1.0)
        out[k] = (np.full(n, mu), np.full(n, max(sd, 1e-3)))
    return out


def _residual_sd(labs, preds, k, ddof=0) -> float | None:
    r = [lab[k].value - p for lab, p in zip(labs, preds, strict=True) if lab[k].kind == "exact" and p is not None]
    return float(math.sqrt(sum(x * x for x in r) / (len(r) - ddof))) if len(r) - ddof >= 1 and len(r) >= 2 else None


def predict_twin(twin: Twin, train, tlabs, test, eps, log_s, ddof) -> dict:
    null = _fallback(tlabs, len(test))
    out = {}
    for k in TARGETS:
        shift = log_s if k == "log_on_current" else 0.0
        p_tr = [(t[k] + shift) if (t := twin.targets(m, eps)) else None for m in train]
        sd = _residual_sd(tlabs, p_tr, k, ddof) or float(null[k][1][0])
        p_te = [(t[k] + shift) if (t := twin.targets(m, eps)) else None for m in test]
        mean = np.array([p if p is not None else null[k][0][0] for p in p_te], float)
        out[k] = (mean, np.full(len(test), sd))
    return out


def predict_model(kind: str, train: list[Measurement], test: list[Measurement], seed: int,
                  continuum: list[Measurement] | None = None) -> dict | None:
    """CampaignModel of `kind` on `train` (+ continuum: multi-fidelity at md); None when it cannot be trained."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if continuum is None:
                cm = CampaignModel(kind, GOAL, seed).fit(train)
            else:
                cm = CampaignModel(kind, GOAL, seed, target_fidelity="md").fit(train + continuum)
            p = cm.predict([(m.design, m.conditions) for m in test])
    except ModelError as err:
        print(f"    {kind}{' (mf)' if continuum else ''}: {err}; the null model stands in", flush=True)
        return None
    return {k: (np.asarray(p.mean[k], float), np.asarray(p.std[k], float)) for k in TARGETS}


def folds(n: int, seed: int) -> list[np.ndarray]:
    """Test indices of each fold: leave one out up to 8 designs, else 4 grouped folds (seeded)."""
    order = np.random.default_rng(seed).permutation(n)
    return [order[[i]] for i in range(n)] if n <= 8 else [np.sort(f) for f in np.array_split(order, 4)]


def cross_validate(ms: list[Measurement], labs: list[dict[str, Label]], twin: Twin, extra: list, models: tuple,
                   seed: int, log=print) -> tuple[dict, list[dict]]:
    """Out-of-fold predictions {model: {target: (mean (n,), sd (n,))}} and each fold's calibration."""
    n = len(ms)
    pred = {m: {k: (np.full(n, np.nan), np.full(n, np.nan)) for k in TARGETS} for m in models}
    fallbacks = {m: 0 for m in models}
    cals = []
    for f, test_idx in enumerate(folds(n, seed)):
        t0 = time.time()
        train_idx = np.setdiff1d(np.arange(n), test_idx)
        train, test = [ms[i] for i in train_idx], [ms[i] for i in test_idx]
        tlabs = [labs[i] for i in train_idx]
        cal = twin.calibrate(train).as_dict()
        cals.append({"fold": f, "test": [ms[i].design_id for i in test_idx], **cal})
        cont = {}
        if any(m.startswith("mf_") for m in models):
            questions = [(m.design, m.conditions) for m in ms] + extra
            for name, eps, s in (("", None, 1.0), ("_cal", cal["eps_r"], math.exp(cal["log_s"]))):
                cs = [twin.get(q, eps) for q in questions]
                cont[name] = [scaled(c, s) if s != 1.0 else c for c in cs if c.status == "ok"]
        for name in models:
            if name == "mean":
                out = _fallback(tlabs, len(test))
            elif name == "twin":
                out = predict_twin(twin, train, tlabs, test, None, 0.0, 0)
            elif name == "twin_cal":
                out = predict_twin(twin, train, tlabs, test, cal["eps_r"], cal["log_s"], 1)
            elif name.startswith("mf_"):
                kind = name.split("_")[1]
                out = predict_model(kind, train, test, seed, cont["_cal" if name.endswith("_cal") else ""])
            else:
                out = predict_model(name, train, test, seed)
            if out is None:
                fallbacks[name] += len(test)
                out = _fallback(tlabs, len(test))
            for k in TARGETS:
                pred[name][k][0][test_idx], pred[name][k][1][test_idx] = out[k]
        log(f"  fold {f + 1}: test {len(test_idx)} design(s), twin eps_r={cal['eps_r']}, "
            f"s={math.exp(cal['log_s']):.3g} ({time.time() - t0:.0f} s)")
    for name, c in fallbacks.items():
        if c:
            pred[name]["fallback_designs"] = c
    return pred, cals


# --- metrics -----------------------------------------------------------------------------------------------------
MIN_DISTINCT = 3  # a resample with fewer distinct designs has no meaningful R2 (its SS_tot is ~0): left out
MIN_R2_CI = 5  # fewer exact labels: no R2 interval (a bootstrap of 3 or 4 points says nothing about R2)


def _distinct(idx: np.ndarray) -> np.ndarray:
    """Distinct designs in each resample (rows of idx)."""
    if idx.shape[1] == 0:
        return np.zeros(len(idx), int)
    return 1 + (np.diff(np.sort(idx, axis=1), axis=1) != 0).sum(axis=1)


def _boot_metrics(y, mu, sd, idx) -> dict[str, np.ndarray]:
    """R2, RMSE, NLL, coverage_95 of each bootstrap resample (rows of idx); R2 NaN where a resample holds fewer than
    MIN_DISTINCT designs."""
    yb, mb, sb = y[idx], mu[idx], np.maximum(sd[idx], 1e-12)
    err = yb - mb
    ss_tot = ((yb - yb.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where((ss_tot > 0) & (_distinct(idx) >= MIN_DISTINCT), 1 - (err**2).sum(axis=1) / ss_tot, np.nan)
    return {"r2": r2, "rmse": np.sqrt((err**2).mean(axis=1)),
            "nll": (0.5 * np.log(2 * math.pi * sb**2) + 0.5 * (err / sb) ** 2).mean(axis=1),
            "coverage_95": (np.abs(err) <= Z95 * sb).mean(axis=1)}


def _ci(a: np.ndarray) -> list[float]:
    a = a[np.isfinite(a)]
    return [float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))] if len(a) else [math.nan, math.nan]


def ceiling(y: np.ndarray, sd: np.ndarray, idx: np.ndarray | None = None):
    """1 - mean(label var) / var(labels) (the R2 of a perfect model against noisy labels), per resample."""
    if idx is None:
        return float(1 - np.mean(sd**2) / np.var(y)) if len(y) > 1 and np.var(y) > 0 else math.nan
    yb, sb = y[idx], sd[idx]
    v = yb.var(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((v > 0) & (_distinct(idx) >= MIN_DISTINCT), 1 - (sb**2).mean(axis=1) / v, np.nan)


def censored_scores(labs: list[Label], mu: np.ndarray, sd: np.ndarray) -> dict:
    rows = [(i, lb) for i, lb in enumerate(labs) if lb.kind in ("lower", "upper")]
    if not rows:
        return {"n": 0}
    p_beyond = np.array([norm.sf((lb.value - mu[i]) / max(sd[i], 1e-12)) if lb.kind == "lower"
                         else norm.cdf((lb.value - mu[i]) / max(sd[i], 1e-12)) for i, lb in rows])
    mean_hit = [(mu[i] >= lb.value) if lb.kind == "lower" else (mu[i] <= lb.value) for i, lb in rows]
    return {"n": len(rows), "mean_hit": float(np.mean(mean_hit)), "pi_hit": float(np.mean(p_beyond >= 0.025)),
            "nll": float(np.mean(-np.log(np.maximum(p_beyond, 1e-300))))}


def score(labs: list[dict[str, Label]], pred: dict, models: tuple, seed: int) -> dict:
    """Metrics of every model and target (module docstring), bootstrap intervals paired across models."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in TARGETS:
        lk = [lab[k] for lab in labs]
        ex = np.array([i for i, lb in enumerate(lk) if lb.kind == "exact"], int)
        y = np.array([lk[i].value for i in ex])
        sd_lab = np.array([lk[i].sd for i in ex])
        counts = {kind: sum(lb.kind == kind for lb in lk) for kind in ("exact", "lower", "upper", "unknown")}
        idx = rng.integers(0, len(ex), (N_BOOT, len(ex))) if len(ex) else np.zeros((N_BOOT, 0), int)
        per = {"labels": counts, "label_sd_mean": float(np.mean(sd_lab)) if len(ex) else math.nan,
               "ceiling_r2": ceiling(y, sd_lab), "ceiling_r2_ci": _ci(ceiling(y, sd_lab, idx))
               if len(ex) >= MIN_R2_CI else [math.nan, math.nan], "models": {}}
        rmse_boot = {}
        for name in models:
            mu, sd = pred[name][k]
            point = regression_metrics(y, mu[ex], sd[ex]) if len(ex) else regression_metrics([], [], [])
            m = {key: point[key] for key in ("r2", "rmse", "nll", "coverage_95", "n")}
            if len(ex) > 1:
                b = _boot_metrics(y, mu[ex], sd[ex], idx)
                rmse_boot[name] = b["rmse"]
                m |= {f"{key}_ci": _ci(v) for key, v in b.items()}
                if len(ex) < MIN_R2_CI:
                    m["r2_ci"] = [math.nan, math.nan]
            m["censored"] = censored_scores(lk, mu, sd)
            if pred[name].get("fallback_designs"):
                m["fallback_designs"] = pred[name]["fallback_designs"]
            per["models"][name] = m
        if rmse_boot:
            stack = np.stack([rmse_boot[n] for n in models])
            winner = np.argmin(stack, axis=0)
            for j, name in enumerate(models):
                per["models"][name]["p_best_rmse"] = float(np.mean(winner == j))
        out[k] = per
    return out


def learning_curve(ms, labs, twin, extra, models, args, full_scores, log=print) -> list[dict]:
    """R2 by number of designs: CV on `args.reps` random subsets of 4, 8, 16, ... designs, and all designs once."""
    n = len(ms)
    sizes = [s for s in (4, 8, 16, 32, 64, 128, 256, 512) if s < n] + [n]
    rows = []
    for size in sizes:
        reps = 1 if size == n else args.reps
        per_rep = []
        for r in range(reps):
            sub = np.sort(np.random.default_rng(1000 * size + r).choice(n, size, replace=False)) if size < n \
                else np.arange(n)
            log(f"learning curve: {size} designs, subset {r + 1}/{reps}")
            if size == n:
                pred = full_scores["pred"]
            else:
                pred, _ = cross_validate([ms[i] for i in sub], [labs[i] for i in sub], twin, extra, models,
                                         args.seed + r, log)
            per_rep.append(([labs[i] for i in sub], pred))
        row = {"n_designs": size, "subsets": reps}
        rng = np.random.default_rng(size)
        for k in TARGETS:
            row[k] = {}
            sets = []
            for sl, pred in per_rep:
                ex = np.array([i for i, lb in enumerate(sl) if lb[k].kind == "exact"], int)
                y = np.array([sl[i][k].value for i in ex])
                sets.append((ex, y, np.array([sl[i][k].sd for i in ex]), pred))
            boot_idx = [(rng.integers(0, reps, N_BOOT), [rng.integers(0, len(ex), (N_BOOT, len(ex)))
                                                       for ex, *_ in sets])]
            reps_pick, inner = boot_idx[0]
            row[k]["ceiling_r2"] = float(np.nanmean([ceiling(y, s) for _, y, s, _ in sets]))
            ceil_b = np.stack([ceiling(y, s, inner[j]) if len(y) >= MIN_R2_CI else np.full(N_BOOT, np.nan)
                               for j, (_, y, s, _) in enumerate(sets)])
            row[k]["ceiling_r2_ci"] = _ci(ceil_b[reps_pick, np.arange(N_BOOT)])
            for name in models:
                r2_point, r2_b = [], []
                for j, (ex, y, _, pred) in enumerate(sets):
                    mu, sd = pred[name][k]
                    r2_point.append(regression_metrics(y, mu[ex], sd[ex])["r2"] if len(ex) > 1 else math.nan)
                    r2_b.append(_boot_metrics(y, mu[ex], sd[ex], inner[j])["r2"] if len(ex) >= MIN_R2_CI
                                else np.full(N_BOOT, np.nan))
                r2_b = np.stack(r2_b)[reps_pick, np.arange(N_BOOT)]
                row[k][name] = {"r2": float(np.nanmean(r2_point)), "r2_ci": _ci(r2_b),
                                "n_exact": int(np.mean([len(ex) for ex, *_ in sets]))}
        rows.append(row)
    return rows


# --- output ------------------------------------------------------------------------------------------------------
def _fmt(v, ci=None, digits=2) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    s = f"{v:.{digits}f}"
    if ci is not None and all(np.isfinite(ci)):
        s += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    elif ci is not None:
        s += " [no interval]"
    return s


def goals_met(k: str, m: dict, ceil: float) -> str:
    r2, cov = m["r2"], m["coverage_95"]
    lo, hi = GOALS["coverage_95"]
    if not np.isfinite(r2):
        return "n/a"
    # the ceiling's share counts only for a model that beats the null: its R² interval's lower end above 0
    ok_r2 = r2 >= GOALS[k]["r2"] or (k == "log_icr" and np.isfinite(ceil) and ceil > 0
                                     and r2 >= GOALS[k]["r2_of_ceiling"] * ceil
                                     and (m.get("r2_ci") or [math.nan])[0] > 0)
    ok_cov = lo <= cov <= hi
    return f"R2 {'yes' if ok_r2 else 'no'}, coverage {'yes' if ok_cov else 'no'}"


def markdown(doc: dict) -> str:
    s = doc["scores"]
    lines = [f"# Surrogate skill on real MD ({doc['date']})", "",
             f"Command: `{doc['command']}`  ", f"Dataset: `{doc['store']}`, {doc['n_designs']} MD designs "
             f"({doc['split']}); runtime {doc['seconds']:.0f} s on {doc['machine']}.", "",
             "Held-out metrics on exact labels, each with its 95 % bootstrap interval (designs resampled, paired "
             "across models; resamples with fewer than 3 distinct designs left out of R² intervals, no R² interval "
             "with fewer than 5 exact labels); `p_best` = share of resamples where the model has the lowest RMSE. "
             "Censored labels are not in R², RMSE, NLL or coverage: they are counted and scored as bounds (mean on "
             "the right side of the bound / 95 % interval reaching it / censored NLL).", ""]
    for k in TARGETS:
        p = s[k]
        c = p["labels"]
        lines += [f"## {TARGET_LABEL[k]}", "",
                  f"Labels: {c['exact']} exact, {c['lower']} lower bounds (> x), {c['upper']} upper bounds (< x), "
                  f"{c['unknown']} unresolved. Noise ceiling R² = {_fmt(p['ceiling_r2'], p['ceiling_r2_ci'])} "
                  f"(mean label sd {_fmt(p['label_sd_mean'])}).", "",
                  "| model | R² | RMSE | NLL | coverage 95 % | p_best | censored: n, mean hit, PI hit, NLL | goals |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, m in p["models"].items():
            cen = m["censored"]
            cs = (f"{cen['n']}, {cen['mean_hit']:.2f}, {cen['pi_hit']:.2f}, {cen['nll']:.2f}" if cen["n"] else "0")
            fb = f" ({m['fallback_designs']} fallback)" if m.get("fallback_designs") else ""
            lines.append(f"| {name}{fb} | {_fmt(m['r2'], m.get('r2_ci'))} | {_fmt(m['rmse'], m.get('rmse_ci'))} | "
                         f"{_fmt(m['nll'], m.get('nll_ci'))} | {_fmt(m['coverage_95'], m.get('coverage_95_ci'))} | "
                         f"{_fmt(m.get('p_best_rmse', math.nan))} | {cs} | {goals_met(k, m, p['ceiling_r2'])} |")
        lines.append("")
    lines += ["## Learning curve (R² with 95 % bootstrap interval over subsets and designs)", "",
              "| designs | target | ceiling | " + " | ".join(doc["models"]) + " |",
              "|---|---|---|" + "---|" * len(doc["models"])]
    for row in doc["learning_curve"]:
        for k in TARGETS:
            r = row[k]
            lines.append(f"| {row['n_designs']} ({row['subsets']} subset{'s' if row['subsets'] > 1 else ''}) | "
                         f"{TARGET_LABEL[k]} | {_fmt(r['ceiling_r2'], r['ceiling_r2_ci'])} | "
                         + " | ".join(_fmt(r[m]['r2'], r[m]['r2_ci']) for m in doc["models"]) + " |")
    lines += ["", "## Twin calibration per fold (training folds only)", "",
              "| fold | held out | eps_r | D scale s |", "|---|---|---|---|"]
    for c in doc["calibration"]:
        lines.append(f"| {c['fold'] + 1} | {', '.join(c['test'])} | {c['eps_r'] or 'water'} | "
                     f"{math.exp(c['log_s']):.3g} |")
    lines += ["", "## Conclusions", "", *doc["conclusions"], ""]
    return "\n".join(lines)


def conclusions(doc: dict) -> list[str]:
    s, out = doc["scores"], []
    for k in TARGETS:
        ms = s[k]["models"]
        ok = {n: m for n, m in ms.items() if np.isfinite(m["rmse"])}
        if not ok:
            out.append(f"- {TARGET_LABEL[k]}: no exact held-out label, nothing to score.")
            continue
        best = min(ok, key=lambda n: ok[n]["rmse"])
        b = ok[best]
        out.append(f"- {TARGET_LABEL[k]} ({ok[best]['n']} exact labels): lowest RMSE {best} "
                   f"({_fmt(b['rmse'], b.get('rmse_ci'))}, R² {_fmt(b['r2'], b.get('r2_ci'))}, lowest in "
                   f"{100 * b.get('p_best_rmse', math.nan):.0f} % of resamples); the null model: RMSE "
                   f"{_fmt(ms['mean']['rmse'], ms['mean'].get('rmse_ci'))}. Ceiling R² "
                   f"{_fmt(s[k]['ceiling_r2'], s[k]['ceiling_r2_ci'])}. Goals met by: "
                   + (", ".join(n for n, m in ok.items() if goals_met(k, m, s[k]['ceiling_r2']) ==
                                "R2 yes, coverage yes") or "none") + ".")
        for mf in (f"mf_{kk}" for kk in MF_KINDS):
            if mf in ms and f"{mf}_cal" in ms and mf.split("_")[1] in ms:
                md, a, c = ms[mf.split("_")[1]], ms[mf], ms[f"{mf}_cal"]
                out.append(f"  - twin in {mf}: RMSE MD-only {_fmt(md['rmse'])}, +twin {_fmt(a['rmse'])}, "
                           f"+calibrated twin {_fmt(c['rmse'])}; NLL {_fmt(md['nll'])} / {_fmt(a['nll'])} / "
                           f"{_fmt(c['nll'])}.")
    fl = doc["flux_labels"]
    out.append(f"- What gnn, rf and gp learn are per-species fluxes (surrogate.labels): {fl['exact']} of {fl['total']} "
               "flux labels are exact here, the rest censored (their 95 % interval holds zero: a few crossings per "
               "species in 100 ps). Every model learns them on y = asinh(J / scale) at the counts' resolution "
               "(scale = one crossing per production run, surrogate.training_set.flux_scale_for); rf and gp learn "
               "every label's value, censored counts too (learn_censored), the GNN the censored intervals as "
               "censored likelihood terms. The ON current and ICR are derived from the predicted fluxes.")
    out.append(f"- {doc['n_designs']} designs: every interval above is wide; with so few designs (and ICRs mostly "
               "censored) these numbers rank models weakly and say nothing final about the goals.")
    return out


def plot(doc: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=120)
    rows = doc["learning_curve"]
    for j, k in enumerate(TARGETS):
        ax = fig.add_subplot(1, 2, j + 1)
        x = np.array([r["n_designs"] for r in rows], float)
        for i, name in enumerate(doc["models"]):
            r2 = np.array([r[k][name]["r2"] for r in rows])
            ci = np.array([r[k][name]["r2_ci"] for r in rows])
            xx = x * (1 + 0.025 * (i - len(doc["models"]) / 2))
            y = np.clip(r2, -2, 1)
            lo, hi = np.clip(ci[:, 0], -2, 1), np.clip(ci[:, 1], -2, 1)
            yerr = np.nan_to_num([np.maximum(y - lo, 0), np.maximum(hi - y, 0)])  # no interval: no bar
            ax.errorbar(xx, y, yerr=yerr, fmt="o-", ms=3, capsize=2,
                        lw=1, label=name)
        c = np.array([r[k]["ceiling_r2"] for r in rows])
        ax.plot(x, np.clip(c, -2, 1), "k--", lw=1.2, label="noise ceiling")
        ax.axhline(GOALS[k]["r2"], color="grey", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-2.05, 1.05)
        ax.set_xlabel("MD designs in the dataset (grouped CV)")
        ax.set_ylabel(f"held-out R² of {TARGET_LABEL[k]} (clipped at -2)")
        ax.set_title(TARGET_LABEL[k], fontsize=9)
        if j == 1:
            ax.legend(fontsize=6, ncol=2, loc="lower right")
    fig.suptitle(f"Surrogate skill on MD ({doc['n_designs']} designs, {doc['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def command_line(script: str) -> str:
    """The command as run: the glibc malloc settings when set, nice, the script and its arguments."""
    import os

    env = [f"{k}={os.environ[k]}" for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
           if k in os.environ]
    return " ".join([*env, "nice -n 10 .venv/bin/python", script, *sys.argv[1:]])


def flux_label_counts(ms: list[Measurement]) -> dict:
    """How many per-species flux labels (the surrogates' targets) the records give, and how many are exact."""
    from porelab.surrogate.dataset import Samples

    s = Samples.from_measurements(ms)
    return {"total": int(s.mask.sum()), "exact": int((s.mask & ~s.censored).sum())}


def _clean(x):
    """JSON-safe: NaN and infinities as null, numpy numbers as Python ones."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=ROOT / "data" / "md")
    ap.add_argument("--reps", type=int, default=2, help="random subsets per learning-curve size below all designs")
    ap.add_argument("--extra-continuum", type=int, default=32,
                    help="twin answers at this many more designs of the dataset's order (multi-fidelity models)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT / "surrogate_md")
    args = ap.parse_args()
    t0 = time.time()
    models = tuple(args.models.split(","))
    ms = load_md(args.store)
    labs = [labels(m) for m in ms]
    n = len(ms)
    print(f"{n} MD designs in {args.store}")
    if n < 3:
        sys.exit("need at least 3 MD designs")
    extra = []
    if args.extra_continuum and any(m.startswith("mf_") for m in models):
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from md_dataset import designs as dataset_designs  # the dataset's own order; read, never run

        held = {m.design_id for m in ms}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cands = dataset_designs(n + args.extra_continuum, 2.0, 7)
        field = max(abs(e) for e in ms[0].conditions.fields_V_per_nm)
        extra = [(c.design, c.conditions.with_fields([field, -field])) for c in cands
                 if c.design_id not in held][: args.extra_continuum]
    twin = Twin(GOAL)
    pred, cals = cross_validate(ms, labs, twin, extra, models, args.seed)
    scores = score(labs, pred, models, args.seed)
    curve = learning_curve(ms, labs, twin, extra, models, args, {"pred": pred})
    import os
    import platform

    doc = {"date": datetime.date.today().isoformat(), "command": command_line("benchmarks/surrogate_md.py"),
           "store": shown_path(args.store), "n_designs": n, "design_ids": [m.design_id for m in ms],
           "split": "leave-one-design-out" if n <= 8 else "4-fold grouped CV by design",
           "models": list(models), "extra_continuum_designs": len(extra), "eps_grid": list(EPS_GRID),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with the MD job)",
           "labels": [{"design_id": m.design_id, "layers": "/".join(m.design.layers),
                       **{k: {"value": lab[k].value, "lo": lab[k].lo, "hi": lab[k].hi, "kind": lab[k].kind,
                              "sd": lab[k].sd} for k in TARGETS},
                       "predicted": {name: {k: [float(pred[name][k][0][i]), float(pred[name][k][1][i])]
                                            for k in TARGETS} for name in models}}
                      for i, (m, lab) in enumerate(zip(ms, labs, strict=True))],
           "twin_default": [{k: t[k] for k in TARGETS} if (t := twin.targets(m, None)) else None for m in ms],
           "flux_labels": flux_label_counts(ms),
           "scores": scores, "learning_curve": curve, "calibration": cals, "goals": GOALS}
    doc["seconds"] = time.time() - t0
    doc["conclusions"] = conclusions(doc)
    write_report(args.out, doc, json.dumps(_clean(doc), indent=1, allow_nan=False), markdown, plot)


if __name__ == "__main__":
    main()
