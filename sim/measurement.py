"""The measurement schema shared by every oracle (MD, continuum, a user's own).

Units: nA for currents, ions/ns for fluxes (positive = along +z), ns for time, V/nm for fields.
A failed measurement carries its reason and no numbers: it is never a zero current.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from porelab.base.files import atomic_write_text
from porelab.sim.design import Conditions, Design, design_id

MEASUREMENT_FILE = "measurement.json"  # a run directory's result (sim.protocol, campaigns, the store)

E_PER_NS_TO_NA = 0.1602176634  # 1 e/ns in nA
# every number a measurement holds is finite (an unbounded interval end is None): NaN or inf is refused when it is
# built, so any serialiser may write it (surrogate.store writes 10^4 of them in one pass of pydantic's)
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def _finite_json(value: dict) -> dict:
    """`value`, refused (ValueError) where it holds NaN or inf anywhere: the free-form dicts of a measurement."""
    json.dumps(value, allow_nan=False, default=str)
    return value


_FiniteDict = Annotated[dict, AfterValidator(_finite_json)]


class SpeciesResult(BaseModel):
    """Transport of one ion species at one field. Crossings are full transits of the membrane."""

    model_config = _STRICT
    crossings_up: int | None = None  # transits along +z (MD only)
    crossings_down: int | None = None  # transits along -z (MD only)
    crossings: float = 0.0  # net transits, up - down (continuum: flux x time)
    flux_per_ns: float
    flux_ci_per_ns: tuple[float, float]
    # measurements of the earlier MD protocol (before the settle rule) carry per-species displacement fluxes
    flux_displacement_per_ns: float | None = None
    flux_displacement_ci_per_ns: tuple[float, float] | None = None


class FieldResult(BaseModel):
    """Everything measured at one signed field value."""

    model_config = _STRICT
    field_V_per_nm: float
    time_ns: float  # production length the numbers come from (continuum: 0)
    current_nA: float
    current_ci_nA: tuple[float, float]
    # MD: variance / mean (>= 1) of the transit counts in 5 ps blocks; the count intervals are widened by it
    crossing_dispersion: float | None = None
    # MD diagnostic: the displacement sum over the production window. It equals the charge carried through the pore
    # plus polarisation_change_e (the membrane's charging), so it is never used for ICR or labels (docs/physics.md §3)
    current_displacement_nA: float | None = None
    current_displacement_ci_nA: tuple[float, float] | None = None
    current_displacement_n_eff: float | None = None  # effectively independent samples behind that interval
    current_displacement_reliable: bool | None = None  # n_eff >= sim.estimators.MIN_N_EFF
    polarisation_change_e: float | None = None  # change of the ions' polarisation Q_pol over the production, e (MD)
    settle_ns: float | None = None  # field on before the production window, not counted (MD)
    settled: bool | None = None  # the settle met its stationarity rule (False: it hit settle_max_ps) (MD)
    transient_dropped_ns: float | None = None  # earlier MD protocol: start dropped from the displacement estimator
    charge_crossings_e: float | None = None  # net charge moved through the membrane, e (MD)
    derived_by_symmetry: bool = False  # not simulated: the mirror image of the +|E| result of a symmetric design
    species: dict[str, SpeciesResult]


class ICRResult(BaseModel):
    """Rectification at one |E|: ICR = |I(+E)| / |I(-E)|."""

    model_config = _STRICT
    field_abs_V_per_nm: float
    icr: float  # point estimate; the lower bound when censored, the upper bound when upper_censored
    icr_ci: tuple[float, float | None]  # upper end None: unbounded (censored)
    icr_censored: bool  # True: the -E current's interval contains zero; icr is a lower bound ("> x")
    # True: the +E current's interval contains zero (and the -E one's does not): icr is an upper bound ("< x"),
    # icr_ci = (0, x); the mirror image at the opposite field is then lower-censored ("> 1/x")
    icr_upper_censored: bool = False
    # earlier MD protocol: the same ratio from the displacement-sum currents (which count the membrane's charging)
    icr_displacement: float | None = None
    icr_displacement_ci: tuple[float, float | None] | None = None
    icr_displacement_censored: bool | None = None
    by_symmetry: bool = False  # the design is its own mirror image: ICR = 1 exactly, interval (1, 1)


class ChunkRecord(BaseModel):
    """The state of an MD run after one production chunk: its fields (currents and species' crossing counts; the
    species are left out in records made before 2026-12-06) and ICR at that time."""

    model_config = _STRICT
    production_ps: float  # production counted per field so far
    fields: list[FieldResult]
    icr: list[ICRResult]


class Extension(BaseModel):
    """One call that ran (or resumed) an MD measurement: production before and after, and its cost."""

    model_config = _STRICT
    started_utc: str
    from_ps: float
    to_ps: float
    cpu_s: float  # CPU seconds of this process (OpenMM CPU threads included)
    wall_s: float


class RunRecord(BaseModel):
    """How long an MD run ran and why it stopped (sim.protocol); cost cumulative over every call."""

    model_config = _STRICT
    rule: _FiniteDict  # MDSettings.run_rule(): until and the lengths, margin and target that govern stopping
    production_ps: float  # production counted at every simulated field
    stopped: Literal["fixed", "decisive", "precise", "symmetric", "cap", "running"]  # running: not finished yet
    reason: str  # one line
    cpu_s: float
    wall_s: float
    extensions: list[Extension] = Field(default_factory=list)
    history: list[ChunkRecord] = Field(default_factory=list)


class Measurement(BaseModel):
    """One oracle's answer to one question (design + conditions).

    `oracle` names what produced the numbers: {"kind": "md" | "continuum" | "user", "settings": {the settings that
    change the numbers}} (a user oracle adds "path"). A stored measurement answers a new request only when the
    design id and `oracle` both match (`same_oracle`); an MD run's length is not part of it: a longer run extends
    the stored one instead.
    """

    model_config = _STRICT
    design_id: str
    design: Design
    conditions: Conditions
    fidelity: Literal["md", "continuum"] | str = "md"
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    fields: list[FieldResult] = Field(default_factory=list)
    icr: list[ICRResult] = Field(default_factory=list)
    oracle: _FiniteDict = Field(default_factory=dict)
    provenance: _FiniteDict = Field(default_factory=dict)
    run: RunRecord | None = None  # MD: run length, stopping rule, cost and the ICR history after each chunk

    @classmethod
    def failed(cls, design: Design, conditions: Conditions, fidelity: str, error: str,
               provenance: dict | None = None, oracle: dict | None = None) -> Measurement:
        return cls(design_id=design_id(design, conditions), design=design, conditions=conditions,
                   fidelity=fidelity, status="failed", error=error, oracle=oracle or {}, provenance=provenance or {})

    def field(self, e: float) -> FieldResult:
        for f in self.fields:
            if math.isclose(f.field_V_per_nm, e, abs_tol=1e-9):
                return f
        raise KeyError(f"no result at field {e} V/nm")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, allow_nan=False)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Measurement:
        return cls.model_validate_json(Path(path).read_text())


def oracle_identity(kind: str, settings: dict | None = None, path: str | None = None) -> dict:
    """The `oracle` of a Measurement: kind, the settings that change the numbers (JSON-normalised), user path."""
    doc = {"kind": kind, "settings": json.loads(json.dumps(settings or {}, sort_keys=True, default=str))}
    return doc | ({"path": path} if path else {})


def same_oracle(m: Measurement, oracle: dict) -> bool:
    """Whether `m` was produced by `oracle` (an `oracle_identity`)."""
    return m.oracle == oracle
