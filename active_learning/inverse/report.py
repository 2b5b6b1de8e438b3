"""What an inverse-design search leaves behind, in its output directory and in MLflow.

Files: ranked.csv (the top designs, best first), pareto.csv (the risk-aware Pareto front), scores.npz (every
candidate: design_id (n,), mean and epistemic std (n, 2) of objective and ln ON current, mirrored (n,)), designs/
(a design YAML per ranked design, for `porelab simulate`), pareto.png, verified.csv (predicted vs measured, with
--verify) and summary.json (provenance: study, surrogate and its registry version, versions, seed, timing).
Every number comes with its interval: a prediction `<name>` with `<name>_lo`, `<name>_hi`, the surrogate's 95 %
epistemic interval (mean -+ 1.96 sd on the log scale; for ICR, exp of the predicted |ln ICR|, at least 1), and
`<name>_risk_bound`, the bound it is ranked by (floored like the interval); a measured value with its 95 % interval
(campaign.measured; `_hi` empty and `_censored` when only a lower bound is known, `_upper_censored` when only an
upper one) and what measured it. For an ICR goal every design is listed (tables, designs/) in the
orientation predicted to rectify, ON at +E: the mirror image (layers and fields reversed, the same design id and
simulation; `mirrored`) of a candidate whose predicted ln ICR is below 0, and its ICR is that of the orientation
listed, max(ICR, 1/ICR).
MLflow: one run in the experiment `design-<study name>` holding all of it, tagged with the surrogate's
registered name/version and linked to its logged model as a run input.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import openmm
import yaml

import porelab
from porelab.active_learning.campaign import plots
from porelab.active_learning.campaign.measured import Measured, inverted, measured, row_of
from porelab.active_learning.campaign.space import Candidate
from porelab.active_learning.campaign.targets import objective_name
from porelab.active_learning.inverse.search import Ranking, Scores, Verified
from porelab.active_learning.inverse.study import DesignStudy
from porelab.base.files import atomic_write_bytes, atomic_write_text
from porelab.sim.design import Conditions, Design, mirror_question
from porelab.sim.observables import Interval
from porelab.surrogate.mlflow_quiet import quiet_mlflow
from porelab.surrogate.mlflow_store import artifact_location, tracking_uri

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def objective_label(study: DesignStudy) -> str:
    return "selectivity" if study.goal.objective == "selectivity" else "ICR"


def ln_floor(study: DesignStudy) -> float:
    """The least value of the objective on its ln scale: 0 for ICR (|ln ICR|), none for selectivity."""
    return 0.0 if study.goal.objective == "icr" else -math.inf


def risk_bound(study: DesignStudy, lcb: float) -> float:
    """The objective's risk-aware bound in natural units from its LCB (on the sign-adjusted ln scale of
    search.Scores), at least exp(ln_floor) like the lower end of its interval (`predicted`)."""
    sign = 1.0 if study.goal.maximize else -1.0
    return math.exp(max(sign * lcb, ln_floor(study)))


def predicted(ln_value: float, sd: float, floor: float = -math.inf) -> tuple[float, float, float]:
    """A prediction in natural units: (exp(mean), and its 95 % interval exp(mean -+ 1.96 sd), the lower end at least
    exp(floor)); ln_value, sd, floor: ln."""
    return math.exp(ln_value), math.exp(max(ln_value - Z95 * sd, floor)), math.exp(ln_value + Z95 * sd)


def measured_of(v: Verified, study: DesignStudy) -> Measured | None:
    """A verified design's measurement read with its intervals (None when the oracle gave nothing learnable)."""
    if not v.measured or v.measurement is None:
        return None
    return measured(replace(row_of(v.measurement, v.measured), design_id=v.candidate.design_id), study.goal)


def shown(c: Candidate, mirrored: bool) -> tuple[Design, Conditions]:
    """The candidate's design and conditions as listed: its mirror image at the opposite fields when `mirrored`."""
    return mirror_question(c.design, c.conditions) if mirrored else (c.design, c.conditions)


def describe(c: Candidate, mirrored: bool = False) -> dict:
    """The design's main parameters as table columns, as listed (`shown`)."""
    d, cond = shown(c, mirrored)
    e = max(abs(x) for x in cond.fields_V_per_nm)
    return {"design_id": c.design_id, "layers": " ".join(d.layers), "mirrored": mirrored, "material": d.material,
            "spacing_nm": d.spacing_nm, "pore": f"{d.pore.shape} {d.pore.width_nm:g}x{d.pore.height_nm:g}",
            "groups_per_rim": d.groups_per_rim, "field_V_per_nm": e,
            "electrolyte": " ".join(f"{s}:{v:g}" for s, v in cond.electrolyte.items())}


