"""Reading a user's YAML file with one-line errors (every command's input: designs, studies, configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: str | Path, error: type[Exception], what: str = "YAML file", prefix: str = "") -> Any:
    """The parsed document at `path`; `error` with the one-line message `<prefix><path>: <problem>` for a missing,
    unreadable, binary or malformed file (`what` names the expected kind of file, e.g. "design YAML")."""
    name = f"{prefix}{path}"
    try:
        return yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except IsADirectoryError:
        raise error(f"{name}: is a directory, not a {what}") from None
    except UnicodeDecodeError:
        raise error(f"{name}: not a text file") from None
    except OSError as err:
        raise error(f"{name}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise error(f"{name}: malformed YAML{f' at line {mark.line + 1}' if mark else ''}") from None
