"""Bad input, fuzzed (issue 7 item 6): every command ends with one `error:` line and a non-zero exit, never a
traceback, and writes nothing outside the workspace. Hypothesis runs derandomized (fixed examples)."""

import copy
import math
import os
import shutil
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from porelab.active_learning.cli.main import app

pytestmark = pytest.mark.reliability

runner = CliRunner()
FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DESIGN = {"preset": "tiny", "design": {"layers": ["COO-", "NH3+"], "spacing_nm": 0.34, "groups_per_rim": 4},
          "conditions": {"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": [1.0], "temperature_K": 300}}
STUDY = {"name": "fuzz", "seed": 1, "preset": "tiny", "base": {"conditions": {"electrolyte": {"K+": 0.1, "Cl-": 0.1}}},
         "space": {"spacing_nm": {"low": 0.3, "high": 0.7}, "groups_per_rim": {"low": 1, "high": 8, "integer": True}},
         "oracle": {"kind": "continuum"}, "budget": {"simulations": 4, "initial": 2, "batch": 2},
         "executor": {"kind": "local", "workers": 1}, "model": {"kind": "rf", "params": {"n_estimators": 10}},
         "acquisition": {"kind": "ucb", "pool_size": 16}}


class Workspace:
    """tmp_path/ws is the workspace and the cwd; tmp_path/outside holds a sentinel; snapshot() lists what lies
    outside the workspace (paths, sizes, mtimes)."""

    def __init__(self, tmp_path: Path):
        self.tmp, self.ws, self.outside = tmp_path, tmp_path / "ws", tmp_path / "outside"
        self.ws.mkdir()
        self.outside.mkdir()
        (self.outside / "sentinel.txt").write_text("do not touch")

    def snapshot(self) -> set:
        out = set()
        for dirpath, dirnames, filenames in os.walk(self.tmp):
            d = Path(dirpath)
            if d == self.ws or self.ws in d.parents:
                continue
            for n in filenames + dirnames:
                if d / n == self.ws:
                    continue
                st_ = (d / n).lstat()
                out.add((str((d / n).relative_to(self.tmp)), st_.st_size, st_.st_mtime_ns))
        return out


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    w = Workspace(tmp_path)
    monkeypatch.setenv("PORELAB_WORKSPACE", str(w.ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(w.ws)
    return w


def refused(r, *needles) -> str:
    """Assert a one-line `error:` and a non-zero exit without a traceback; return the line."""
    text = r.output.strip()
    assert r.exit_code != 0, text
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in text and text.startswith("error:"), text
    assert len(text.splitlines()) == 1, text
    for n in needles:
        assert n in text, (n, text)
    return text


def ok_or_refused(r) -> None:
    if r.exit_code != 0 or r.exception is not None:
        refused(r)


# --- fuzzed YAML text, fed to every command that reads a YAML file -------------------------------------------
TOKENS = ["design:", "conditions:", "preset:", "name:", "space:", "model:", "graph:", "layers:", "electrolyte:",
          "{", "}", "[", "]", ":", ",", "-", " ", "  ", "\n", "\t", "'", '"', "&a", "*a", "!!python/object:os.system",
          "!!binary", "?", "|", ">", "#", "%YAML 1.1", "---", "...", "null", "~", "true", "1e999", "-0", ".nan",
          "COO-", "K+", "Xx", "tiny", "huge", "0x1F", "\x00", "\ufeff", "é"]
yaml_text = st.one_of(st.lists(st.sampled_from(TOKENS), max_size=24).map("".join),
                      st.text(alphabet=string.printable + "\x00\x85\u2028é", max_size=80))


@FUZZ
@given(text=yaml_text)
def test_fuzzed_yaml_text_every_reader(ws, text):
    """Design, study and train-config YAML: valid or one-line error; nothing written outside."""
    before = ws.snapshot()
    f = ws.ws / "fuzz.yaml"
    f.write_bytes(text.encode("utf-8", "surrogatepass"))
    ok_or_refused(runner.invoke(app, ["build", str(f), "--out", "fuzz.pdb"]))
    ok_or_refused(runner.invoke(app, ["simulate", str(f), "--out", "sim", "--fidelity", "continuum"]))
    refused(runner.invoke(app, ["free-energy", str(f), "--out", "fe", "--ion", "Xx"]))  # never reaches MD
    refused(runner.invoke(app, ["campaign", "run", str(f), "--out", "camp", "--no-tracking", "--quiet"]))
    refused(runner.invoke(app, ["train", "no-such-data", "--out", "model", "--config", str(f)]))
    assert ws.snapshot() == before


def test_unreadable_files_every_reader(ws):
    """Binary bytes, a directory, a missing file: one line naming the file, for every reader."""
    (ws.ws / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81")
    (ws.ws / "adir").mkdir()
    before = ws.snapshot()
    for f, words in (("bin.yaml", "not a text file"), ("adir", "is a directory"), ("missing.yaml", "no such file")):
        for args in (["build", f, "--out", "x.pdb"], ["simulate", f, "--out", "s", "--fidelity", "continuum"],
                     ["free-energy", f, "--out", "fe"], ["campaign", "run", f, "--no-tracking"],
                     ["train", ".", "--out", "m", "--config", f]):
            refused(runner.invoke(app, args), f, words)
    assert ws.snapshot() == before and not (ws.ws / "x.pdb").exists()


# --- fuzzed designs: one field made bad at a time ------------------------------------------------------------
not_a_number = st.one_of(st.text(alphabet=string.ascii_letters, min_size=1, max_size=5),
                         st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=2), st.integers(), max_size=1), st.none())
non_finite = st.sampled_from([math.nan, math.inf, -math.inf, "nan", "inf"])
BAD_DESIGN = {  # (section, key) -> values that must be refused
    ("design", "material"): st.one_of(st.sampled_from(["gold", "GO", ""]), st.integers()),
    ("design", "sheet_nm"): st.one_of(not_a_number, non_finite, st.floats(20.01, 1e6), st.floats(-1e6, 1.0)),
    ("design", "box_z_nm"): st.one_of(not_a_number, non_finite, st.floats(40.01, 1e6), st.floats(-1e6, 2.0)),
    ("design", "spacing_nm"): st.one_of(not_a_number, non_finite, st.floats(2.01, 1e6), st.floats(-1e6, 0.19)),
    ("design", "groups_per_rim"): st.one_of(not_a_number, st.integers(65, 10**6), st.integers(-10**6, 0),
                                            st.floats(0.1, 0.9)),
    ("design", "bn_charge_e"): st.one_of(not_a_number, non_finite, st.floats(1.51, 1e6), st.floats(-1e6, -0.01)),
    ("design", "layers"): st.one_of(st.just([]), st.lists(st.sampled_from(["COO-", "OH"]), min_size=17, max_size=20),
                                    st.lists(st.sampled_from(["COOH", "NH2", "", "x"]), min_size=1, max_size=3),
                                    st.integers()),
    ("design", "pore"): st.one_of(st.fixed_dictionaries({"shape": st.sampled_from(["star", "oval"])}),
                                  st.fixed_dictionaries({"width_nm": st.one_of(non_finite, st.floats(-5, 0.39))}),
                                  st.fixed_dictionaries({"height_nm": st.floats(2.3, 100)}), st.text(max_size=3)),
    ("design", "offsets_nm"): st.one_of(st.just([[0, 0]]), st.just([[math.nan, 0], [0, 0]]),
                                        st.just([[5, 5], [0, 0]]), st.text(min_size=1, max_size=3)),
    ("design", "colour"): st.integers(),  # an unknown key
    ("conditions", "electrolyte"): st.one_of(
        st.just({}), st.just("KCl"), st.dictionaries(st.sampled_from(["Xx", "K", "Cl", "H+", "k+"]),
                                                     st.floats(0.1, 1), min_size=1, max_size=2),
        st.just({"K+": 1.0}), st.just({"K+": -1.0, "Cl-": -1.0}), st.just({"K+": 10.0, "Cl-": 10.0}),
        st.just({"K+": math.nan, "Cl-": math.nan})),
    ("conditions", "fields_V_per_nm"): st.one_of(st.just([]), st.lists(st.floats(10.01, 1e9), min_size=1, max_size=3),
                                                 st.just(["a"]), st.just([math.nan])),
    ("conditions", "temperature_K"): st.one_of(not_a_number, non_finite, st.floats(-1e6, 249.9), st.floats(400.1, 1e6)),
    ("conditions", "pressure"): st.floats(0, 1),  # an unknown key
}
bad_design = st.sampled_from(sorted(BAD_DESIGN)).flatmap(lambda k: st.tuples(st.just(k), BAD_DESIGN[k]))


@FUZZ
@given(bad=bad_design)
def test_fuzzed_designs_are_refused_naming_the_field(ws, bad):
    (section, key), value = bad
    doc = copy.deepcopy(DESIGN)
    doc[section][key] = value
    f = ws.ws / "d.yaml"
    f.write_text(yaml.safe_dump(doc, allow_unicode=True))
    before = ws.snapshot()
    refused(runner.invoke(app, ["build", str(f), "--out", "d.pdb"]), key if key != "pore" else "pore")
    refused(runner.invoke(app, ["simulate", str(f), "--out", "sim", "--fidelity", "continuum"]))
    refused(runner.invoke(app, ["free-energy", str(f), "--out", "fe"]))
    assert not (ws.ws / "d.pdb").exists() and not (ws.ws / "fe").exists()
    assert ws.snapshot() == before


# --- fuzzed studies: one path made bad at a time -------------------------------------------------------------
BAD_STUDY = {
    ("name",): st.one_of(st.just("../escape"), st.just("/abs"), st.just(""), st.just("a" * 65), st.integers()),
    ("seed",): st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.text(max_size=3)),
    ("budget",): st.one_of(st.just({}), st.just("many"), st.none()),
    ("budget", "simulations"): st.one_of(st.integers(-10**6, 0), st.integers(10**6 + 1), not_a_number),
    ("budget", "initial"): st.integers(-5, 0),
    ("budget", "batch"): st.integers(-5, 0),
    ("budget", "wall_clock_min"): st.one_of(st.floats(-10, 0), st.text(alphabet=string.ascii_letters, min_size=1)),
    ("space",): st.one_of(st.just({}), st.just({"foo": {"low": 1, "high": 2}}), st.just([]),
                          st.just({"spacing_nm": {"low": 1.0, "high": 0.5}}), st.just({"layers": {"choices": []}}),
                          st.just({"spacing_nm": {"low": 0.0, "high": 1.0, "log": True}})),
    ("base", "conditions"): st.one_of(st.just({"electrolyte": {"Xx": 1.0, "Cl-": 1.0}}),
                                      st.just({"temperature_K": 1000}), st.just({"fields_V_per_nm": []})),
    ("base", "design"): st.one_of(st.just({"spacing_nm": 0.01}), st.just({"layers": []}), st.just({"x": 1})),
    ("preset",): st.sampled_from(["huge", "", "TINY"]),
    ("oracle", "kind"): st.sampled_from(["quantum", "MD", ""]),
    ("goal", "objective"): st.sampled_from(["speed", ""]),
    ("goal", "selectivity"): st.just({"numerator": ["Xx"], "denominator": ["K+"]}),
    ("goal", "target"): st.floats(-10, 0),
    ("executor", "workers"): st.integers(-3, 0),
    ("executor", "kind"): st.sampled_from(["slurm", "thread"]),
    ("model", "kind"): st.sampled_from(["svm", "GNN", ""]),
    ("model", "params"): st.one_of(st.just({"n_estimators": -1}), st.just({"n_estimators": "many"}),
                                   st.just({"bogus": 1})),
    ("acquisition", "kind"): st.sampled_from(["zzz", ""]),
    ("acquisition", "params"): st.one_of(st.just({"beta": "x"}), st.just({"betta": 1.0})),
    ("acquisition", "pool_size"): st.integers(-5, 0),
    ("colour",): st.integers(),
}
bad_study = st.sampled_from(sorted(BAD_STUDY)).flatmap(lambda k: st.tuples(st.just(k), BAD_STUDY[k]))


