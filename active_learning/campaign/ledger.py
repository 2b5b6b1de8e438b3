"""The campaign's single source of truth: a SQLite file (WAL, one transaction per change) in the campaign dir.

Tables: designs (by design_id), trials (one per design, with an explicit status machine, attempts and error
text), measurements (each design's latest), measurement_versions (every measurement ever stored, append-only),
iterations, models, meta (key/value), events (append-only audit trail).
Trial status machine (Ax-style):

    candidate -> running -> completed | failed | abandoned
    running -> candidate      (requeued: its worker was lost, or the driver restarted)
    candidate -> abandoned    (dropped: target reached, budget cut)
    completed -> candidate    (only by `extend`: the run continues to `extend_ps` per field; its measurement so far
                               stays, and is kept as a version when the extension's replaces it)

failed and abandoned are final; completed is final but for an extension. `CampaignLock` keeps a second driver off
the directory. The ledger knows nothing of its views (MLflow): they read it and keep their own bookkeeping.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from porelab.base.errors import PorelabError
from porelab.base.faults import fault_point

STATUSES = ("candidate", "running", "completed", "failed", "abandoned")
FINAL = frozenset({"completed", "failed", "abandoned"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "candidate": frozenset({"running", "abandoned"}),
    "running": frozenset({"completed", "failed", "abandoned", "candidate"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "abandoned": frozenset(),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS designs (
    design_id TEXT PRIMARY KEY, design TEXT NOT NULL, conditions TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    design_id TEXT NOT NULL UNIQUE REFERENCES designs(design_id),
    round INTEGER NOT NULL, source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate','running','completed','failed','abandoned')),
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, prediction TEXT, score REAL,
    busy_s REAL, worker TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, fidelity TEXT,
    extend_ps REAL, extensions INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS measurements (
    design_id TEXT PRIMARY KEY REFERENCES designs(design_id), status TEXT NOT NULL, fidelity TEXT NOT NULL,
    json TEXT NOT NULL, targets TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS measurement_versions (
    design_id TEXT NOT NULL REFERENCES designs(design_id), version INTEGER NOT NULL, status TEXT NOT NULL,
    fidelity TEXT NOT NULL, json TEXT NOT NULL, targets TEXT, created_at REAL NOT NULL,
    PRIMARY KEY (design_id, version));
CREATE TABLE IF NOT EXISTS iterations (
    step INTEGER PRIMARY KEY, round INTEGER NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    n_train INTEGER NOT NULL DEFAULT 0, metrics TEXT, model_version INTEGER);
CREATE TABLE IF NOT EXISTS models (
    version INTEGER PRIMARY KEY, step INTEGER NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    sha256 TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, design_id TEXT, kind TEXT NOT NULL, detail TEXT);
"""


# after the migrations (their columns); what the driver reads after every result uses them, not a scan of the table
INDEXES = """
CREATE INDEX IF NOT EXISTS trials_status ON trials (status);
DROP INDEX IF EXISTS trials_rung;
CREATE INDEX IF NOT EXISTS trials_busy ON trials (fidelity, busy_s / (1 + extensions))
    WHERE status = 'completed' AND busy_s IS NOT NULL;
"""

