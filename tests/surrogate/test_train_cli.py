import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from porelab.surrogate.cli import app
from porelab.surrogate.dataset import Samples
from porelab.surrogate.metrics import evaluate
from porelab.surrogate.mlflow_store import artifact_location, tracking_uri
from porelab.surrogate.serving import predict_frame
from porelab.surrogate.store import load_model


def test_default_tracking_uri_is_the_workspace_sqlite_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    art = artifact_location(tracking_uri(tmp_path), tmp_path, "e")
    assert art == (tmp_path.resolve() / "mlartifacts" / "e").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking_uri(tmp_path) == "sqlite:///elsewhere.db"
    assert artifact_location("http://127.0.0.1:5000", tmp_path, "e") is None  # the server's own default


def test_train_writes_model_plots_metrics_and_an_mlflow_run(measurement_dir, measurements, tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PORELAB_WORKSPACE", str(tmp_path))
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"n_members": 5, "hidden": 8, "msg_dim": 4, "n_conv": 1, "max_epochs": 3, "progress": False},
        "test_fraction": 0.25, "experiment": "cli-test", "registered_model_name": "pore-surrogate-test"}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [str(measurement_dir), "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    for name in ("model/model.json", "metrics.json", "parity_flux.png", "parity_log_icr.png", "calibration.png"):
        assert (out / name).exists(), name
    assert len(list((out / "model").glob("weights-*.pt"))) == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test_designs"] == 6 and "log_icr_r2" in metrics and "flux_nll" in metrics
    # the saved model is the trained one: it reproduces the held-out metrics
    saved = load_model(out / "model")
    seen = set(saved.info["training"]["design_ids"])
    test = Samples.from_measurements([m for m in measurements if m.design_id not in seen])
    assert test.n_designs == 6
    assert evaluate(test, saved.model.predict(test))["flux_rmse"] == pytest.approx(metrics["flux_rmse"], rel=1e-9)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["cli-test"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["model.n_members"] == "5" and "flux_rmse" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"parity_flux.png", "calibration.png", "metrics.json"} <= artifacts
    versions = mlflow.MlflowClient().search_model_versions("name='pore-surrogate-test'")
    assert len(versions) == 1
    assert not (tmp_path / "mlflow.db").exists()  # MLFLOW_TRACKING_URI wins over the workspace's store
    # the registered model loads as a pyfunc and predicts fluxes of a new design
    import pandas as pd

    from porelab.sim.design import make_conditions, make_design

    served = mlflow.pyfunc.load_model("models:/pore-surrogate-test/1")
    assert served.metadata.signature is not None and served.metadata.saved_input_example_info is not None
    d, c = make_design({"layers": ["COO-", "NH3+"]}, "tiny"), make_conditions({"fields_V_per_nm": [1.0, -1.0]})
    out_df = served.predict(pd.DataFrame({"design": [d.model_dump_json()], "conditions": [c.model_dump_json()]}))
    assert len(out_df) == 1 and out_df["field_abs_V_per_nm"].tolist() == [1.0]  # one row per |E|
    row = out_df.iloc[0]
    assert row["icr_lo"] < row["icr"] < row["icr_hi"] and row["on_current_nA_lo"] < row["on_current_nA_hi"]
    for sp in ("K+", "Cl-"):
        for sign in ("+E", "-E"):
            assert row[f"flux_per_ns[{sp}][{sign}]_lo"] < row[f"flux_per_ns[{sp}][{sign}]_hi"]  # an interval
    assert np.isnan(row["flux_per_ns[Mg2+][+E]"])  # not in the electrolyte
    # the same numbers as the model directory gives through porelab's own code (one model, one computation)
    direct = predict_frame(saved, pd.DataFrame({"design": [d.model_dump_json()], "conditions": [c.model_dump_json()]}))
    pd.testing.assert_frame_equal(direct, out_df)


def test_bad_inputs_fail_with_a_message(tmp_path):
    r = CliRunner().invoke(app, [str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no measurement.json" in r.output
    bad = tmp_path / "c.yaml"
    bad.write_text("model: {n_members: 5}\nunknown_key: 1\n")
    (tmp_path / "x").mkdir()
    r = CliRunner().invoke(app, [str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(bad)])
    assert r.exit_code == 2 and "unknown_key" in r.output
    for cfg, words in (("model: {kind: svm}", "model.kind='svm' is unknown"),
                       ("model: {kind: rf, hidden: 3}", "model.hidden is not a keyword"),
                       ("model: {kind: gp}\ngraph: {n_rbf: 4}", "graph: settings of the graph featuriser")):
        bad.write_text(cfg)
        r = CliRunner().invoke(app, [str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(bad)])
        assert r.exit_code == 2 and words in " ".join(r.output.split()), r.output
    assert not (tmp_path / "o").exists()
