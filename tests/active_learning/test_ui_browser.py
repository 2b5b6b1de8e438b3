"""End to end: a finished campaign, `porelab ui` on loopback, and the MLflow UI opened in headless Chromium.

The page must show the campaign's runs (campaign, iterations, simulations), one plot artifact rendered as an
image, and the registered model with its alias; the tracking REST API is also read from inside the page.
Screenshots are saved under tmp_path. Needs the Debian package `chromium` (the Makefile installs it).
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from al_helpers import write_study
from cdp_chromium import MLFLOW_INIT, Chromium, find_chromium, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (apt-get install chromium)")]

PNG = b"\x89PNG\r\n\x1a\n"


def porelab(*args: str) -> list[str]:
    return [sys.executable, "-m", "porelab.active_learning.cli", *args]


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                return
        except OSError:
            pass
        assert proc.poll() is None, f"porelab ui exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"porelab ui did not answer at {url} within {timeout_s} s"
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    """SIGINT to the server's process group (porelab ui and the mlflow server it runs), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_ui_shows_campaign_runs_plots_and_model(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = {**os.environ, "PORELAB_WORKSPACE": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    study = write_study(tmp_path / "s.yaml", name="uitest", budget={"simulations": 12, "initial": 4, "batch": 4})
    campaign = tmp_path / "ws" / "uitest"
    r = subprocess.run(porelab("campaign", "run", str(study), "--dir", str(campaign)), cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    # what the store holds, to be found in the page
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("uitest")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    names = sorted(run.info.run_name for run in runs)
    sims = [n for n in names if n.startswith("sim ")]
    assert "campaign uitest" in names and "iteration 1" in names and len(sims) == 12, names
    iteration = next(run for run in runs if run.info.run_name == "iteration 2")
    plots = [a.path for a in client.list_artifacts(iteration.info.run_id, "plots")]
    assert "plots/parity.png" in plots, plots
    model = "porelab-uitest"
    assert client.get_model_version_by_alias(model, "champion").version

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "ui.log", "wb") as log:  # its own process group, so that stop() reaches mlflow's workers
        server = subprocess.Popen(porelab("ui", str(campaign), "--host", "127.0.0.1", "--port", str(port)),
                                  cwd=tmp_path, env=env, stdout=log, stderr=log, start_new_session=True)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        wait_until_up(url, server)
        with Chromium(tmp_path / "chromium-profile", width=1600, height=1400, init_script=MLFLOW_INIT,
                      log=tmp_path / "chromium.log") as page:
            # the runs table, flat (sorted by name), every run of the campaign listed
            page.goto(f"{url}/#/experiments/{exp.experiment_id}/runs?orderByKey=tags.%60mlflow.runName%60"
                      "&orderByAsc=true")
            text = page.wait_text("campaign uitest", "iteration 1", sims[0], f"{len(names)} matching runs")
            missing = [n for n in names if n not in text]
            assert not missing, f"runs not shown: {missing}"
            page.screenshot(shots / "runs.png")

            # an iteration's plot artifact, rendered as an image
            page.goto(f"{url}/#/experiments/{exp.experiment_id}/runs/{iteration.info.run_id}/artifacts/"
                      "plots/parity.png")
            text = page.wait_text("iteration 2", "plots/parity.png", "learning_curve.png")
            size = page.wait_js("(() => { const i = [...document.images].find(i => i.complete && "
                                "i.naturalWidth > 100 && i.src.startsWith('blob:')); "
                                "return i && [i.naturalWidth, i.naturalHeight]; })()", what="the parity plot image")
            assert size[0] > 100 and size[1] > 100
            page.screenshot(shots / "plot.png")
            # the tracking REST API, as the page sees it
            listed = page.js(f"fetch('ajax-api/2.0/mlflow/artifacts/list?run_id={iteration.info.run_id}"
                             "&path=plots').then(r => r.json())", await_promise=True)
            assert {f["path"] for f in listed["files"]} == set(plots)

            # the model registry: the campaign's model, its champion alias and the run that logged it
            page.goto(f"{url}/#/models")
            page.wait_text(model, "champion")
            page.screenshot(shots / "models.png")
            page.goto(f"{url}/#/models/{model}")
            page.wait_text(model, "champion")
            page.screenshot(shots / "model.png")
            reg = page.js(f"fetch('ajax-api/2.0/mlflow/registered-models/get?name={model}').then(r => r.json())",
                          await_promise=True)
            assert [a["alias"] for a in reg["registered_model"]["aliases"]] == ["champion"], json.dumps(reg)
    finally:
        stop(server)
    assert server.returncode is not None
    for name in ("runs", "plot", "models", "model"):
        png = (shots / f"{name}.png").read_bytes()
        assert png.startswith(PNG) and len(png) > 10_000, name
