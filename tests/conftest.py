"""Shared test configuration: GPU tests are skipped when OpenMM has no usable CUDA platform; the workspace
(where porelab may write, see base/workspace.py) is pytest's temporary root, so CLI tests may write to tmp_path;
each test has its own measurement store."""

import os
import shutil

import pytest


@pytest.fixture(scope="session", autouse=True)
def _workspace_is_pytest_tmp(tmp_path_factory):
    """PORELAB_WORKSPACE = the root of every tmp_path (subprocesses inherit it); restored afterwards."""
    old = os.environ.get("PORELAB_WORKSPACE")
    os.environ["PORELAB_WORKSPACE"] = str(tmp_path_factory.getbasetemp().resolve())
    yield
    if old is None:
        os.environ.pop("PORELAB_WORKSPACE", None)
    else:
        os.environ["PORELAB_WORKSPACE"] = old


@pytest.fixture(autouse=True)
def _store_per_test(tmp_path_factory, monkeypatch):
    """Each test its own measurement store (sim/store.py), so no test reuses another's simulations."""
    monkeypatch.setenv("PORELAB_STORE", str(tmp_path_factory.mktemp("store")))


@pytest.fixture
def seed_from_one_equilibration(tmp_path):
    """seed(design, conditions, settings, names): equilibrate once in tmp_path/eq and start each run directory
    tmp_path/<name> from that state (so that runs compared with each other share their starting point)."""

    def seed(design, conditions, settings, names=("straight", "resumed")) -> None:
        from porelab.sim.protocol import MDRun

        eq = MDRun(design, conditions, tmp_path / "eq", settings, progress=False)
        eq._claim_directory()
        eq._prepare()
        eq._equilibrate()
        for name in names:
            (tmp_path / name / "state").mkdir(parents=True)
            shutil.copy(tmp_path / "eq" / "state" / "equilibrated.xml", tmp_path / name / "state")

    return seed


def _has_cuda() -> bool:
    try:
        from porelab.sim.protocol import choose_platform

        return choose_platform().getName() == "CUDA"
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _has_cuda():
        skip = pytest.mark.skip(reason="no CUDA GPU available to OpenMM")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
