"""The measurement store: every simulation's result kept once per question, for every campaign and model to reuse.

A store is a directory, `<root>/<kind>-<key>/<design_id>/`, one entry per (oracle identity, design id): the
oracle identity (`Measurement.oracle`: kind and the settings that change the numbers, not the run length) hashed
to `key` and written beside as `oracle.json`; in the entry, the simulation's own files (an MD run directory:
checkpoints and chunk history, so a longer run of the same question resumes and extends it) and its
`measurement.json`. The mirror image at the opposite fields is the same question (`sim.design.mirror_question`):
an entry is simulated in the orientation of its first asker (`question`, kept in `question.json`, since a run
resumes only in the orientation it started in), and `get` turns the answer to the orientation asked.

`porelab train <root>` trains on a store (it is a tree of measurement.json files); campaigns read and write the
workspace's store (`default_store`). A lock file per entry keeps two processes from simulating the same question
at once (the second waits, then reuses).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from porelab.base.files import atomic_write_text
from porelab.base.workspace import workspace
from porelab.sim.design import Conditions, Design, design_id
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement
from porelab.sim.observables import oriented

ORACLE_FILE = "oracle.json"
QUESTION_FILE = "question.json"


def default_store() -> Path | None:
    """$PORELAB_STORE ("off": no store), else `<workspace>/porelab-store`."""
    env = os.environ.get("PORELAB_STORE")
    if env is not None and env.strip().lower() in ("off", "none", ""):
        return None
    return Path(env).resolve() if env else workspace() / "porelab-store"


def oracle_key(identity: dict) -> str:
    """`<kind>-<12 hex digits>`: the directory name of an oracle identity."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return f"{identity.get('kind', 'oracle')}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class MeasurementStore:
    """Measurements by (oracle identity, design id) under `root` (module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def entry(self, identity: dict, design: Design, conditions: Conditions) -> Path:
        """The entry directory of a question (made, with the oracle's `oracle.json`, on first use)."""
        d = self.root / oracle_key(identity)
        if not (d / ORACLE_FILE).exists():
            d.mkdir(parents=True, exist_ok=True)
            atomic_write_text(d / ORACLE_FILE, json.dumps(identity, indent=1, sort_keys=True))
        e = d / design_id(design, conditions)
        e.mkdir(exist_ok=True)
        return e

    def get(self, identity: dict, design: Design, conditions: Conditions) -> Measurement | None:
        """The stored answer, oriented as asked; None when the store holds none."""
        f = self.root / oracle_key(identity) / design_id(design, conditions) / MEASUREMENT_FILE
        if not f.exists():
            return None
        m = Measurement.load(f)
        return oriented(m, design, conditions) if m.oracle == identity else None

    def question(self, identity: dict, design: Design, conditions: Conditions) -> tuple[Design, Conditions]:
        """The orientation the entry is simulated in: its first asker's (recorded now when this is the first)."""
        e = self.entry(identity, design, conditions)
        f = e / QUESTION_FILE
        if f.exists():
            doc = json.loads(f.read_text())
            return Design.model_validate(doc["design"]), Conditions.model_validate(doc["conditions"])
        if (e / MEASUREMENT_FILE).exists():  # an entry stored before question.json was kept
            m = Measurement.load(e / MEASUREMENT_FILE)
            design, conditions = m.design, m.conditions
        atomic_write_text(f, json.dumps({"design": design.model_dump(mode="json"),
                                         "conditions": conditions.model_dump(mode="json")}, indent=1))
        return design, conditions

    def put(self, m: Measurement) -> Path:
        """Save `m` (which names its oracle) in its entry, in the entry's orientation (`question`); its path."""
        if not m.oracle:
            raise ValueError(f"measurement {m.design_id} names no oracle: it cannot be stored by question")
        d, c = self.question(m.oracle, m.design, m.conditions)
        f = self.entry(m.oracle, d, c) / MEASUREMENT_FILE
        oriented(m, d, c).save(f)
        return f

    def answer(self, identity: dict, design: Design, conditions: Conditions,
               simulate: Callable[[Design, Conditions, Path], Measurement],
               enough: Callable[[Measurement], bool] = lambda m: True) -> tuple[Measurement, bool]:
        """(answer oriented as asked, reused): the stored answer when it is ok and `enough` (e.g. long enough),
        else `simulate(design, conditions, entry)` run in the entry, in the entry's orientation (`question`;
        resuming what ran there), and stored when ok. The entry is locked meanwhile: a second asker waits, then
        reuses."""
        with self.lock(identity, design, conditions) as entry:
            held = self.get(identity, design, conditions)
            if held is not None and held.status == "ok" and enough(held):
                return held, True
            d, c = self.question(identity, design, conditions)
            m = simulate(d, c, entry)
            if m.status == "ok":
                self.put(m)
            return oriented(m, design, conditions), False

    @contextmanager
    def lock(self, identity: dict, design: Design, conditions: Conditions) -> Iterator[Path]:
        """Hold the entry (blocking while another process holds it); yields the entry directory."""
        e = self.entry(identity, design, conditions)
        with open(e / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield e
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def measurements(self, kind: str | None = None) -> Iterator[Measurement]:
        """Every stored measurement (of oracle `kind` when given), as its entry ran it, sorted by path."""
        for f in sorted(self.root.glob(f"{kind or '*'}-*/*/{MEASUREMENT_FILE}")):
            yield Measurement.load(f)
