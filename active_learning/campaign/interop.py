"""A campaign in and out of other tools: `export_trials` writes its trials as a table (CSV or Parquet), `tell` seeds
it with measurements made before it (a lab's old simulations).

Export: one row per trial, in dispatch order: design_id, status, round, source, attempts, error, score (the
acquisition's), the design and conditions flattened (`design.spacing_nm`, `design.pore.width_nm`,
`conditions.electrolyte.K+`, ...; lists as JSON text, e.g. `design.layers` = ["COO-", "NH3+"]), the measurement's
fidelity and oracle (JSON), its cost `cpu_s` and `wall_s` (the MD run record, else the measurement's provenance;
empty when it records none; s) and `worker_busy_s` (the campaign's worker time), the measured values as the
campaign's summary reads them (campaign.measured, from campaign.targets): icr, icr_lo, icr_hi, icr_censored,
icr_upper_censored and the same for on_current_nA (nA), objective and selectivity (95 % intervals; `_hi` empty
when censored, the value then a lower bound; `_upper_censored`: only an upper bound, the value), at
field_V_per_nm (|E|, V/nm), with estimator and measured_by, the orientation they are read in (`mirrored`: icr is
that of the mirror image of the design columns, which are the trial's as drawn; `on_field`), and the prediction
the trial was picked with (`predicted.<name>`, ln scale). Trials without a measurement leave those columns empty.

Tell: each measurement.json becomes a completed trial of round 0 with source "told", its measurement stored in the
ledger with its targets and saved as runs/<design_id>/measurement.json, as ingested results are (ingest.py). Told
trials count in the budget and train the models like any other; before the first run they take places of the
initial design (driver.py). Given a study, a directory without a campaign becomes one, so that a lab's old runs
are told before the campaign's first simulation. Refused with one line, and nothing written: a file that is not a
measurement (or whose design_id is not its design's), a failed measurement, one by another oracle than the study's
(sim.measurement.same_oracle), a design already in the ledger (or told twice), numbers that give no target
(campaign.targets), a finished campaign, one being driven.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from porelab.active_learning.campaign.directory import LEDGER_FILE, STUDY_FILE, CampaignError, create, load, run_dir
from porelab.active_learning.campaign.ledger import CampaignLock, Ledger
from porelab.active_learning.campaign.measured import icr_text, interval, measured
from porelab.active_learning.campaign.oracles import study_identity
from porelab.active_learning.campaign.study import Study
from porelab.active_learning.campaign.targets import InvalidMeasurement, targets
from porelab.base.files import atomic_write_bytes
from porelab.sim.design import design_id
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement, same_oracle

FORMATS = (".csv", ".parquet")
TOLD = "told"


# --- export ------------------------------------------------------------------------------------------------
def _flatten(prefix: str, value, out: dict) -> None:
    """Nested dicts as dotted keys; lists as JSON text (a table cell); scalars as they are."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, list | tuple):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def cost(m: Measurement | None) -> dict[str, float | None]:
    """{cpu_s, wall_s} of a measurement: its MD run record's, else its provenance's, else None."""
    if m is None:
        return {"cpu_s": None, "wall_s": None}
    if m.run is not None:
        return {"cpu_s": m.run.cpu_s, "wall_s": m.run.wall_s}
    num = {k: v for k in ("cpu_s", "wall_s") if isinstance(v := m.provenance.get(k), int | float)}
    return {"cpu_s": num.get("cpu_s"), "wall_s": num.get("wall_s")}


def trial_table(directory: str | Path) -> pd.DataFrame:
    """The campaign's trials, one row each (see the module docstring)."""
    directory = Path(directory)
    study = load(directory)
    ledger = Ledger(directory / LEDGER_FILE)
    try:
        rows_by_id = {r.design_id: r for r in ledger.measurements(ok_only=False)}
        trials = ledger.trials()
    finally:
        ledger.close()
    groups: list[dict] = []
    for t in trials:
        base = {"design_id": t.design_id, "status": t.status, "round": t.round, "source": t.source,
                "attempts": t.attempts, "error": t.error, "score": t.score}
        space: dict = {}
        _flatten("design", t.design, space)
        _flatten("conditions", t.conditions, space)
        r = rows_by_id.get(t.design_id)
        m = Measurement.model_validate_json(r.json) if r else None
        meas = {"fidelity": m.fidelity if m else None,
                "oracle": json.dumps(m.oracle, sort_keys=True) if m else None, **cost(m), "worker_busy_s": t.busy_s}
        read = measured(r, study.goal) if r and r.status == "ok" else None
        values = {k: v for k, v in read.as_dict().items() if k not in ("design_id", "fidelity")} if read else {}
        predicted = {f"predicted.{k}": v for k, v in (t.prediction or {}).items()}
        groups.append({"base": base, "space": space, "meas": meas, "values": values, "predicted": predicted})
    columns: list[str] = []
    for g in ("base", "space", "meas", "values", "predicted"):  # the same order whatever row has what
        columns += list(dict.fromkeys(k for row in groups for k in row[g] if k not in columns))
    frame = pd.DataFrame([{k: v for g in row.values() for k, v in g.items()} for row in groups], columns=columns)
    return frame.astype({c: "boolean" for c in columns if c.endswith("_censored") or c in ("symmetric", "mirrored")})


