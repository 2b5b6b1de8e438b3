"""Results into the ledger: each worker's TaskResult becomes one ledger transaction (completed, failed, abandoned,
or back to candidate for a retry), and the trials a dead driver left running are recovered on resume.

completed: an ok measurement whose targets could be computed; abandoned: the oracle's own failure (a failed
measurement, or numbers no target can be computed from), stored with its reason and never as a number; failed: the
task raised or lost its worker `max_attempts` times. A storage error (disk full, read-only) is nobody's failure:
the trial goes back to candidate and the campaign stops with CampaignError.
"""

from __future__ import annotations

from pathlib import Path

from porelab.active_learning.campaign.directory import CampaignError, run_dir
from porelab.active_learning.campaign.executors import TaskResult
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.measured import icr_text, interval
from porelab.active_learning.campaign.oracles import reaches
from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import InvalidMeasurement, targets
from porelab.sim.design import Conditions, Design
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement, same_oracle
from porelab.sim.observables import oriented


def ingest(ledger: Ledger, r: TaskResult, goal: Goal, fidelities: dict[str | None, str], max_attempts: int,
           directory: Path) -> str | None:
    """Record one result in the ledger; returns a progress line (None for a stale duplicate, whose trial the
    ledger already finished). `fidelities`: the fidelity name of each rung of the study's ladder, by the trials'
    rung column (None: the study's own oracle), recorded for a trial that failed without a measurement.
    The measurement is also saved in the trial's run directory of the campaign `directory` when the worker did not
    (a remote worker without the shared directory). Raises CampaignError for a storage error."""
    t = ledger.trial(r.design_id)
    if t is None or t.status != "running":
        return None
    if r.storage:
        ledger.transition(t.design_id, "candidate", f"attempt {t.attempts}: {r.error}")
        raise CampaignError(f"{r.design_id}: {r.error}; free the disk (or make it writable) and resume")
    if r.error is not None:
        if t.attempts < max_attempts:
            ledger.transition(t.design_id, "candidate", f"attempt {t.attempts}: {r.error}")
            return f"retry   {t.design_id}: attempt {t.attempts} failed: {r.error}"
        err = f"{r.error} (after {t.attempts} attempts)"
        ledger.finish(t.design_id, "failed", None, fidelities[t.fidelity], error=err, busy_s=r.busy_s,
                      worker=r.worker)
        return f"failed  {t.design_id}: {err}"
    m = Measurement.model_validate_json(r.measurement)
    saved = run_dir(directory, r.design_id) / MEASUREMENT_FILE
    if not saved.exists():
        saved.parent.mkdir(parents=True, exist_ok=True)
        m.save(saved)
    if m.status != "ok":
        ledger.finish(t.design_id, "abandoned", r.measurement, m.fidelity, error=m.error, busy_s=r.busy_s,
                      worker=r.worker)
        return f"abandon {t.design_id}: {m.error}"
    try:
        tg = targets(m, goal)
    except InvalidMeasurement as err:
        ledger.finish(t.design_id, "abandoned", r.measurement, m.fidelity, error=str(err), busy_s=r.busy_s,
                      worker=r.worker)
        return f"abandon {t.design_id}: {err}"
    ledger.finish(t.design_id, "completed", r.measurement, m.fidelity, targets=tg, busy_s=r.busy_s, worker=r.worker)
    ext = f" extended to {t.extend_ps:g} ps" if t.extend_ps is not None else ""
    return (f"done    {t.design_id} round {t.round}, {m.fidelity}{ext}: ICR {icr_text(tg)}, "
            f"ON {interval(tg, 'log_on_current')} nA")


def recover(ledger: Ledger, directory: Path, identities: dict[str | None, dict]) -> list[TaskResult]:
    """Trials left running by a dead driver: a measurement.json saved in the run directory by the trial's oracle
    (`identities` by the trial's rung, None: the study's own oracle) for that design is taken as the result (for
    an extension: one that reached its length), turned to the trial's orientation; the others go back to
    candidate (MD resumes from its run directory's checkpoints; a measurement by another oracle is refused when the
    trial runs again, see executors.run_task)."""
    found = []
    for t in ledger.trials("running"):
        saved = run_dir(directory, t.design_id) / MEASUREMENT_FILE
        m = None
        if saved.exists():
            try:
                m = Measurement.load(saved)
            except (ValueError, OSError):
                m = None
        if m is not None and m.design_id == t.design_id and same_oracle(m, identities[t.fidelity]) \
                and reaches(m, t.extend_ps):
            m = oriented(m, Design.model_validate(t.design), Conditions.model_validate(t.conditions))
            found.append(TaskResult(t.design_id, t.attempts, m.to_json(), None, 0.0, "recovered", True))
        else:
            ledger.transition(t.design_id, "candidate", "requeued: the driver stopped while it ran")
    return found
