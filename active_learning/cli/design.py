"""`porelab design STUDY.yaml`: inverse design with a trained surrogate (see inverse.py), optionally verified.

Imports on use: commands import their floor on use so that `porelab --help` starts in a fraction of a second.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from porelab.base.console import console, fail, print_table, runnable
from porelab.base.workspace import WorkspaceError, output_path
from porelab.surrogate.mlflow_quiet import quiet_mlflow

app = typer.Typer(add_completion=False)


def _errors() -> tuple[type[Exception], ...]:
    from porelab.active_learning.campaign.model import ModelError
    from porelab.active_learning.campaign.oracles import OracleError
    from porelab.active_learning.campaign.study import StudyError
    from porelab.sim.design import DesignError

    return (ModelError, OracleError, StudyError, DesignError, WorkspaceError)


def _bar(description: str, quiet: bool):
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=quiet, transient=False)
    task = prog.add_task(description, total=None)
    return prog, lambda done, total: prog.update(task, completed=done, total=total)


@app.command()
def design(
    study_file: Annotated[Path, typer.Argument(
        metavar="STUDY.yaml", help="design study YAML (a campaign study YAML works too)")],
    surrogate: Annotated[str | None, typer.Option(
        help="model directory, campaign directory, or registered model name@alias (default: the study's)")] = None,
    out: Annotated[Path | None, typer.Option(help="output directory (default runs/design-<study name>)")] = None,
    verify: Annotated[int | None, typer.Option(help="run the oracle on the top K designs", min=0)] = None,
    method: Annotated[str | None, typer.Option(metavar="<screen|nsga2>", help="screen (a scored Sobol pool) or nsga2 "
                                               "(pymoo's NSGA-II); default: the study's")] = None,
    candidates: Annotated[int | None, typer.Option(help="screen: designs to score", min=1)] = None,
    kappa: Annotated[float | None, typer.Option(help="risk aversion: rank by mean - kappa * sd", min=0)] = None,
    tracking: Annotated[bool, typer.Option(help="log the search to MLflow (the workspace's mlflow.db)")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
):
    """Search the design space with a trained surrogate for strongly rectifying membranes at a useful ON
    current: ranked table, Pareto plot and design files; --verify K checks the top K with the oracle."""
    try:
        _design(study_file, surrogate, out, verify, method, candidates, kappa, tracking, quiet)
    except _errors() as err:
        fail(str(err))
    except OSError as err:
        fail(f"{err.filename or ''}: {err.strerror or err}")


def _design(study_file, surrogate, out, verify, method, candidates, kappa, tracking, quiet) -> None:
    from porelab.active_learning.campaign.space import recorded_pool
    from porelab.active_learning.campaign.study import StudyError, parse_study
    from porelab.active_learning.inverse import report as design_report
    from porelab.active_learning.inverse import search as inverse
    from porelab.active_learning.inverse.study import DesignStudy, load_design_study
    from porelab.active_learning.inverse.surrogate_source import load_surrogate

    study = load_design_study(study_file)
    search = {k: v for k, v in {"method": method, "candidates": candidates, "kappa": kappa}.items() if v is not None}
    doc = study.model_dump(mode="json")
    doc["search"] |= search
    doc["verify"] = study.verify if verify is None else verify
    doc["surrogate"] = surrogate or study.surrogate
    study = parse_study(doc, f"{study_file} (with the command-line options)", DesignStudy)
    if not study.surrogate:
        raise StudyError(f"{study_file}: no surrogate: set `surrogate:` in the study or pass --surrogate")
    out = output_path(out or Path("runs") / f"design-{study.name}", "--out")
    workspace = out.parent
    with quiet_mlflow():  # a registered model is downloaded: no progress bar or MLflow notices
        sur = load_surrogate(study.surrogate, workspace, out / "surrogate")
    model = inverse.prepare(sur.model, study.goal)
    console.print(f"surrogate: {sur.model.kind} from {sur.path}"
                  + (f" (registered {sur.registered['name']} v{sur.registered['version']})" if sur.registered else ""),
                  highlight=False)
    s = study.search
    space = study.design_space()
    prog, tick = _bar(f"{s.method}: scoring", quiet)
    with prog:
        if s.method == "screen":
            # only the GNN gains from parallel processes; rf/gp lose more to moving candidates than they gain
            # (benchmarks/inverse_speed.py)
            workers = s.workers if model.kind == "gnn" else 1
            scores = inverse.screen(space, model, study.goal, s.candidates, study.seed, s.chunk, tick, workers)
        else:
            scores = inverse.nsga2(space, model, study.goal, s.population, s.generations, s.kappa, study.seed, tick)
    ranking = inverse.rank(scores, study.goal, s.kappa)
    rate = len(scores.candidates) / max(scores.seconds, 1e-9)
    console.print(f"scored {len(scores.candidates):,} designs in {scores.seconds:.1f} s ({rate:,.0f}/s); "
                  f"{int(ranking.feasible.sum()):,} feasible, {len(ranking.pareto)} on the Pareto front",
                  highlight=False)
    ranked = [scores.candidates[i] for i in ranking.order]
    if study.verify and study.verify_unmeasured_in is not None:
        held = {c.design_id for c in recorded_pool(Path(study.verify_unmeasured_in), 0)}
        top = [c for c in ranked if c.design_id not in held][:study.verify]
        above = ranked.index(top[-1]) + 1 - len(top) if top else len(ranked)
        what = "the best design" if len(top) == 1 else f"the best {len(top)} designs"
        console.print(f"verify: {what} not measured in {study.verify_unmeasured_in} ({above} ranked above "
                      f"{'it' if len(top) == 1 else 'them'} measured there)", highlight=False)
    else:
        top = ranked[:study.verify]
    verified = []
    if top:
        prog, tick = _bar(f"verify with the {study.oracle.kind} oracle", quiet)
        with prog:
            verified = inverse.verify(top, study.oracle, out / "verify", study.goal, tick)
    summary = _summary(study, sur, scores, ranking, verified, rate)
    files = design_report.write(out, study, scores, ranking, verified, summary)
    _print(study, scores, ranking, verified)
    if tracking:
        rid = design_report.log_mlflow(out, workspace, study, summary, sur, files)
        see = runnable("porelab ui", workspace)
        console.print(f"MLflow run {rid} (experiment design-{study.name}); see it with: {see}", highlight=False,
                      soft_wrap=True)
    console.print(f"results in {out}: ranked.csv, pareto.csv, pareto.png, designs/"
                  + (", verified.csv" if verified else ""), highlight=False)


def _summary(study, sur, scores, ranking, verified, rate: float) -> dict:
    from porelab.active_learning.inverse.report import ln_floor, measured_of, predicted, provenance, risk_bound

    sign, name = (1.0 if study.goal.maximize else -1.0), study.goal.objective
    best = ranking.order[0]
    obj = predicted(sign * scores.mean[best, 0], scores.std[best, 0], ln_floor(study))
    got = [m for m in (measured_of(v, study) for v in verified) if m is not None]
    metrics = {"candidates_scored": len(scores.candidates), "search_seconds": scores.seconds,
               "candidates_per_s": rate, "feasible": int(ranking.feasible.sum()), "pareto_size": len(ranking.pareto),
               f"top1_predicted_{name}": obj[0], f"top1_predicted_{name}_lo": obj[1],
               f"top1_predicted_{name}_hi": obj[2], f"top1_risk_bound_{name}": risk_bound(study, ranking.lcb[best, 0]),
               "oracle_calls": len(verified), "verified_ok": len(got)}
    if got:  # the best measured design by its bound (campaign.measured), with its 95 % interval
        b = max(got, key=lambda m: m.rank_bound)
        rank = next(v.rank for v in verified if v.candidate.design_id == b.design_id)
        metrics |= {f"best_measured_{name}": b.objective.value, f"best_measured_{name}_lo": b.objective.low,
                    f"best_measured_{name}_hi": b.objective.high, "best_measured_rank": rank,
                    "best_measured_on_current_nA": b.on_current_nA.value,
                    "best_measured_on_current_nA_lo": b.on_current_nA.low,
                    "best_measured_on_current_nA_hi": b.on_current_nA.high}
    return {"study": study.model_dump(mode="json"), "surrogate": {"source": sur.source, "path": str(sur.path),
                                                                  "kind": sur.model.kind, **sur.registered},
            "seed": study.seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "software": provenance(),
            "metrics": {k: v for k, v in metrics.items() if v is not None}}


def _iv(row: dict, key: str) -> str:
    """row[key] with row[key_lo], row[key_hi] as `value [low, high]`, `> low` (high empty: censored), `< high`
    (row[key_upper_censored]) or `-` (no value): sim.observables.Interval's format."""
    from porelab.sim.observables import Interval

    value, low, high = row[key], row[f"{key}_lo"], row[f"{key}_hi"]
    if value == "":
        return "-"
    return str(Interval(value, low, None if high == "" else high, high == "", bool(row.get(f"{key}_upper_censored"))))


