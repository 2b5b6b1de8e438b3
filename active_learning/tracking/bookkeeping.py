"""What the MLflow view has logged, kept by the view itself (the ledger knows nothing of MLflow).

A SQLite file beside the ledger, `<campaign>/mlflow_view.sqlite`, with one table
`logged(uri, what, key, ref)`: per tracking URI, each thing shown there and its MLflow reference:

    what         key              ref
    experiment   ""               experiment id
    parent       ""               the campaign's parent run id
    study        ""               "1" once the study's params and file are on the parent run
    simulation   design id        the simulation's run id (a finished trial, logged in full)
    iteration    step             the iteration's run id (metrics, plots, and its model when it has one)
    model        ledger version   the model registry version of that model
    champion     ""               the registry version the `champion` alias points at (tracking/champion.py)
    champion_rule ""              the one-line rule that chose it, as tagged in MLflow
    finished     final step       "1" once the final metrics are logged and the parent run closed

A row is written (one transaction) only after MLflow holds the whole thing, so a killed driver leaves at worst a
thing in MLflow without its row: the view looks it up by its tags before logging it again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

FILE = "mlflow_view.sqlite"
SCHEMA = """CREATE TABLE IF NOT EXISTS logged (uri TEXT NOT NULL, what TEXT NOT NULL, key TEXT NOT NULL,
    ref TEXT NOT NULL, PRIMARY KEY (uri, what, key))"""


class Bookkeeping:
    """The rows of one tracking URI in `directory`/mlflow_view.sqlite."""

    def __init__(self, directory: str | Path, uri: str):
        self.path, self.uri = Path(directory) / FILE, uri
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(SCHEMA)

    def get(self, what: str, key: str = "") -> str | None:
        row = self.db.execute("SELECT ref FROM logged WHERE uri=? AND what=? AND key=?",
                              (self.uri, what, key)).fetchone()
        return row[0] if row else None

    def keys(self, what: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM logged WHERE uri=? AND what=?", (self.uri, what))}

    def put(self, rows: list[tuple[str, str, str]]) -> None:
        """Record (what, key, ref) rows in one transaction."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO logged (uri, what, key, ref) VALUES (?,?,?,?)",
                                [(self.uri, w, k, str(r)) for w, k, r in rows])

    def close(self) -> None:
        self.db.close()