def rows(study: DesignStudy, scores: Scores, ranking: Ranking, idx: np.ndarray) -> list[dict]:
    """Table rows of the candidates `idx`: predictions in natural units with their 95 % epistemic intervals and
    the risk-aware bounds they are ranked by."""
    sign, name = (1.0 if study.goal.maximize else -1.0), study.goal.objective
    rank_of = {int(i): r + 1 for r, i in enumerate(ranking.order)}
    on_front = set(ranking.pareto.tolist())
    out = []
    for i in idx:
        m, s, lcb = scores.mean[i], scores.std[i], ranking.lcb[i]
        obj, on = predicted(sign * m[0], s[0], ln_floor(study)), predicted(m[1], s[1])
        out.append({"rank": rank_of.get(int(i), ""), **describe(scores.candidates[i], bool(scores.flipped[i])),
                    name: obj[0], f"{name}_lo": obj[1], f"{name}_hi": obj[2],
                    f"{name}_risk_bound": risk_bound(study, lcb[0]), f"ln_{name}_std": s[0],
                    "on_current_nA": on[0], "on_current_nA_lo": on[1], "on_current_nA_hi": on[2],
                    "on_current_risk_bound_nA": math.exp(lcb[1]), "ln_on_current_std": s[1],
                    "feasible": bool(ranking.feasible[i]), "pareto": int(i) in on_front})
    return out


def verified_rows(study: DesignStudy, scores: Scores, verified: list[Verified]) -> list[dict]:
    """Predicted (95 % epistemic interval) vs measured (95 % interval: `_hi` empty and `_censored` when only a lower
    bound is known, `_upper_censored` when only an upper one, the value) for each verified design; measured columns
    empty when the oracle failed."""
    sign, name = (1.0 if study.goal.maximize else -1.0), study.goal.objective
    index = {c.design_id: k for k, c in enumerate(scores.candidates)}
    out = []
    for v in verified:
        i = index[v.candidate.design_id]
        pred_obj, pred_on = predicted(sign * scores.mean[i, 0], scores.std[i, 0], ln_floor(study)), \
            predicted(scores.mean[i, 1], scores.std[i, 1])
        got = measured_of(v, study)
        obj, on = (_as_listed(got, bool(scores.flipped[i]), study), got.on_current_nA) if got is not None \
            else (None, None)
        out.append({"rank": v.rank, "design_id": v.candidate.design_id,
                    f"predicted_{name}": pred_obj[0], f"predicted_{name}_lo": pred_obj[1],
                    f"predicted_{name}_hi": pred_obj[2], f"predicted_ln_{name}_std": scores.std[i, 0],
                    **_measured_columns(f"measured_{name}", obj),
                    "predicted_on_current_nA": pred_on[0], "predicted_on_current_nA_lo": pred_on[1],
                    "predicted_on_current_nA_hi": pred_on[2], **_measured_columns("measured_on_current_nA", on),
                    "measured_by": got.measured_by if got else "",
                    "z_score": (sign * v.measured[objective_name(study.goal)] - scores.mean[i, 0])
                    / max(scores.std[i, 0], 1e-12) if got else "",
                    "status": "ok" if got else "failed", "error": v.error or ""})
    return out


def _as_listed(got: Measured, flipped: bool, study: DesignStudy) -> Interval:
    """The measured objective beside its prediction; for an ICR goal the measured ICR itself in the orientation the
    candidate is listed in (flipped: its mirror image, predicted to rectify with ON at +E), not max(ICR, 1/ICR):
    a design measured to rectify the other way shows ICR < 1, and one whose ICR is unresolved "> 0"."""
    if study.goal.objective != "icr":
        return got.objective
    return got.icr if got.mirrored == flipped else inverted(got.icr)


def _measured_columns(key: str, iv: Interval | None) -> dict:
    """{key, key_lo, key_hi, key_censored, key_upper_censored} of a measured Interval ("" where unknown, all of
    them without a measurement)."""
    if iv is None:
        return {k: "" for k in (key, f"{key}_lo", f"{key}_hi", f"{key}_censored", f"{key}_upper_censored")}
    return {key: iv.value, f"{key}_lo": iv.low, f"{key}_hi": "" if iv.high is None else iv.high,
            f"{key}_censored": iv.censored, f"{key}_upper_censored": iv.upper_censored}


def _csv(path: Path, table: list[dict]) -> Path:
    buf = io.StringIO()
    if table:
        w = csv.DictWriter(buf, fieldnames=list(table[0]))
        w.writeheader()
        for r in table:
            w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())
    return path