@FUZZ
@given(bad=bad_study)
def test_fuzzed_studies_are_refused_before_anything_is_written(ws, bad):
    path, value = bad
    doc = copy.deepcopy(STUDY)
    node = doc
    for k in path[:-1]:
        node = node.setdefault(k, {})
    node[path[-1]] = value
    f = ws.ws / "s.yaml"
    f.write_text(yaml.safe_dump(doc, allow_unicode=True))
    shutil.rmtree(ws.ws / "camp", ignore_errors=True)
    before = ws.snapshot()
    line = refused(runner.invoke(app, ["campaign", "run", str(f), "--out", "camp", "--no-tracking", "--quiet"]))
    assert "s.yaml" in line, line  # names the file (and, after it, the field)
    assert not (ws.ws / "camp").exists() and not (ws.ws / "mlflow.db").exists()
    assert ws.snapshot() == before


def test_gnn_keywords_are_checked_by_study_and_train(ws):
    """Out-of-range GNN keywords: refused at load, not as a model-less campaign or a torch error mid-run."""
    doc = copy.deepcopy(STUDY) | {"model": {"kind": "gnn", "params": {"hidden": -1}}}
    (ws.ws / "s.yaml").write_text(yaml.safe_dump(doc))
    refused(runner.invoke(app, ["campaign", "run", "s.yaml", "--no-tracking"]), "hidden=-1")
    data = ws.ws / "data"
    data.mkdir()
    for cfg, words in (("model: {hidden: -1}", "model.hidden=-1"), ("model: {n_members: 0}", "model.n_members=0"),
                       ("model: {symmetry: foo}", "model.symmetry='foo'"), ("model: {lr: x}", "model.lr='x'"),
                       ("model: {hidden: 2.5}", "model.hidden=2.5"), ("model: {batch_designs: 0}", "batch_designs"),
                       ("graph: {n_rbf: x}", "graph.n_rbf='x'"), ("graph: {edge_cutoff_nm: -1}", "edge_cutoff_nm"),
                       ("test_fraction: 2", "test_fraction"), ("seed: -5", "seed"), ("flux_scale_per_ns: 0", "flux"),
                       ("- a", "expected a mapping"), ("model: [", "malformed YAML")):
        (ws.ws / "c.yaml").write_text(cfg)
        refused(runner.invoke(app, ["train", str(data), "--out", "m", "--config", "c.yaml"]), words)
    assert not (ws.ws / "m").exists()


