"""The served model, end to end: a model registered with the alias `champion` in a SQLite MLflow store, served by
`porelab serve NAME@champion` from a fresh shell (mlflow models serve underneath) on loopback, answers its input
example over HTTP with porelab's own numbers (predict_frame), and stops with its server on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from porelab.surrogate.factory import new_model
from porelab.surrogate.serving import input_example, log_model, predict_frame
from porelab.surrogate.store import load_model, save_model
from porelab.surrogate.training_set import training_samples

pytestmark = pytest.mark.slow
NAME = "porelab-served"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(f"{url}/ping", timeout=2).status == 200:
                return
        except OSError:
            pass
        assert proc.poll() is None, f"mlflow models serve exited with {proc.returncode}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no /ping answer at {url} within {timeout_s} s: {log.read_text()[-3000:]}"
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (mlflow and the uvicorn it execs), then SIGKILL; returns once every
    process of the group has exited (a signal is delivered asynchronously: a worker may outlive the leader's wait)."""
    try:
        group = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        group = []
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(group, timeout=20)
    assert not alive, f"server processes still alive after SIGKILL: {alive}"


def listening_addresses(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN
            and c.laddr.port == port}


def test_served_champion_answers_like_predict_frame(measurements, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from porelab.surrogate.mlflow_quiet import quiet_mlflow

    ms = measurements[:8]
    model = new_model("rf", n_estimators=20, seed=0)
    model.fit(training_samples(model, ms))
    save_model(tmp_path / "model", model, ms)
    saved = load_model(tmp_path / "model")

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with quiet_mlflow():
        client = MlflowClient(uri)
        exp = client.create_experiment("served", artifact_location=(tmp_path / "mlartifacts").as_uri())
        mlflow.set_tracking_uri(uri)
        try:
            with mlflow.start_run(experiment_id=exp):
                info = log_model(tmp_path / "model", "model", NAME)
        finally:
            mlflow.set_tracking_uri(None)
            os.environ.pop("MLFLOW_TRACKING_URI", None)
    client.set_registered_model_alias(NAME, "champion", info.registered_model_version)

    example = input_example(saved)
    want = predict_frame(saved, example)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # a fresh shell: the venv's bin not on PATH (mlflow starts uvicorn from PATH), no MLFLOW_TRACKING_URI
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PATH": "/usr/bin:/bin"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "porelab.active_learning.cli", "serve", f"{NAME}@champion",
                                   "--workspace", str(tmp_path), "--port", str(port)],
                                  cwd="/", env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_ping(url, server, log)
        assert listening_addresses(port) == {"127.0.0.1"}  # loopback only
        body = json.dumps({"dataframe_split": example.to_dict(orient="split")}).encode()
        req = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            got = pd.DataFrame(json.loads(r.read())["predictions"])
        d, c = saved.training[0].design, saved.training[0].conditions  # the same question as flat columns
        flat = pd.DataFrame({"layers": ["/".join(d.layers)], "spacing_nm": [d.spacing_nm],
                             "groups_per_rim": [d.groups_per_rim], "pore_shape": [d.pore.shape],
                             "pore_width_nm": [d.pore.width_nm], "pore_height_nm": [d.pore.height_nm],
                             "electrolyte": [",".join(f"{k}:{v}" for k, v in c.electrolyte.items())],
                             "field_V_per_nm": [max(abs(e) for e in c.fields_V_per_nm)]})
        body = json.dumps({"dataframe_split": flat.to_dict(orient="split")}).encode()
        req = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            got_flat = pd.DataFrame(json.loads(r.read())["predictions"])
        bad = example.assign(design=['{"layers": "x"}'])  # bad input: a 400 whose message is the reason
        body = json.dumps({"dataframe_split": bad.to_dict(orient="split")}).encode()
        req = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=60)
        assert err.value.code == 400
        reply = json.loads(err.value.read())
        assert reply["message"].splitlines()[-1] == "Error: row 0: design: layers.0: Input should be 'COO-', " \
            "'NH3+', 'OH' or 'none'" and "Traceback" not in json.dumps(reply)  # MLflow's prefix, then our line
    finally:
        stop(server)
    want_flat = predict_frame(saved, flat)
    assert len(got_flat) == len(want_flat) > 0
    for col in want_flat.columns:
        np.testing.assert_allclose(got_flat[col].astype(float), want_flat[col].astype(float), rtol=1e-9,
                                   equal_nan=True, err_msg=f"flat input: {col}")
    assert list(got.columns) == list(want.columns) and len(got) == len(want) > 0
    for col in want.columns:
        np.testing.assert_allclose(got[col].astype(float), want[col].astype(float), rtol=1e-9, equal_nan=True,
                                   err_msg=col)
    assert not listening_addresses(port)  # the server is gone
