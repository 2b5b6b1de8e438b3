"""Floor-2 command of `porelab`: train a surrogate on a directory of measurements and log it to MLflow.

    porelab train DATA --out DIR [--config YAML]

DATA is a directory tree of measurement.json files. DIR receives model/ (the model directory of
surrogate.store: model.json, the training measurements, the GNN's weights), metrics.json, parity and
calibration PNGs, processed/ (the featurised-data cache) and, unless MLFLOW_TRACKING_URI is set, mlflow.db: the
run (params, metrics, plots, model) is logged there and the model registered under `registered_model_name`.
`porelab design --surrogate DIR/model` and campaigns load the model directory as it is. A config (every key
optional; defaults shown):

    model: {kind: gnn, n_members: 5, hidden: 16, n_conv: 2, max_epochs: 150, patience: 20, symmetry: exact}
           # kind gnn: DeepEnsemble keywords; rf: RFBaseline's (n_estimators, ...); gp: GPBaseline's
    graph: {shell_nm: 0.0, edge_cutoff_nm: 0.35, n_rbf: 6}   # GraphSettings (kind gnn only)
    flux_scale_per_ns: 0.01
    test_fraction: 0.2          # whole designs held out for metrics.json and the plots
    seed: 0
    experiment: porelab-surrogate
    registered_model_name: porelab-surrogate   # null: log the model without registering it
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

from porelab.sim.yaml_file import read_yaml

app = typer.Typer(add_completion=False, no_args_is_help=True, help="porelab surrogate commands.")
console = Console()


class TrainConfig(BaseModel):
    """The YAML given to `porelab train --config` (every key optional)."""

    model_config = ConfigDict(extra="forbid")
    model: dict = {}  # kind (gnn, rf, gp) and that model's keywords (n_members, hidden, max_epochs, symmetry, ...)
    graph: dict = {}  # GraphSettings keywords (shell_nm, edge_cutoff_nm, n_rbf), kind gnn only
    flux_scale_per_ns: float = Field(0.01, gt=0, allow_inf_nan=False)
    test_fraction: float = Field(0.2, ge=0, lt=1)  # whole designs held out for the metrics (0: the training data)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    experiment: str = "porelab-surrogate"
    registered_model_name: str | None = "porelab-surrogate"
    run_name: str | None = None


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _one_line(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{loc + ': ' if loc else ''}{e['msg']}{more}"


def load_config(path: Path | None) -> TrainConfig:
    if path is None:
        return TrainConfig()
    try:
        doc = read_yaml(path, ValueError, "YAML file", "--config ")
    except ValueError as err:
        _fail(str(err))
    if doc is not None and not isinstance(doc, dict):
        _fail(f"--config {path}: expected a mapping with keys model, graph, test_fraction, ...")
    try:
        return TrainConfig.model_validate(doc or {})
    except ValidationError as err:
        _fail(f"--config {path}: {_one_line(err)}")


def tracking_uri(out: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else an embedded SQLite store in the output directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out.resolve() / 'mlflow.db'}"


def build_model(cfg: TrainConfig):
    """The unfitted model the config describes; ValueError naming the first bad keyword."""
    from porelab.surrogate.graph import GraphSettings
    from porelab.surrogate.params import check_graph_params, check_model_params
    from porelab.surrogate.store import new_model

    params = dict(cfg.model)
    kind = params.pop("kind", "gnn")
    check_model_params(kind, params, "model.")
    params = {"seed": cfg.seed, **params, "flux_scale_per_ns": cfg.flux_scale_per_ns}
    if kind == "gnn":
        check_graph_params(cfg.graph, "graph.")
        params["graph_settings"] = GraphSettings(**cfg.graph).to_dict()
    elif cfg.graph:
        raise ValueError(f"graph: settings of the graph featuriser; model kind {kind} uses descriptors, not graphs")
    return new_model(kind, **params)


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="directory tree of measurement.json files")],
    out: Annotated[Path, typer.Option(help="output directory (model, plots, metrics, MLflow store)")],
    config: Annotated[Path | None, typer.Option(help="YAML: model kind and settings, split, MLflow names")] = None,
):
    """Train a surrogate (GNN ensemble, RF or GP) on DATA; write the model, metrics and plots to OUT; log an
    MLflow run."""
    from porelab.sim.cli import out_path
    from porelab.surrogate.dataset import MeasurementFileError, find_measurements, load_dataset, read_measurement
    from porelab.surrogate.metrics import calibration_plot, evaluate, flux_arrays, icr_arrays, parity_plot
    from porelab.surrogate.store import model_kind, save_model

    out = out_path(out, "--out")
    cfg = load_config(config)
    try:
        model = build_model(cfg)
    except (TypeError, ValueError) as err:
        _fail(f"config: {err}")
    if not data.is_dir():
        _fail(f"DATA {data}: not a directory")
    files = find_measurements(data)
    if not files:
        _fail(f"DATA {data}: no measurement.json below it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _fail(f"--out {out}: {err.strerror or err}")
    try:
        samples = load_dataset(data, model.settings, model.transform, cache_dir=out / "processed")
        measurements = [read_measurement(p) for p in files]
    except MeasurementFileError as err:
        _fail(f"DATA {data}: {err}")
    if samples.n_designs == 0:
        _fail(f"DATA {data}: no successful measurement to learn from")
    train_set, test_set = samples, samples
    if cfg.test_fraction > 0 and samples.n_designs >= 2:
        train_set, test_set = samples.split_designs(cfg.test_fraction, cfg.seed)
    kind = model_kind(model)
    console.print(f"{len(samples)} samples from {samples.n_designs} designs: training a {kind} model on "
                  f"{train_set.n_designs}, reporting on {test_set.n_designs} "
                  f"{'held-out ' if test_set is not train_set else ''}designs")
    t0 = time.perf_counter()
    model.fit(train_set)
    train_s = time.perf_counter() - t0
    pred = model.predict(test_set)
    metrics = evaluate(test_set, pred) | {"train_seconds": train_s, "n_train_designs": train_set.n_designs,
                                          "n_test_designs": test_set.n_designs}
    if kind == "gnn":
        metrics["n_epochs"] = model.n_epochs_
    train_designs = set(train_set.designs)
    training = [m for m in measurements if m.status == "ok" and m.fields and m.design in train_designs]
    save_model(out / "model", model, training, provenance={
        "created_by": "porelab train", "data": str(data.resolve()), "test_fraction": cfg.test_fraction,
        "seed": cfg.seed, "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)
                                      and math.isfinite(v)}})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    y, mu, sd = flux_arrays(test_set, pred)
    parity_plot(y, mu, sd, out / "parity_flux.png", "asinh(J / scale)", "flux, held-out designs")
    li = icr_arrays(test_set, pred)
    parity_plot(*li, out / "parity_log_icr.png", "ln ICR", "ICR, held-out designs")
    calibration_plot({"flux": (y, mu, sd), "ln ICR": li}, out / "calibration.png", "held-out designs")
    from porelab.surrogate.mlflow_quiet import quiet_mlflow

    with quiet_mlflow():  # no MLflow INFO lines, registry prints or progress bars in the command's output
        run_id = _log_mlflow(cfg, model, kind, metrics, out)
    console.print(f"trained in {train_s:.1f} s; flux R² {metrics['flux_r2']:.3f}, "
                  f"ln ICR R² {metrics['log_icr_r2']:.3f}, 95 % coverage {metrics['flux_coverage_95']:.2f}; "
                  f"model in {out / 'model'}, MLflow run {run_id} at {tracking_uri(out)}")


def _log_mlflow(cfg: TrainConfig, model, kind: str, metrics: dict, out: Path) -> str:
    import mlflow

    from porelab.surrogate.serving import log_model
    from porelab.surrogate.store import featuriser

    prev = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri(out))  # it also sets MLFLOW_TRACKING_URI: do not leave it behind
    if prev is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run(run_name=cfg.run_name) as run:
        params = {"model.kind": kind} | {f"model.{k}": v for k, v in model.get_params().items()} | {
            "flux_scale_per_ns": cfg.flux_scale_per_ns, "test_fraction": cfg.test_fraction, "seed": cfg.seed,
            "featuriser": featuriser(model)}
        mlflow.log_params({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and
                            math.isfinite(v)})
        for name in ("metrics.json", "parity_flux.png", "parity_log_icr.png", "calibration.png"):
            mlflow.log_artifact(str(out / name))
        log_model(out / "model", "model", cfg.registered_model_name)
        return run.info.run_id
