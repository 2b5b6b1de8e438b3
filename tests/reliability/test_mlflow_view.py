"""MLflow is a view of the ledger: `MlflowView.sync(ledger)` logs what the ledger holds and MLflow does not show yet,
once, so a view added after the campaign ran catches up from the ledger alone and syncing again adds nothing; the
view leaves no global state behind; the campaign package never imports the tracking package (nor MLflow)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import pytest
from rel_helpers import check_campaign, small_study, view_bookkeeping

from porelab.active_learning.campaign.directory import create
from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.study import load_study
from porelab.active_learning.tracking.view import MlflowView

pytestmark = pytest.mark.reliability


def global_state() -> tuple:
    return (logging.getLogger("mlflow").level, logging.getLogger("alembic").level, list(warnings.filters),
            os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"))


def test_a_view_added_later_catches_up_from_the_ledger_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    d = create(load_study(small_study(tmp_path, simulations=6)), tmp_path / "ws" / "camp")
    Campaign(d, log=lambda m: None).run()  # no view: the ledger alone
    assert not (d / "mlflow_view.sqlite").exists() and not (tmp_path / "ws" / "mlflow.db").exists()
    before = global_state()
    led = Ledger(d / "ledger.sqlite")
    try:
        MlflowView(d).sync(led)
        check_campaign(d, 6)  # every finished trial, iteration and model once, the parent run closed
        uri, book = view_bookkeeping(d)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        eid = book[("experiment", "")]
        logged = lambda: (sorted(r.info.run_id for r in client.search_runs([eid], max_results=1000)),  # noqa: E731
                          len(client.search_model_versions(f"name='porelab-{client.get_experiment(eid).name}'")))
        first = logged()
        view = MlflowView(d)  # a new view (a resumed driver): looks what it lacks up by tags, finds it all
        view.sync(led)
        view.sync(led)  # and again: nothing new
        assert logged() == first and view_bookkeeping(d) == (uri, book)
    finally:
        led.close()
    check_campaign(d, 6)
    assert global_state() == before  # logger levels, warnings filters and the tracking URI as they were


def test_the_campaign_package_imports_neither_tracking_nor_mlflow_nor_pyplot():
    code = ("import importlib, pkgutil, sys\n"
            "import porelab.active_learning.campaign as c\n"
            "for m in pkgutil.iter_modules(c.__path__):\n"
            "    importlib.import_module(f'porelab.active_learning.campaign.{m.name}')\n"
            "bad = [m for m in sys.modules if m.startswith('porelab.active_learning.tracking')\n"
            "       or m.split('.')[0] == 'mlflow' or m == 'matplotlib.pyplot']\n"
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