# the trials counted by rung (fidelity, '' for the study's own oracle) and status, kept by triggers as the trials
# change: what the driver reads after every result (Ledger.n_trials, Ledger.rung_stats) in O(1), not by counting them.
# Created, and filled from the trials, in one transaction the first time a ledger is opened by a porelab that has it
TALLY = """
BEGIN IMMEDIATE;
CREATE TABLE tally (fidelity TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, extensions INTEGER NOT NULL,
    timed INTEGER NOT NULL, PRIMARY KEY (fidelity, status));
INSERT INTO tally SELECT COALESCE(fidelity, ''), status, COUNT(*), SUM(extensions), SUM(busy_s IS NOT NULL)
    FROM trials GROUP BY 1, 2;
CREATE TRIGGER tally_insert AFTER INSERT ON trials BEGIN
    INSERT INTO tally VALUES (COALESCE(NEW.fidelity, ''), NEW.status, 1, NEW.extensions, NEW.busy_s IS NOT NULL)
        ON CONFLICT DO UPDATE SET n = n + 1, extensions = extensions + excluded.extensions,
        timed = timed + excluded.timed;
END;
CREATE TRIGGER tally_delete AFTER DELETE ON trials BEGIN
    UPDATE tally SET n = n - 1, extensions = extensions - OLD.extensions, timed = timed - (OLD.busy_s IS NOT NULL)
        WHERE fidelity = COALESCE(OLD.fidelity, '') AND status = OLD.status;
END;
CREATE TRIGGER tally_update AFTER UPDATE OF status, fidelity, extensions, busy_s ON trials BEGIN
    UPDATE tally SET n = n - 1, extensions = extensions - OLD.extensions, timed = timed - (OLD.busy_s IS NOT NULL)
        WHERE fidelity = COALESCE(OLD.fidelity, '') AND status = OLD.status;
    INSERT INTO tally VALUES (COALESCE(NEW.fidelity, ''), NEW.status, 1, NEW.extensions, NEW.busy_s IS NOT NULL)
        ON CONFLICT DO UPDATE SET n = n + 1, extensions = extensions + excluded.extensions,
        timed = timed + excluded.timed;
END;
COMMIT;
"""

# the rows of the trials that changed after an event (the events' primary key finds the few new ones)
_CHANGED = " AND {} IN (SELECT design_id FROM events WHERE id > ?)"

MIGRATIONS = (("fidelity", "fidelity TEXT"), ("extend_ps", "extend_ps REAL"),
              ("extensions", "extensions INTEGER NOT NULL DEFAULT 0"))


class LedgerError(PorelabError, RuntimeError):
    """A ledger operation that is not allowed (unknown trial, illegal transition, locked directory)."""


class IllegalTransition(LedgerError):
    pass


class CampaignLocked(LedgerError):
    pass


@dataclass(frozen=True)
class Trial:
    seq: int
    design_id: str
    round: int
    source: str
    status: str
    attempts: int
    error: str | None
    prediction: dict | None
    score: float | None
    busy_s: float | None
    worker: str | None
    design: dict
    conditions: dict
    fidelity: str | None = None  # the rung of the study's fidelity ladder that measures it (None: the target)
    extend_ps: float | None = None  # an extension's production per field to reach (None: the first run)
    extensions: int = 0  # extensions asked for so far


@dataclass(frozen=True)
class MeasuredRow:
    """A design's stored measurement with its trial's place (`Ledger.measurements`, `Ledger.measurement`): the
    measurement's JSON, targets (campaign.targets; None: none stored), status and fidelity; the trial's round,
    dispatch order (seq), rung of the study's fidelity ladder (None: its own oracle, the target) and the extensions
    it was asked for."""

    design_id: str
    json: str
    targets: dict | None
    status: str
    round: int
    seq: int
    fidelity: str
    rung: str | None
    extensions: int


