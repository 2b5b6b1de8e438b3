"""Settings of the MD run protocol (`sim.protocol`): validated in one line each, with the identity that pins what
changes the numbers. Times in ps, step in fs."""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import model_validator

from porelab.base.settings import Settings
from porelab.sim.design import DesignError
from porelab.sim.measurement import oracle_identity

UNTIL = ("fixed", "decisive")


class MDSettings(Settings):
    """Run protocol settings. Times in ps, step in fs. `identity()` names those that change the numbers."""

    WHAT: ClassVar[str] = "md settings"
    ERROR: ClassVar[type[Exception]] = DesignError

    production_ps: float = 100.0  # until="fixed": production per field
    until: str = "fixed"  # "fixed" | "decisive" (sim.run_length)
    min_production_ps: float = 40.0  # until="decisive": production per field at the rule's first look
    chunk_ps: float = 20.0  # production per field between looks of the rule (until="fixed": only recorded, run.history)
    max_production_ps: float = 1000.0  # until="decisive": cap per field
    alpha: float = 0.05  # until="decisive": chance of a false "decisive" over all looks (alpha/K per look)
    icr_margin: float = 0.2  # decisive when the ICR interval excludes 1 by this: low >= 1+m or high <= 1/(1+m)
    icr_rel_halfwidth: float = 0.2  # ... or precise when (high - low) / (2 ICR) <= this
    equil_ps: float = 20.0  # field off, at least; then on until the polarisation is stationary (settle rule)
    minimise_max_iterations: int = 2000  # L-BFGS iterations before equilibration (0: until converged)
    ramp_ps: float = 1.0  # at 1 fs straight after minimisation (avoids a NaN seen there, docs/physics.md §4)
    # the settle rule (sim.settle), after equil_ps at zero field and after switching each field on: stationary when
    # the mean polarisation of the last settle_window_ps and of the window before differ by <= settle_tol_e
    # (or 2 standard errors when those are larger); at most settle_max_ps (then `settled: false`)
    settle_window_ps: float = 10.0
    settle_tol_e: float = 0.2
    settle_max_ps: float = 100.0
    timestep_fs: float = 2.0
    friction_per_ps: float = 1.0
    seed: int = 0
    platform: str | None = None  # None: CUDA when present, else CPU
    cpu_threads: int | None = None  # CPU platform threads (None: all cores); 1 makes runs bitwise reproducible
    concurrent_fields: bool = True  # step the fields at once, the CPU threads shared out (Engine.split)
    report_interval_steps: int = 25
    traj_interval_ps: float = 1.0
    checkpoint_ps: float = 10.0
    max_retries: int = 2
    cutoff_nm: float = 1.0

    #: the settings that change the numbers (run length, platform, threads, concurrency, checkpoints and retries do
    #: not)
    IDENTITY: ClassVar[tuple[str, ...]] = (
        "seed", "timestep_fs", "friction_per_ps", "cutoff_nm", "equil_ps", "minimise_max_iterations", "ramp_ps",
        "settle_window_ps", "settle_tol_e", "settle_max_ps", "report_interval_steps", "traj_interval_ps")
    #: the protocol's version, part of the identity: 2 = settle rule, counts-only currents, one seed per field
    PROTOCOL: ClassVar[int] = 2

    @model_validator(mode="after")
    def _check(self) -> MDSettings:
        def bad(name: str, why: str):
            raise ValueError(f"{name}={getattr(self, name)!r} {why}")

        def number(v) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        for name in ("production_ps", "equil_ps", "timestep_fs", "traj_interval_ps", "checkpoint_ps", "chunk_ps",
                     "min_production_ps", "max_production_ps", "icr_margin", "icr_rel_halfwidth", "friction_per_ps",
                     "cutoff_nm", "settle_window_ps", "settle_tol_e"):
            if not (number(getattr(self, name)) and getattr(self, name) > 0):
                bad(name, "must be a positive number")
        for name in ("ramp_ps", "settle_max_ps"):
            if not (number(getattr(self, name)) and getattr(self, name) >= 0):
                bad(name, "must be a number >= 0")
        if not (number(self.alpha) and 0 < self.alpha < 1):
            bad("alpha", "must lie in (0, 1)")
        if self.timestep_fs > 50:
            bad("timestep_fs", "exceeds 50 fs")
        if self.until not in UNTIL:
            bad("until", f"is unknown; choose {' or '.join(UNTIL)}")
        for name, low in (("seed", 0), ("report_interval_steps", 1), ("max_retries", 0),
                          ("minimise_max_iterations", 0)):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
                bad(name, f"must be an integer >= {low}")
        if self.cpu_threads is not None and not (isinstance(self.cpu_threads, int) and self.cpu_threads >= 1):
            bad("cpu_threads", "must be None or an integer >= 1")
        if self.platform is not None and not isinstance(self.platform, str):
            bad("platform", "must be None or an OpenMM platform name")
        return self

    def identity(self) -> dict:
        """The settings that change the numbers: what `Measurement.oracle` and a run directory pin."""
        return {"protocol": self.PROTOCOL} | {k: getattr(self, k) for k in self.IDENTITY}

    def run_rule(self) -> dict:
        """The length settings a run follows (recorded in the measurement)."""
        if self.until == "fixed":
            return {"until": "fixed", "production_ps": self.production_ps}
        return {"until": "decisive", "min_production_ps": self.min_production_ps, "chunk_ps": self.chunk_ps,
                "max_production_ps": self.max_production_ps, "alpha": self.alpha, "icr_margin": self.icr_margin,
                "icr_rel_halfwidth": self.icr_rel_halfwidth}

    def length_cap(self) -> tuple[str, float]:
        """(setting name, ps) of the longest production this call may reach."""
        return ("production_ps", self.production_ps) if self.until == "fixed" else \
            ("max_production_ps", self.max_production_ps)


def md_identity(settings: MDSettings) -> dict:
    """`Measurement.oracle` of an MD measurement: oracle_identity("md", settings.identity())."""
    return oracle_identity("md", settings.identity())
