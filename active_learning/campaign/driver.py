"""The campaign driver: initial design -> run -> train a fresh model -> acquire -> run ... until the budget,
the wall-clock limit or the target is reached; resumable exactly from the ledger.

Campaign directory: study.yaml (the validated study, frozen at creation), ledger.sqlite (source of truth),
.lock, runs/<design_id>/ (each simulation's files and measurement.json), models/step_NNN/, plots/step_NNN/.
MLflow lives beside it in the workspace (the directory's parent), see tracking.py.

Rounds and iterations: round 0 is the initial space-filling design (the first `budget.initial` points of the
seeded pool); iteration k >= 1 trains on every finished trial of rounds <= k - 1 - lag and picks round k.
refill `batch` (lag 0) waits for the whole previous round; refill `async` (lag 1) picks round k while round
k-1 still runs, so a free worker gets the next pick at once. Either way the training set of an iteration
is fixed by the rounds, not by the order results arrive, so the same seed and study give the same picks.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from porelab.active_learning.campaign import plots
from porelab.active_learning.campaign.acquisition import Prediction, resolve_acquisition, select_batch
from porelab.active_learning.campaign.executors import Task, TaskResult, make_executor
from porelab.active_learning.campaign.ledger import FINAL, CampaignLock, Ledger, Trial
from porelab.active_learning.campaign.model import CampaignModel, ModelError
from porelab.active_learning.campaign.oracles import make_oracle
from porelab.active_learning.campaign.space import Candidate
from porelab.active_learning.campaign.study import Study, parse_study
from porelab.active_learning.campaign.targets import InvalidMeasurement, objective_name, target_names, targets
from porelab.sim.faults import fault_point
from porelab.sim.measurement import Measurement, atomic_write_bytes, atomic_write_text, is_temp
from porelab.sim.yaml_file import read_yaml

STUDY_FILE = "study.yaml"
LEDGER_FILE = "ledger.sqlite"


class CampaignError(RuntimeError):
    """A campaign that cannot be created, resumed or run; the message says why."""


def create(study: Study, directory: str | Path, exist_ok: bool = False) -> Path:
    """Make a new campaign directory holding the frozen study and an empty ledger. With exist_ok, a directory
    that already holds a campaign of the very same study is accepted as it is (to be resumed)."""
    d = Path(directory)
    if (d / LEDGER_FILE).exists() or (d / STUDY_FILE).exists():
        if exist_ok and (d / STUDY_FILE).exists() and load(d).digest() == study.digest():
            return d
        raise CampaignError(f"{d} already holds a campaign{' of another study' if exist_ok else ''}; continue it "
                            f"with `porelab campaign resume {d}` or choose another --dir")
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / STUDY_FILE, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    except OSError as err:
        raise CampaignError(f"cannot create the campaign directory {d}: {err.strerror or err}") from None
    ledger = Ledger(d / LEDGER_FILE)
    ledger.set("study_digest", study.digest())
    ledger.set("created_at", time.time())
    ledger.close()
    return d


def load(directory: str | Path) -> Study:
    d = Path(directory)
    f = d / STUDY_FILE
    if not f.exists() or not (d / LEDGER_FILE).exists():
        raise CampaignError(f"{d} is not a campaign directory (no {STUDY_FILE} and {LEDGER_FILE})")
    return parse_study(read_yaml(f, CampaignError, "study YAML"), str(f))


def _sha256_dir(d: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(d.rglob("*")):
        if f.is_file() and not is_temp(f):
            h.update(f.relative_to(d).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


class Campaign:
    """Drive (or resume) the campaign in `directory`. `log` receives one-line progress messages."""

    def __init__(self, directory: str | Path, log=print, tracking: bool = True,
                 budget: int | None = None, wall_clock_min: float | None = None):
        self.dir = Path(directory)
        self.study = load(self.dir)
        self.log, self.tracking = log, tracking
        self.overrides = {"budget": budget, "wall_clock_min": wall_clock_min}
        self.lag = 1 if self.study.executor.refill == "async" else 0
        self.objective = objective_name(self.study.goal)
        self.target_names = target_names(self.study.goal)
        self.sign = 1.0 if self.study.goal.maximize else -1.0

    # --- set-up -----------------------------------------------------------------------------------
    def _open(self) -> None:
        self.lock = CampaignLock(self.dir).acquire()
        self.ledger = Ledger(self.dir / LEDGER_FILE)
        if self.ledger.get("study_digest") != self.study.digest():
            raise CampaignError(f"{self.dir / STUDY_FILE} was changed after the campaign started; restore it")
        ov = {**self.ledger.get("overrides", {}), **{k: v for k, v in self.overrides.items() if v is not None}}
        if ov != self.ledger.get("overrides", {}):  # a larger budget or time limit re-opens a finished campaign
            self.ledger.set("overrides", ov)
            self.ledger.set("finished", None)
            self.ledger.set("final_step", None)
            self.ledger.set("mlflow_finished", None)
        self.budget = int(ov.get("budget") or self.study.budget.simulations)
        self.wall_clock_s = 60 * (ov.get("wall_clock_min") or self.study.budget.wall_clock_min or math.inf)
        o = self.study.oracle
        self.oracle_spec = {"kind": o.kind, "settings": o.settings, "path": o.path}
        make_oracle(o.kind, o.settings, o.path)  # fail early (bad user path/class/settings) in the driver
        space = self.study.design_space()
        self.pool = space.grid() if self.study.acquisition.kind == "grid" else \
            space.sample(self.study.acquisition.pool_size, self.study.seed)
        self.tracker = None
        if self.tracking:
            from porelab.active_learning.tracking.view import Tracker

            self.tracker = Tracker(self.dir, self.ledger, self.study.name)
            self.tracker.log_study(self.study.model_dump(mode="json"), self.dir / STUDY_FILE)

    def _close(self) -> None:
        self.ledger.close()
        self.lock.release()

    # --- state ------------------------------------------------------------------------------------
    def _run_dir(self, design_id: str) -> Path:
        return self.dir / "runs" / design_id

    def _train_round(self, step: int) -> int:
        return max(0, step - 1 - self.lag)

    def _best(self) -> tuple[float | None, dict | None]:
        """Best observed objective (natural units, the goal's direction) and its targets + id."""
        best, who = None, None
        for m in self.ledger.measurements(ok_only=True):
            v = m["targets"][self.objective]
            if best is None or self.sign * v > self.sign * best:
                best, who = v, {**m["targets"], "design_id": m["design_id"]}
        return (math.exp(best) if best is not None else None), who

    def _stop_reason(self) -> str | None:
        """Why no new simulation may start (None: go on)."""
        goal = self.study.goal
        if goal.target is not None:
            best, _ = self._best()
            if best is not None and self.sign * best >= self.sign * goal.target:
                return "target"
        if self._elapsed() >= self.wall_clock_s:
            return "wall_clock"
        return None

    def _elapsed(self) -> float:
        return self.ledger.get("driver_seconds", 0.0) + (time.monotonic() - self._t_mark)

    def _bank_time(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._t_mark < 5.0:
            return
        self.ledger.set("driver_seconds", self.ledger.get("driver_seconds", 0.0) + (now - self._t_mark))
        self._t_mark = now

    # --- resume -----------------------------------------------------------------------------------
    def _recover(self) -> list[TaskResult]:
        """Trials left running by a dead driver: a saved measurement is taken as the result, the rest
        go back to candidate (MD resumes from its run directory's checkpoints)."""
        found = []
        for t in self.ledger.trials("running"):
            saved = self._run_dir(t.design_id) / "measurement.json"
            m = None
            if saved.exists():
                try:
                    m = Measurement.load(saved)
                except (ValueError, OSError):
                    m = None
            if m is not None and m.design_id == t.design_id:
                found.append(TaskResult(t.design_id, t.attempts, m.to_json(), None, 0.0, "recovered", True))
            else:
                self.ledger.transition(t.design_id, "candidate", "requeued: the driver stopped while it ran")
        return found

    def _catch_up_tracking(self) -> None:
        """Log to MLflow what the ledger holds but a killed driver had not logged yet."""
        if self.tracker is None:
            return
        for t in self.ledger.trials(tuple(FINAL)):
            if t.mlflow_run_id is None:
                self._log_sim(t, search_first=True)
        for it in self.ledger.iterations():
            if not it["logged"]:
                self._log_iteration(it["step"], it["mlflow_run_id"], it["metrics"], it["model_version"])

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run until a stop condition (budget, wall clock, target, pool exhausted); returns the summary."""
        self._open()
        self._t_mark = time.monotonic()
        try:
            if self.ledger.get("finished"):
                self.log(f"campaign already finished ({self.ledger.get('finished')}); nothing to do")
                self._catch_up_tracking()  # a driver killed after the finish may not have closed MLflow
                self._finish_tracking(self.ledger.get("finished"))
                return self.summary()
            recovered = self._recover()
            self._catch_up_tracking()
            if not self.ledger.iterations() and not self.ledger.trials():
                self._initial_design()
            ex = self.study.executor
            executor = make_executor(ex.kind, ex.workers, ex.address, ex.cluster, ex.cluster_options, ex.gpu)
            t_loop, busy = time.monotonic(), 0.0
            try:
                for r in recovered:
                    self._ingest(r)
                    self._log_sim(self.ledger.trial(r.design_id))
                while True:
                    stop = self._stop_reason()
                    if stop is None:
                        self._dispatch(executor)
                    if stop is None and self._iteration_due(executor):
                        self._iterate(executor)
                        continue
                    if not executor.pending:
                        if stop is None and self.ledger.trials("candidate"):
                            continue
                        break
                    fault_point("campaign.wait")  # simulations running
                    results = executor.wait(timeout=2.0)
                    for r in results:  # ledger first, then refill the free workers, then the MLflow view
                        busy += r.busy_s
                        fault_point("campaign.ingest")  # a result arrived (its measurement.json saved)
                        self._ingest(r)
                    if self._stop_reason() is None:
                        self._dispatch(executor)
                    for r in results:
                        fault_point("campaign.log_sim")  # ingested, not yet in MLflow
                        self._log_sim(self.ledger.trial(r.design_id))
                    self._bank_time(force=False)
            finally:
                executor.close()
            wall = time.monotonic() - t_loop
            self.ledger.set("utilisation", {"busy_s": busy, "wall_s": wall, "workers": ex.workers,
                                            "fraction": busy / (ex.workers * wall) if wall > 0 else None})
            reason = self._stop_reason() or ("budget" if self.ledger.n_trials() >= self.budget else "pool")
            if reason == "target":
                for t in self.ledger.trials("candidate"):
                    self.ledger.transition(t.design_id, "abandoned", "campaign stopped: target reached")
            if reason != "wall_clock":
                self._final_iteration()
                fault_point("campaign.finish")
                self.ledger.set("finished", reason)
            self._bank_time()
            if reason != "wall_clock":
                self._finish_tracking(reason)
            elif self.tracker is not None:
                self.tracker.pause()
            summary = self.summary()
            self.log(f"campaign stopped: {reason}")
            return summary
        finally:
            self._close()

    def _finish_tracking(self, reason: str) -> None:
        """Close the MLflow parent run with the final metrics, once (a resumed finished campaign only closes it)."""
        if self.tracker is None:
            return
        if self.ledger.get("mlflow_finished"):
            self.tracker.finish(reason, None)
            return
        s = self.summary()
        self.tracker.finish(reason, {k: s.get(k) for k in ("best_objective", "completed", "failed", "abandoned")})
        self.ledger.set("mlflow_finished", True)

    def _initial_design(self) -> None:
        n = min(self.study.budget.initial, self.budget, len(self.pool))
        rows = [self._pick_row(c, 0, "initial") for c in self.pool[:n]]
        self.ledger.record_iteration(0, 0, time.time(), 0, {"picks": len(rows)}, None, rows)
        where = "grid" if self.study.acquisition.kind == "grid" else "quasi-random pool"
        self.log(f"initial design: {len(rows)} designs from the {where}")
        if self.tracker is not None:
            self._log_iteration(0, None, {"picks": len(rows)}, None)

    def _pick_row(self, c: Candidate, round: int, source: str, prediction: dict | None = None,
                  score: float | None = None) -> dict:
        return {"design_id": c.design_id, "design": c.design.model_dump(mode="json"),
                "conditions": c.conditions.model_dump(mode="json"), "round": round, "source": source,
                "prediction": prediction, "score": score}

    def _dispatch(self, executor) -> None:
        pending = executor.pending
        for t in self.ledger.trials("candidate"):
            if executor.free_slots() <= 0:
                return
            if t.design_id in pending:
                continue
            fault_point("campaign.dispatch")
            attempt = self.ledger.start(t.design_id)
            fault_point("campaign.submit")  # running in the ledger, not yet submitted
            executor.submit(Task(t.design_id, t.design, t.conditions, self.oracle_spec,
                                 str(self._run_dir(t.design_id)), attempt))

    def _ingest(self, r: TaskResult) -> None:
        t = self.ledger.trial(r.design_id)
        if t is None or t.status != "running":
            return  # a stale duplicate (the ledger already has its outcome)
        fid = self.study.oracle.kind
        if r.storage:  # not the design's fault: put it back and stop until the disk is fixed
            self.ledger.transition(t.design_id, "candidate", f"attempt {t.attempts}: {r.error}")
            raise CampaignError(f"{r.design_id}: {r.error}; free the disk (or make it writable) and resume")
        if r.error is not None:
            if t.attempts < self.study.executor.max_attempts:
                self.ledger.transition(t.design_id, "candidate", f"attempt {t.attempts}: {r.error}")
                self.log(f"retry   {t.design_id}: attempt {t.attempts} failed: {r.error}")
                return
            err = f"{r.error} (after {t.attempts} attempts)"
            self.ledger.finish(t.design_id, "failed", None, fid, error=err, busy_s=r.busy_s, worker=r.worker)
            self.log(f"failed  {t.design_id}: {err}")
        else:
            m = Measurement.model_validate_json(r.measurement)
            saved = self._run_dir(t.design_id) / "measurement.json"
            if not saved.exists():  # a remote worker without the shared directory
                saved.parent.mkdir(parents=True, exist_ok=True)
                m.save(saved)
            if m.status != "ok":
                self.ledger.finish(t.design_id, "abandoned", r.measurement, m.fidelity, error=m.error,
                                   busy_s=r.busy_s, worker=r.worker)
                self.log(f"abandon {t.design_id}: {m.error}")
            else:
                try:
                    tg = targets(m, self.study.goal)
                except InvalidMeasurement as err:
                    self.ledger.finish(t.design_id, "abandoned", r.measurement, m.fidelity, error=str(err),
                                       busy_s=r.busy_s, worker=r.worker)
                    self.log(f"abandon {t.design_id}: {err}")
                else:
                    self.ledger.finish(t.design_id, "completed", r.measurement, m.fidelity, targets=tg,
                                       busy_s=r.busy_s, worker=r.worker)
                    n = sum(self.ledger.counts()[s] for s in FINAL)
                    self.log(f"done    {t.design_id} round {t.round}: ICR {math.exp(tg['log_icr']):.3g}, "
                             f"ON {math.exp(tg['log_on_current']):.3g} nA  [{n}/{self.budget}]")

    def _log_sim(self, t: Trial | None, search_first: bool = False) -> None:
        if self.tracker is None or t is None or t.status not in FINAL or t.mlflow_run_id is not None:
            return
        row = self.ledger.measurement(t.design_id)
        m = Measurement.model_validate_json(row["json"]) if row else None
        tg = row["targets"] if row else None
        rid = self.tracker.log_simulation(t, m, tg, t.status, t.error, search_first)
        self.ledger.set_trial_run(t.design_id, rid)

    # --- iterations -------------------------------------------------------------------------------
    def _next_step(self) -> int:
        its = self.ledger.iterations()
        return its[-1]["step"] + 1 if its else 0

    def _iteration_due(self, executor) -> bool:
        if self.ledger.get("final_step") is not None:
            return False
        n_trials = self.ledger.n_trials()
        if n_trials >= self.budget or self.ledger.trials("candidate"):
            return False
        step = self._next_step()
        if step == 0:
            return False
        waiting = [t for t in self.ledger.trials(max_round=self._train_round(step)) if t.status not in FINAL]
        return not waiting and len(self._available()) > 0

    def _available(self) -> list[Candidate]:
        known = self.ledger.known_ids()
        return [c for c in self.pool if c.design_id not in known]

    def _training_set(self, max_round: int | None) -> list[Measurement]:
        return [Measurement.model_validate_json(r["json"])
                for r in self.ledger.measurements(ok_only=True, max_round=max_round)]

    def _prospective(self, max_round: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(measured, predicted mean, predicted std) of the objective for designs predicted before they ran."""
        done = {m["design_id"]: m["targets"] for m in self.ledger.measurements(ok_only=True, max_round=max_round)}
        rows = [(done[t.design_id][self.objective], t.prediction[f"{self.objective}_mean"],
                 t.prediction[f"{self.objective}_std"])
                for t in self.ledger.trials("completed", max_round) if t.prediction and t.design_id in done]
        a = np.array(rows, float).reshape(-1, 3)
        return a[:, 0], a[:, 1], a[:, 2]

    def _fit(self, step: int, max_round: int | None) -> tuple[CampaignModel | None, int, str]:
        """A fresh model trained on the finished rounds <= max_round: (model or None, n_train, data digest).
        When the training set is the one the previous model saw, that model is reloaded instead of retrained
        (same data, same seed: the same model)."""
        ms = self._training_set(max_round)
        digest = hashlib.sha256(",".join(sorted(m.design_id for m in ms)).encode()).hexdigest()[:16]
        if len(ms) < 3:
            return None, len(ms), digest
        its = [it for it in self.ledger.iterations() if it["model_version"] is not None]
        if its and its[-1]["metrics"].get("train_digest") == digest:
            rec = [m for m in self.ledger.models() if m["version"] == its[-1]["model_version"]][0]
            try:
                return CampaignModel.load(self.dir / rec["path"]), len(ms), digest
            except (OSError, ValueError, KeyError):
                pass  # unreadable: train again
        spec = self.study.model
        try:
            base = CampaignModel(spec.kind, self.study.goal, self.study.seed, **spec.params)
            return base.clone().fit(ms), len(ms), digest
        except ModelError as err:
            self.log(f"model   step {step}: {err}; picking without a model")
            return None, len(ms), digest

    def _metrics(self, model: CampaignModel | None, pred: Prediction | None, n_train: int,
                 max_round: int | None) -> dict:
        counts = self.ledger.counts()
        best, who = self._best()
        out = {"n_train": n_train, "completed": counts["completed"], "failed": counts["failed"],
               "abandoned": counts["abandoned"], "best_objective": best,
               "on_current_of_best_nA": math.exp(who["log_on_current"]) if who else None}
        y, mu, sd = self._prospective(max_round)
        if len(y) >= 2:
            err = mu - y
            z = np.abs(err) / np.maximum(sd, 1e-12)
            ss = float(np.sum((y - y.mean()) ** 2))
            out.update({"heldout_n": len(y), "heldout_rmse": float(np.sqrt(np.mean(err**2))),
                        "heldout_r2": 1 - float(np.sum(err**2)) / ss if ss > 0 else None,
                        "calibration_coverage_1sd": float(np.mean(z <= 1)),
                        "calibration_coverage_2sd": float(np.mean(z <= 2)),
                        "calibration_mean_abs_z": float(np.mean(z))})
        if pred is not None and len(pred):
            out["mean_uncertainty"] = float(np.mean(pred.epistemic[self.objective]))
        return out

    def _iterate(self, executor=None) -> None:
        step = self._next_step()
        started = time.time()
        train_round = self._train_round(step)
        t0 = time.perf_counter()
        fault_point("campaign.train")
        model, n_train, digest = self._fit(step, train_round)
        t_train = time.perf_counter() - t0
        avail = self._available()
        q = min(self.study.budget.batch, self.budget - self.ledger.n_trials(), len(avail))
        pred = model.predict(avail) if model is not None else None
        acq, scores = self._scores(model, pred, avail, step)
        spec = self.study.acquisition
        diverse = spec.diverse and acq.uses_model and pred is not None
        idx = select_batch(scores, q, pred.embedding if pred is not None else None,
                           seed=self.study.seed * 7919 + step, diverse=diverse)
        rows = []
        for i in idx:
            p = None
            if pred is not None:
                p = {**{f"{t}_mean": float(pred.mean[t][i]) for t in self.target_names},
                     **{f"{t}_std": float(pred.std[t][i]) for t in self.target_names}}
            rows.append(self._pick_row(avail[i], step, spec.kind, p, float(scores[i])))
        metrics = {**self._metrics(model, pred, n_train, train_round), "picks": len(rows),
                   "train_seconds": t_train, "train_digest": digest}
        mrec = self._save_model(step, model)
        self._plots(step, pred, scores, idx, acq)
        fault_point("campaign.record_iteration")  # model saved, iteration not yet committed
        self.ledger.record_iteration(step, step, started, n_train, metrics, mrec, rows)
        if executor is not None:
            self._dispatch(executor)  # the new picks start before the MLflow logging below
        self.log(f"iteration {step}: trained on {n_train}, picked {len(rows)} ({spec.kind})"
                 + (f", held-out RMSE {metrics['heldout_rmse']:.3g}" if "heldout_rmse" in metrics else ""))
        it = self.ledger.iterations()[-1]
        if self.tracker is not None:
            self._log_iteration(step, it["mlflow_run_id"], metrics, it["model_version"])

    def _scores(self, model, pred, avail, step):
        spec, goal = self.study.acquisition, self.study.goal
        kw = dict(spec.params)
        kind = spec.kind
        if kind != "grid" and (model is None or pred is None):
            kind = "random"  # no model yet (or training failed): explore at random, seeded
        if kind == "random":
            kw = {"seed": self.study.seed * 7919 + step}
        if kind in ("ei", "constrained_ei"):  # incumbent from the training rounds only (deterministic picks)
            kw.setdefault("best_f", self._best_feasible(kind, self._train_round(step)))
        if kind == "constrained_ei":
            kw.setdefault("threshold", math.log(goal.on_current_min_nA))
        if kind != "grid":
            kw.setdefault("target", self.objective)
            kw.setdefault("maximize", goal.maximize)
        acq = resolve_acquisition(kind, model, **kw)
        scores = acq.score(pred) if pred is not None else acq(avail)
        return acq, np.asarray(scores, float)

    def _best_feasible(self, kind: str, max_round: int | None) -> float | None:
        thr = self.study.goal.on_current_min_nA
        vals = [m["targets"][self.objective] for m in self.ledger.measurements(ok_only=True, max_round=max_round)
                if kind != "constrained_ei" or thr is None or m["targets"]["log_on_current"] >= math.log(thr)]
        if not vals:
            return None if kind == "constrained_ei" else -np.inf
        return max(vals) if self.sign > 0 else min(vals)

    def _final_iteration(self) -> None:
        if self.ledger.get("final_step") is not None:
            return
        step = self._next_step()
        model, n_train, digest = self._fit(step, None)
        pred = model.predict(self.pool[: min(len(self.pool), 256)]) if model is not None else None
        metrics = {**self._metrics(model, pred, n_train, None), "picks": 0, "train_digest": digest}
        mrec = self._save_model(step, model)
        self._plots(step, None, None, None, None)
        self.ledger.record_iteration(step, step, time.time(), n_train, metrics, mrec, [], {"final_step": step})
        it = self.ledger.iterations()[-1]
        if self.tracker is not None:
            self._log_iteration(step, it["mlflow_run_id"], metrics, it["model_version"])

    def _save_model(self, step: int, model) -> dict | None:
        """Save the step's model under models/ and return its ledger record (None without a model)."""
        if model is None:
            return None
        mdir = self.dir / "models" / f"step_{step:03d}"
        if mdir.exists():  # left by a driver killed before it recorded this step: no ledger row names it
            shutil.rmtree(mdir)
        model.save(mdir)
        return {"kind": model.kind, "path": str(mdir.relative_to(self.dir)), "sha256": _sha256_dir(mdir)}

    def _plots(self, step: int, pred, scores, idx, acq) -> None:
        d = self.dir / "plots" / f"step_{step:03d}"
        d.mkdir(parents=True, exist_ok=True)
        y, mu, sd = self._prospective(None)
        label = self.objective.replace("log_", "ln ")
        if len(y) >= 2:
            plots.parity(y, mu, sd, d / "parity.png", label)
            plots.calibration(y, mu, sd, d / "calibration.png")
        its = self.ledger.iterations()
        if its:
            plots.learning_curve([it["metrics"].get("completed", 0) for it in its],
                                 [it["metrics"].get("heldout_rmse") for it in its],
                                 [it["metrics"].get("best_objective") for it in its], d / "learning_curve.png",
                                 f"best {self.study.goal.objective}")
        if scores is not None and len(scores) and idx is not None:
            plots.acquisition_scores(scores, idx, d / "acquisition_scores.png", self.study.acquisition.kind)

    def _log_iteration(self, step: int, run_id: str | None, metrics: dict, model_version: int | None) -> None:
        pd = self.dir / "plots" / f"step_{step:03d}"
        figs = sorted(pd.glob("*.png")) if pd.exists() else []
        mdir = None
        if model_version is not None:
            rec = [m for m in self.ledger.models() if m["version"] == model_version][0]
            mdir = None if rec["registered"] else self.dir / rec["path"]
        rid = run_id
        if rid is None:  # the ledger keeps the run's id once its metrics and plots are logged
            rid = self.tracker.log_iteration(step, None, metrics, figs, None)
            fault_point("campaign.iteration_run")  # iteration run logged in MLflow, its id not yet in the ledger
            self.ledger.set_iteration_run(step, rid, False)
        if mdir is not None and mdir.exists():
            self.tracker.log_iteration(step, rid, {}, [], mdir)
            fault_point("campaign.model_registered")  # registered in MLflow, not yet in the ledger
            self.ledger.set_model_registered(model_version, self.tracker.model_name)
        self.ledger.set_iteration_run(step, rid, True)

    # --- report -----------------------------------------------------------------------------------
    def summary(self) -> dict:
        return summarize(self.ledger, self.study)


def summarize(ledger: Ledger, study: Study, top: int = 5) -> dict:
    """Counts by status, the best designs, the last model's quality, utilisation (from the ledger only)."""
    objective = objective_name(study.goal)
    sign = 1.0 if study.goal.maximize else -1.0
    ms = ledger.measurements(ok_only=True)
    ranked = sorted(ms, key=lambda m: -sign * m["targets"][objective])[:top]
    best = []
    for m in ranked:
        doc = json.loads(m["json"])
        best.append({"design_id": m["design_id"], "layers": doc["design"]["layers"],
                     "field_V_per_nm": max(abs(x) for x in doc["conditions"]["fields_V_per_nm"]),
                     "objective": math.exp(m["targets"][objective]), "icr": math.exp(m["targets"]["log_icr"]),
                     "on_current_nA": math.exp(m["targets"]["log_on_current"]), "design": doc["design"],
                     "conditions": doc["conditions"]})
    its = ledger.iterations()
    last = its[-1]["metrics"] if its else {}
    counts = ledger.counts()
    return {**counts, "trials": sum(counts.values()), "iterations": len(its), "best": best,
            "best_objective": best[0]["objective"] if best else None,
            "heldout_rmse": last.get("heldout_rmse"), "heldout_r2": last.get("heldout_r2"),
            "calibration_coverage_1sd": last.get("calibration_coverage_1sd"),
            "utilisation": ledger.get("utilisation"), "finished": ledger.get("finished"),
            "driver_seconds": ledger.get("driver_seconds"), "objective": study.goal.objective}


def write_json(path: Path, doc: dict) -> None:
    atomic_write_bytes(path, json.dumps(doc, indent=2, default=str).encode())

