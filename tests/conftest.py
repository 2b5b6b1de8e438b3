"""Shared test configuration: GPU tests are skipped when OpenMM has no usable CUDA platform; the workspace
(where porelab may write, see sim/workspace.py) is pytest's temporary root, so CLI tests may write to tmp_path."""

import os

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


def _has_cuda() -> bool:
    try:
        from sim.protocol import choose_platform

        return choose_platform().getName() == "CUDA"
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _has_cuda():
        skip = pytest.mark.skip(reason="no CUDA GPU available to OpenMM")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
