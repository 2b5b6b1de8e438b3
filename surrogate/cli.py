"""Floor-2 command of `porelab`: train a surrogate on a directory of measurements and log it to MLflow.

    porelab train DATA --out DIR [--config YAML]

DATA is a directory tree of measurement.json files. DIR receives model/ (the model directory of
surrogate.store: model.json, the training measurements, the GNN's weights), metrics.json, parity and
calibration PNGs and processed/ (the featurised-data cache). The run (params, metrics, plots, model) is logged to
the workspace's MLflow store (surrogate.mlflow_store: `<workspace>/mlflow.db`, the one campaigns use, unless
MLFLOW_TRACKING_URI is set) and the model registered under `registered_model_name` with aliases
(surrogate.aliases): `latest` always, and `champion` when the registered model has no champion yet or when the new
version's held-out ln ICR NLL (metrics.json `log_icr_nll`) is lower than the current champion's; the printed line
says which aliases the version got and why. `porelab design --surrogate DIR/model` (or `NAME@champion`) and
campaigns load the model. A config (every key optional; defaults shown):

    model: {kind: gnn, n_members: 5, hidden: 16, n_conv: 2, max_epochs: 300, patience: 300, symmetry: exact}
           # kind gnn: DeepEnsemble keywords; rf: RFBaseline's (n_estimators, ...); gp: GPBaseline's
    graph: {shell_nm: 0.0, edge_cutoff_nm: 0.35, n_rbf: 6}   # GraphSettings (kind gnn only)
    flux_scale_per_ns: null     # null: suited to the data (training_set.flux_scale_for; MD: 1 / production)
    test_fraction: 0.2          # whole designs held out for metrics.json and the plots
    seed: 0
    experiment: porelab-surrogate
    registered_model_name: porelab-surrogate   # null: log the model without registering it

Imports on use: commands import their floor on use so that `porelab --help` starts in a fraction of a second.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

from porelab.base.console import out_path
from porelab.base.workspace import workspace
from porelab.base.yaml_file import read_yaml
from porelab.surrogate.aliases import heldout_nll, set_aliases
from porelab.surrogate.mlflow_quiet import quiet_mlflow
from porelab.surrogate.mlflow_store import artifact_location, fluent_uri, tracking_uri
from porelab.surrogate.params import check_graph_params, check_model_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help="porelab surrogate commands.")
console = Console()


class TrainConfig(BaseModel):
    """The YAML given to `porelab train --config` (every key optional)."""

    model_config = ConfigDict(extra="forbid")
    model: dict = {}  # kind (gnn, rf, gp) and that model's keywords (n_members, hidden, max_epochs, symmetry, ...)
    graph: dict = {}  # GraphSettings keywords (shell_nm, edge_cutoff_nm, n_rbf), kind gnn only
    flux_scale_per_ns: float | None = Field(None, gt=0, allow_inf_nan=False)  # None: flux_scale_for(the data)
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


def build_model(cfg: TrainConfig, flux_scale_per_ns: float | None = None):
    """The unfitted model the config describes (its flux scale, or `flux_scale_per_ns` when the config sets none,
    or FluxTransform's default); ValueError naming the first bad keyword."""
    from porelab.surrogate.factory import new_model
    from porelab.surrogate.graph import GraphSettings

    params = dict(cfg.model)
    kind = params.pop("kind", "gnn")
    check_model_params(kind, params, "model.")
    scale = cfg.flux_scale_per_ns or flux_scale_per_ns
    params = {"seed": cfg.seed, **params, **({"flux_scale_per_ns": scale} if scale else {})}
    if kind == "gnn":
        check_graph_params(cfg.graph, "graph.")
        params["graph_settings"] = GraphSettings(**cfg.graph).to_dict()
    elif cfg.graph:
        raise ValueError(f"graph: settings of the graph featuriser; model kind {kind} uses descriptors, not graphs")
    return new_model(kind, **params)


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="output directory (model, plots, metrics, MLflow store)")],
    data: Annotated[Path | None, typer.Argument(
        metavar="DATA", help="directory tree of measurement.json files (default: the workspace's measurement store, "
                             "every MD result kept there)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML: model kind and settings, split, MLflow names")] = None,
):
    """Train a surrogate (GNN ensemble, RF or GP) on DATA; write the model, metrics and plots to OUT; log an
    MLflow run."""
    from porelab.surrogate.dataset import MeasurementFileError, find_measurements, load_dataset, read_measurement
    from porelab.surrogate.factory import model_kind
    from porelab.surrogate.metrics import calibration_plot, evaluate, flux_arrays, icr_arrays, parity_plot
    from porelab.surrogate.store import save_model
    from porelab.surrogate.training_set import flux_scale_for

    out = out_path(out, "--out")
    if data is None:
        from porelab.sim.store import default_store

        data = default_store()
        if data is None:
            _fail("DATA: none given and the measurement store is off (PORELAB_STORE=off)")
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
        measurements = [read_measurement(p) for p in files]
        if cfg.flux_scale_per_ns is None:  # the scale that suits these labels
            model = build_model(cfg, flux_scale_for(measurements))
        samples = load_dataset(data, model.settings, model.transform, cache_dir=out / "processed")
    except MeasurementFileError as err:
        _fail(f"DATA {data}: {err}")
    if samples.n_designs == 0:
        _fail(f"DATA {data}: no successful measurement to learn from")
    train_set, test_set = samples, samples
    if cfg.test_fraction > 0 and samples.n_designs >= 2:
        train_set, test_set = samples.split_designs(cfg.test_fraction, cfg.seed)
    held_out = test_set is not train_set
    kind = model_kind(model)
    console.print(f"{len(samples)} samples from {samples.n_designs} designs: training a {kind} model on "
                  f"{train_set.n_designs}, reporting on {test_set.n_designs} "
                  f"{'held-out ' if held_out else ''}designs")
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
    ws = workspace()
    uri = tracking_uri(ws)
    with quiet_mlflow():  # no MLflow INFO lines, registry prints or progress bars in the command's output
        run_id, registered = _log_mlflow(cfg, model, kind, metrics, out, (ws, uri), held_out)
    console.print(f"trained in {train_s:.1f} s; flux R² {metrics['flux_r2']:.3f}, "
                  f"ln ICR R² {metrics['log_icr_r2']:.3f}, 95 % coverage {metrics['flux_coverage_95']:.2f}; "
                  f"model in {out / 'model'}, MLflow run {run_id} at {uri}", highlight=False, soft_wrap=True)
    console.print(f"registered {registered}" if registered else "not registered (registered_model_name: null)",
                  highlight=False, soft_wrap=True)


