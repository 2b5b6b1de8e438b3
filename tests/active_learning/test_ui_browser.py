"""End to end: a finished campaign, `porelab ui` on loopback, and the MLflow UI opened in headless Chromium.

The page must show the campaign's runs (campaign, iterations, simulations), one plot artifact rendered as an
image, and the registered model with its alias; the tracking REST API is also read from inside the page.
Screenshots are saved under tmp_path. Playwright for Python (the `dev` extra) drives the system Chromium (the
Debian package `chromium`, which the Makefile installs); Playwright's own browser download is never used.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from al_helpers import write_study


def find_chromium() -> str | None:
    """The Chromium executable: /usr/bin/chromium (Debian package `chromium`) or one on PATH."""
    for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and os.access(c, os.X_OK):
            return c
    return None


pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (apt-get install chromium)")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")

PNG = b"\x89PNG\r\n\x1a\n"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]
# MLflow UI state kept in localStorage (key_v1 = JSON): the classic-ML sidebar; the Assistant side panel, which
# opens itself on a first visit to a loopback server, and the model registry's promotion dialog, kept closed so
# that they do not cover the page (a user closes them once by hand).
MLFLOW_INIT = """
try {
  localStorage.setItem('mlflow.workflowType_v1', '"machine_learning"');
  localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
  localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
  localStorage.setItem('_mlflow_model_registry_promo_modal_dismissed_v1', 'true');
} catch (e) {}
"""


def porelab(*args: str) -> list[str]:
    return [sys.executable, "-m", "porelab.active_learning.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def wait_js(page, expression: str, what: str, arg=None, timeout_s: float = 30.0):
    """Wait until `expression` (a JS function of `arg`) is truthy; its value. On timeout the page text is shown."""
    try:
        return page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000, polling=250).json_value()
    except sync_api.TimeoutError:
        text = " ".join(page.inner_text("body").split())[:1500]
        raise AssertionError(f"{what} not seen within {timeout_s:g} s; page text: {text}") from None


def wait_text(page, *needles: str) -> str:
    """Wait until the page's visible text holds every needle; that text."""
    wait_js(page, "ns => document.body && ns.every(n => document.body.innerText.includes(n))", f"text {needles}",
            arg=list(needles))
    return page.inner_text("body")


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
        with sync_api.sync_playwright() as pw, open(tmp_path / "browser.log", "w") as console:
            browser = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=FLAGS)
            context = browser.new_context(viewport={"width": 1600, "height": 1400})
            context.add_init_script(MLFLOW_INIT)
            page = context.new_page()
            page.on("console", lambda m: console.write(f"{m.type}: {m.text}\n"))
            page.on("pageerror", lambda e: console.write(f"pageerror: {e}\n"))

            # the runs table, flat (sorted by name), every run of the campaign listed
            page.goto(f"{url}/#/experiments/{exp.experiment_id}/runs?orderByKey=tags.%60mlflow.runName%60"
                      "&orderByAsc=true")
            text = wait_text(page, "campaign uitest", "iteration 1", sims[0], f"{len(names)} matching runs")
            missing = [n for n in names if n not in text]
            assert not missing, f"runs not shown: {missing}"
            page.screenshot(path=shots / "runs.png")

            # an iteration's plot artifact, rendered as an image
            page.goto(f"{url}/#/experiments/{exp.experiment_id}/runs/{iteration.info.run_id}/artifacts/"
                      "plots/parity.png")
            wait_text(page, "iteration 2", "plots/parity.png", "learning_curve.png")
            size = wait_js(page, "() => { const i = [...document.images].find(i => i.complete && "
                                 "i.naturalWidth > 100 && i.src.startsWith('blob:')); "
                                 "return i && [i.naturalWidth, i.naturalHeight]; }", "the parity plot image")
            assert size[0] > 100 and size[1] > 100
            page.screenshot(path=shots / "plot.png")
            # the tracking REST API, as the page sees it
            listed = page.evaluate(f"fetch('ajax-api/2.0/mlflow/artifacts/list?run_id={iteration.info.run_id}"
                                   "&path=plots').then(r => r.json())")
            assert {f["path"] for f in listed["files"]} == set(plots)

            # the model registry: the campaign's model, its champion alias and the run that logged it
            page.goto(f"{url}/#/models")
            wait_text(page, model, "champion")
            page.screenshot(path=shots / "models.png")
            page.goto(f"{url}/#/models/{model}")
            wait_text(page, model, "champion")
            page.screenshot(path=shots / "model.png")
            reg = page.evaluate(f"fetch('ajax-api/2.0/mlflow/registered-models/get?name={model}')"
                                ".then(r => r.json())")
            assert [a["alias"] for a in reg["registered_model"]["aliases"]] == ["champion"], json.dumps(reg)
            browser.close()
    finally:
        stop(server)
    assert server.returncode is not None
    for name in ("runs", "plot", "models", "model"):
        png = (shots / f"{name}.png").read_bytes()
        assert png.startswith(PNG) and len(png) > 10_000, name
