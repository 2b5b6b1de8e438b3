"""porelab: computational nanofluidics. Janus nanopore MD, a continuum twin, GNN surrogates and active learning.

The repository root is the `porelab` package; its folders are the floors `porelab.base` (what is not
physics: files, workspace, console, errors), `porelab.sim` (physics), `porelab.surrogate` (learning) and
`porelab.active_learning` (orchestration). Importing porelab changes no global
state and loads no floor until one is used.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("porelab")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"

_API = ("Campaign", "Conditions", "Design", "Measurement", "PorelabError", "Surrogate", "load_design", "load_surrogate",
        "simulate")


def __getattr__(name: str):
    """The Python API (api.py), imported on first use so that `import porelab` stays light (and `Campaign`, the
    heavy one, only when asked for)."""
    if name in _API:
        from porelab import api  # pydantic and the sim floor load on first use, not with `import porelab`

        return getattr(api, name)
    raise AttributeError(f"module 'porelab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
