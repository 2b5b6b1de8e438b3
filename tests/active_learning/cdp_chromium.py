"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): no extra packages.

Used by the browser test (test_ui_browser.py) and by benchmarks/ui_screenshots.py. Chromium reads JSON
commands, each ending in a NUL byte, from its fd 3 and writes responses and events to its fd 4.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars",
         "--disable-dev-shm-usage", "--mute-audio"]


def find_chromium() -> str | None:
    """The Chromium executable: /usr/bin/chromium (Debian package `chromium`) or one on PATH."""
    for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and os.access(c, os.X_OK):
            return c
    return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CdpError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one page. `init_script` runs in every document before the page's own scripts."""

    def __init__(self, profile_dir: str | Path, width: int = 1600, height: int = 1000, init_script: str = "",
                 exe: str | None = None, log: str | Path | None = None, timeout_s: float = 30.0):
        exe = exe or find_chromium()
        if exe is None:
            raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
        self.timeout_s = timeout_s
        r_cmd, self._w = os.pipe()  # we write commands, Chromium reads them on its fd 3
        self._r, w_res = os.pipe()  # Chromium writes on its fd 4, we read

        def fds():  # runs in the child before exec (w_res > r_res >= 3, so w_res is never 3)
            os.dup2(r_cmd, 3)
            os.dup2(w_res, 4)
            os.set_inheritable(3, True)  # dup2 onto itself keeps close-on-exec
            os.set_inheritable(4, True)

        err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-pipe",
                                          "about:blank"], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         preexec_fn=fds, close_fds=False)
        finally:
            os.close(r_cmd)
            os.close(w_res)
            if log:
                err.close()
        self._id, self._buf, self.events = 0, b"", []
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.send("Page.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
            if init_script:
                self.send("Page.addScriptToEvaluateOnNewDocument", source=init_script)
        except BaseException:
            self.close()
            raise

    # --- protocol -------------------------------------------------------------------------------------
    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            while b"\0" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._r], [], [], left)[0]:
                    raise CdpError(f"no answer to {method} within {self.timeout_s:g} s")
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise CdpError(f"chromium exited (code {self.proc.poll()}) during {method}")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
            del self.events[:-200]

    def send(self, method: str, **params) -> dict:
        """A command to the page's session."""
        return self.call(method, session=self.session, **params)

    def js(self, expression: str, await_promise: bool = False):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in r:
            raise CdpError(f"{expression[:80]}: {r['exceptionDetails'].get('text')} "
                           f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r["result"].get("value")

    # --- page ---------------------------------------------------------------------------------------
    def goto(self, url: str) -> None:
        r = self.send("Page.navigate", url=url)
        if r.get("errorText"):
            raise CdpError(f"{url}: {r['errorText']}")

    def text(self) -> str:
        return self.js("document.body ? document.body.innerText : ''") or ""

    def dom(self) -> str:
        return self.js("document.documentElement.outerHTML") or ""

    def wait_js(self, expression: str, timeout_s: float = 30.0, what: str = ""):
        """Poll `expression` until it is truthy; its value. TimeoutError with the page text otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                v = self.js(expression)
            except CdpError:  # a navigation in progress destroys the context
                v = None
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what or expression} not seen within {timeout_s:g} s; page text: "
                                   + " ".join(self.text().split())[:1500])
            time.sleep(0.25)

    def wait_text(self, *needles: str, timeout_s: float = 30.0) -> str:
        """Wait until the page's visible text holds every needle; that text."""
        cond = " && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in needles)
        self.wait_js(f"document.body && ({cond})", timeout_s, what=f"text {needles}")
        return self.text()

    def screenshot(self, path: str | Path) -> Path:
        png = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path = Path(path)
        path.write_bytes(png)
        return path

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close")
                except (CdpError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._w, self._r):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
