"""The Python API (api.py): the README's example runs as a file, and its answers are porelab's own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
def test_readme_example_runs_as_a_file(tmp_path):
    """Saved as a file and run as a script, the way a user runs it (the campaign's workers import it again)."""
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    (tmp_path / "example.py").write_text(readme_example() + "    import pathlib\n"
                                         "    pathlib.Path('check.json').write_text(__import__('json').dumps({\n"
                                         "        'layers': list(design.layers), 'completed': summary['completed'],\n"
                                         "        'icr': [[r.icr, *r.icr_ci] for r in m.icr],\n"
                                         "        'fields': sorted(table['field_abs_V_per_nm'].tolist()),\n"
                                         "        'ordered': bool(((table['icr_lo'] <= table['icr']) & "
                                         "(table['icr'] <= table['icr_hi'])).all()),\n"
                                         "        'surrogate': str(surrogate.directory.resolve())}))\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PORELAB_WORKSPACE": str(tmp_path)}
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "ICR" in r.stdout
    got = json.loads((tmp_path / "check.json").read_text())
    # the janus_layers shorthand expanded, and the continuum twin rectifies along the dipole (ICR > 1)
    assert got["layers"] == ["COO-", "NH3+"]
    assert all(icr > 1 and lo <= icr <= hi for icr, lo, hi in got["icr"])
    assert got["completed"] == 48 and got["fields"] == [0.05, 0.2] and got["ordered"]
    # the API's surrogate is the campaign's newest model
    newest = sorted((tmp_path / "runs/notebook/models").glob("step_*"))[-1]
    assert got["surrogate"] == str(newest.resolve())
