"""Security defaults (issue 7 item 7): servers bind to loopback unless told otherwise (and then warn), models
load weights only, no unsafe deserialisation in the source, MLflow outside the path-traversal advisories."""

import inspect
import json
import re
import socket
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version
from typer.testing import CliRunner

from porelab.active_learning.cli import main as cli
from porelab.active_learning.cli import ui as ui_cli

pytestmark = pytest.mark.reliability
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("PORELAB_WORKSPACE", str(tmp_path))
    (tmp_path / "mlflow.db").write_bytes(b"")
    return tmp_path


def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_ui_binds_loopback_by_default(workspace):
    assert inspect.signature(ui_cli.ui).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(ui_cli.ui_command).parameters["host"].default == "127.0.0.1"
    argv, env, url = ui_cli.ui_command(workspace)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and url.startswith("http://127.0.0.1:")
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and argv[argv.index("--workers") + 1] == "1"
    s, port = _busy_port()  # stops the command before a server starts
    with s:
        r = runner.invoke(cli.app, ["ui", str(workspace), "--port", str(port)])
    assert "warning" not in r.output and f"port {port} on 127.0.0.1 is in use" in r.output


@pytest.mark.parametrize("host, warns", [("0.0.0.0", True), ("::", True), ("127.0.0.1", False), ("::1", False),
                                         ("localhost", False)])
def test_ui_warns_only_on_an_explicit_non_loopback_host(workspace, host, warns, monkeypatch):
    started = []
    monkeypatch.setattr(ui_cli, "serve", lambda argv, env: started.append(argv) or 0)  # no real server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free (not listening)
    r = runner.invoke(cli.app, ["ui", str(workspace), "--host", host, "--port", str(port)])
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "Traceback" not in text, text
    assert ("warning: binding the MLflow UI to" in text) == warns, text
    (argv,) = started
    assert argv[argv.index("--host") + 1] == host


def test_dask_local_cluster_binds_loopback_without_dashboard():
    """The only other server porelab starts: Dask's LocalCluster (scheduler on 127.0.0.1, no dashboard)."""
    src = (ROOT / "active_learning" / "campaign" / "executors.py").read_text()
    call = src[src.index("distributed.LocalCluster("):][:400]
    assert 'host="127.0.0.1"' in call and "dashboard_address=None" in call


class _Evil:
    """Unpickling this would create `marker` (a stand-in for running arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_model_with_a_pickled_object_is_refused(tmp_path):
    import torch

    from porelab.surrogate.ensemble import DeepEnsemble
    from porelab.surrogate.factory import featuriser
    from porelab.surrogate.store import FORMAT, load_model
    from porelab.surrogate.targets import SPECIES_NAMES

    d, marker = tmp_path / "model", tmp_path / "pwned"
    d.mkdir()
    (d / "model.json").write_text(json.dumps({"format": FORMAT, "kind": "gnn", "params": DeepEnsemble().get_params(),
                                              "species": list(SPECIES_NAMES), "featuriser": featuriser(DeepEnsemble()),
                                              "weights": {"file": "model.pt", "sha256": ""}}))
    torch.save({"model": {}, "y_scale": torch.ones(2), "payload": _Evil(marker)}, d / "model.pt")
    with pytest.raises(ValueError, match=r"model\.pt: refused: it holds more than tensors"):
        load_model(d)
    assert not marker.exists()


def test_processed_cache_with_a_pickled_object_is_rebuilt_not_loaded(tmp_path):
    """A tampered featurised-data cache is never unpickled: it is rebuilt from the measurements."""
    import torch

    from porelab.sim.continuum import run_continuum
    from porelab.sim.design import make_conditions, make_design
    from porelab.surrogate.dataset import load_dataset

    data = tmp_path / "data"
    for k, layers in enumerate((["COO-"], ["COO-", "NH3+"])):
        m = run_continuum(make_design({"layers": layers}, "tiny"), make_conditions({"fields_V_per_nm": [1, -1]}))
        (data / str(k)).mkdir(parents=True)
        m.save(data / str(k) / "measurement.json")
    first = load_dataset(data)
    marker = tmp_path / "pwned"
    torch.save({"payload": _Evil(marker)}, data / "processed" / "processed.pt")
    again = load_dataset(data)
    assert load_dataset.last_rebuilt and not marker.exists() and len(again) == len(first)


UNSAFE = [
    (r"\bpickle\.loads?\(", "pickle.load"), (r"\bUnpickler\(", "Unpickler"), (r"\bcloudpickle\.", "cloudpickle"),
    (r"\bjoblib\.load\(", "joblib.load"), (r"\byaml\.(load|load_all|full_load|unsafe_load)\(", "yaml.load"),
    (r"\bdill\.", "dill"), (r"\bmarshal\.loads?\(", "marshal.load"), (r"\bshelve\.open\(", "shelve"),
    (r"(?<![.\w])eval\(", "eval"),
]


def _sources():
    for pkg in ("sim", "surrogate", "active_learning"):
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_no_unsafe_deserialisation_in_the_source():
    """Source scan: no pickle/joblib/cloudpickle loads, yaml.safe_load only, torch.load only with weights_only=True."""
    bad = []
    for f in _sources():
        text = f.read_text()
        rel = f.relative_to(ROOT)
        for pattern, name in UNSAFE:
            bad += [f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {name}" for m in re.finditer(pattern, text)]
        for m in re.finditer(r"\btorch\.load\(", text):
            args = text[m.end():m.end() + 200].split(")")[0]
            if "weights_only=True" not in args:
                bad.append(f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: torch.load without weights_only=True")
    assert not bad, bad
    assert sum(1 for _ in _sources()) > 30  # the scan saw the packages


def test_the_scan_catches_what_it_should(tmp_path):
    """The patterns fire on the unsafe calls (so an empty result above means something)."""
    samples = ["pickle.load(f)", "pickle.loads(b)", "yaml.load(s)", "yaml.unsafe_load(s)", "joblib.load(p)",
               "cloudpickle.loads(b)"]
    for s in samples:
        assert any(re.search(p, s) for p, _ in UNSAFE), s
    assert not any(re.search(p, "yaml.safe_load(s)") for p, _ in UNSAFE)


def test_mlflow_is_outside_the_path_traversal_advisories():
    """pyproject's lower bound (3.11) clears CVE-2025-11201, CVE-2026-2033, CVE-2026-2614 (and CVE-2026-2651)."""
    installed = Version(version("mlflow"))
    pin = re.search(r'"mlflow>=([\d.]+),<([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin and Version(pin.group(1)) >= Version("3.11"), pin
    assert Version(pin.group(1)) <= installed < Version(pin.group(2)), (installed, pin.group(0))