def test_broken_measurements_and_ledgers(ws):
    """A corrupt measurement.json (train) or ledger.sqlite (status, resume): one line naming the file."""
    from porelab.active_learning.campaign.directory import create
    from porelab.active_learning.campaign.study import parse_study

    bad = ws.ws / "data" / "x"
    bad.mkdir(parents=True)
    for content in (b"{not json", b'{"a": 1}', b"\xff\x00"):
        (bad / "measurement.json").write_bytes(content)
        refused(runner.invoke(app, ["train", "data", "--out", "m"]), "measurement.json")
    d = create(parse_study(copy.deepcopy(STUDY)), ws.ws / "camp")
    (d / "ledger.sqlite").write_bytes(b"garbage, not sqlite" * 100)
    refused(runner.invoke(app, ["campaign", "status", str(d)]), "unreadable")
    refused(runner.invoke(app, ["campaign", "resume", str(d), "--no-tracking"]), "unreadable")
    (d / "study.yaml").write_text("name: [\n")
    refused(runner.invoke(app, ["campaign", "status", str(d)]), "malformed YAML")


@pytest.mark.parametrize("args, words", [
    (["campaign", "resume", "camp", "--budget", "0"], "'--budget'"),
    (["campaign", "resume", "camp", "--wall-clock-min", "0"], "'--wall-clock-min'"),
    (["campaign", "run"], "Missing argument"),
    (["campaign", "nosuch"], "No such command"),
    (["simulate", "d.yaml"], "Missing option '--out'"),
    (["simulate", "d.yaml", "--out", "s", "--time-ps", "abc"], "'--time-ps'"),
    (["simulate", "d.yaml", "--out", "s", "--fields", "nan"], "--fields"),
    (["simulate", "d.yaml", "--out", "s", "--fields", "1e9", "--fidelity", "continuum"], "--fields"),
    (["simulate", "d.yaml", "--out", "s", "--fidelity", "quantum"], "quantum"),
    (["simulate", "d.yaml", "--out", "s", "--time-ps", "-1"], "production_ps"),
    (["free-energy", "d.yaml", "--out", "fe", "--ion", "SO4^2-"], "no MD parameters"),
    (["free-energy", "d.yaml", "--out", "fe", "--ion", "Na+"], "not in the electrolyte"),
    (["free-energy", "d.yaml", "--out", "fe", "--windows", "0"], "n_windows=0"),
    (["free-energy", "d.yaml", "--out", "fe", "--temperatures", "1,2"], "temperature"),
    (["build", "d.yaml", "--preset", "huge"], "preset 'huge'"),
    (["ui", "--port", "0"], "'--port'"),
    (["ui", ".", "--host", ""], "--host is empty"),
    (["ui", ".", "--host", "no such host"], "--host 'no such host'"),
    (["ui", ".", "--host", "999.1.1.1"], "999.1.1.1"),
    (["ui", "nowhere"], "no mlflow.db"),
    (["train", "data", "--out", "m"], "not a directory"),
    (["train", "--out", "m"], "no measurement.json below it"),  # no DATA: the measurement store, empty
    (["nosuch"], "No such command"),
])
def test_bad_options_are_one_line(ws, args, words):
    """Option values out of range or of the wrong type: one line, like any other bad input."""
    (ws.ws / "d.yaml").write_text(yaml.safe_dump(DESIGN))
    (ws.ws / "mlflow.db").write_bytes(b"")
    before = ws.snapshot()
    refused(runner.invoke(app, args), words)
    assert ws.snapshot() == before
    assert not any((ws.ws / p).exists() for p in ("s", "fe", "m", "d.pdb"))