def _print(study, scores, ranking, verified) -> None:
    from porelab.active_learning.inverse.report import objective_label, rows, verified_rows

    name, label = study.goal.objective, objective_label(study)
    sd = f"mean {'-' if study.goal.maximize else '+'} {study.search.kappa:g} sd"
    ln_label = "|ln ICR|" if name == "icr" else f"ln {label}"
    caption = "spacing, pore and rim groups of each: ranked.csv and designs/"
    if name == "icr":
        caption = "layers bottom to top, in the orientation predicted to rectify (ON at +E); † the mirror image of " \
                  f"the candidate as drawn (the same simulation, the same design id); {caption}"
    t = Table(title=f"top designs (surrogate mean [95 % epistemic interval]; ranked by the bound {sd} of {ln_label})",
              caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    t.add_column("rank", justify="right")
    t.add_column("design id", no_wrap=True)
    t.add_column("layers", min_width=9)
    t.add_column("|E| V/nm", justify="right", min_width=6)
    for col in (label, "bound", "ON current nA"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in rows(study, scores, ranking, ranking.order[:10]):
        t.add_row(str(r["rank"]), r["design_id"], r["layers"] + " †" * r["mirrored"], f"{r['field_V_per_nm']:.3g}",
                  _iv(r, name), f"{r[f'{name}_risk_bound']:.3g}", _iv(r, "on_current_nA"))
    print_table(t)
    if verified:
        listed = ", in the orientation listed above: < 1 where it rectifies the other way" if name == "icr" else ""
        v = Table(title=f"verified with the {study.oracle.kind} oracle (predicted: 95 % epistemic interval; "
                        f"measured: 95 % interval{listed}; '> x' a lower bound, '< x' an upper one)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col in ("rank", "design id", f"predicted {label}", f"measured {label}", "predicted ON nA",
                    "measured ON nA", "measured by"):
            v.add_column(col, justify="right", no_wrap=col not in ("rank", "measured by"))
        for r in verified_rows(study, scores, verified):
            v.add_row(str(r["rank"]), r["design_id"],
                      _iv(r, f"predicted_{name}"),
                      _iv(r, f"measured_{name}"),
                      _iv(r, "predicted_on_current_nA"),
                      _iv(r, "measured_on_current_nA"),
                      r["measured_by"] if r["status"] == "ok" else f"failed: {r['error'][:60]}")
        print_table(v)
