"""`porelab train` logs into the workspace's MLflow store; `latest` (MLflow's) is the newest version and `champion`
moves by the rule of surrogate/aliases.py (none yet, or a lower held-out ln ICR NLL than the current champion's)."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from porelab.surrogate.aliases import NLL_TAG, heldout_nll, set_aliases
from porelab.surrogate.cli import app


@pytest.fixture
def registry(tmp_path):
    """(client, new_version(nll)) on a fresh SQLite store: new_version registers a bare version, sets its aliases
    and returns (version, the aliases line)."""
    from mlflow.tracking import MlflowClient

    from porelab.surrogate.mlflow_quiet import quiet_mlflow

    with quiet_mlflow():
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        client.create_registered_model("m")

    def new_version(nll):
        with quiet_mlflow():
            v = client.create_model_version("m", (tmp_path / "model").as_uri()).version
            return str(v), set_aliases(client, "m", v, nll)

    return client, new_version


def champion(client) -> str:
    return str(client.get_registered_model("m").aliases["champion"])


def test_champion_moves_only_to_a_lower_heldout_nll(registry):
    client, new = registry
    v1, line = new(1.0)
    assert champion(client) == v1 and "aliases latest, champion (no champion yet; held-out ln ICR NLL 1)" in line
    v2, line = new(1.5)
    assert champion(client) == v1 and str(client.get_model_version_by_alias("m", "latest").version) == v2
    assert "version 1 stays champion: held-out ln ICR NLL 1.5 >= 1" in line
    v3, line = new(1.0)  # a tie is no improvement
    assert champion(client) == v1 and "stays champion" in line
    v4, line = new(0.25)
    assert champion(client) == v4 and "aliases latest, champion (held-out ln ICR NLL 0.25 < 1 of version 1)" in line
    v5, line = new(None)  # no held-out designs: nothing to compare
    assert champion(client) == v4 and "this one has no held-out ln ICR NLL" in line
    assert client.get_model_version("m", v4).tags[NLL_TAG] == "0.25" and NLL_TAG not in (
        client.get_model_version("m", v5).tags)
    assert client.get_model_version("m", v2).tags["porelab.champion"].startswith("version 1 stays champion")


def test_a_champion_without_an_nll_keeps_the_alias_and_none_yet_takes_any(registry):
    client, new = registry
    v1, line = new(None)
    assert champion(client) == v1 and "champion (no champion yet; no held-out ln ICR NLL)" in line
    _, line = new(0.1)
    assert champion(client) == v1 and "it has no held-out ln ICR NLL to compare with" in line


def test_heldout_nll_needs_held_out_designs_and_a_finite_value():
    assert heldout_nll({"log_icr_nll": 0.5}, True) == 0.5
    assert heldout_nll({"log_icr_nll": 0.5}, False) is None
    assert heldout_nll({"log_icr_nll": float("nan")}, True) is None and heldout_nll({}, True) is None


def test_two_trainings_log_into_the_workspace_store_and_move_the_aliases(measurement_dir, tmp_path, monkeypatch):
    """A poor model first (two uncalibrated trees), then a better one on the same held-out designs: both are
    registered, `latest` follows the newest and `champion` moves to the better one; a third, identical to the
    second, takes `latest` only."""
    from mlflow.tracking import MlflowClient

    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("PORELAB_WORKSPACE", str(ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(ws)
    models = {"poor": {"kind": "rf", "n_estimators": 2, "min_samples_leaf": 1, "calibrate": False},
              "good": {"kind": "rf", "n_estimators": 40}}
    nll, lines = {}, {}
    for run, kind in (("a", "poor"), ("b", "good"), ("c", "good")):
        (ws / f"{run}.yaml").write_text(yaml.safe_dump({"model": models[kind], "test_fraction": 0.25,
                                                         "registered_model_name": "pnp"}))
        r = CliRunner().invoke(app, [str(measurement_dir), "--out", run, "--config", f"{run}.yaml"])
        assert r.exit_code == 0, r.output
        nll[run] = json.loads((ws / run / "metrics.json").read_text())["log_icr_nll"]
        lines[run] = " ".join(r.output.split())
        assert not (ws / run / "mlflow.db").exists()
    assert nll["b"] < nll["a"] and nll["c"] == nll["b"]  # same split and seed: the rule's three cases
    assert "at sqlite:///" + str(ws.resolve() / "mlflow.db") in lines["a"]
    assert "registered pnp version 1: aliases latest, champion (no champion yet; held-out ln ICR NLL" in lines["a"]
    assert f"registered pnp version 2: aliases latest, champion (held-out ln ICR NLL {nll['b']:.4g} < " in lines["b"]
    assert "registered pnp version 3: aliases latest (version 2 stays champion" in lines["c"]
    client = MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")
    assert client.get_registered_model("pnp").aliases == {"champion": 2}
    assert str(client.get_model_version_by_alias("pnp", "latest").version) == "3"  # MLflow's own: the newest version
    exp = client.get_experiment_by_name("porelab-surrogate")
    assert exp.artifact_location == (ws / "mlartifacts" / "porelab-surrogate").resolve().as_uri()
    assert len(client.search_runs([exp.experiment_id])) == 3
    assert not (ws / "mlruns").exists()  # artifacts are not dropped in the current directory
