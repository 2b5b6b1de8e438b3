"""Screenshots of the MLflow tracking UI (`porelab ui`) on a finished campaign, taken with headless Chromium.

    python benchmarks/ui_screenshots.py /tmp/uiws/continuum-al [--out benchmarks/results] [--plot parity.png]

Starts `porelab ui` for the campaign's workspace on a free loopback port, opens the UI with Playwright for Python
(the `dev` extra) driving the system Chromium (the Debian package `chromium`; no browser download) and saves
ui_runs.png (the campaign's runs table), ui_plot.png (a plot of the last iteration that has it) and ui_model.png
(the registered model, its versions and the champion alias). Stops the server afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]
# MLflow UI state kept in localStorage: the classic-ML sidebar; the Assistant side panel (opens itself on a first
# visit to a loopback server) and the model registry's promotion dialog kept closed, so that they cover nothing.
MLFLOW_INIT = """
try {
  localStorage.setItem('mlflow.workflowType_v1', '"machine_learning"');
  localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
  localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
  localStorage.setItem('_mlflow_model_registry_promo_modal_dismissed_v1', 'true');
} catch (e) {}
"""


def find_chromium() -> str:
    for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("chromium is not installed (Debian: apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_text(page, *needles: str) -> None:
    """Wait (30 s) until the page's visible text holds every needle."""
    page.wait_for_function("ns => document.body && ns.every(n => document.body.innerText.includes(n))",
                           arg=list(needles), timeout=30_000, polling=250)


def campaign_runs(campaign: Path):
    """(experiment id, registered model name, runs) of the campaign recorded in the workspace's mlflow.db."""
    from mlflow.tracking import MlflowClient

    from porelab.surrogate.mlflow_store import workspace_uri

    client = MlflowClient(workspace_uri(campaign.parent))
    exps = [e for e in client.search_experiments() if e.tags.get("porelab.campaign_dir") == str(campaign)]
    if not exps:
        sys.exit(f"no MLflow experiment for {campaign} in {campaign.parent / 'mlflow.db'}")
    exp = exps[0]
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    models = [m.name for m in client.search_registered_models()
              if any(v.run_id in {r.info.run_id for r in runs} for v in m.latest_versions)]
    return client, exp, runs, models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("campaign", type=Path, help="a finished campaign directory (its parent holds mlflow.db)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--plot", default="learning_curve.png", help="which plots/ artifact to show")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args()
    campaign = args.campaign.resolve()
    client, exp, runs, models = campaign_runs(campaign)
    iterations = sorted((r for r in runs if r.data.tags.get("porelab.kind") == "iteration"),
                        key=lambda r: int(r.data.tags["porelab.iteration"]))
    with_plot = [r for r in iterations
                 if f"plots/{args.plot}" in {a.path for a in client.list_artifacts(r.info.run_id, "plots")}]
    if not with_plot:
        sys.exit(f"no iteration of {campaign} has plots/{args.plot}")
    it = with_plot[-1]
    args.out.mkdir(parents=True, exist_ok=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    porelab = [sys.executable, "-m", "porelab.active_learning.cli"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    server = subprocess.Popen([*porelab, "ui", str(campaign), "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() - t0 > 120:
                    sys.exit(f"porelab ui did not start (exit code {server.poll()})")
                time.sleep(0.3)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=FLAGS)
            context = browser.new_context(viewport={"width": args.width, "height": args.height})
            context.add_init_script(MLFLOW_INIT)
            page = context.new_page()
            e = exp.experiment_id
            page.goto(f"{url}/#/experiments/{e}/runs?orderByKey=tags.%60mlflow.runName%60&orderByAsc=true")
            wait_text(page, f"campaign {campaign.name}", "iteration 1", "sim ")
            time.sleep(1)  # colour dots and duration cells settle
            page.screenshot(path=args.out / "ui_runs.png")

            page.goto(f"{url}/#/experiments/{e}/runs/{it.info.run_id}/artifacts/plots/{args.plot}")
            wait_text(page, it.info.run_name, f"plots/{args.plot}")
            page.wait_for_function("() => [...document.images].some(i => i.complete && i.naturalWidth > 100 && "
                                   "i.src.startsWith('blob:'))", timeout=30_000, polling=250)
            page.screenshot(path=args.out / "ui_plot.png")

            if models:
                page.goto(f"{url}/#/models/{models[0]}")
                wait_text(page, models[0], "champion")
                time.sleep(0.5)
                page.screenshot(path=args.out / "ui_model.png")
            browser.close()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    for name in ("ui_runs", "ui_plot", "ui_model"):
        p = args.out / f"{name}.png"
        if p.exists():
            print(f"{p}  {p.stat().st_size // 1024} KiB")
    print(f"{len(runs)} runs, plot from {it.info.run_name}, models {models}; {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
