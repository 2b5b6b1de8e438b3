"""The `porelab` command line."""