def write(out: Path, study: DesignStudy, scores: Scores, ranking: Ranking, verified: list[Verified],
          summary: dict) -> list[Path]:
    """Write every output file (atomically) and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    top = ranking.order[:study.search.top]
    files = [_csv(out / "ranked.csv", rows(study, scores, ranking, top)),
             _csv(out / "pareto.csv", rows(study, scores, ranking, ranking.pareto))]
    buf = io.BytesIO()
    np.savez_compressed(buf, design_id=np.array([c.design_id for c in scores.candidates]), mean=scores.mean,
                        std=scores.std, mirrored=scores.flipped)
    atomic_write_bytes(out / "scores.npz", buf.getvalue())
    files.append(out / "scores.npz")
    ddir = out / "designs"
    ddir.mkdir(exist_ok=True)
    for stale in ddir.glob("rank_*.yaml"):  # of an earlier search into the same directory
        stale.unlink()
    for r, i in enumerate(top):
        c = scores.candidates[i]
        d, cond = shown(c, bool(scores.flipped[i]))
        doc = {"design": d.model_dump(mode="json"), "conditions": cond.model_dump(mode="json")}
        f = ddir / f"rank_{r + 1:03d}_{c.design_id}.yaml"
        atomic_write_text(f, yaml.safe_dump(doc, sort_keys=False))
        files.append(f)
    index = {c.design_id: k for k, c in enumerate(scores.candidates)}
    if verified:
        files.append(_csv(out / "verified.csv", verified_rows(study, scores, verified)))
    else:
        (out / "verified.csv").unlink(missing_ok=True)
    sign = 1.0 if study.goal.maximize else -1.0

    def nat(centre: np.ndarray, sd: np.ndarray, floor: float = -math.inf) -> np.ndarray:  # (n, 3): `predicted`'s
        return np.exp(np.column_stack([centre, np.maximum(centre - Z95 * sd, floor), centre + Z95 * sd]))

    obj_nat = nat(sign * scores.mean[:, 0], scores.std[:, 0], ln_floor(study))
    on_nat = nat(scores.mean[:, 1], scores.std[:, 1])
    ver = [(index[v.candidate.design_id], got.objective, got.on_current_nA) for v in verified
           if (got := measured_of(v, study)) is not None]
    files.append(plots.pareto(obj_nat, on_nat, ranking.pareto, top, out / "pareto.png", objective_label(study),
                              study.goal.on_current_min_nA, ver))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    files.append(out / "summary.json")
    return files


def provenance() -> dict:
    import torch  # its version only: torch loads when a report records provenance

    return {"porelab_version": porelab.__version__, "openmm_version": openmm.__version__,
            "torch_version": torch.__version__, "python": platform.python_version(), "host": platform.node()}


def log_mlflow(out: Path, workspace: Path, study: DesignStudy, summary: dict, surrogate, files: list[Path]) -> str:
    """One MLflow run for this search, linked to the surrogate's model version; returns its run id."""
    with quiet_mlflow():
        return _log_run(out, workspace, study, summary, surrogate, files)


def _log_run(out: Path, workspace: Path, study: DesignStudy, summary: dict, surrogate, files: list[Path]) -> str:
    # MLflow (seconds to import) only when a search is logged
    from mlflow.entities import LoggedModelInput, Metric, Param
    from mlflow.tracking import MlflowClient

    from porelab.active_learning.tracking.view import UI_KIND, flatten, mlflow_key  # pandas, sklearn: likewise

    uri = tracking_uri(workspace)
    client = MlflowClient(uri)
    name = f"design-{study.name}"
    exp = client.get_experiment_by_name(name)
    eid = exp.experiment_id if exp else client.create_experiment(
        name, artifact_location=artifact_location(uri, workspace, name), tags=UI_KIND)
    reg = surrogate.registered
    tags = {"porelab.kind": "design", "porelab.study": study.name, "porelab.surrogate": surrogate.source,
            "porelab.output_dir": str(out)}
    if reg:
        tags |= {"porelab.model_name": reg["name"], "porelab.model_version": reg["version"],
                 "porelab.model_uri": f"models:/{reg['name']}/{reg['version']}"}
    run = client.create_run(eid, run_name=f"design {study.name} ({study.search.method})", tags=tags)
    rid = run.info.run_id
    params: dict = {}
    flatten("", study.model_dump(mode="json"), params)
    items = [Param(mlflow_key(k)[:250], v[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(rid, params=items[i:i + 100])
    ts = int(time.time() * 1000)
    metrics = {k: v for k, v in summary.get("metrics", {}).items() if isinstance(v, int | float) and math.isfinite(v)}
    client.log_batch(rid, metrics=[Metric(mlflow_key(k), float(v), ts, 0) for k, v in metrics.items()])
    if reg.get("model_id"):
        with contextlib.suppress(Exception):  # older stores without logged models: the tags still link it
            client.log_inputs(rid, models=[LoggedModelInput(reg["model_id"])])
    for f in files:
        client.log_artifact(rid, str(f), "designs" if f.parent.name == "designs" else None)
    client.set_terminated(rid, "FINISHED")
    return rid