def export_trials(directory: str | Path, out: str | Path) -> int:
    """Write the trial table to `out` (.csv or .parquet, by its suffix; atomically); returns the number of rows.
    ValueError for another suffix."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {out}: write .csv or .parquet (the format follows the suffix), not "
                         f"{out.suffix or 'no suffix'!r}")
    frame = trial_table(directory)
    data = frame.to_csv(index=False).encode() if out.suffix.lower() == ".csv" else frame.to_parquet(index=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    return len(frame)


# --- tell ----------------------------------------------------------------------------------------------------
def _read(path: Path) -> Measurement:
    try:
        return Measurement.load(path)
    except OSError as err:
        raise CampaignError(f"{path}: {err.strerror or err}") from None
    except (ValidationError, ValueError, UnicodeDecodeError) as err:
        first = err.errors()[0] if isinstance(err, ValidationError) else None
        why = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(err).splitlines()[0]
        raise CampaignError(f"{path}: not a porelab measurement ({why})") from None


def _stored_elsewhere(saved: Path, m: Measurement) -> bool:
    """Whether `saved` holds anything but `m` (a stray or another measurement of that run directory)."""
    if not saved.exists():
        return False
    try:
        return Measurement.load(saved) != m
    except (OSError, ValueError):
        return True


def _check(path: Path, m: Measurement, identity: dict, known: set[str], directory: Path, goal) -> dict:
    """The targets of a measurement that may be told; CampaignError naming the file and why not."""
    if m.design_id != design_id(m.design, m.conditions):
        raise CampaignError(f"{path}: its design_id {m.design_id} is not the id of its design and conditions "
                            f"({design_id(m.design, m.conditions)}); an edited file is not told")
    if m.status != "ok":
        raise CampaignError(f"{path}: a failed measurement ({m.error or 'no reason given'}) has no numbers to tell")
    if not same_oracle(m, identity):
        theirs = json.dumps(m.oracle, sort_keys=True) if m.oracle else "an unnamed oracle"
        raise CampaignError(f"{path}: measured by {theirs}, not by the study's oracle "
                            f"{json.dumps(identity, sort_keys=True)}: another question, not told")
    if m.design_id in known:
        raise CampaignError(f"{path}: design {m.design_id} is already in the campaign")
    saved = run_dir(directory, m.design_id) / MEASUREMENT_FILE
    if _stored_elsewhere(saved, m):
        raise CampaignError(f"{path}: {saved} already holds another measurement of design {m.design_id}; move it "
                            "away first")
    try:
        return targets(m, goal)
    except InvalidMeasurement as err:
        raise CampaignError(f"{path}: its numbers give no target ({err})") from None


def _validated(files: list[Path], identity: dict, known: set[str], directory: Path, goal) -> list:
    """[(measurement, targets)] of `files`, each checked (_check); CampaignError at the first refused."""
    known, told = set(known), []
    for f in files:
        m = _read(f)
        told.append((m, _check(f, m, identity, known, directory, goal)))
        known.add(m.design_id)
    return told


def tell(directory: str | Path, files: list[str | Path], study: Study | None = None) -> list[str]:
    """Add the measurements in `files` to the campaign in `directory` as completed round-0 trials (see the module
    docstring); returns one line per told design. With `study`, a directory that holds no campaign yet becomes one
    of that study (after every file passed). CampaignError (one line; nothing written) when any is refused."""
    directory, files = Path(directory), [Path(f) for f in files]
    new = study is not None and not (directory / LEDGER_FILE).exists() and not (directory / STUDY_FILE).exists()
    if not new:
        held = load(directory)
        if study is not None and held.digest() != study.digest():
            raise CampaignError(f"{directory} holds a campaign of another study than the one given")
        study = held
    identity = study_identity(study.oracle)
    if new:
        _validated(files, identity, set(), directory, study.goal)  # refused before the directory is made
        create(study, directory)
    with CampaignLock(directory):
        ledger = Ledger(directory / LEDGER_FILE)
        try:
            if ledger.get("finished"):
                raise CampaignError(f"{directory}: the campaign has finished ({ledger.get('finished')}) and trained "
                                    "its final model; tell measurements before a campaign ends")
            told = _validated(files, identity, ledger.known_ids(), directory, study.goal)
            for m, _ in told:
                saved = run_dir(directory, m.design_id) / MEASUREMENT_FILE
                if not saved.exists():
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    m.save(saved)
            ledger.add_completed([{"design_id": m.design_id, "design": m.design.model_dump(mode="json"),
                                   "conditions": m.conditions.model_dump(mode="json"), "round": 0, "source": TOLD,
                                   "measurement_json": m.to_json(), "fidelity": m.fidelity, "targets": tg}
                                  for m, tg in told])
        finally:
            ledger.close()
    return [f"told    {m.design_id}: ICR {icr_text(tg)}, ON {interval(tg, 'log_on_current')} nA"
            for m, tg in told]
