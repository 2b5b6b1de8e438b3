"""porelab: computational nanofluidics. Janus nanopore MD, a continuum twin, GNN surrogates and active learning.

The repository root is the `porelab` package; its folders are the floors `porelab.sim` (physics),
`porelab.surrogate` (learning) and `porelab.active_learning` (orchestration). Importing porelab changes no global
state and loads no floor until one is used.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("porelab")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"