class CampaignLock:
    """An exclusive flock on DIR/.lock, released by the kernel when the holder exits (even on kill -9)."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> CampaignLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise CampaignLocked(f"{self.path.parent} is being driven by {holder}; wait for it to finish "
                                 f"or stop it (one driver per campaign)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%F %T')}".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CampaignLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class Ledger:
    """Open (creating if needed) DIR/ledger.sqlite."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            cols = {r[1] for r in self.db.execute("PRAGMA table_info(trials)")}
            for col, sql in MIGRATIONS:  # a ledger from before the ladders or the extensions
                if col not in cols:
                    self.db.execute(f"ALTER TABLE trials ADD COLUMN {sql}")
            self.db.executescript(INDEXES)
            if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='tally'").fetchone():
                self._create_tally()
        except sqlite3.OperationalError as err:  # unreadable, read-only, disk full
            raise LedgerError(f"cannot open the ledger {self.path}: {err}") from None

    def _create_tally(self) -> None:
        try:
            self.db.executescript(TALLY)
        except sqlite3.OperationalError as err:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if "already exists" not in str(err):  # else another process created it first
                raise

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception. A failed write (disk full, read-only)
        raises LedgerError naming the ledger."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            fault_point("ledger.commit")  # a crash here loses the whole transaction, never half of it
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise LedgerError(f"cannot write the ledger {self.path}: {err}") from None

    def _event(self, db, design_id: str | None, kind: str, detail: str | None = None) -> None:
        db.execute("INSERT INTO events (time, design_id, kind, detail) VALUES (?,?,?,?)",
                   (time.time(), design_id, kind, detail))

    # --- meta ------------------------------------------------------------------------------------
    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?,?)", (key, json.dumps(value)))

    # --- trials ----------------------------------------------------------------------------------
    def add_trial(self, design_id: str, design: dict, conditions: dict, round: int, source: str,
                  prediction: dict | None = None, score: float | None = None, fidelity: str | None = None) -> bool:
        """Register a design as a candidate trial (to be measured at `fidelity`, None: the study's oracle); False
        (and no change) when the design is already known."""
        with self.transaction() as db:
            return self._add(db, design_id, design, conditions, round, source, prediction, score, fidelity)

    def add_trials(self, rows: list[dict]) -> int:
        """add_trial for many rows in one transaction; returns how many were new."""
        with self.transaction() as db:
            return sum(self._add(db, **r) for r in rows)

    def _add(self, db, design_id, design, conditions, round, source, prediction=None, score=None,
             fidelity=None) -> bool:
        now = time.time()
        db.execute("INSERT OR IGNORE INTO designs VALUES (?,?,?,?)",
                   (design_id, json.dumps(design, sort_keys=True), json.dumps(conditions, sort_keys=True), now))
        cur = db.execute(
            "INSERT OR IGNORE INTO trials (design_id, round, source, status, prediction, score, created_at, "
            "updated_at, fidelity) VALUES (?,?,?,'candidate',?,?,?,?,?)",
            (design_id, round, source, json.dumps(prediction) if prediction else None, score, now, now, fidelity))
        if cur.rowcount:
            self._event(db, design_id, "candidate", source)
        return bool(cur.rowcount)

    def _transition(self, db, design_id: str, new: str, error: str | None = None, **cols) -> None:
        row = db.execute("SELECT status FROM trials WHERE design_id=?", (design_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no trial {design_id}")
        if new not in TRANSITIONS[row[0]]:
            raise IllegalTransition(f"trial {design_id}: {row[0]} -> {new} is not allowed "
                                    f"(from {row[0]}: {', '.join(sorted(TRANSITIONS[row[0]])) or 'final'})")
        sets = ", ".join(f"{k}=?" for k in cols)
        db.execute(f"UPDATE trials SET status=?, error=?, updated_at=?{', ' + sets if sets else ''} "
                   "WHERE design_id=?", (new, error, time.time(), *cols.values(), design_id))
        self._event(db, design_id, new, error)

    def transition(self, design_id: str, new: str, error: str | None = None) -> None:
        """Move a trial to `new`; IllegalTransition when the status machine forbids it."""
        with self.transaction() as db:
            self._transition(db, design_id, new, error)

    def start(self, design_id: str, worker: str | None = None) -> int:
        """candidate -> running, counting the attempt; returns the attempt number (1, 2, ...)."""
        with self.transaction() as db:
            self._transition(db, design_id, "running", None, worker=worker)
            db.execute("UPDATE trials SET attempts = attempts + 1 WHERE design_id=?", (design_id,))
            return db.execute("SELECT attempts FROM trials WHERE design_id=?", (design_id,)).fetchone()[0]

    def finish(self, design_id: str, status: str, measurement_json: str | None, fidelity: str,
               targets: dict | None = None, error: str | None = None, busy_s: float | None = None,
               worker: str | None = None) -> None:
        """running -> completed | failed | abandoned, storing the measurement (if any) in the same transaction.
        An extension's busy seconds add to the trial's; one that did not complete leaves the trial completed with
        the measurement it extended (the error says why), its own kept as a version only."""
        with self.transaction() as db:
            before = db.execute("SELECT busy_s, extend_ps FROM trials WHERE design_id=?", (design_id,)).fetchone()
            extension = before is not None and before[1] is not None
            if extension and busy_s is not None:
                busy_s += before[0] or 0.0
            stored = "ok" if status == "completed" else "failed"
            if extension and status != "completed":
                status, error = "completed", f"extension to {before[1]:g} ps per field {status}: {error}"
            self._transition(db, design_id, status, error, busy_s=busy_s, worker=worker)
            if measurement_json is not None:
                self._store(db, design_id, stored, fidelity, measurement_json, targets, stored == "ok" or not extension)

    def _store(self, db, design_id: str, status: str, fidelity: str, measurement_json: str, targets: dict | None,
               latest: bool = True) -> None:
        """Append a measurement version; `latest`: it is also the design's measurement (replacing the one before).
        A ledger from before the versions gets its stored measurement as version 1 first."""
        now, tg = time.time(), json.dumps(targets) if targets else None
        version = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM measurement_versions WHERE design_id=?",
                             (design_id,)).fetchone()[0]
        if version == 1 and db.execute("INSERT INTO measurement_versions SELECT design_id, 1, status, fidelity, json, "
                                       "targets, created_at FROM measurements WHERE design_id=?",
                                       (design_id,)).rowcount:
            version = 2
        db.execute("INSERT INTO measurement_versions VALUES (?,?,?,?,?,?,?)",
                   (design_id, version, status, fidelity, measurement_json, tg, now))
        if latest:
            db.execute("INSERT OR REPLACE INTO measurements (design_id, status, fidelity, json, targets, created_at) "
                       "VALUES (?,?,?,?,?,?)", (design_id, status, fidelity, measurement_json, tg, now))

    def extend(self, design_id: str, to_ps: float, round: int) -> None:
        """completed -> candidate: run the design's measurement on to `to_ps` of production per field (its run
        directory resumes), asked in iteration `round` (the trial keeps the round it was picked in: its measurement
        so far stays the design's, in that round's training data, until the extension completes). Only a completed
        trial at the study's own oracle can be extended; IllegalTransition otherwise."""
        with self.transaction() as db:
            self._extend(db, design_id, to_ps, round)

    def _extend(self, db, design_id: str, to_ps: float, round: int) -> None:
        row = db.execute("SELECT status, fidelity FROM trials WHERE design_id=?", (design_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no trial {design_id}")
        if row[0] != "completed" or row[1] is not None:
            raise IllegalTransition(f"trial {design_id}: only a completed trial at the study's own oracle can be "
                                    f"extended (it is {row[0]}{f' at {row[1]}' if row[1] else ''})")
        db.execute("UPDATE trials SET status='candidate', error=NULL, updated_at=?, extend_ps=?, "
                   "extensions = extensions + 1 WHERE design_id=?", (time.time(), to_ps, design_id))
        self._event(db, design_id, "extend", f"to {to_ps:g} ps per field, round {round}")

    def add_completed(self, rows: list[dict]) -> None:
        """Trials measured elsewhere (campaign.interop.tell), all in one transaction: each row {design_id, design,
        conditions, round, source, measurement_json, fidelity, targets} added, run once and completed with its
        measurement. LedgerError (and no change) when a design is already known."""
        with self.transaction() as db:
            for r in rows:
                if not self._add(db, r["design_id"], r["design"], r["conditions"], r["round"], r["source"]):
                    raise LedgerError(f"design {r['design_id']} is already in the ledger {self.path}")
                self._transition(db, r["design_id"], "running", None, attempts=1, worker=r["source"])
                self._transition(db, r["design_id"], "completed", None)
                self._store(db, r["design_id"], "ok", r["fidelity"], r["measurement_json"], r["targets"])

    def trial(self, design_id: str) -> Trial | None:
        rows = self._trials("WHERE t.design_id=?", (design_id,))
        return rows[0] if rows else None

    def trials(self, status: str | tuple[str, ...] | None = None, max_round: int | None = None) -> list[Trial]:
        """Trials in dispatch order (seq), optionally with the given status(es) and round <= max_round."""
        where, args = [], []
        if status is not None:
            st = (status,) if isinstance(status, str) else tuple(status)
            where.append(f"t.status IN ({','.join('?' * len(st))})")
            args += st
        if max_round is not None:
            where.append("t.round <= ?")
            args.append(max_round)
        return self._trials(("WHERE " + " AND ".join(where)) if where else "", tuple(args))

    def _trials(self, where: str, args: tuple) -> list[Trial]:
        q = ("SELECT t.*, d.design AS d, d.conditions AS c FROM trials t JOIN designs d USING (design_id) "
             f"{where} ORDER BY t.seq")
        return [Trial(seq=r["seq"], design_id=r["design_id"], round=r["round"], source=r["source"],
                      status=r["status"], attempts=r["attempts"], error=r["error"],
                      prediction=json.loads(r["prediction"]) if r["prediction"] else None, score=r["score"],
                      busy_s=r["busy_s"], worker=r["worker"], design=json.loads(r["d"]), conditions=json.loads(r["c"]),
                      fidelity=r["fidelity"], extend_ps=r["extend_ps"], extensions=r["extensions"])
                for r in self.db.execute(q, args)]

    def finished_keys(self, after_event: int = 0) -> tuple[list[tuple[str, int]], int]:
        """(design id, extensions) of the trials in a final status, in dispatch order (no JSON parsed), only those
        that moved after event `after_event` (0: all), and the newest event id: pass it next time to be told only
        what is new (every transition is an event)."""
        last = self.last_event()
        st = tuple(FINAL)
        q, args = f"SELECT design_id, extensions FROM trials WHERE status IN ({','.join('?' * len(st))})", st
        if after_event:  # from the few new events, not a scan of every finished trial
            q = ("SELECT DISTINCT t.design_id, t.extensions, t.seq FROM events e JOIN trials t USING (design_id) "
                 f"WHERE e.id > ? AND e.id <= ? AND t.status IN ({','.join('?' * len(st))})")
            args = (after_event, last, *st)
        return [(r[0], r[1]) for r in self.db.execute(q + " ORDER BY seq", args)], last

    def last_event(self) -> int:
        """The newest event id (0: none). Every change of a trial or its measurement is an event, so the designs
        of the events after it (`changed_since`) are all that changed since it was read."""
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]

    def changed_since(self, event: int) -> builtins.set[str]:
        """The design ids of the events after `event` (Ledger.last_event): the trials that changed since."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT design_id FROM events WHERE id > ? "
                                              "AND design_id IS NOT NULL", (event,))}

    def outcomes(self, after_event: int = 0) -> list[tuple[str, int, str | None, float | None, dict | None]]:
        """(design id, round, rung, busy seconds, pick-time prediction) of each completed trial in dispatch order:
        what iterations and the champion read of them, without the design and conditions JSON; after_event: only
        those that changed after that event (`changed_since`)."""
        return [(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None) for r in self.db.execute(
            "SELECT design_id, round, fidelity, busy_s, prediction FROM trials WHERE "  # changed: found by their ids
            + ("+status='completed'" + _CHANGED.format("design_id") if after_event else "status='completed'")
            + " ORDER BY seq",
            (after_event,) if after_event else ())]

    def any_running(self, max_round: int) -> bool:
        """Whether a trial of rounds <= max_round is neither final nor an extension in flight (whose data is in its
        round already): what an iteration training on those rounds waits for."""
        st = tuple(s for s in STATUSES if s not in FINAL)  # IN, not NOT IN: the status index finds the few
        return self.db.execute(f"SELECT 1 FROM trials WHERE round <= ? AND status IN ({','.join('?' * len(st))}) "
                               "AND NOT extensions LIMIT 1", (max_round, *st)).fetchone() is not None

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for st, n in self.db.execute("SELECT status, SUM(n) FROM tally GROUP BY status"):
            out[st] = n
        return out

    def known_ids(self) -> builtins.set[str]:  # builtins: this class has its own `set`
        return {r[0] for r in self.db.execute("SELECT design_id FROM trials")}

    def max_round(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(round), -1) FROM trials").fetchone()[0]

    # --- measurements ---------------------------------------------------------------------------
    def measurements(self, ok_only: bool = True, max_round: int | None = None,
                     after_event: int = 0) -> list[MeasuredRow]:
        """The designs' measurements (MeasuredRow: fidelity, the measurement's; rung, the trial's rung of the study's
        ladder, None for its own oracle, the target; extensions, how many the trial was asked for) in dispatch
        order; after_event: only those of the trials that changed after that event (`changed_since`)."""
        where, args = "", []
        if ok_only:
            where += " AND m.status='ok'"
        if max_round is not None:
            where += " AND t.round <= ?"
            args.append(max_round)
        if after_event:
            where += _CHANGED.format("m.design_id")
            args.append(after_event)
        return self._measured(where, args)

    def ok_targets(self, after_event: int = 0) -> dict[str, dict]:
        """{design id: its targets as stored ({} where none)} of the ok measurements, without their JSON;
        after_event: only those of the trials that changed after that event (`changed_since`)."""
        return {d: json.loads(t) if t else {} for d, t in self.db.execute(
            "SELECT design_id, targets FROM measurements WHERE status='ok'"
            + (_CHANGED.format("design_id") if after_event else ""), (after_event,) if after_event else ())}

    def best_target(self, name: str, maximize: bool) -> float | None:
        """The highest (maximize) or lowest stored target `name` of the ok measurements at the study's own oracle
        (rung None), aggregated by SQLite without reading the rows into Python: what a target stop condition asks
        after every result. None before one has it."""
        return self.db.execute(f"SELECT {'MAX' if maximize else 'MIN'}(json_extract(m.targets, ?)) FROM measurements m "
                               "JOIN trials t USING (design_id) WHERE m.status='ok' AND t.fidelity IS NULL "
                               "AND json_valid(m.targets)",  # targets holding NaN (not JSON to SQLite) left out
                               (f'$."{name}"',)).fetchone()[0]

    def measurement(self, design_id: str) -> MeasuredRow | None:
        """One design's measurement (as `measurements` reads it, whatever its status), or None."""
        rows = self._measured(" AND m.design_id=?", [design_id])
        return rows[0] if rows else None

    def _measured(self, where: str, args: list) -> list[MeasuredRow]:
        q = ("SELECT m.design_id, m.json, m.targets, m.status, t.round, t.seq, m.fidelity, t.fidelity, t.extensions "
             "FROM measurements m JOIN trials t USING (design_id) WHERE 1=1")
        return [MeasuredRow(design_id=r[0], json=r[1], targets=json.loads(r[2]) if r[2] else None, status=r[3],
                            round=r[4], seq=r[5], fidelity=r[6], rung=r[7], extensions=r[8])
                for r in self.db.execute(q + where + " ORDER BY t.seq", args)]

    def versions(self, design_id: str) -> list[dict]:
        """Every measurement stored for a design, oldest first: [{version, status, fidelity, json, targets,
        created_at}]."""
        return [{"version": r[0], "status": r[1], "fidelity": r[2], "json": r[3],
                 "targets": json.loads(r[4]) if r[4] else None, "created_at": r[5]}
                for r in self.db.execute("SELECT version, status, fidelity, json, targets, created_at FROM "
                                         "measurement_versions WHERE design_id=? ORDER BY version", (design_id,))]

    def n_trials(self, target_only: bool = False) -> int:
        """Simulations asked of the ledger's trials (each extension is one more); target_only: those of the
        study's own oracle (not of a cheaper rung)."""
        where = " WHERE fidelity = ''" if target_only else ""
        return self.db.execute("SELECT COALESCE(SUM(n + extensions), 0) FROM tally" + where).fetchone()[0]

    def rung_stats(self, median: bool = True) -> dict[str | None, dict]:
        """Per rung of the ladder (None: the target): {"trials": simulations asked (an extension is one more),
        "finished": how many of them ended, "timed": its completed trials with worker seconds, "median_busy_s": the
        median worker seconds per simulation of those (an extended one's over its runs; None before one completed,
        or when not `median`)}: what the acquisition's costs and the progress line are read from. The counts are
        the tally's (O(1)); the median walks half an index (O(n)), so the progress line after every result asks it
        only now and then (campaign.driver)."""
        out: dict[str | None, dict] = {}
        for fid, status, n, ext, timed in self.db.execute("SELECT fidelity, status, n, extensions, timed FROM tally"):
            o = out.setdefault(fid or None, {"trials": 0, "finished": 0, "timed": 0, "median_busy_s": None})
            o["trials"] += n + ext
            o["finished"] += ext + (n if status in FINAL else 0)
            if status == "completed":
                o["timed"] = timed
        out = {k: o for k, o in out.items() if o["trials"]}  # a rung whose trials all moved on (n = 0 rows)
        for fid, o in out.items():
            if median and (n := o["timed"]):  # the middle one or two, walked along trials_busy
                mid = [r[0] for r in self.db.execute(
                    "SELECT busy_s / (1 + extensions) AS b FROM trials WHERE status='completed' AND busy_s IS NOT NULL "
                    "AND fidelity IS ? ORDER BY b LIMIT ? OFFSET ?", (fid, 2 - n % 2, (n - 1) // 2))]
                o["median_busy_s"] = sum(mid) / len(mid)
        return out

    # --- iterations and models ------------------------------------------------------------------
    def iterations(self, skip: Collection[int] = ()) -> list[dict]:
        """The iterations in step order, but those whose step is in `skip` (their metrics not parsed)."""
        steps = [s for (s,) in self.db.execute("SELECT step FROM iterations ORDER BY step") if s not in skip]
        if len(steps) > 100:  # most of them: one pass
            rows = self.db.execute("SELECT * FROM iterations ORDER BY step")
        else:  # the few not yet logged (the MLflow view after every result): those rows alone
            rows = self.db.execute(f"SELECT * FROM iterations WHERE step IN ({','.join('?' * len(steps))}) "
                                   "ORDER BY step", steps)
        return [{**dict(r), "metrics": json.loads(r["metrics"]) if r["metrics"] else {}} for r in rows
                if r["step"] not in skip]

    def next_step(self) -> int:
        """The step after the newest iteration (0 before the first)."""
        return self.db.execute("SELECT COALESCE(MAX(step) + 1, 0) FROM iterations").fetchone()[0]

    def record_iteration(self, step: int, round: int, started_at: float, n_train: int, metrics: dict,
                         model: dict | None, picks: list[dict], meta: dict | None = None) -> int:
        """Commit a finished iteration, its model {kind, path, sha256}, its picks (as candidate trials) and
        `meta` keys in one transaction; returns the number of new picks."""
        with self.transaction() as db:
            for k, v in (meta or {}).items():
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?,?)", (k, json.dumps(v)))
            model_version = None
            if model is not None:
                model_version = db.execute(
                    "INSERT INTO models (step, kind, path, sha256, created_at) VALUES (?,?,?,?,?)",
                    (step, model["kind"], model["path"], model["sha256"], time.time())).lastrowid
            db.execute("INSERT INTO iterations (step, round, started_at, finished_at, n_train, metrics, model_version) "
                       "VALUES (?,?,?,?,?,?,?)",
                       (step, round, started_at, time.time(), n_train, json.dumps(metrics), model_version))
            n = 0
            for p in picks:
                if p.get("extend_ps") is not None:
                    self._extend(db, p["design_id"], p["extend_ps"], p["round"])
                    n += 1
                else:
                    n += self._add(db, **p)
            self._event(db, None, "iteration", f"step {step}: {n} picks, {n_train} training points")
            return n

    def models(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM models ORDER BY version")]

    def model(self, version: int | None) -> dict | None:
        """The model of that version, None when there is none (or version is None)."""
        r = self.db.execute("SELECT * FROM models WHERE version=?", (version,)).fetchone()
        return dict(r) if r is not None else None

    def events(self, kind: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM events", ()
        if kind:
            q, args = q + " WHERE kind=?", (kind,)
        return [dict(r) for r in self.db.execute(q + " ORDER BY id", args)]
