"""porelab floor 1: physics. Design spec, atomistic builder, OpenMM system, run protocol, transport."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("porelab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
