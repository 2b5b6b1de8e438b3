import sqlite3

import pytest

from porelab.active_learning.campaign.ledger import (
    FINAL,
    STATUSES,
    TRANSITIONS,
    CampaignLock,
    CampaignLocked,
    IllegalTransition,
    Ledger,
)

D = {"layers": ["COO-"]}
C = {"fields_V_per_nm": [1.0, -1.0]}


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.sqlite")
    yield led
    led.close()


def test_wal_and_tables(ledger):
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in ledger.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"designs", "trials", "measurements", "iterations", "models", "meta", "events"} <= names


def test_same_design_twice_is_one_trial(ledger):
    assert ledger.add_trial("a1", D, C, 0, "initial") is True
    assert ledger.add_trial("a1", D, C, 3, "ucb") is False
    assert [(t.design_id, t.round) for t in ledger.trials()] == [("a1", 0)]
    assert ledger.add_trials([dict(design_id=i, design=D, conditions=C, round=1, source="x") for i in
                              ("a1", "b2", "b2", "c3")]) == 2
    assert [t.design_id for t in ledger.trials()] == ["a1", "b2", "c3"]


def test_happy_path_and_attempts(ledger):
    ledger.add_trial("a1", D, C, 0, "initial")
    assert ledger.start("a1") == 1
    ledger.transition("a1", "candidate", "worker lost")
    assert ledger.start("a1") == 2
    ledger.finish("a1", "completed", '{"x": 1}', "continuum", targets={"log_icr": 0.5}, busy_s=1.5)
    t = ledger.trial("a1")
    assert (t.status, t.attempts, t.busy_s) == ("completed", 2, 1.5)
    assert ledger.measurement("a1").targets == {"log_icr": 0.5}
    assert [e["kind"] for e in ledger.events() if e["design_id"] == "a1"] == \
        ["candidate", "running", "candidate", "running", "completed"]


