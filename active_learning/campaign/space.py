"""A study's design space and the candidate pools drawn from it.

A space maps names to dimensions. A name is a Design field (`spacing_nm`, `groups_per_rim`, `pore.width_nm`,
`layers`, ...), `janus_layers` (N COO- sheets under N NH3+ sheets), a Conditions field (`electrolyte`,
`temperature_K`), or `field_V_per_nm`: the field magnitude |E| in V/nm, each candidate being run at +E and -E.
Three kinds of dimension:
  {low, high, log?, integer?, num?}    a range (`num` points when the pool is a grid)
  {choices: [...]}                      a finite set
  {sequence: [...], length: [lo, hi]}   a list whose length and elements vary (the rim group of each layer)
Pools are quasi-random (scrambled Sobol, seeded) or the full grid; impossible designs are dropped, and a design and
its mirror image at the opposite fields (one design id) appear once. `drop_symmetric` removes the mirror-symmetric
designs, whose ICR is 1 by symmetry (docs/physics.md §3): a campaign after ICR never simulates them.
"""

from __future__ import annotations

import difflib
import itertools
import math
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from scipy.stats import qmc

from porelab.sim.design import (
    MAX_SHEETS,
    Conditions,
    Design,
    DesignError,
    Pore,
    design_id,
    make_conditions,
    make_design,
)
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement

CONDITION_KEYS = {"electrolyte", "temperature_K"}
FIELD_KEY = "field_V_per_nm"
JANUS_KEY = "janus_layers"  # the seed study's N-layer Janus pore: N COO- sheets under N NH3+ sheets


class Range(BaseModel):
    """low..high (log-uniform when `log`); integers when `integer`; `num` evenly spaced points on a grid."""

    model_config = ConfigDict(extra="forbid")
    low: float
    high: float
    log: bool = False
    integer: bool = False
    num: int | None = Field(None, ge=1, le=1000)

    @model_validator(mode="after")
    def _check(self) -> Range:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"needs finite low <= high (got low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log range needs low > 0 (got {self.low})")
        return self

    width: ClassVar[int] = 1

    def value(self, u: np.ndarray) -> Any:
        lo, hi = self.low, self.high
        x = math.exp(math.log(lo) + u[0] * (math.log(hi) - math.log(lo))) if self.log else lo + u[0] * (hi - lo)
        return min(int(math.floor(lo + u[0] * (hi - lo + 1))), int(hi)) if self.integer else float(f"{x:.4g}")

    def grid(self) -> list[Any]:
        if self.integer:
            return list(range(int(self.low), int(self.high) + 1))
        if self.num is None:
            raise ValueError("a range needs `num` (points) in a grid study")
        pts = np.geomspace(self.low, self.high, self.num) if self.log else np.linspace(self.low, self.high, self.num)
        return [float(f"{x:.4g}") for x in pts]


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choices: list[Any] = Field(min_length=1)
    width: ClassVar[int] = 1

    def value(self, u: np.ndarray) -> Any:
        return self.choices[min(int(u[0] * len(self.choices)), len(self.choices) - 1)]

    def grid(self) -> list[Any]:
        return list(self.choices)


class Sequence(BaseModel):
    """A list of `length[0]..length[1]` elements, each one of `sequence` (e.g. the rim group of each layer)."""

    model_config = ConfigDict(extra="forbid")
    sequence: list[Any] = Field(min_length=1)
    length: tuple[int, int]

    @model_validator(mode="after")
    def _check(self) -> Sequence:
        if not 1 <= self.length[0] <= self.length[1] <= MAX_SHEETS:
            raise ValueError(f"length {list(self.length)} must satisfy 1 <= lo <= hi <= {MAX_SHEETS} (a membrane has "
                             f"1 to {MAX_SHEETS} sheets)")
        return self

    @property
    def width(self) -> int:
        return 1 + self.length[1]

    def value(self, u: np.ndarray) -> list:
        lo, hi = self.length
        n = min(lo + int(u[0] * (hi - lo + 1)), hi)
        k = len(self.sequence)
        return [self.sequence[min(int(x * k), k - 1)] for x in u[1:1 + n]]

    def grid(self) -> list[list]:
        return [list(p) for n in range(self.length[0], self.length[1] + 1)
                for p in itertools.product(self.sequence, repeat=n)]


#: The keys of each kind of dimension: a study's dimension is read as the kind its keys evidently mean (a
#: `sequence` or `length` key: Sequence; `choices`: Choice; `low`/`high`: Range), so that a bad value is reported
#: by that kind alone, not as every kind's complaint at once ("low: Field required (and 7 more)").
KIND_KEYS = {"Sequence": ("sequence", "length"), "Choice": ("choices",), "Range": tuple(Range.model_fields)}
DIMENSION_FORMS = "{low, high}, {choices: [...]} or {sequence: [...], length: [lo, hi]}"
_ALL_KEYS = [k for own in KIND_KEYS.values() for k in own]


def dimension_kind(value: Any) -> str | None:
    """Which kind of dimension `value` (a mapping from a study, or a dimension) means; None: none evidently."""
    if isinstance(value, Range | Choice | Sequence):
        return type(value).__name__
    if not isinstance(value, dict) or not value:
        return None
    keys = [str(k) for k in value]
    for close in (False, True):  # the keys as given, then as the nearest known key (a typo: `lenght`)
        found = set(keys) if not close else {m for k in keys
                                             for m in difflib.get_close_matches(k, _ALL_KEYS, n=1, cutoff=0.75)}
        for kind, own in KIND_KEYS.items():  # Sequence before Choice before Range
            if found & set(own):
                return kind
    return None


