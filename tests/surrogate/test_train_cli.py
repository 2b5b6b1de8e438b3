import json

import yaml
from typer.testing import CliRunner

from porelab.surrogate.cli import app, tracking_uri


def test_default_tracking_uri_is_a_sqlite_file_in_the_output(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking_uri(tmp_path) == "sqlite:///elsewhere.db"


def test_train_writes_model_plots_metrics_and_an_mlflow_run(measurement_dir, tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"n_members": 5, "hidden": 8, "msg_dim": 4, "n_conv": 1, "max_epochs": 3, "progress": False},
        "test_fraction": 0.25, "experiment": "cli-test", "registered_model_name": "pore-surrogate-test"}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [str(measurement_dir), "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    for name in ("model/model.pt", "model/config.json", "metrics.json", "parity_flux.png", "parity_log_icr.png",
                 "calibration.png"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test_designs"] == 6 and "log_icr_r2" in metrics and "flux_nll" in metrics
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["cli-test"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["model.n_members"] == "5" and "flux_rmse" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"parity_flux.png", "calibration.png", "metrics.json"} <= artifacts
    versions = mlflow.MlflowClient().search_model_versions("name='pore-surrogate-test'")
    assert len(versions) == 1
    assert not (out / "mlflow.db").exists()  # MLFLOW_TRACKING_URI wins
    # the registered model loads as a pyfunc and predicts fluxes of a new design
    import pandas as pd

    from porelab.sim.design import make_conditions, make_design

    served = mlflow.pyfunc.load_model("models:/pore-surrogate-test/1")
    d, c = make_design({"layers": ["COO-", "NH3+"]}, "tiny"), make_conditions({"fields_V_per_nm": [1.0, -1.0]})
    out_df = served.predict(pd.DataFrame({"design": [d.model_dump_json()], "conditions": [c.model_dump_json()]}))
    assert len(out_df) == 4 and set(out_df["species"]) == {"K+", "Cl-"} and (out_df["y_std"] > 0).all()


def test_bad_inputs_fail_with_a_message(tmp_path):
    r = CliRunner().invoke(app, [str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no measurement.json" in r.output
    bad = tmp_path / "c.yaml"
    bad.write_text("model: {n_members: 5}\nunknown_key: 1\n")
    (tmp_path / "x").mkdir()
    r = CliRunner().invoke(app, [str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(bad)])
    assert r.exit_code == 2 and "unknown_key" in r.output
