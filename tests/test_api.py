"""The Python API (porelab/api.py): the README's example runs as written, and its answers are porelab's own."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import porelab

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "README.md should hold one python example"
    return blocks[0]


def test_api_names_are_lazy_and_listed():
    assert set(porelab._API) <= set(dir(porelab))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        porelab.nope  # noqa: B018
    assert (ROOT / "py.typed").exists()


def test_simulate_refuses_unknown_fidelity_and_md_without_a_directory():
    design, conditions = porelab.load_design(ROOT / "experiments/examples/janus-1.yaml")
    with pytest.raises(ValueError, match="fidelity 'pnp'"):
        porelab.simulate(design, conditions, fidelity="pnp")
    with pytest.raises(ValueError, match="needs out="):
        porelab.simulate(design, conditions, fidelity="md")


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ns: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), ns)
    # the janus_layers shorthand expanded, and the continuum twin rectifies along the dipole (ICR > 1)
    assert list(ns["design"].layers) == ["COO-", "NH3+"]
    assert all(r.icr > 1 and r.icr_ci[0] <= r.icr <= r.icr_ci[1] for r in ns["m"].icr)
    assert ns["summary"]["completed"] == 48
    table = ns["table"]
    assert sorted(table["field_abs_V_per_nm"]) == [0.05, 0.2]
    assert np.all(table["icr_low"] <= table["icr"]) and np.all(table["icr"] <= table["icr_high"])
    # the API's surrogate is the campaign's newest model
    newest = sorted((tmp_path / "runs/notebook/models").glob("step_*"))[-1]
    assert ns["surrogate"].directory.resolve() == newest
    assert "ICR" in capsys.readouterr().out
