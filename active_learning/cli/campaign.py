"""`porelab campaign run | resume | status | export | tell`: drive a campaign and show its summary (every measured
value with its 95 % interval, the best ranked by the objective's pessimistic bound, the champion model and why);
export its trials as a CSV or Parquet table; tell it measurements made before it (campaign/interop.py). MLflow is
wired in here as the campaign's view; the driver's progress lines are its log records (cli/logs.py prints them).

Imports on use: commands import their floor on use so that `porelab --help` starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich import box
from rich.table import Table

from porelab.active_learning.campaign.ledger import Ledger, LedgerError
from porelab.base.console import console, err_console, fail, out_path, print_table, runnable

ModelKind = Literal["gnn", "rf", "gp"]  # campaign.study.ModelSpec.kind (tests/active_learning/test_cli.py checks)
AcquisitionKind = Literal["ucb", "thompson", "ei", "constrained_ei", "max_uncertainty", "random",
                          "grid"]  # acquisition.py's

campaign_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Active-learning campaigns: run, resume, status, export, tell.")


def _user_errors() -> tuple[type[Exception], ...]:
    from porelab.active_learning.campaign.directory import CampaignError
    from porelab.active_learning.campaign.executors import ExecutorError
    from porelab.active_learning.campaign.model import ModelError
    from porelab.active_learning.campaign.oracles import OracleError
    from porelab.active_learning.campaign.study import StudyError
    from porelab.sim.design import DesignError

    return (CampaignError, ExecutorError, LedgerError, ModelError, OracleError, StudyError, DesignError)


@contextlib.contextmanager
def _one_line_errors(directory: Path, database: str = "the ledger"):
    """A user error, an unreadable database (`database` names which) or a file-system error while inside ends the
    command with one `error:` line."""
    try:
        yield
    except _user_errors() as err:
        fail(str(err))
    except sqlite3.DatabaseError as err:
        fail(f"{directory}: {database} is unreadable ({err})")
    except OSError as err:
        fail(f"{directory}: {err.strerror or err}{f' ({err.filename})' if err.filename else ''}")


def _drive(directory: Path, quiet: bool, tracking: bool, **overrides) -> None:
    from porelab.active_learning.campaign.directory import LEDGER_FILE
    from porelab.active_learning.campaign.driver import Campaign

    t0 = time.monotonic()
    try:
        with _one_line_errors(directory, "a database of the campaign"):
            views = []
            if tracking:
                from porelab.active_learning.tracking.view import MlflowView

                views.append(MlflowView(directory))
            campaign = Campaign(directory, log=(lambda m: None) if quiet else None, views=views, **overrides)
            summary = campaign.run()
            ledger = Ledger(directory / LEDGER_FILE)
            try:
                champion = _champion_line(ledger, campaign.study)
            finally:
                ledger.close()
    except KeyboardInterrupt:
        err_console.print(f"interrupted; continue with: {runnable('porelab campaign resume', directory)}",
                          soft_wrap=True)
        raise typer.Exit(130) from None
    _print_summary(summary, directory, time.monotonic() - t0, champion)


def _campaign_dir(directory: Path, what: str) -> Path:
    """The campaign directory, refused unless it and its parent (mlflow.db, mlartifacts) are in the workspace."""
    d = out_path(directory, what)
    out_path(d.parent, f"{what} {str(directory)!r}: its parent (where mlflow.db goes)")
    return d


@campaign_app.command("run")
def campaign_run(
    study_file: Annotated[Path, typer.Argument(metavar="STUDY.yaml", help="study YAML")],
    out: Annotated[Path | None, typer.Option("--out", help="campaign directory (default runs/<study name>)")] = None,
    dir_alias: Annotated[Path | None, typer.Option("--dir", hidden=True, help="the former name of --out")] = None,
    model: Annotated[ModelKind | None, typer.Option(help="surrogate kind instead of the study's (its params "
                                                         "reset when the kind changes)")] = None,
    acquisition: Annotated[AcquisitionKind | None, typer.Option(help="acquisition instead of the study's (its params "
                                                                     "reset when the kind changes)")] = None,
    resume: Annotated[bool, typer.Option(help="if OUT already holds this very study, resume it")] = False,
    budget: Annotated[int | None, typer.Option(help="simulation budget instead of the study's", min=1)] = None,
    wall_clock_min: Annotated[float | None, typer.Option(help="driver time limit, minutes", min=0.01)] = None,
    tracking: Annotated[bool, typer.Option(help="log to MLflow (the workspace's mlflow.db)")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress lines")] = False,
):
    """Start a campaign from a study YAML in a new directory and run it to its end."""
    from porelab.active_learning.campaign.directory import CampaignError, create
    from porelab.active_learning.campaign.study import StudyError, load_study, parse_study

    if out is not None and dir_alias is not None and out != dir_alias:
        fail(f"--out {out} and --dir {dir_alias}: give one (--dir is the former name of --out)")
    out = out or dir_alias
    try:
        study = load_study(study_file)
        if model or acquisition:  # the campaign directory freezes the study as run, options included
            doc = study.model_dump(mode="json")
            for key, kind in (("model", model), ("acquisition", acquisition)):
                if kind and doc[key]["kind"] != kind:
                    doc[key] = {**doc[key], "kind": kind, "params": {}}
            study = parse_study(doc, f"{study_file} (with the command-line options)")
        directory = _campaign_dir(out or Path("runs") / study.name, "--out" if out else "the default --out")
        create(study, directory, exist_ok=resume)
    except (StudyError, CampaignError) as err:
        fail(str(err))
    _drive(directory, quiet, tracking, budget=budget, wall_clock_min=wall_clock_min)


@campaign_app.command("resume")
def campaign_resume(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="campaign directory")],
    budget: Annotated[int | None, typer.Option(help="raise the simulation budget", min=1)] = None,
    wall_clock_min: Annotated[float | None, typer.Option(help="new driver time limit, minutes", min=0.01)] = None,
    tracking: Annotated[bool, typer.Option(help="log to MLflow")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress lines")] = False,
):
    """Continue a stopped or killed campaign exactly where its ledger says it was."""
    from porelab.active_learning.campaign.directory import load

    try:
        load(directory)  # read only: "not a campaign directory" before anything else
    except _user_errors() as err:
        fail(str(err))
    directory = _campaign_dir(directory, "DIRECTORY")
    _drive(directory, quiet, tracking, budget=budget, wall_clock_min=wall_clock_min)


@campaign_app.command("status")
def campaign_status(directory: Annotated[Path, typer.Argument(metavar="DIR", help="campaign directory")]):
    """Trials by status, the best designs and the model's quality (reads the ledger only)."""
    from porelab.active_learning.campaign.directory import LEDGER_FILE, load
    from porelab.active_learning.campaign.summary import summarize

    with _one_line_errors(directory):
        study = load(directory)
        ledger = Ledger(directory / LEDGER_FILE)
        summary = summarize(ledger, study)
        running = ledger.trials("running")
        champion = _champion_line(ledger, study)
        ledger.close()
    _print_summary(summary, directory, None, champion)
    if running:
        console.print("running: " + ", ".join(t.design_id for t in running))


