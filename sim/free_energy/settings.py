"""Umbrella-sampling settings of `porelab free-energy`."""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import model_validator

from porelab.base.settings import Settings
from porelab.sim.design import DesignError

MIN_T_K, MAX_T_K = 250.0, 400.0


class FESettings(Settings):
    """Umbrella-sampling settings. Lengths nm, times ps, step fs, force constants kJ/mol/nm^2, temperatures K.

    The defaults suit a GPU and the seed preset; a CPU run of the tiny preset needs much shorter windows.
    """

    WHAT: ClassVar[str] = "free-energy settings"
    ERROR: ClassVar[type[Exception]] = DesignError

    n_windows: int = 16
    margin_nm: float = 1.0  # windows span the outer layer planes +- margin
    k_z: float | None = None  # None: 3 kT0 / spacing^2
    radius_nm: float | None = None  # cylinder R0; None: the pore's larger semi-axis
    k_r: float = 2000.0
    temperatures_K: tuple[float, ...] | None = None  # None: T0 - delta_T, T0, T0 + delta_T
    delta_T_K: float = 20.0
    equil_ps: float = 50.0  # whole box at T0, once, tagged ion free along z
    window_equil_ps: float = 10.0  # per window before sampling (at T != T0: from that window's T0 end state)
    window_ps: float = 100.0  # sampled per window
    sample_ps: float = 0.1  # interval between samples of the tagged ion
    ramp_ps: float = 1.0  # the first min(ramp_ps, equil_ps) of the box equilibration run at 1 fs (docs/physics.md §4)
    window_ramp_ps: float = 0.1  # at 1 fs after minimising each T0 window's start (a local change)
    timestep_fs: float = 4.0
    friction_per_ps: float = 1.0
    seed: int = 0
    platform: str | None = None  # None: sim.engine.choose_platform (CUDA when present, else CPU)
    cpu_threads: int | None = None
    cutoff_nm: float = 1.0
    bin_nm: float | None = None  # z bin width; None: half the window spacing
    r_bin_nm: float = 0.1
    bulk_nm: float = 0.3  # outer part of the window range, on both sides, that defines G = 0
    max_retries: int = 2  # a window that blows up is redone at half the step, up to this many times

    #: settings that do not change the samples (analysis and execution only)
    ANALYSIS_ONLY: ClassVar[tuple[str, ...]] = ("platform", "cpu_threads", "bin_nm", "r_bin_nm", "bulk_nm",
                                                "max_retries")

    @model_validator(mode="after")
    def _check(self) -> FESettings:
        pos = ("margin_nm", "k_r", "delta_T_K", "equil_ps", "window_equil_ps", "window_ps", "sample_ps",
               "timestep_fs", "friction_per_ps", "cutoff_nm", "r_bin_nm", "bulk_nm")
        for name in pos + ("k_z", "radius_nm", "bin_nm"):
            v = getattr(self, name)
            if v is None and name not in pos:
                continue
            if not (isinstance(v, int | float) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name}={v} must be a positive number")
        if not 2 <= self.n_windows <= 200:
            raise ValueError(f"n_windows={self.n_windows} is outside [2, 200]")
        for name in ("ramp_ps", "window_ramp_ps"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.sample_ps * 1000 < self.timestep_fs:
            raise ValueError(f"sample_ps={self.sample_ps} is shorter than one step")
        if self.temperatures_K is not None:
            self.temperatures_K = tuple(sorted(float(t) for t in self.temperatures_K))
            for t in self.temperatures_K:
                if not MIN_T_K <= t <= MAX_T_K:
                    raise ValueError(f"temperature {t} K is outside [{MIN_T_K}, {MAX_T_K}] K")
            if len(set(self.temperatures_K)) != len(self.temperatures_K):
                raise ValueError(f"temperatures {self.temperatures_K} repeat a value")
        return self

    def temperatures(self, T0: float) -> list[float]:
        """Temperatures to run, K, ascending; T0 is always among them (the other windows start from it)."""
        temps = self.temperatures_K or (T0 - self.delta_T_K, T0, T0 + self.delta_T_K)
        if not any(math.isclose(t, T0) for t in temps):
            raise DesignError(f"temperatures {list(temps)} K must include the working temperature {T0} K")
        for t in temps:
            if not MIN_T_K <= t <= MAX_T_K:
                raise DesignError(f"temperature {t} K is outside [{MIN_T_K}, {MAX_T_K}] K; use a smaller delta_T")
        return sorted(float(t) for t in temps)

    def sampling_state(self) -> dict:
        """The settings the samples depend on (what run.json pins)."""
        d = self.model_dump()
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k not in self.ANALYSIS_ONLY}
