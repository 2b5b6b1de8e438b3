"""The root of porelab's own exceptions: `except PorelabError` catches every error porelab raises on purpose (bad
input, a refused path, a failed campaign), never a bug."""


class PorelabError(Exception):
    """An error porelab raises on purpose; its message is one line that names the problem."""