@campaign_app.command("export")
def campaign_export(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="campaign directory")],
    out: Annotated[Path, typer.Option(help="table to write: .csv or .parquet (the format follows the suffix)")],
):
    """Write the campaign's trials as a table: one row per trial with its design, status, round, oracle, cost and
    every measured value with its 95 % interval and censored flag (reads the ledger only)."""
    from porelab.active_learning.campaign.interop import export_trials

    path = out_path(out, "--out")
    try:
        n = export_trials(directory, path)
    except (*_user_errors(), ValueError) as err:
        fail(str(err))
    except sqlite3.DatabaseError as err:
        fail(f"{directory}: the ledger is unreadable ({err})")
    except OSError as err:
        fail(f"--out {out}: {err.strerror or err}")
    console.print(f"{n} trials of {directory} written to {out}", highlight=False, soft_wrap=True)


@campaign_app.command("tell")
def campaign_tell(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="campaign directory")],
    measurements: Annotated[list[Path], typer.Argument(
        metavar="MEASUREMENT.json", help="measurement.json files made by the study's oracle")],
    study: Annotated[Path | None, typer.Option(help="study YAML: make DIRECTORY a campaign of it if it is none "
                                                    "yet")] = None,
):
    """Seed a campaign with measurements made before it: each becomes a completed trial of round 0 (source told)
    that counts in the budget and is never simulated again. All or none: one refused file writes nothing."""
    from porelab.active_learning.campaign.interop import tell
    from porelab.active_learning.campaign.study import load_study

    with _one_line_errors(directory):
        spec = load_study(study) if study is not None else None
        directory = _campaign_dir(directory, "DIRECTORY")
        lines = tell(directory, measurements, spec)
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"{len(lines)} measurements told to {directory}; continue with: porelab campaign resume "
                  f"{directory}", highlight=False, soft_wrap=True)


