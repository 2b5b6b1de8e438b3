"""An oracle that replays recorded measurements: it answers a question (design + conditions) with the Measurement a
real oracle recorded for it, and refuses every other question. For benchmarks and dry runs of a study on data
already simulated (benchmarks/al_replay.py replays the shared MD dataset, data/md), with no simulation at all.

A study names it as a user oracle (active_learning.campaign.oracles.make_oracle imports `module:Class`):

    oracle: {kind: user, path: "porelab.sim.replay:ReplayOracle", settings: {store: data/md, kind: md}}

`store` is any directory tree of measurement.json files (a measurement store, sim.store, or run directories; a
relative path is taken from the working directory of the process that builds the oracle); `kind` keeps only the
records of that oracle kind ("md", "continuum", "user"; None: every kind). Questions are matched by design id
(sim.design.design_id: the design and the conditions that change the physics, and the same for the mirror image at
the opposite fields), and answered in the orientation asked (sim.observables.oriented). Only successful records
are held; two records of one question (e.g. two MD settings under one root) are refused when the oracle is built:
narrow `store` or `kind`. The answer is the recorded Measurement itself (numbers, intervals, run record), with
`provenance["replayed_from"]` naming its file; the campaign stamps it with the replay oracle's own identity (kind
user, its path and settings), so replayed answers are never mistaken for new simulations in a store. Nothing is
written to the run directory. A question without a record raises ReplayError, one line naming the design.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from porelab.base.errors import PorelabError
from porelab.sim.design import Conditions, Design, design_id
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement
from porelab.sim.observables import oriented


class ReplayError(PorelabError, LookupError):
    """A question the replay holds no record of, or a store it cannot replay (one line)."""


def _kind(m: Measurement) -> str:
    return str(m.oracle.get("kind") or m.fidelity)


class ReplayOracle:
    """Answers recorded Measurements under `store` (of oracle `kind`); see the module docstring."""

    def __init__(self, store: str | Path, kind: str | None = "md"):
        self.root = Path(store).resolve()
        if not self.root.is_dir():
            raise ReplayError(f"replay store {self.root} is not a directory")
        self.kind = kind
        self._records: dict[str, tuple[Measurement, Path]] = {}
        for f in sorted(self.root.rglob(MEASUREMENT_FILE)):
            try:
                m = Measurement.load(f)
            except (OSError, ValueError) as err:
                raise ReplayError(f"replay store {self.root}: {f} is not a measurement "
                                  f"({str(err).splitlines()[0]})") from None
            if m.status != "ok" or (kind is not None and _kind(m) != kind):
                continue
            if m.design_id in self._records:
                raise ReplayError(f"replay store {self.root}: two records of design {m.design_id} "
                                  f"({self._records[m.design_id][1]} and {f}); narrow store or kind")
            self._records[m.design_id] = (m, f)
        if not self._records:
            raise ReplayError(f"replay store {self.root} holds no successful measurement"
                              + (f" of oracle kind {kind!r}" if kind else ""))
        counts = Counter(m.fidelity for m, _ in self._records.values())
        self.fidelity = counts.most_common(1)[0][0]  # what the recorded oracle measured (e.g. "md")

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, question: tuple[Design, Conditions]) -> bool:
        return design_id(*question) in self._records

    def measurements(self) -> list[Measurement]:
        """Every record held, as recorded (sorted by file path)."""
        return [m for m, _ in sorted(self._records.values(), key=lambda r: str(r[1]))]

    def __call__(self, design: Design, conditions: Conditions, run_dir: Path | None = None) -> Measurement:
        did = design_id(design, conditions)
        held = self._records.get(did)
        if held is None:
            fields = ", ".join(f"{e:+g}" for e in conditions.fields_V_per_nm)
            raise ReplayError(f"replay: no recorded measurement of design {did} ({'/'.join(design.layers)}, "
                              f"{fields} V/nm) in {self.root}; it replays only the {len(self)} recorded designs")
        m, path = held
        m = oriented(m, design, conditions)
        return m.model_copy(update={"provenance": {**m.provenance, "replayed_from": str(path)}})
