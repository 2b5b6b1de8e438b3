"""Helpers for the reliability tests: a small study, the porelab CLI in a subprocess, and the consistency check
of a campaign directory (ledger, run directories, MLflow) after kills and resumes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "active_learning"))
from al_helpers import USER_ORACLE, write_study  # noqa: E402

from porelab.base.files import is_temp  # noqa: E402
from porelab.sim.measurement import Measurement  # noqa: E402

__all__ = ["USER_ORACLE", "write_study", "small_study", "porelab", "check_campaign", "oracle_calls", "snapshot"]


def small_study(tmp_path: Path, file: str = "s", simulations: int = 9, **changes) -> Path:
    """A continuum study through the logging user oracle: 3 initial designs, batches of 3, a 10-tree forest."""
    oracle = tmp_path / "my_oracle.py"
    if not oracle.exists():
        oracle.write_text(USER_ORACLE)
    kw = {"oracle": {"kind": "user", "path": f"{oracle}:LoggedContinuum",
                     "settings": {"log": str(tmp_path / "calls.log")}},
          "budget": {"simulations": simulations, "initial": 3, "batch": 3},
          "model": {"kind": "rf", "params": {"n_estimators": 10}},
          "acquisition": {"kind": "ucb", "pool_size": 64}, **changes}
    return write_study(tmp_path / f"{file}.yaml", **kw)


def porelab(*args: str, cwd: Path, fault: str | None = None, timeout: float = 240):
    """Run `python -m active_learning.cli ARGS` in `cwd` (the workspace) with PORELAB_FAULT=fault;
    (returncode, output)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "PORELAB_FAULT", "PORELAB_WORKSPACE")}
    if fault:
        env["PORELAB_FAULT"] = fault
    env["COLUMNS"] = "200"
    p = subprocess.run([sys.executable, "-m", "porelab.active_learning.cli", *args], capture_output=True, text=True,
                       env=env, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout + p.stderr


def oracle_calls(tmp_path: Path) -> Counter:
    """Finished oracle calls per design id (the user oracle logs one line per call)."""
    log = tmp_path / "calls.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


def snapshot(d: Path) -> dict[str, str]:
    """{design_id: measurement.json text} of the run directories (what a kill may not lose)."""
    out = {}
    for f in sorted((d / "runs").glob("*/measurement.json")):
        out[f.parent.name] = f.read_text()
    return out


def view_bookkeeping(d: Path) -> tuple[str, dict[tuple[str, str], str]]:
    """(tracking URI, {(what, key): ref}) of the MLflow view's own bookkeeping (tracking/bookkeeping.py)."""
    con = sqlite3.connect(f"file:{d / 'mlflow_view.sqlite'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT uri, what, key, ref FROM logged").fetchall()
    finally:
        con.close()
    (uri,) = {r[0] for r in rows}  # one store
    return uri, {(w, k): ref for _, w, k, ref in rows}


def check_campaign(d: Path, budget: int, tracking: bool = True) -> dict:
    """Assert that a finished campaign's ledger, run directories and MLflow (with the view's bookkeeping) agree,
    each finished design once. Returns {design_id: measurement json} of the completed trials."""
    con = sqlite3.connect(f"file:{d / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
        trials = con.execute("SELECT design_id, status, attempts FROM trials").fetchall()
        ms = dict(con.execute("SELECT design_id, json FROM measurements").fetchall())
        finals = Counter(r[0] for r in con.execute(
            "SELECT design_id FROM events WHERE kind IN ('completed','failed','abandoned')"))
        its = [r[0] for r in con.execute("SELECT step FROM iterations ORDER BY step")]
        model_versions = {str(r[0]) for r in con.execute("SELECT version FROM models")}
        n_models = len(model_versions)
    finally:
        con.close()
    assert meta.get("finished") == "budget", meta.get("finished")
    status = {t[0]: t[1] for t in trials}
    assert len(status) == budget and set(status.values()) == {"completed"}, Counter(status.values())
    assert set(finals) == set(status) and set(finals.values()) == {1}, "a design finished twice in the ledger"
    assert set(ms) == set(status)
    assert its == list(range(len(its))) and meta["final_step"] == its[-1]
    # run directories: one measurement.json per finished design, the one the ledger holds; no other result
    runs = snapshot(d)
    assert set(runs) == set(status), set(runs) ^ set(status)
    for did, text in runs.items():
        assert Measurement.model_validate_json(text) == Measurement.model_validate_json(ms[did])
    stray = [p for p in d.rglob("*") if p.is_file() and p.stat().st_size == 0
             and p.name not in (".lock", "ledger.sqlite-wal", "ledger.sqlite-shm")]
    assert not stray, f"empty files: {stray}"
    temps = [p for p in (d / "models").rglob("*") if is_temp(p)] if (d / "models").exists() else []
    assert not temps, f"temp files in models/: {temps}"
    if not tracking:
        assert not (d / "mlflow_view.sqlite").exists()
        return ms
    # the view's bookkeeping: every finished trial, iteration and model logged, and the finish
    uri, book = view_bookkeeping(d)
    booked = lambda what: {k: ref for (w, k), ref in book.items() if w == what}  # noqa: E731
    assert set(booked("simulation")) == set(status), "a finished trial the view did not log"
    assert set(booked("iteration")) == {str(s) for s in its}, "an iteration the view did not log"
    assert set(booked("model")) == model_versions, "a model the view did not register"
    assert ("finished", str(meta["final_step"])) in book
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    eid = book[("experiment", "")]
    runs = client.search_runs([eid], max_results=1000)
    kinds = Counter(r.data.tags.get("porelab.kind") for r in runs)
    assert kinds["campaign"] == 1, kinds
    (parent,) = [r for r in runs if r.data.tags.get("porelab.kind") == "campaign"]
    assert parent.info.run_id == book[("parent", "")] and parent.info.status == "FINISHED"
    sims = {}
    for r in runs:
        if r.data.tags.get("porelab.kind") == "simulation":
            did = r.data.tags["porelab.design_id"]
            assert did not in sims, f"two MLflow runs for {did}"
            sims[did] = r
    assert set(sims) == set(status)
    for did, r in sims.items():
        assert r.info.status == "FINISHED" and "log_icr" in r.data.metrics, (did, r.info.status)
        assert r.info.run_id == booked("simulation")[did], f"the view's bookkeeping names another run for {did}"
    iters = Counter(r.data.tags.get("porelab.iteration") for r in runs
                    if r.data.tags.get("porelab.kind") == "iteration")
    assert set(iters) == {str(s) for s in its} and set(iters.values()) == {1}, iters
    by_step = {r.data.tags["porelab.iteration"]: r.info.run_id for r in runs
               if r.data.tags.get("porelab.kind") == "iteration"}
    assert by_step == booked("iteration"), "the view's bookkeeping names another iteration run"
    hist = [m.step for m in client.get_metric_history(parent.info.run_id, "n_train")]
    assert sorted(hist) == sorted(set(hist)), f"parent metrics logged twice: {hist}"
    name = f"porelab-{client.get_experiment(eid).name}"
    versions = client.search_model_versions(f"name='{name}'")
    steps = Counter(v.tags.get("porelab.iteration") for v in versions)
    assert len(versions) == n_models and set(steps.values()) == {1}, f"model versions by step: {steps}"
    assert {str(v.version) for v in versions} == set(booked("model").values())
    return ms
