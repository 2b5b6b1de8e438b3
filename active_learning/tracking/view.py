"""MLflow, the campaign's view (the ledger stays the source of truth). Only the driver calls this.

Tracking URI: MLFLOW_TRACKING_URI when set, else an embedded SQLite file `mlflow.db` in the workspace (the
campaign directory's parent), artifacts under `<workspace>/mlartifacts/`. One experiment per campaign; one
parent run whose id is kept in the ledger and reused on resume; a nested run per iteration (metrics by step,
plots, the model, registered as `porelab-<experiment>` with alias `champion` = the latest model) and a nested
run per simulation (its design as params, its measurement as metrics). Every write is keyed so that a
resumed driver does not log the same thing twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import time
import warnings
from pathlib import Path

from porelab.active_learning.campaign.ledger import Ledger
from porelab.sim.faults import fault_point

ALIAS = "champion"
UI_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on runs, not the GenAI view


def workspace_uri(workspace: str | Path) -> str:
    return f"sqlite:///{Path(workspace).resolve() / 'mlflow.db'}"


def tracking_uri(workspace: str | Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or workspace_uri(workspace)


@contextlib.contextmanager
def _db_lock(uri: str):
    """An exclusive flock beside a sqlite:/// MLflow store while held (nothing for other stores)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///"):])
    fd = os.open(db.with_name(f".{db.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def mlflow_key(name: str) -> str:
    """A param/metric name MLflow accepts: K+ -> K_plus, SO4^2- -> SO4_2-."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name.replace("+", "_plus"))


def flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list | tuple):
        out[prefix] = ",".join(map(str, value)) if value else "[]"
    else:
        out[prefix] = str(value)


class Tracker:
    """MLflow logging for one campaign directory."""

    def __init__(self, campaign_dir: str | Path, ledger: Ledger, study_name: str):
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
        import mlflow
        from mlflow.tracking import MlflowClient

        self.dir = Path(campaign_dir).resolve()
        self.ledger, self.study_name = ledger, study_name
        self.uri = tracking_uri(self.dir.parent)
        prev = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.uri)  # it also sets MLFLOW_TRACKING_URI: restore it, else the next campaign
        if prev is None:                   # in this process would log to this campaign's store
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        with _db_lock(self.uri):  # campaigns starting together in one workspace: one creates the tables
            self.mlflow, self.client = mlflow, MlflowClient(self.uri)
            self.experiment_id = self._experiment()
        self.parent_id = self._parent()
        self.model_name = "porelab-" + re.sub(r"[^A-Za-z0-9_.-]", "-", self.experiment_name)

    # --- experiment and parent run ------------------------------------------------------------------
    def _experiment(self) -> str:
        eid = self.ledger.get("mlflow_experiment_id")
        if eid is not None and self.ledger.get("mlflow_uri") == self.uri:
            exp = self.client.get_experiment(eid)
            self.experiment_name = exp.name
            return eid
        name = self.dir.name
        exp = self.client.get_experiment_by_name(name)
        if exp is not None and exp.tags.get("porelab.campaign_dir") != str(self.dir):
            name = f"{name}-{hashlib.sha256(str(self.dir).encode()).hexdigest()[:6]}"
            exp = self.client.get_experiment_by_name(name)
        if exp is None:
            art = (self.dir.parent / "mlartifacts" / name).as_uri() if self.uri.startswith("sqlite:///") else None
            eid = self.client.create_experiment(name, artifact_location=art,
                                                tags={"porelab.campaign_dir": str(self.dir),
                                                      "porelab.study": self.study_name, **UI_KIND})
        else:
            eid = exp.experiment_id
        self.experiment_name = name
        self.ledger.set("mlflow_experiment_id", eid)
        self.ledger.set("mlflow_uri", self.uri)
        return eid

    def _parent(self) -> str:
        rid = self.ledger.get("mlflow_parent_run_id")
        if rid is not None:
            self.client.update_run(rid, status="RUNNING")
            return rid
        run = self.client.create_run(self.experiment_id, run_name=f"campaign {self.dir.name}",
                                     tags={"porelab.kind": "campaign", "porelab.study": self.study_name,
                                           "porelab.campaign_dir": str(self.dir)})
        self.ledger.set("mlflow_parent_run_id", run.info.run_id)
        return run.info.run_id

    def log_study(self, params: dict, study_file: Path) -> None:
        if self.ledger.get("mlflow_study_logged"):
            return
        flat: dict = {}
        flatten("", params, flat)
        self._log_params(self.parent_id, flat)
        self.client.log_artifact(self.parent_id, str(study_file))
        self.ledger.set("mlflow_study_logged", True)

    def _log_params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(mlflow_key(k)[:250], v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def _child(self, name: str, tags: dict) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={"mlflow.parentRunId": self.parent_id, **tags})
        return run.info.run_id

    def _find(self, key: str, value: str) -> tuple[str | None, int]:
        """(the finished run tagged key=value, how many unfinished ones were deleted: half-logged by a killed
        driver, they are logged again)."""
        found, deleted = None, 0
        for r in self.client.search_runs([self.experiment_id], f"tags.`{key}` = '{value}'"):
            if r.info.status in ("FINISHED", "FAILED") and found is None:
                found = r.info.run_id
            else:
                self.client.delete_run(r.info.run_id)
                deleted += 1
        return found, deleted

    # --- simulations ----------------------------------------------------------------------------------
    def log_simulation(self, trial, measurement, targets: dict | None, status: str, error: str | None,
                       search_first: bool = False) -> str:
        """A nested run for one finished simulation: design/conditions as params, results as metrics."""
        from mlflow.entities import Metric

        rid = self._find("porelab.design_id", trial.design_id)[0] if search_first else None
        if rid is not None:
            return rid
        rid = self._child(f"sim {trial.design_id}", {"porelab.kind": "simulation",
                                                       "porelab.design_id": trial.design_id,
                                                       "porelab.status": status, "porelab.round": str(trial.round),
                                                       **({"porelab.error": error[:4000]} if error else {})})
        params: dict = {}
        flatten("design", trial.design, params)
        flatten("conditions", trial.conditions, params)
        params.update({"source": trial.source, "attempts": str(trial.attempts)})
        self._log_params(rid, params)
        fault_point("tracking.sim_run")  # a half-logged simulation run
        ts = int(time.time() * 1000)
        metrics = dict(targets or {})
        if measurement is not None and measurement.status == "ok":
            for f in measurement.fields:
                metrics[f"current_nA_E{f.field_V_per_nm:g}"] = f.current_nA
            for r in measurement.icr:
                metrics[f"icr_E{r.field_abs_V_per_nm:g}"] = r.icr
        if trial.busy_s is not None:
            metrics["worker_busy_s"] = trial.busy_s
        if trial.prediction:
            metrics.update({f"predicted_{k}": v for k, v in trial.prediction.items()})
        self.client.log_batch(rid, metrics=[Metric(mlflow_key(k), float(v), ts, 0) for k, v in metrics.items()])
        self.client.set_terminated(rid, "FINISHED" if status == "completed" else "FAILED")
        return rid

    # --- iterations -----------------------------------------------------------------------------------
    def log_iteration(self, step: int, run_id: str | None, metrics: dict, plots: list[Path],
                      model_dir: Path | None) -> str:
        """Nested run `iteration <step>` (reused when run_id is given); metrics also on the parent by step."""
        from mlflow.entities import Metric

        on_parent = None
        if run_id is None:
            run_id, deleted = self._find("porelab.iteration", str(step))
            if run_id is not None:
                return run_id  # logged in full by a driver killed before it told the ledger
            run_id = self._child(f"iteration {step}", {"porelab.kind": "iteration", "porelab.iteration": str(step)})
            if deleted:  # a killed driver may have logged some of this step's metrics on the parent already
                on_parent = self._logged_at(self.parent_id, step)
        ts = int(time.time() * 1000)
        ms = [Metric(mlflow_key(k), float(v), ts, step) for k, v in metrics.items()
              if isinstance(v, int | float) and v is not None]
        if ms:
            self.client.log_batch(run_id, metrics=ms)
            fault_point("tracking.iteration")  # metrics on the iteration run, not yet on the parent
            ms = [m for m in ms if on_parent is None or m.key not in on_parent]
            if ms:
                self.client.log_batch(self.parent_id, metrics=ms)
        for p in plots:
            self.client.log_artifact(run_id, str(p), "plots")
        if model_dir is not None:
            self._log_model(run_id, step, model_dir)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _logged_at(self, run_id: str, step: int) -> set[str]:
        """Metric keys already logged on a run at `step` (a killed driver may have logged some)."""
        keys = self.client.get_run(run_id).data.metrics
        return {k for k in keys if any(m.step == step for m in self.client.get_metric_history(run_id, k))}

    def _log_model(self, run_id: str, step: int, model_dir: Path) -> None:
        for mv in self.client.search_model_versions(f"name='{self.model_name}'"):
            if mv.tags.get("porelab.iteration") == str(step) and mv.tags.get("porelab.campaign_dir") == str(self.dir):
                self.client.set_registered_model_alias(self.model_name, ALIAS, mv.version)
                return  # registered by a driver killed before it told the ledger
        code = Path(__file__).with_name("mlflow_model.py")
        with self.mlflow.start_run(run_id=run_id, nested=True), warnings.catch_warnings(), \
                contextlib.redirect_stderr(io.StringIO()):  # MLflow prints registry chatter to stderr
            warnings.simplefilter("ignore")
            info = self.mlflow.pyfunc.log_model(name="surrogate", python_model=str(code),
                                                artifacts={"model": str(model_dir)},
                                                pip_requirements=["porelab"])
            mv = self.mlflow.register_model(info.model_uri, self.model_name,
                                            tags={"porelab.iteration": str(step),
                                                  "porelab.campaign_dir": str(self.dir)})
        self.client.set_registered_model_alias(self.model_name, ALIAS, mv.version)

    def finish(self, reason: str, summary: dict | None) -> None:
        """Close the parent run (FINISHED), logging the summary as final_* metrics unless it is None."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        fault_point("tracking.finish")
        self.client.set_tag(self.parent_id, "porelab.stopped", reason)
        if summary:
            self.client.log_batch(self.parent_id, metrics=[Metric(f"final_{k}", float(v), ts, 0)
                                                           for k, v in summary.items() if v is not None])
        self.client.set_terminated(self.parent_id, "FINISHED")

    def pause(self) -> None:
        self.client.set_terminated(self.parent_id, "KILLED")