def _fmt(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _interval(r: dict, name: str) -> str:
    """`value [lo, hi]`, `> lo` or `< hi` of a summary row's flat interval (sim.observables.Interval's format)."""
    from porelab.sim.observables import Interval

    return str(Interval(r[name], r[f"{name}_lo"], r[f"{name}_hi"], r[f"{name}_censored"],
                        r.get(f"{name}_upper_censored", False)))


def _champion_line(ledger, study) -> str | None:
    """Which model the `champion` alias means, and why (tracking/champion.py), from the ledger."""
    from porelab.active_learning.campaign.targets import objective_name
    from porelab.active_learning.tracking.champion import champion

    c = champion(ledger, objective_name(study.goal))
    return None if c is None else f"champion model (MLflow alias `champion`): {c.rule}"


def _print_summary(s: dict, directory: Path, wall_s: float | None, champion: str | None = None) -> None:
    t = Table(title=f"campaign {directory}")
    for col in ("candidate", "running", "completed", "failed", "abandoned", "iterations"):
        t.add_column(col, justify="right")
    t.add_row(*(str(s[k]) for k in ("candidate", "running", "completed", "failed", "abandoned", "iterations")))
    console.print(t)
    if s["best"]:
        name = s["objective"]
        icr = name == "icr"
        bound = "lower" if s.get("maximize", True) else "upper"
        sources = {r["measured_by"] for r in s["best"]}
        by = f", measured by {sources.pop()}" if len(sources) == 1 else ""
        how = "each in the orientation that rectifies, layers bottom to top; best first by the " \
            f"{bound} bound of max(ICR, 1/ICR)" if icr else f"best first by the {bound} bound of {name}"
        b = Table(title=f"best designs (95 % intervals{by}; {how})", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
        b.add_column("design id", no_wrap=True)
        b.add_column("layers", min_width=9)
        b.add_column("|E| V/nm", justify="right", min_width=6)
        for col in ("ICR", "ON current nA", *([] if icr else [name])):
            b.add_column(col, justify="right", no_wrap=True)
        if icr:
            b.add_column("ON field")
        if not by:
            b.add_column("measured by")
        notes = {}
        for r in s["best"]:
            marks = [m for m, on in (("*", r["symmetric"] and icr), ("†", r.get("mirrored"))) if on]
            notes |= dict.fromkeys(marks)
            b.add_row(r["design_id"], " ".join([*r["layers"], *marks]), _fmt(r["field_V_per_nm"], ".3g"),
                      _interval(r, "icr"), _interval(r, "on_current_nA"),
                      *([r["on_field"]] if icr else [_interval(r, "objective")]), *([] if by else [r["measured_by"]]))
        b.caption = "; ".join(text for m, text in (
            ("*", "* mirror-symmetric: its ICR is 1 by symmetry (docs/physics.md §3), so it ranks last"),
            ("†", "† the mirror image of the trial as drawn (layers and fields reversed: the same simulation, the "
                  "same design id)")) if m in notes) or None
        print_table(b)
    if s.get("rounds"):
        from porelab.active_learning.campaign.summary import PROSPECTIVE_WINDOW

        label = "|ln ICR|" if s["objective"] == "icr" else f"ln {s['objective']}"
        r = Table(title=f"surrogate's prospective error per round ({label} of each round's picks, predicted before "
                        "they ran)", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("round", "designs", "RMSE", "95 % coverage", f"RMSE, last {PROSPECTIVE_WINDOW} rounds"):
            r.add_column(col, justify="right")
        for x in s["rounds"]:
            r.add_row(str(x["round"]), str(x["n"]), _fmt(x["rmse"]), _fmt(x["coverage_95"], ".0%"),
                      _fmt(x.get("rmse_window")))
        r.caption = (f"last {PROSPECTIVE_WINDOW} rounds: the picks of this round and the {PROSPECTIVE_WINDOW - 1} "
                     "scored rounds before it, pooled")
        print_table(r)
    if f := s.get("best_found"):
        console.print(f"the whole pool evaluated: the best design was evaluation {f['evaluation']} of {f['of']}; "
                      f"random picks reach it after {f['random_mean']:.1f} on average", highlight=False)
    u = s.get("utilisation") or {}

    def ci(k: str) -> str:  # value [95 % bootstrap interval]
        lo, hi = s.get(f"heldout_{k}_ci") or (None, None)
        return _fmt(s.get(f"heldout_{k}")) + (f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else "")

    console.print(f"surrogate's prospective error over {s.get('heldout_n') or 0} picks (each predicted before it "
                  f"ran; 95 % bootstrap intervals): RMSE {ci('rmse')}, R² {ci('r2')}, NLL {ci('nll')}, 68 % "
                  f"interval coverage {ci('coverage_68')}; "
                  f"worker utilisation {_fmt(u.get('fraction'), '.0%')}; "
                  f"stopped: {s['finished'] or 'not finished'}"
                  + (f"; wall time {wall_s:.0f} s" if wall_s is not None else ""), highlight=False)
    if champion:
        console.print(champion, highlight=False)
    console.print(f"see it in MLflow: {runnable('porelab ui', directory)}", highlight=False, soft_wrap=True)
