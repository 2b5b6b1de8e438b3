"""The campaign loop: initial design -> run -> train a fresh model -> acquire -> run ... until the budget, the
wall-clock limit or the target is reached; resumable exactly from the ledger.

The loop is a scheduler: it starts candidate trials on free workers, waits, records each result in the ledger
(ingest.py), refills the free workers at once, and runs an iteration (iteration.plan, a pure function of a ledger
snapshot; the loop saves its model, draws its plots and commits it) when the rounds it trains on have finished.
Views (e.g. MLflow, porelab.active_learning.tracking.view) are passed in by the caller and brought up to date from
the ledger (`view.sync(ledger)`) after ledger commits, never in between them; this package never imports them.

Rounds and iterations: round 0 is the initial space-filling design (the first `budget.initial` designs of the
pool; measurements told before the first run, campaign.interop, are round 0 too and take their places, and like
every trial count in the budget); iteration k >= 1 trains on every finished trial of rounds <= k - 1 - lag and
picks round k. refill `batch` (lag 0) waits for the whole previous round; refill `async` (lag 1) picks round k
while round k-1 still runs, so a free worker gets the next pick at once. Either way the training set of an
iteration is fixed by the rounds, not by the order results arrive, so the same seed and study give the same picks.

The pool: the study's seeded Sobol sample (or its grid). When the goal's objective is ICR, mirror-symmetric designs
(`Design.is_symmetric()`) are dropped from it, as their ICR is 1 by symmetry (docs/physics.md §3): no simulation
is spent to learn it (how many were dropped is logged). For a selectivity goal they stay.

Stops that lose nothing (campaign/guards.py): a circuit breaker ends a campaign whose tasks keep crashing or
losing their worker with nothing measured in between, its trials left candidates for a resume; a campaign started
again by a worker re-importing an unguarded script is refused there, and the driver stops saying so; a start that
fails before anything was recorded removes what `directory.create` made (Campaign._forget_unstarted).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from porelab.active_learning.campaign.directory import (
    LEDGER_FILE,
    STUDY_FILE,
    CampaignError,
    create,
    load,
    run_dir,
    step_dir,
)
from porelab.active_learning.campaign.executors import Task, TaskResult, make_executor, store_for
from porelab.active_learning.campaign.guards import (
    REIMPORT_FILE,
    REIMPORTED,
    breaker_tripped,
    refuse_in_worker,
)
from porelab.active_learning.campaign.ingest import ingest, recover
from porelab.active_learning.campaign.iteration import (
    SPACE_FILLING,
    Parsed,
    Plan,
    Snapshot,
    pick_row,
    plan,
    prospective_rows,
    train_digest,
)
from porelab.active_learning.campaign.ledger import CampaignLock, Ledger
from porelab.active_learning.campaign.model_cache import ModelCache
from porelab.active_learning.campaign.oracles import extended, ladder
from porelab.active_learning.campaign.plots import step_plots
from porelab.active_learning.campaign.space import Candidate, drop_symmetric, recorded_pool
from porelab.active_learning.campaign.study import Study, load_study
from porelab.active_learning.campaign.summary import summarize
from porelab.active_learning.campaign.targets import objective_label, objective_name
from porelab.base.faults import fault_point

logger = logging.getLogger(__name__)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s" if seconds >= 60 else f"{seconds:.0f} s"


class View(Protocol):
    """A view of the ledger (e.g. MLflow): `sync` logs whatever the ledger holds that the view has not shown yet
    (idempotent; called after ledger commits); `close` is called when the driver stops."""

    def sync(self, ledger: Ledger) -> None: ...

    def close(self, ledger: Ledger) -> None: ...


def candidate_pool(study: Study) -> tuple[list[Candidate], int]:
    """The campaign's pool (grid, seeded sample, or the recorded questions of `acquisition.pool_from`) and how many
    mirror-symmetric designs were dropped from it (ICR goals only, see the module docstring)."""
    if study.acquisition.pool_from is not None:
        pool = recorded_pool(Path(study.acquisition.pool_from), study.seed)
    else:
        space = study.design_space()
        pool = space.grid() if study.acquisition.kind == "grid" else \
            space.sample(study.acquisition.pool_size, study.seed)
    if study.goal.objective != "icr":
        return pool, 0
    kept, dropped = drop_symmetric(pool)
    if not kept:
        raise CampaignError(f"every design of the space ({dropped}) is mirror-symmetric, so its ICR is 1 by "
                            "symmetry: nothing to learn; widen the space")
    return kept, dropped


class Campaign:
    """Drive (or resume) the campaign in `directory`. `log` receives one-line progress messages (default: this
    module's logger at INFO); `views` are brought up to date from the ledger as it runs; `budget` and
    `wall_clock_min` override the study's (a larger one re-opens a finished campaign)."""

    @classmethod
    def from_study(cls, study_file: str | Path, directory: str | Path, resume: bool = False, **kw) -> Campaign:
        """A campaign of a study in a new directory; call ``.run()`` to drive it.

        Parameters
        ----------
        study_file : str or Path
            Study YAML (experiments/*.yaml; docs/campaigns.md).
        directory : str or Path
            Campaign directory (created; inside the workspace).
        resume : bool
            Reopen `directory` when it holds this very study.
        **kw
            As for ``Campaign(...)``: ``log``, ``views``, ``budget``, ``wall_clock_min``.
        """
        refuse_in_worker(directory)  # before anything is made or read
        create(load_study(study_file), directory, exist_ok=resume)
        return cls(directory, **kw)

    def __init__(self, directory: str | Path, log: Callable[[str], None] | None = None, views: Sequence[View] = (),
                 budget: int | None = None, wall_clock_min: float | None = None):
        refuse_in_worker(directory)
        self.dir = Path(directory)
        self.study = load(self.dir)
        self.log = log or logger.info
        self.views = list(views)
        self.overrides = {"budget": budget, "wall_clock_min": wall_clock_min}
        self.lag = 1 if self.study.executor.refill == "async" else 0
        self.objective = objective_name(self.study.goal)

    # --- set-up -----------------------------------------------------------------------------------
    def _open(self) -> None:
        """Take the directory's lock and open the ledger (both released by _close)."""
        self.lock = CampaignLock(self.dir).acquire()
        try:
            self.ledger = Ledger(self.dir / LEDGER_FILE)
        except BaseException:
            self.lock.release()
            raise

    def _check_study(self) -> None:
        if self.ledger.get("study_digest") != self.study.digest():
            raise CampaignError(f"{self.dir / STUDY_FILE} was changed after the campaign started; restore it")

    def _prepare(self) -> None:
        """Apply the overrides, build the oracle's identity and the pool (the study checked by _check_study)."""
        ov = {**self.ledger.get("overrides", {}), **{k: v for k, v in self.overrides.items() if v is not None}}
        self.nothing_left = None
        finished, done = self.ledger.get("finished"), self.ledger.n_trials(True)
        if ov != self.ledger.get("overrides", {}) and finished \
                and int(ov.get("budget") or self.study.budget.simulations) <= done:
            budget = int(ov.get("budget") or self.study.budget.simulations)  # a budget that re-opens nothing
            self.nothing_left = (f"campaign already finished ({finished}) with {done} simulations; a budget of "
                                 f"{budget} is at or below them: nothing left to do (give a budget above {done} "
                                 "to continue)")
            ov = self.ledger.get("overrides", {})
        if ov != self.ledger.get("overrides", {}):  # a larger budget or time limit re-opens a finished campaign
            self.ledger.set("overrides", ov)
            self.ledger.set("finished", None)
            self.ledger.set("final_step", None)
        self.budget = int(ov.get("budget") or self.study.budget.simulations)
        self.wall_clock_s = 60 * (ov.get("wall_clock_min") or self.study.budget.wall_clock_min or math.inf)
        self.rungs = ladder(self.study)  # built here: a bad user path/class/settings fails early, in the driver
        self.rung = {None: self.rungs[-1], **{r.name: r for r in self.rungs[:-1]}}  # by the trials' column
        if self.study.acquisition.extend_max_ps is not None and self.rungs[-1].length_setting is None:
            raise CampaignError(f"acquisition.extend_max_ps: the oracle {self.study.oracle.path} cannot extend a "
                                "run (its class names no length_setting)")
        self.pool, dropped = candidate_pool(self.study)
        if dropped:
            self.log(f"pool: {dropped} mirror-symmetric designs left out (ICR = 1 by symmetry), {len(self.pool)} "
                     "remain")
        self.cache = ModelCache(self.dir)

    def _close(self) -> None:
        self.ledger.close()
        self.lock.release()

    def _forget_unstarted(self) -> None:
        """After a start that failed before anything was recorded (a bad user oracle path, an empty space): remove
        what `directory.create` made (the frozen study, the empty ledger, the lock; the directory itself when create
        made it and it is now empty), so that the corrected study may run there. A ledger holding anything (a trial,
        an iteration, an event) is a campaign, and is left as it is."""
        led = self.ledger
        if led.known_ids() or led.iterations() or led.events():
            return
        made_dir = bool(led.get("created_dir"))
        self._close()
        for name in (STUDY_FILE, LEDGER_FILE, f"{LEDGER_FILE}-wal", f"{LEDGER_FILE}-shm", ".lock", REIMPORT_FILE):
            (self.dir / name).unlink(missing_ok=True)
        if made_dir:
            try:
                self.dir.rmdir()  # only if empty: what else is there is not the campaign's
            except OSError:
                pass
        logger.debug("campaign not started: %s is left as it was before it", self.dir)  # the error says why

    def _sync(self) -> None:
        """Bring every view up to date with the ledger (after a ledger commit)."""
        fault_point("campaign.sync")  # committed to the ledger, the views not yet up to date
        for v in self.views:
            v.sync(self.ledger)

    # --- state ------------------------------------------------------------------------------------
    def _stop_reason(self) -> str | None:
        """Why no new simulation may start (None: go on)."""
        goal = self.study.goal
        if goal.target is not None:
            best = self.ledger.best_target(objective_name(goal), goal.maximize)  # ln, like the targets stored
            if best is not None and (1 if goal.maximize else -1) * (math.exp(best) - goal.target) >= 0:
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

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run until a stop condition: budget, wall clock, target or pool exhausted.

        Returns
        -------
        dict
            The summary (campaign.summary.summarize): counts by status, the best designs with their intervals, the
            last model's prospective metrics, utilisation and the stop reason.
        """
        self._open()
        try:
            self._check_study()
            (self.dir / REIMPORT_FILE).unlink(missing_ok=True)  # one a killed driver's worker left
            try:
                self._prepare()
            except Exception:
                with contextlib.suppress(Exception):  # best effort: never in the way of the error that stopped it
                    self._forget_unstarted()
                raise
            self._t_mark = time.monotonic()
            self._parsed = Parsed()  # what iterations have parsed (Snapshot.measurement, .reading)
            self._medians: dict = {}  # the progress line's last Ledger.rung_stats() with its medians
            self._streak: list[tuple[str, str]] = []  # (design id, error) of the task errors since the last result
            self._held: dict[str, TaskResult] = {}  # final attempts that errored during that streak, undecided
            self._breaker: str | None = None  # why the breaker stopped the campaign
            if self.ledger.get("finished"):
                self.log(self.nothing_left or f"campaign already finished ({self.ledger.get('finished')}); nothing "
                         "to do")
                self._sync()  # a driver killed after the finish may not have brought the views up to date
                for v in self.views:
                    v.close(self.ledger)
                return summarize(self.ledger, self.study)
            recovered = recover(self.ledger, self.dir, {k: r.identity for k, r in self.rung.items()})
            self._sync()
            if not self.ledger.iterations():  # a new campaign (perhaps holding told trials, campaign.interop)
                self._initial_design()
            ex = self.study.executor
            try:
                executor = make_executor(ex, f"porelab-{self.study.name}", str(self.dir.resolve() / "jobs"))
            except Exception:  # e.g. a Dask LocalCluster whose workers never started: they re-imported the script
                if (self.dir / REIMPORT_FILE).exists():
                    raise CampaignError(REIMPORTED) from None
                raise
            t_loop, busy = time.monotonic(), 0.0
            try:
                for r in recovered:
                    self._ingest(r)
                if recovered:
                    self._sync()
                while True:
                    stop = self._stop_reason()
                    if stop is None:
                        self._dispatch(executor)
                    if stop is None and self._iteration_due():
                        self._iterate(executor)
                        continue
                    if not executor.pending:
                        if stop is None and self.ledger.trials("candidate"):
                            continue
                        if self._held:  # nothing else runs that could tell their errors from the workers'
                            if breaker_tripped(self._streak, ex.workers, idle=True):
                                self._breaker = self._breaker_text()
                                self._stop_broken()
                            self._release_held()
                            continue
                        break
                    fault_point("campaign.wait")  # simulations running
                    results = executor.wait(timeout=2.0)
                    if any(r.error is not None for r in results) and (self.dir / REIMPORT_FILE).exists():
                        self._breaker = (self.dir / REIMPORT_FILE).read_text().strip() or REIMPORTED
                        (self.dir / REIMPORT_FILE).unlink(missing_ok=True)
                    # ledger first, then refill the free workers, then the views; results before errors (a result
                    # ends a streak of errors, see _ingest)
                    for r in sorted(results, key=lambda r: r.error is not None):
                        busy += r.busy_s
                        fault_point("campaign.ingest")  # a result arrived (its measurement.json saved)
                        self._ingest(r)
                    if self._breaker is not None:
                        self._stop_broken()
                    if self._stop_reason() is None:
                        self._dispatch(executor)
                    if results:
                        self._sync()
                    self._bank_time(force=False)
            finally:
                executor.close()
            wall = time.monotonic() - t_loop
            self.ledger.set("utilisation", {"busy_s": busy, "wall_s": wall, "workers": ex.workers,
                                            "fraction": busy / (ex.workers * wall) if wall > 0 else None})
            reason = self._stop_reason() or ("budget" if self.ledger.n_trials(True) >= self.budget else "pool")
            if reason == "target":
                for t in self.ledger.trials("candidate"):
                    self.ledger.transition(t.design_id, "abandoned", "campaign stopped: target reached")
            if reason != "wall_clock":
                self._final_iteration()
                fault_point("campaign.finish")
                self.ledger.set("finished", reason)
            self._bank_time()
            self._sync()
            for v in self.views:
                v.close(self.ledger)
            self.log(f"campaign stopped: {reason}")
            return summarize(self.ledger, self.study)
        finally:
            (self.dir / REIMPORT_FILE).unlink(missing_ok=True)  # a second worker's, written after the first was read
            self._close()

    def _initial_design(self) -> None:
        """Round 0: the pool's first designs, up to budget.initial designs with those told before (see the module
        docstring)."""
        known = self.ledger.known_ids()  # told trials (campaign.interop), round 0 already
        fresh = iter([c for c in self.pool if c.design_id not in known])
        n = max(0, min(self.study.budget.initial, self.budget) - len(known))
        rows = [pick_row(c, 0, "initial") for c, _ in zip(fresh, range(n), strict=False)]
        for r in self.rungs[:-1]:  # each cheaper rung's share, further along the pool's space-filling order, and
            k = min(r.initial, r.simulations)  # dispatched first: cheap results while the target's run
            rows = [pick_row(c, 0, "initial", fidelity=r.name) for c, _ in zip(fresh, range(k), strict=False)] + rows
        self.ledger.record_iteration(0, 0, time.time(), 0, {"picks": len(rows)}, None, rows)
        acq = self.study.acquisition
        where = f"recorded pool of {acq.pool_from}, in random order" if acq.pool_from is not None else \
            "grid" if acq.kind == "grid" else "quasi-random pool"
        told = f" beside {len(known)} told" if known else ""
        at = Counter(self.rung[r["fidelity"]].name for r in rows)
        at = f" ({', '.join(f'{n} at {k}' for k, n in at.items())})" if len(self.rungs) > 1 else ""
        self.log(f"initial design: {len(rows)} designs from the {where}{told}{at}")
        self._sync()

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
            rung = self.rung[t.fidelity]
            spec = rung.spec if t.extend_ps is None else extended(rung.spec, t.extend_ps, rung.length_setting)
            executor.submit(Task(t.design_id, t.design, t.conditions, spec, str(run_dir(self.dir, t.design_id)),
                                 attempt, t.extend_ps, store_for(rung.name)))

    def _ingest(self, r: TaskResult) -> None:
        """Record a result (ingest.py), with the circuit breaker: a result (ok or the oracle's own failure) ends the
        streak of task errors and settles the trials held meanwhile (their errors are their own: failed); a task
        error joins the streak and may trip the breaker (`breaker_tripped`; its trial back to candidate); an error
        of a trial's last attempt during the streak is held, its trial left running, until a result elsewhere tells
        it from the workers' fault (see BREAKER_MIN)."""
        t = self.ledger.trial(r.design_id)
        if r.error is None or r.storage or t is None or t.status != "running":
            if r.error is None and t is not None and t.status == "running":
                self._streak.clear()
            self._log_line(ingest(self.ledger, r, self.study.goal, {k: g.name for k, g in self.rung.items()},
                                  self.study.executor.max_attempts, self.dir))
            if r.error is None and self._held:
                self._release_held()
            return
        self._streak.append((r.design_id, r.error))
        ex = self.study.executor
        if self._breaker is None and breaker_tripped(self._streak, ex.workers):
            self._breaker = self._breaker_text()
        if self._breaker is not None:
            self.ledger.transition(t.design_id, "candidate", f"attempt {t.attempts}: {r.error}")
            return
        if t.attempts >= ex.max_attempts:
            self._held[t.design_id] = r
            return
        self._log_line(ingest(self.ledger, r, self.study.goal, {k: g.name for k, g in self.rung.items()},
                              ex.max_attempts, self.dir))

    def _breaker_text(self) -> str:
        # the latest errors first, each once
        last = list(dict.fromkeys(e[:200].rstrip(". ") for _, e in reversed(self._streak)))[:3]
        return (f"stopped by the circuit breaker: {len(self._streak)} tasks in a row crashed or lost their worker "
                f"({len({did for did, _ in self._streak})} designs, nothing measured in between), so the oracle or "
                f"its workers fail, not the designs; last errors: {' | '.join(last)}; no trial was marked failed: fix "
                f"the cause, then resume the campaign (porelab campaign resume {self.dir})")

    def _log_line(self, line: str | None) -> None:
        if line is not None:
            self.log(f"{line}  {self._progress()}")

    def _release_held(self) -> None:
        """The held trials' last errors, recorded as ingest does (failed after their attempts)."""
        held, self._held = self._held, {}
        for r in held.values():
            self._log_line(ingest(self.ledger, r, self.study.goal, {k: g.name for k, g in self.rung.items()},
                                  self.study.executor.max_attempts, self.dir))

    def _stop_broken(self) -> None:
        """The breaker tripped (or a worker re-imported the main script): the held trials back to candidate,
        nothing marked failed, the views brought up to date; raises CampaignError with the reason. The tasks still
        running finish as the executor closes; their trials, left running, are recovered on resume."""
        for did, r in self._held.items():
            t = self.ledger.trial(did)
            self.ledger.transition(did, "candidate", f"attempt {t.attempts}: {r.error}")
        self._held = {}
        self._bank_time()
        self._sync()
        raise CampaignError(self._breaker)

    def _progress(self) -> str:
        """`[######----] 12/18 (md 3/4, continuum 9/14) · 4 min 10 s · ETA ~3 min`: finished trials against the
        caps, the driver's time, and the rest estimated from the median worker seconds of each rung's completed
        trials over the workers (an upper estimate: cheaper rungs may end below their caps; none until every rung
        with work left has completed one) or from the campaign's own pace so far (elapsed / finished: model
        training counted too), whichever is longer, or the wall-clock budget's rest when that ends the campaign
        first (once it is spent, the runs going finish: nothing computed is lost). A pool smaller than the budget
        caps the last rung (no extensions: each design is one trial)."""
        stats = self._rung_stats()
        last = self.budget if self.study.acquisition.extend_max_ps is not None else min(self.budget, len(self.pool))
        caps = {None: last, **{r.name: r.simulations for r in self.rungs[:-1]}}
        done = {k: min(stats.get(k, {}).get("finished", 0), cap) for k, cap in caps.items()}
        n, total = sum(done.values()), sum(caps.values())
        bar = "#" * round(10 * n / total) + "-" * (10 - round(10 * n / total))
        per = f" ({', '.join(f'{self.rung[k].name} {done[k]}/{c}' for k, c in caps.items())})" if len(caps) > 1 else ""
        busy = {k: stats.get(k, {}).get("median_busy_s") for k, cap in caps.items() if done[k] < cap}
        eta = ""
        if busy and all(b is not None for b in busy.values()):
            left = sum((caps[k] - done[k]) * b for k, b in busy.items()) / self.study.executor.workers
            left = max(left, self._elapsed() * (total - n) / n) if n else left
            clock = self.wall_clock_s - self._elapsed()  # the wall-clock budget may end it first
            eta = f" · ETA ~{_minutes(left)}" if left <= clock else f" · ETA ~{_minutes(clock)} (wall-clock budget)" \
                if clock > 0 else " · wall-clock budget reached: the runs going finish"
        elif busy:
            eta = f" · ETA after the first {self.rung[next(k for k, b in busy.items() if b is None)].name} run"
        return f"[{bar}] {n}/{total}{per} · {_minutes(self._elapsed())}{eta}"

    def _rung_stats(self) -> dict:
        """Ledger.rung_stats for the progress line: the counts read now, the medians read again (a walk of half an
        index) only when a rung's timed trials grew by a tenth since they were last: O(1) per result, amortised."""
        stats, last = self.ledger.rung_stats(median=False), self._medians
        if any(o["timed"] >= last.get(k, {}).get("timed", 0) + max(1, last.get(k, {}).get("timed", 0) // 10)
               for k, o in stats.items() if o["timed"]):
            last = self._medians = self.ledger.rung_stats()
        return {k: {**o, "median_busy_s": last.get(k, {}).get("median_busy_s")} for k, o in stats.items()}

    # --- iterations -------------------------------------------------------------------------------
    def _iteration_due(self) -> bool:
        if self.ledger.get("final_step") is not None:
            return False
        if self.ledger.n_trials(True) >= self.budget or self.ledger.trials("candidate"):
            return False
        step = self.ledger.next_step()
        if step == 0:
            return False
        train_round = max(0, step - 1 - self.lag)  # an extension in flight has its data in its round already
        if self.ledger.any_running(train_round):
            return False
        known = self.ledger.known_ids()
        return any(c.design_id not in known for c in self.pool)

    def _iterate(self, executor) -> None:
        step, started = self.ledger.next_step(), time.time()
        fault_point("campaign.train")
        snap = Snapshot.read(self.ledger, self.study.goal, self._parsed)
        train_round = max(0, step - 1 - self.lag)
        p = plan(snap, self.study, self.pool, step, train_round, self.budget,
                 self.cache.load(snap, train_digest(snap, train_round)), rungs=self.rungs)
        self._record(p, snap, started)
        self._dispatch(executor)  # the new picks start before the views are brought up to date
        rmse = p.metrics.get("heldout_rmse")
        at = Counter(self.rung[r["fidelity"]].name for r in p.picks)
        at = ": " + ", ".join(f"{n} at {k}" for k, n in at.items()) if len(self.rungs) > 1 and at else ""
        fill = sum(r["source"] == SPACE_FILLING for r in p.picks)
        ext = p.metrics.get("extensions", 0)
        how = self.study.acquisition.kind + (f", {fill} space-filling" if fill else "") \
            + (f", {ext} extension{'s' * (ext > 1)} of runs so far" if ext else "")
        self.log(f"iteration {step}: trained on {p.n_train}, picked {len(p.picks)} ({how}){at}"
                 + (f", held-out RMSE {rmse:.3g}" if rmse is not None else ""))
        self._sync()

    def _final_iteration(self) -> None:
        """The last model, trained on every finished trial; no picks."""
        if self.ledger.get("final_step") is not None:
            return
        snap = Snapshot.read(self.ledger, self.study.goal, self._parsed)
        step = self.ledger.next_step()
        p = plan(snap, self.study, self.pool, step, None, self.budget,
                 self.cache.load(snap, train_digest(snap, None)), final=True, rungs=self.rungs)
        self._record(p, snap, time.time(), {"final_step": step})

    def _record(self, p: Plan, snap: Snapshot, started: float, meta: dict | None = None) -> None:
        """Save the plan's model and plots, then commit the iteration and its picks in one ledger transaction."""
        for note in p.notes:
            self.log(note)
        mrec = self.cache.save(p.step, p.model)
        goal = self.study.goal
        step_plots(step_dir(self.dir, "plots", p.step), prospective_rows(snap, self.objective, None),
                   [*snap.iterations, {"metrics": p.metrics}], objective_label(goal),
                   "best max(ICR, 1/ICR)" if goal.objective == "icr" else f"best {goal.objective}", p.scores,
                   p.picked, p.acquisition, snapshot=snap, goal=goal)
        fault_point("campaign.record_iteration")  # model saved, iteration not yet committed
        self.ledger.record_iteration(p.step, p.step, started, p.n_train, p.metrics, mrec, p.picks, meta)