def _log_mlflow(cfg: TrainConfig, model, kind: str, metrics: dict, out: Path, store: tuple[Path, str],
                held_out: bool) -> tuple[str, str | None]:
    """Log the run to the store (workspace, tracking URI), register the model and set its aliases; (run id, the
    aliases line, None when not registered)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from porelab.surrogate.factory import featuriser
    from porelab.surrogate.serving import log_model

    ws, uri = store
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(cfg.experiment)
    if exp is not None and exp.lifecycle_stage == "deleted":
        _fail(f"experiment {cfg.experiment!r} is deleted in {uri}: restore it or set another `experiment`")
    eid = exp.experiment_id if exp else client.create_experiment(
        cfg.experiment, artifact_location=artifact_location(uri, ws, cfg.experiment))
    with fluent_uri(uri), mlflow.start_run(experiment_id=eid, run_name=cfg.run_name) as run:
        params = {"model.kind": kind} | {f"model.{k}": v for k, v in model.get_params().items()} | {
            "flux_scale_per_ns": model.transform.scale_per_ns, "test_fraction": cfg.test_fraction, "seed": cfg.seed,
            "featuriser": featuriser(model)}
        mlflow.log_params({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and
                            math.isfinite(v)})
        for name in ("metrics.json", "parity_flux.png", "parity_log_icr.png", "calibration.png"):
            mlflow.log_artifact(str(out / name))
        info = log_model(out / "model", "model", cfg.registered_model_name)
    if cfg.registered_model_name is None:
        return run.info.run_id, None
    return run.info.run_id, set_aliases(client, cfg.registered_model_name, info.registered_model_version,
                                        heldout_nll(metrics, held_out))
