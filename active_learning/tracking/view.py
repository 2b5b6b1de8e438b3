"""MLflow as a view of a campaign's ledger (the ledger stays the source of truth and knows nothing of MLflow).

`MlflowView(campaign_dir)` is passed to the campaign driver, which calls `sync(ledger)` after its ledger commits:
like an OpenMM reporter, each call logs whatever the ledger holds that MLflow does not show yet, so calling it
again changes nothing, and a view added later (or pointed at another store) catches up from the ledger alone.
What it logged is kept in its own bookkeeping (bookkeeping.py). Things a killed driver left half-logged are
found by their tags at the view's first sync in a process: a finished run is kept, an unfinished one deleted and
logged again, a registered model version reused, so each thing is in MLflow once.

Tracking URI: MLFLOW_TRACKING_URI when set, else an embedded SQLite file `mlflow.db` in the workspace (the campaign
directory's parent), artifacts under `<workspace>/mlartifacts/` (surrogate.mlflow_store, shared with `porelab
train`). One experiment per campaign, one parent run (study as params), a nested run per iteration (metrics by
step, also on the parent; plots; the model, registered as `porelab-<experiment>`) and a nested run per finished
simulation (its design as drawn as params; its measurement as metrics, each measured value `<name>` with its 95 %
interval `<name>_lo`, `<name>_hi` beside it (no `_hi` when censored): the ledger's targets (ln, in the trial's
orientation; `abs_log_icr` is an ICR goal's objective) and the campaign's reading in the orientation it shows
(campaign.measured; tags `porelab.orientation` and `porelab.on_field`); its pick-time prediction). The alias `champion`
points at the model that predicts best prospectively (tracking/champion.py), moved as the evidence comes in; the
rule behind it is the tag `porelab.champion` on the parent run and on that model version.

Imports on use: mlflow (seconds to import) loads when the view first connects or logs, not with this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
from pathlib import Path

from porelab.active_learning.campaign.directory import STUDY_FILE, load
from porelab.active_learning.campaign.ledger import Ledger, MeasuredRow, Trial
from porelab.active_learning.campaign.measured import measured
from porelab.active_learning.campaign.summary import summarize
from porelab.active_learning.campaign.targets import objective_name
from porelab.active_learning.tracking.bookkeeping import Bookkeeping
from porelab.active_learning.tracking.champion import Picks, champion
from porelab.base.faults import fault_point
from porelab.sim.measurement import Measurement
from porelab.sim.observables import oriented
from porelab.surrogate.mlflow_quiet import quiet_mlflow as quiet  # MLflow's chatter silenced while logging
from porelab.surrogate.mlflow_store import artifact_location, fluent_uri, tracking_uri
from porelab.surrogate.serving import log_model  # the one MLflow model (surrogate/pyfunc.py)

ALIAS = "champion"
UI_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on runs, not the GenAI view


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


def _metrics(values: dict, step: int, skip: set[str] = frozenset()) -> list:
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [Metric(mlflow_key(k), float(v), ts, step) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and mlflow_key(k) not in skip]


def sim_key(design_id: str, version: dict | None = None) -> str:
    """The bookkeeping key of a simulation run: the design id, `+v<n>` for the n-th measurement version (n >= 2)
    of an extended trial (Ledger.versions: each extension's measurement is a run of its own)."""
    return design_id + (f"+v{version['version']}" if version and version["version"] > 1 else "")


def version_row(t: Trial, version: dict) -> MeasuredRow:
    """One measurement version of trial `t` (Ledger.versions) as the ledger's measured row of it."""
    return MeasuredRow(t.design_id, version["json"], version["targets"], version["status"], t.round, t.seq,
                       version["fidelity"], t.fidelity, t.extensions)


class MlflowView:
    """The MLflow view of the campaign in `campaign_dir` (connects at its first sync, under the driver's lock)."""

    def __init__(self, campaign_dir: str | Path):
        self.dir = Path(campaign_dir).resolve()
        self.client = None
        self.logged: set[str] | None = None  # simulation keys shown in MLflow (the bookkeeping's, kept in memory)
        self.event_mark = 0  # the ledger's newest event at the last sync (Ledger.finished_keys)
        self.picks = Picks()  # what the champion is judged on, read again only where the ledger changed

    # --- connection: experiment and parent run --------------------------------------------------
    def _connect(self, ledger: Ledger) -> None:
        from mlflow.tracking import MlflowClient

        self.study = load(self.dir)
        self.uri = tracking_uri(self.dir.parent)
        self.book = Bookkeeping(self.dir, self.uri)
        with _db_lock(self.uri):  # campaigns starting together in one workspace: one creates the tables
            self.client = MlflowClient(self.uri)
            self.experiment_id = self._experiment()
        self.parent_id = self._parent(str(ledger.get("created_at")))
        self.model_name = "porelab-" + re.sub(r"[^A-Za-z0-9_.-]", "-", self.experiment_name)
        self.fresh = True  # the first sync looks up what a killed driver may have half-logged

    def _experiment(self) -> str:
        eid = self.book.get("experiment")
        if eid is not None:
            self.experiment_name = self.client.get_experiment(eid).name
            return eid
        name = self.dir.name
        exp = self.client.get_experiment_by_name(name)
        if exp is not None and exp.tags.get("porelab.campaign_dir") != str(self.dir):
            name = f"{name}-{hashlib.sha256(str(self.dir).encode()).hexdigest()[:6]}"
            exp = self.client.get_experiment_by_name(name)
        if exp is None:
            art = artifact_location(self.uri, self.dir.parent, name)
            eid = self.client.create_experiment(name, artifact_location=art,
                                                tags={"porelab.campaign_dir": str(self.dir),
                                                      "porelab.study": self.study.name, **UI_KIND})
        else:
            eid = exp.experiment_id
        self.experiment_name = name
        self.book.put([("experiment", "", eid)])
        return eid

    def _parent(self, created: str) -> str:
        """The campaign's parent run: the bookkeeping's, else the one a killed driver made for this very campaign
        (tagged with its ledger's creation time: a campaign directory removed and made again is another campaign,
        with a run of its own), else a new one."""
        rid = self.book.get("parent")
        if rid is None:
            found = self.client.search_runs([self.experiment_id], "tags.`porelab.kind` = 'campaign' and "
                                            f"tags.`porelab.created_at` = '{created}'")
            rid = found[0].info.run_id if found else self.client.create_run(
                self.experiment_id, run_name=f"campaign {self.dir.name}",
                tags={"porelab.kind": "campaign", "porelab.study": self.study.name,
                      "porelab.campaign_dir": str(self.dir), "porelab.created_at": created}).info.run_id
            self.book.put([("parent", "", rid)])
        return rid

    # --- the view ----------------------------------------------------------------------------------
    def sync(self, ledger: Ledger) -> None:
        """Log what the ledger holds and MLflow does not show yet: the study, finished simulations, iterations and
        their models, and the final metrics once the campaign finished."""
        with quiet():
            if self.client is None:
                self._connect(ledger)
                if not ledger.get("finished"):
                    self.client.update_run(self.parent_id, status="RUNNING")
            if self.book.get("study") is None:
                self._log_study()
            if self.logged is None:
                self.logged = self.book.keys("simulation")
            finished, mark = ledger.finished_keys(self.event_mark)  # only what moved since the last sync
            for did, extensions in finished:
                if did in self.logged and not extensions:
                    continue
                t = ledger.trial(did)
                for v in ledger.versions(did) if extensions else [None]:  # an extended trial: each version
                    if sim_key(did, v) not in self.logged:
                        self._log_simulation(ledger, t, v)
            self.event_mark = mark  # once all of them are logged
            crown = self.fresh or bool(ledger.get("finished"))  # and after each new iteration: see _crown
            for it in ledger.iterations(skip={int(s) for s in self.book.keys("iteration")}):
                self._log_iteration(it, ledger.model(it["model_version"]))
                crown = True
            if crown:
                self._crown(ledger)
            final = ledger.get("final_step")
            if ledger.get("finished") and final is not None and self.book.get("finished", str(final)) is None:
                self._log_finish(ledger, final)
        self.fresh = False

    def close(self, ledger: Ledger) -> None:
        """The driver stops: an unfinished campaign's parent run is marked KILLED (paused; resume re-opens it)."""
        if self.client is not None and not ledger.get("finished"):
            with quiet():
                self.client.set_terminated(self.parent_id, "KILLED")

    # --- what it logs --------------------------------------------------------------------------------
    def _log_study(self) -> None:
        from mlflow.entities import Param

        flat: dict = {}
        flatten("", self.study.model_dump(mode="json"), flat)
        items = [Param(mlflow_key(k)[:250], v[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.parent_id, params=items[i:i + 100])
        self.client.log_artifact(self.parent_id, str(self.dir / STUDY_FILE))
        self.book.put([("study", "", "1")])

    def _child(self, name: str, tags: dict) -> str:
        return self.client.create_run(self.experiment_id, run_name=name,
                                      tags={"mlflow.parentRunId": self.parent_id, **tags}).info.run_id

    def _find(self, key: str, value: str) -> tuple[str | None, int]:
        """(the finished run tagged key=value, how many unfinished ones were deleted), first sync only."""
        if not self.fresh:
            return None, 0
        found, deleted = None, 0
        for r in self.client.search_runs([self.experiment_id], f"tags.`{key}` = '{value}' and "
                                         f"tags.`mlflow.parentRunId` = '{self.parent_id}'"):
            if r.info.status in ("FINISHED", "FAILED") and found is None:
                found = r.info.run_id
            else:
                self.client.delete_run(r.info.run_id)
                deleted += 1
        return found, deleted

    def _log_simulation(self, ledger: Ledger, t: Trial, version: dict | None = None) -> None:
        """A nested run for one finished trial (`version`: one measurement version of an extended trial):
        design/conditions as params, results as metrics."""
        from mlflow.entities import Param

        key = sim_key(t.design_id, version)
        row = version_row(t, version) if version is not None else ledger.measurement(t.design_id)
        m = Measurement.model_validate_json(row.json) if row else None
        ext = {"porelab.sim_key": key, **({"porelab.production_ps": f"{m.run.production_ps:g}"} if m.run else {})} \
            if version is not None else {}
        rid, _ = self._find(*(("porelab.sim_key", key) if key != t.design_id else ("porelab.design_id", t.design_id)))
        if rid is None:
            values = dict(row.targets or {}) if m is not None and m.status == "ok" else {}
            read = measured(row, self.study.goal) if values else None
            shown = {"porelab.on_field": read.on_field,
                     "porelab.orientation": "mirror image" if read.mirrored else "as drawn"} if read else {}
            name = f"sim {t.design_id}" + (f" v{version['version']}" if key != t.design_id else "")
            rid = self._child(name, {
                "porelab.kind": "simulation", "porelab.design_id": t.design_id, "porelab.status": t.status,
                "porelab.round": str(t.round), **ext, **shown,
                **({"porelab.error": t.error[:4000]} if t.error else {})})
            fault_point("view.sim_run")  # a half-logged simulation run
            params: dict = {"source": t.source, "attempts": str(t.attempts)}
            flatten("design", t.design, params)
            flatten("conditions", t.conditions, params)
            if read is not None:
                values |= _measured_values(m, read)
            if t.busy_s is not None:
                values["worker_busy_s"] = t.busy_s
            values |= {f"predicted_{k}": v for k, v in (t.prediction or {}).items()}
            self.client.log_batch(rid, metrics=_metrics(values, 0),  # one transaction with the params
                                  params=[Param(mlflow_key(k)[:250], v[:6000]) for k, v in params.items()])
            ok = t.status == "completed" and (version is None or version["status"] == "ok")
            self.client.set_terminated(rid, "FINISHED" if ok else "FAILED")
            fault_point("view.sim_logged")  # in MLflow, not yet in the bookkeeping
        self.book.put([("simulation", key, rid)])
        self.logged.add(key)

    def _log_iteration(self, it: dict, model: dict | None) -> None:
        """Nested run `iteration <step>`: metrics (also on the parent, by step), plots, and its model."""
        step = it["step"]
        rid, deleted = self._find("porelab.iteration", str(step))
        rows = []
        mdir = self.dir / model["path"] if model is not None else None
        if rid is None:
            rid = self._child(f"iteration {step}", {"porelab.kind": "iteration", "porelab.iteration": str(step)})
            self.client.log_batch(rid, metrics=_metrics(it["metrics"], step))
            fault_point("view.iteration")  # metrics on the iteration run, not yet on the parent
            skip = self._logged_at(self.parent_id, step) if deleted else set()  # some, by a killed driver
            if ms := _metrics(it["metrics"], step, skip):
                self.client.log_batch(self.parent_id, metrics=ms)
            pdir = self.dir / "plots" / f"step_{step:03d}"
            for p in sorted(pdir.glob("*.png")) if pdir.exists() else []:
                self.client.log_artifact(rid, str(p), "plots")
            if mdir is not None and mdir.exists():
                rows.append(("model", str(model["version"]), self._log_model(rid, step, mdir)))
            fault_point("view.model_registered")  # the model registered, the run not finished
            self.client.set_terminated(rid, "FINISHED")
            fault_point("view.iteration_logged")  # in MLflow, not yet in the bookkeeping
        elif mdir is not None and mdir.exists():  # logged in full by a killed driver: find its model version
            rows.append(("model", str(model["version"]), self._log_model(rid, step, mdir)))
        self.book.put([("iteration", str(step), rid), *rows])

    def _logged_at(self, run_id: str, step: int) -> set[str]:
        """Metric keys already logged on a run at `step`."""
        keys = self.client.get_run(run_id).data.metrics
        return {k for k in keys if any(m.step == step for m in self.client.get_metric_history(run_id, k))}

    def _log_model(self, run_id: str, step: int, model_dir: Path) -> str:
        """Register the step's model (once: a version tagged with this step and campaign is reused); returns the
        registry version."""
        this_step = f"name='{self.model_name}' and tags.`porelab.iteration` = '{step}'"  # not every version read
        for mv in self.client.search_model_versions(this_step):
            if mv.tags.get("porelab.campaign_dir") == str(self.dir):
                return str(mv.version)
        import mlflow

        with fluent_uri(self.uri), mlflow.start_run(run_id=run_id, nested=True):
            info = log_model(model_dir, name="surrogate")
            mv = mlflow.register_model(info.model_uri, self.model_name,
                                       tags={"porelab.iteration": str(step), "porelab.campaign_dir": str(self.dir)})
        return str(mv.version)

    def _crown(self, ledger: Ledger) -> None:
        """Point the `champion` alias at the campaign's champion model (tracking/champion.py) when it changed; the
        rule that chose it as a tag on the parent run and on that model version. Judged when the view starts, after
        each new iteration (its round's picks have finished) and once the campaign has finished, not after every
        result (which would read the whole ledger each time)."""
        c = champion(ledger, objective_name(self.study.goal), picks=self.picks)
        version = self.book.get("model", str(c.version)) if c is not None else None
        if version is None:  # no model yet, or the champion's model directory was not there to register
            return
        if self.book.get("champion") != version:
            self.client.set_registered_model_alias(self.model_name, ALIAS, version)
        if self.book.get("champion_rule") != c.rule or self.book.get("champion") != version:
            self.client.set_model_version_tag(self.model_name, version, "porelab.champion", c.rule)
            self.client.set_tag(self.parent_id, "porelab.champion", f"version {version}: {c.rule}")
            self.book.put([("champion", "", version), ("champion_rule", "", c.rule)])

    def _log_finish(self, ledger: Ledger, final_step: int) -> None:
        """The summary as final_* metrics on the parent (at the final step), the stop reason as a tag; closed."""
        s = summarize(ledger, self.study)
        values = {f"final_{k}": s.get(k) for k in ("best_objective", "best_objective_lo", "best_objective_hi",
                                                   "completed", "failed", "abandoned")}
        skip = self._logged_at(self.parent_id, final_step) if self.fresh else set()
        fault_point("view.finish")  # the parent run not yet closed
        self.client.set_tag(self.parent_id, "porelab.stopped", ledger.get("finished"))
        if ms := _metrics(values, final_step, skip):
            self.client.log_batch(self.parent_id, metrics=ms)
        self.client.set_terminated(self.parent_id, "FINISHED")
        self.book.put([("finished", str(final_step), "1")])


def _measured_values(m: Measurement, read) -> dict:
    """A measurement's numbers for MLflow, each with its 95 % interval beside it, in the orientation the campaign
    shows (campaign.measured: `oriented` to the mirror image when `read.mirrored`): the current at every field
    (`current_nA_E<E>`, `_lo`, `_hi`), the ICR at every |E| (`icr_E<E>`, `_lo`, `_hi` where known), and the
    campaign's reading in natural units: icr, on_current_nA, objective (and selectivity)."""
    if read.mirrored:
        m = oriented(m, read.design, read.conditions)
    out: dict = {}
    for f in m.fields:
        key = f"current_nA_E{f.field_V_per_nm:g}"
        out |= {key: f.current_nA, f"{key}_lo": f.current_ci_nA[0], f"{key}_hi": f.current_ci_nA[1]}
    for r in m.icr:
        key = f"icr_E{r.field_abs_V_per_nm:g}"
        out |= {key: r.icr, f"{key}_lo": r.icr_ci[0], f"{key}_hi": r.icr_ci[1]}
    return out | {k: v for k, v in read.as_dict().items() if k.startswith(("icr", "on_current", "objective",
                                                                            "selectivity"))}
