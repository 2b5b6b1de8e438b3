"""Output paths that escape the workspace (`..`, absolute, symlink, `~`, defaults next to an outside input)
are refused by every command that writes, with one line naming the path, and nothing is written outside."""

import copy

import pytest
import yaml
from test_bad_input import DESIGN, STUDY, Workspace, refused, runner

from porelab.active_learning.cli.main import app
from porelab.base.workspace import WorkspaceError, output_path

pytestmark = pytest.mark.reliability


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    w = Workspace(tmp_path)
    monkeypatch.setenv("PORELAB_WORKSPACE", str(w.ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HOME", str(w.outside))  # so "~/x" lands outside
    monkeypatch.setenv("MPLCONFIGDIR", str(w.ws / ".mpl"))  # matplotlib's cache is not ours to police
    monkeypatch.chdir(w.ws)
    (w.ws / "d.yaml").write_text(yaml.safe_dump(DESIGN))
    (w.ws / "s.yaml").write_text(yaml.safe_dump(STUDY))
    (w.ws / "data").mkdir()
    (w.ws / "link").symlink_to(w.outside, target_is_directory=True)
    return w


ESCAPES = ["../outside/x", "{outside}/x", "link/x", "~/x", "sub/../../outside/x", "/x-{name}"]
COMMANDS = {
    "build": ["build", "d.yaml", "--out", "{path}"],
    "simulate": ["simulate", "d.yaml", "--out", "{path}", "--fidelity", "continuum"],
    "free-energy": ["free-energy", "d.yaml", "--out", "{path}"],
    "train": ["train", "data", "--out", "{path}"],
    "campaign run": ["campaign", "run", "s.yaml", "--out", "{path}", "--no-tracking"],
}


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_escaping_output_paths_are_refused(ws, command, escape):
    path = escape.format(outside=ws.outside, name=ws.tmp.name)
    before = ws.snapshot()
    args = [a.replace("{path}", path) for a in COMMANDS[command]]
    refused(runner.invoke(app, args), "outside the workspace", repr(path))
    assert ws.snapshot() == before
    assert [p.name for p in ws.outside.iterdir()] == ["sentinel.txt"]


def test_default_and_derived_paths_are_checked(ws):
    """build's default <design>.pdb beside an outside design; a campaign whose parent (mlflow.db) is outside;
    resume of a campaign outside; ui of a workspace outside."""
    from porelab.active_learning.campaign.directory import create
    from porelab.active_learning.campaign.study import parse_study

    (ws.outside / "o.yaml").write_text(yaml.safe_dump(DESIGN))
    outside_camp = create(parse_study(copy.deepcopy(STUDY)), ws.outside / "camp")
    (ws.outside / "mlflow.db").write_bytes(b"")
    before = ws.snapshot()
    refused(runner.invoke(app, ["build", str(ws.outside / "o.yaml")]), "the default --out", "o.pdb")
    refused(runner.invoke(app, ["campaign", "run", "s.yaml", "--out", ".", "--no-tracking"]), "its parent")
    refused(runner.invoke(app, ["campaign", "run", "s.yaml", "--out", str(ws.ws), "--no-tracking"]), "its parent")
    refused(runner.invoke(app, ["campaign", "resume", str(outside_camp), "--no-tracking"]), "outside the workspace")
    refused(runner.invoke(app, ["ui", str(ws.outside), "--port", "1"]), "outside the workspace")
    refused(runner.invoke(app, ["ui", str(outside_camp), "--port", "1"]), "outside the workspace")
    assert ws.snapshot() == before


def test_status_reads_an_outside_campaign_without_writing(ws):
    """status only reads: allowed for a campaign outside, and it leaves that directory as it was."""
    from porelab.active_learning.campaign.directory import create
    from porelab.active_learning.campaign.study import parse_study

    d = create(parse_study(copy.deepcopy(STUDY)), ws.outside / "camp")
    files = lambda: {e for e in ws.snapshot() if (ws.tmp / e[0]).is_file()}  # noqa: E731
    before = files()
    r = runner.invoke(app, ["campaign", "status", str(d)])
    assert r.exit_code == 0, r.output
    assert files() == before  # (SQLite's transient -wal/-shm files come and go: the directory's mtime moves)


def test_inside_paths_are_accepted(ws):
    """The same commands write inside: relative, nested, through an inside symlink, and the default."""
    (ws.ws / "inner").mkdir()
    (ws.ws / "ilink").symlink_to(ws.ws / "inner", target_is_directory=True)
    assert output_path("a/../b") == ws.ws / "b" and output_path("ilink/x") == ws.ws / "inner" / "x"
    assert output_path(ws.ws) == ws.ws
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        output_path("..")
    before = ws.snapshot()
    for args in (["build", "d.yaml"], ["build", "d.yaml", "--out", "ilink/m.pdb"],
                 ["simulate", "d.yaml", "--out", "runs/s", "--fidelity", "continuum"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    assert (ws.ws / "d.pdb").exists() and (ws.ws / "inner" / "m.pdb").exists()
    assert (ws.ws / "runs" / "s" / "measurement.json").exists()
    assert ws.snapshot() == before