Dimension = Annotated[
    Annotated[Range, Tag("Range")] | Annotated[Choice, Tag("Choice")] | Annotated[Sequence, Tag("Sequence")],
    Discriminator(dimension_kind, custom_error_type="dimension_kind",
                  custom_error_message=f"a dimension is {DIMENSION_FORMS}",
                  custom_error_context={"forms": DIMENSION_FORMS}),
]


def check_name(name: str) -> None:
    """Raise ValueError unless `name` is a Design/Conditions field or field_V_per_nm."""
    if name in (FIELD_KEY, JANUS_KEY) or name in CONDITION_KEYS:
        return
    head, _, rest = name.partition(".")
    if head == "pore" and rest:
        if rest not in Pore.model_fields:
            raise ValueError(f"pore.{rest} is not a pore field; known: {', '.join(Pore.model_fields)}")
        return
    if rest or head not in Design.model_fields or head == "pore":
        known = sorted([*Design.model_fields, *CONDITION_KEYS, FIELD_KEY, JANUS_KEY,
                        *(f"pore.{k}" for k in Pore.model_fields)])
        raise ValueError(f"{name!r} is not a design or conditions field; known: {', '.join(known)}")


class Candidate(BaseModel):
    """One point of the space: a validated design, its conditions and its id."""

    model_config = ConfigDict(frozen=True)
    design: Design
    conditions: Conditions
    design_id: str


def make_candidate(values: dict[str, Any], base_design: dict, base_conditions: dict,
                   preset: str | None) -> Candidate:
    """Candidate from dimension values on top of the study's base; raises DesignError."""
    d = {**base_design, "pore": dict(base_design.get("pore") or {})}
    c = dict(base_conditions)
    for name, v in values.items():
        if name == FIELD_KEY:
            c["fields_V_per_nm"] = [abs(v), -abs(v)]
        elif name in CONDITION_KEYS:
            c[name] = v
        elif name.startswith("pore."):
            d["pore"][name[5:]] = v
        elif name == JANUS_KEY:
            d.pop("layers", None)  # the stack replaces the base's layers
            d[name] = v
        else:
            d[name] = v
    if not d["pore"]:
        del d["pore"]
    design, conditions = make_design(d, preset), make_conditions(c)
    return Candidate(design=design, conditions=conditions, design_id=design_id(design, conditions))


class DesignSpace:
    """Dimensions plus the study's fixed base design/conditions and preset."""

    def __init__(self, dims: dict[str, Dimension], base_design: dict | None = None,
                 base_conditions: dict | None = None, preset: str | None = None):
        self.dims, self.preset = dims, preset
        self.base_design, self.base_conditions = dict(base_design or {}), dict(base_conditions or {})

    def _build(self, rows: list[dict]) -> tuple[list[Candidate], list[str]]:
        out, seen, rejected = [], set(), []
        for values in rows:
            try:
                cand = make_candidate(values, self.base_design, self.base_conditions, self.preset)
            except DesignError as err:
                rejected.append(str(err))
                continue
            if cand.design_id not in seen:
                seen.add(cand.design_id)
                out.append(cand)
        return out, rejected

    def sample(self, n: int, seed: int) -> list[Candidate]:
        """Up to n distinct valid candidates from a scrambled Sobol sequence (seeded); order is the draw order."""
        if not self.dims:
            cands, rejected = self._build([{}])
        else:
            d = sum(dim.width for dim in self.dims.values())
            m = max(1, math.ceil(math.log2(max(n, 2))))
            u = qmc.Sobol(d, scramble=True, rng=seed).random_base2(m)[:n]
            rows = []
            for x in u:
                row, k = {}, 0
                for name, dim in self.dims.items():
                    row[name] = dim.value(x[k:k + dim.width])
                    k += dim.width
                rows.append(row)
            cands, rejected = self._build(rows)
        if not cands:
            raise DesignError(f"the design space gives no valid design ({len(rejected)} rejected; first: "
                              f"{rejected[0] if rejected else 'none'})")
        return cands

    def grid(self) -> list[Candidate]:
        """Every combination of the dimensions' grid values, in order (first dimension slowest)."""
        names = list(self.dims)
        axes = []
        for name in names:
            try:
                axes.append(self.dims[name].grid())
            except ValueError as err:
                raise DesignError(f"space.{name}: {err}") from None
        size = math.prod(len(a) for a in axes)
        if size > 100_000:
            raise DesignError(f"the grid has {size} points; at most 100000")
        cands, rejected = self._build([dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)])
        if not cands:
            raise DesignError(f"the grid gives no valid design ({len(rejected)} rejected; first: "
                              f"{rejected[0] if rejected else 'none'})")
        return cands


def drop_symmetric(pool: list[Candidate]) -> tuple[list[Candidate], int]:
    """The candidates that are not mirror-symmetric (`Design.is_symmetric`), and how many were dropped."""
    kept = [c for c in pool if not c.design.is_symmetric()]
    return kept, len(pool) - len(kept)


def recorded_pool(store: Path, seed: int) -> list[Candidate]:
    """The questions (design and conditions) of the successful measurements under `store`, each once, in an order
    shuffled with `seed` (the first ones are the initial design). DesignError (one line) when there are none."""
    if not store.is_dir():
        raise DesignError(f"acquisition.pool_from: {store} is not a directory")
    files, found = sorted(store.rglob(MEASUREMENT_FILE)), {}
    for f in files:
        try:
            m = Measurement.load(f)
        except (OSError, ValueError):
            continue  # not a measurement: the replay oracle names it, if it is the store it replays
        if m.status == "ok":
            found.setdefault(m.design_id, Candidate(design=m.design, conditions=m.conditions, design_id=m.design_id))
    if not found:
        raise DesignError(f"acquisition.pool_from: {store} holds no successful measurement ({len(files)} "
                          f"{MEASUREMENT_FILE} files)")
    pool = list(found.values())
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order]
