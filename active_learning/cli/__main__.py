"""`python -m porelab.active_learning.cli` runs the `porelab` command."""

from porelab.active_learning.cli.main import main

main()