@pytest.mark.parametrize("start", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_every_transition_follows_the_machine(ledger, start, new):
    ledger.add_trial("a1", D, C, 0, "initial")
    path = {"candidate": [], "running": ["running"], "completed": ["running", "completed"],
            "failed": ["running", "failed"], "abandoned": ["abandoned"]}[start]
    for s in path:
        ledger.transition("a1", s)
    assert ledger.trial("a1").status == start
    if new in TRANSITIONS[start]:
        ledger.transition("a1", new, "why")
        assert ledger.trial("a1").status == new and ledger.trial("a1").error == "why"
    else:
        with pytest.raises(IllegalTransition, match=f"{start} -> {new}"):
            ledger.transition("a1", new)
        assert ledger.trial("a1").status == start
    if start in FINAL:
        assert not TRANSITIONS[start]


def test_database_refuses_unknown_status(ledger):
    ledger.add_trial("a1", D, C, 0, "initial")
    with pytest.raises(sqlite3.IntegrityError):
        ledger.db.execute("UPDATE trials SET status='done' WHERE design_id='a1'")


def test_failed_transaction_changes_nothing(ledger):
    ledger.add_trial("a1", D, C, 0, "initial")
    with pytest.raises(IllegalTransition):  # candidate -> completed: refused, and no measurement row left
        ledger.finish("a1", "completed", '{"x": 1}', "continuum")
    assert ledger.measurement("a1") is None and ledger.trial("a1").status == "candidate"


def test_second_driver_is_refused(tmp_path):
    with CampaignLock(tmp_path):
        with pytest.raises(CampaignLocked, match="being driven by pid"):
            CampaignLock(tmp_path).acquire()
    CampaignLock(tmp_path).acquire().release()  # free again once the first let go


def test_the_ledger_knows_nothing_of_its_views(ledger):
    """MLflow is a view with its own bookkeeping: no column of the ledger names a run, a registration or a log."""
    for (table,) in ledger.db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
        cols = [r[1] for r in ledger.db.execute(f"PRAGMA table_info({table})")]
        assert not [c for c in cols if "mlflow" in c or c in ("registered", "logged", "run_id")], (table, cols)


def test_finished_keys_after_an_event_are_only_the_trials_finished_since(ledger):
    for d in ("a", "b", "c"):
        ledger.add_trial(d, D, C, 0, "initial")
        ledger.start(d)
    ledger.finish("a", "completed", "{}", "continuum", {})
    first, mark = ledger.finished_keys()
    assert first == [("a", 0)] and mark > 0
    assert ledger.finished_keys(mark) == ([], mark)  # nothing moved since
    ledger.finish("c", "failed", None, "continuum", None)
    ledger.transition("b", "abandoned", "oracle gave up")
    new, mark2 = ledger.finished_keys(mark)
    assert new == [("b", 0), ("c", 0)] and mark2 > mark  # in dispatch order, "a" not again
    assert ledger.finished_keys()[0] == [("a", 0), ("b", 0), ("c", 0)]


def test_best_target_is_the_extreme_at_the_studys_own_oracle(ledger):
    """What the target stop condition reads after every result, aggregated in SQLite: the study's oracle's ok
    measurements only (not a cheaper rung's, not a failed one's), either direction; None before one has the name."""
    assert ledger.best_target("log_icr", True) is None
    for d, rung, status, v in (("a", None, "ok", 0.5), ("b", None, "ok", -0.2), ("c", "continuum", "ok", 3.0),
                               ("d", None, "failed", 9.0), ("e", None, "ok", float("nan"))):
        ledger.add_trial(d, D, C, 0, "initial", fidelity=rung)
        ledger.start(d)
        ledger.finish(d, "completed" if status == "ok" else "failed", "{}", rung or "md", {"log_icr": v})
    assert ledger.best_target("log_icr", True) == 0.5 and ledger.best_target("log_icr", False) == -0.2
    assert ledger.best_target("log_on_current", True) is None


def test_rung_stats_count_simulations_and_take_the_median_cost(ledger):
    """Per rung, from SQLite: simulations asked (an extension one more), those that ended, and the median worker
    seconds per simulation of the completed trials (an extended one's over its runs), odd and even counts alike;
    failed and running trials cost nothing."""
    rows = [("a", None, "completed", 4.0, 0), ("b", None, "completed", 10.0, 1), ("c", None, "failed", 3.0, 0),
            ("d", None, "running", None, 0), ("e", "continuum", "completed", 1.0, 0),
            ("f", "continuum", "completed", 3.0, 0), ("g", None, "completed", 1.0, 0)]
    for d, rung, status, busy, ext in rows:
        ledger.add_trial(d, D, C, 0, "initial", fidelity=rung)
        ledger.start(d)
        if ext:  # completed once, extended, the extension completed: two simulations, busy over both
            ledger.finish(d, "completed", "{}", "md", {}, busy_s=busy / 2)
            ledger.extend(d, 20.0, 1)
            ledger.start(d)
            busy /= 2
        if status != "running":
            ledger.finish(d, status, "{}" if status == "completed" else None, rung or "md", {}, busy_s=busy)
    # the target: a 4 s, b 10 s over 2 runs = 5 s each, g 1 s; c failed, d running
    assert ledger.rung_stats() == {None: {"trials": 6, "finished": 5, "timed": 3, "median_busy_s": 4.0},
                                   "continuum": {"trials": 2, "finished": 2, "timed": 2, "median_busy_s": 2.0}}
    assert ledger.rung_stats(median=False)[None] == {"trials": 6, "finished": 5, "timed": 3, "median_busy_s": None}
    ledger.finish("d", "completed", "{}", "md", {}, busy_s=6.0)  # an even count: [1, 4, 5, 6]
    assert ledger.rung_stats()[None] == {"trials": 6, "finished": 6, "timed": 4, "median_busy_s": 4.5}
    assert ledger.n_trials() == 8 and ledger.n_trials(True) == 6


def _counted(db) -> list[tuple]:
    return [tuple(r) for r in db.execute("SELECT COALESCE(fidelity, ''), status, COUNT(*), SUM(extensions), "
                                         "SUM(busy_s IS NOT NULL) FROM trials GROUP BY 1, 2 ORDER BY 1, 2")]


def _tallied(db) -> list[tuple]:
    return [tuple(r) for r in db.execute("SELECT * FROM tally WHERE n > 0 ORDER BY 1, 2")]


def test_the_tally_the_triggers_keep_is_the_trials_counted(tmp_path):
    """Every change of a trial (added, started, finished, extended, failed, abandoned, deleted) keeps the tally equal
    to counting the trials; a ledger from before the tally gets it filled when opened."""
    led = Ledger(tmp_path / "ledger.sqlite")
    for i, rung in enumerate([None, None, "twin", None, "twin", None]):
        led.add_trial(f"d{i}", D, C, 0, "initial", fidelity=rung)
    for d, status in (("d0", "completed"), ("d1", "failed"), ("d2", "completed"), ("d3", "completed")):
        led.start(d)
        led.finish(d, status, "{}" if status == "completed" else None, "md", {}, busy_s=2.0)
    led.extend("d0", 20.0, 1)
    led.start("d5")
    assert _tallied(led.db) == _counted(led.db) and len(_counted(led.db)) == 6
    led.db.execute("DELETE FROM trials WHERE design_id='d4'")
    assert _tallied(led.db) == _counted(led.db)
    led.db.executescript("DROP TRIGGER tally_insert; DROP TRIGGER tally_update; DROP TRIGGER tally_delete; "
                         "DROP TABLE tally")  # as written by a porelab from before it
    led.add_trial("d6", D, C, 1, "ucb")
    led.close()
    led = Ledger(tmp_path / "ledger.sqlite")
    assert _tallied(led.db) == _counted(led.db) and led.n_trials() == 7
