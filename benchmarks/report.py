"""What the MD benchmarks' reports share (benchmarks/surrogate_md.py, al_replay.py, md_extension_replay.py): a path
as the report shows it, and the report written as <out>.json, <out>.md and <out>.png and printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shown_path(path: Path) -> str:
    """`path` relative to the repository root where it lies inside it, else as given."""
    return str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)


def write_report(out: Path, doc: dict, json_text: str, markdown: Callable[[dict], str],
                 plot: Callable[[dict, Path], None]) -> None:
    """Write `json_text`, markdown(doc) and plot(doc, ...) beside `out` (suffixes .json, .md, .png), print the
    markdown and where it went (doc["seconds"]: the runtime)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json_text)
    text = markdown(doc)
    out.with_suffix(".md").write_text(text)
    plot(doc, out.with_suffix(".png"))
    print(text)
    print(f"wrote {out}.{{json,md,png}} ({doc['seconds']:.0f} s)")
