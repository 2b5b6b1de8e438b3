"""Shared test configuration: GPU tests are skipped when OpenMM has no usable CUDA platform."""

import pytest


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
