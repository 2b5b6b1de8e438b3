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


def test_the_champion_alias_follows_the_prospective_rule_not_the_latest_model(tmp_path, monkeypatch):
    """With the minimum lowered to the batch size, the models that picked designs are compared by their prospective
    NLL; the alias points at the winner's registered version, the rule is tagged on the parent run and the version."""
    from mlflow.tracking import MlflowClient

    from porelab.active_learning.campaign.targets import objective_name
    from porelab.active_learning.tracking import champion as rule

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(rule, "MIN_PROSPECTIVE", 3)
    study = load_study(small_study(tmp_path, simulations=9))  # picks of 3 by the models of steps 1 and 2
    d = create(study, tmp_path / "ws" / "camp")
    Campaign(d, log=lambda m: None, views=[MlflowView(d)]).run()
    led = Ledger(d / "ledger.sqlite")
    try:
        c = rule.champion(led, objective_name(study.goal))
        scores = rule.prospective_scores(led, objective_name(study.goal))
        latest = led.models()[-1]["version"]
    finally:
        led.close()
    # finished: the final model stands in for the newest scored one, unless an earlier model was clearly better
    assert (c.version == latest and "stands in" in c.rule) or (c.step in (1, 2) and "by more than" in c.rule)
    assert c.nll in {v[0] for v in scores.values()}
    uri, book = view_bookkeeping(d)
    client = MlflowClient(uri)
    name = f"porelab-{client.get_experiment(book[('experiment', '')]).name}"
    mv = client.get_model_version_by_alias(name, "champion")
    assert str(mv.version) == book[("model", str(c.version))] and mv.tags["porelab.iteration"] == str(c.step)
    assert mv.tags["porelab.champion"] == c.rule
    assert client.get_run(book[("parent", "")]).data.tags["porelab.champion"].endswith(c.rule)


def test_a_campaign_directory_made_again_is_another_campaign_in_mlflow(tmp_path, monkeypatch):
    """Removed and made again (its study changed), a campaign directory gets a parent run of its own: the old run,
    in the same experiment, holds other params and other simulations, and is neither reused nor changed."""
    import shutil

    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    study = small_study(tmp_path, simulations=4)
    d = create(load_study(study), tmp_path / "ws" / "camp")
    Campaign(d, log=lambda m: None, views=[MlflowView(d)]).run()
    uri, book = view_bookkeeping(d)
    shutil.rmtree(d)
    study.write_text(study.read_text().replace("n_estimators: 10", "n_estimators: 12"))
    d = create(load_study(study), tmp_path / "ws" / "camp")
    Campaign(d, log=lambda m: None, views=[MlflowView(d)]).run()  # MLflow refused changing the old run's params
    client, eid = MlflowClient(uri), book[("experiment", "")]
    parents = client.search_runs([eid], "tags.`porelab.kind` = 'campaign'")
    assert len(parents) == 2 and {r.data.params["model.params.n_estimators"] for r in parents} == {"10", "12"}
    for p in parents:  # each campaign's own 4 simulations under its own parent
        sims = client.search_runs([eid], f"tags.`mlflow.parentRunId` = '{p.info.run_id}' and "
                                         "tags.`porelab.kind` = 'simulation'")
        assert len(sims) == 4
