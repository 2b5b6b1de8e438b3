"""Oracles: one protocol, (design, conditions, fidelity settings) -> Measurement.

An oracle is built from its settings (keywords) and called as `oracle(design, conditions, run_dir)`; it
returns a Measurement (status failed with the reason when the physics could not be measured) and may write
files in `run_dir` (the design's own directory, named by its design id). Implementations: MD (sim.protocol,
resumable in its run directory), continuum (sim.continuum), and a user's class named in the study as
`module:Class` or `path/to/file.py:Class`.

Each oracle has an identity (`sim.measurement.oracle_identity`: its kind and the settings that change the
numbers), which every measurement it makes carries in `Measurement.oracle` (`identity_of`, `stamp`): a stored
measurement answers a new request only when the design id and the identity both match. A user oracle's identity
is kind "user", its path and its settings, unless its class defines `identity()` returning its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from porelab.base.errors import PorelabError
from porelab.sim.design import Conditions, Design, design_id
from porelab.sim.md_settings import MDSettings, md_identity
from porelab.sim.measurement import Measurement, oracle_identity


class OracleError(PorelabError, ValueError):
    """An oracle that cannot be loaded or built from the study (bad path, class, or settings)."""


@runtime_checkable
class Oracle(Protocol):
    fidelity: str

    def __call__(self, design: Design, conditions: Conditions, run_dir: Path) -> Measurement: ...


class ContinuumOracle:
    """Steady 1D PNP (sim.continuum); settings go to run_continuum (resolution, pore_d_factor, ...)."""

    fidelity = "continuum"

    def __init__(self, **settings):
        self.settings = settings

    def identity(self) -> dict:
        from porelab.sim.continuum import continuum_identity  # scipy: when a continuum oracle is used

        return continuum_identity(**self.settings)

    def __call__(self, design: Design, conditions: Conditions, run_dir: Path) -> Measurement:
        from porelab.sim.continuum import run_continuum  # scipy: when a continuum oracle is used

        return run_continuum(design, conditions, **self.settings)


class MDOracle:
    """OpenMM run protocol (sim.protocol); settings are MDSettings keywords. Resumes inside run_dir."""

    fidelity = "md"

    def __init__(self, **settings):
        self.settings = MDSettings(**settings)
        self.length_setting = self.settings.length_cap()[0]  # what an extension raises (ps of production per field)

    def identity(self) -> dict:
        """kind md and `MDSettings.identity()`: the settings that change the numbers (not the run length)."""
        return md_identity(self.settings)

    def __call__(self, design: Design, conditions: Conditions, run_dir: Path) -> Measurement:
        from porelab.sim.protocol import run_md  # OpenMM's MD stack: when an MD oracle runs

        return run_md(design, conditions, run_dir, self.settings, progress=False)


def _import_target(path: str):
    target, sep, name = path.rpartition(":")
    if not sep or not target or not name:
        raise OracleError(f"oracle path {path!r}: expected 'module:Class' or 'path/to/file.py:Class'")
    if target.endswith(".py"):
        file = Path(target)
        if not file.is_file():
            raise OracleError(f"oracle path {path!r}: no such file {file}")
        mod_name = f"porelab_user_oracle_{abs(hash(str(file.resolve())))}"
        if mod_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(mod_name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as err:
                del sys.modules[mod_name]
                raise OracleError(f"oracle file {file}: {type(err).__name__}: {err}") from None
        module = sys.modules[mod_name]
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise OracleError(f"oracle module {target!r} cannot be imported: {err}") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise OracleError(f"oracle path {path!r}: {target} has no attribute {name!r}")
    return cls


def make_oracle(kind: str, settings: dict | None = None, path: str | None = None) -> Oracle:
    """Build an oracle from a study's oracle section; raises OracleError."""
    settings = dict(settings or {})
    if kind == "continuum":
        cls = ContinuumOracle
    elif kind == "md":
        cls = MDOracle
    elif kind == "user":
        cls = _import_target(path or "")
    else:
        raise OracleError(f"oracle kind {kind!r} is unknown; choose md, continuum or user")
    try:
        oracle = cls(**settings)
    except Exception as err:
        raise OracleError(f"oracle {getattr(cls, '__name__', cls)}({settings}): {type(err).__name__}: {err}") \
            from None
    if not callable(oracle):
        raise OracleError(f"oracle {cls.__name__} is not callable as oracle(design, conditions, run_dir)")
    return oracle


def identity_of(oracle, kind: str, settings: dict | None = None, path: str | None = None) -> dict:
    """The identity of a built oracle: its own `identity()` when it has one, else kind + settings + path (a user
    oracle, as the study names it), without its `length_setting` (a longer run answers the same question)."""
    own = getattr(oracle, "identity", None)
    if callable(own):
        return own()
    if isinstance(own, dict):
        return own
    length = getattr(oracle, "length_setting", None)
    return oracle_identity(kind, {k: v for k, v in (settings or {}).items() if k != length}, path)


def study_identity(spec) -> dict:
    """The identity of a study's oracle (campaign.study.OracleSpec: kind, settings, path), built to ask it; raises
    OracleError when it cannot be built. The campaign's measurements carry it; told ones must (campaign.interop)."""
    return identity_of(make_oracle(spec.kind, spec.settings, spec.path), spec.kind, spec.settings, spec.path)


@dataclass(frozen=True)
class Rung:
    """One fidelity of a study: its name (the oracle's `fidelity`), the task spec {kind, settings, path}, the
    oracle's identity, and (lower rungs) round-0 share, cap and threshold (campaign.study.RungSpec)."""

    name: str
    spec: dict
    identity: dict
    initial: int = 0
    simulations: int | None = None
    threshold: float = 0.0
    length_setting: str | None = None  # the oracle's settings keyword for its run length (None: not extendable)


def ladder(study) -> list[Rung]:
    """The study's fidelities, cheapest first, its own oracle (the target) last; raises OracleError when one cannot
    be built or two share a fidelity name (a longer MD run is the same fidelity, see surrogate.fidelity)."""
    rungs = []
    for s in [*getattr(study, "fidelities", []), study.oracle]:
        oracle = make_oracle(s.kind, s.settings, s.path)
        name = str(getattr(oracle, "fidelity", s.kind))
        if any(r.name == name for r in rungs):
            raise OracleError(f"fidelities: two oracles of fidelity {name!r}; each rung needs its own fidelity")
        rungs.append(Rung(name, {"kind": s.kind, "settings": s.settings, "path": s.path},
                          identity_of(oracle, s.kind, s.settings, s.path), getattr(s, "initial", 0),
                          getattr(s, "simulations", None), getattr(s, "threshold", 0.0),
                          getattr(oracle, "length_setting", None)))
    return rungs


def stamp(m: Measurement, identity: dict) -> Measurement:
    """`m` carrying the identity of the oracle that was asked; one that named another (e.g. a user oracle returning
    a continuum result) keeps that in provenance["oracle_reported"]."""
    if m.oracle == identity:
        return m
    prov = {**m.provenance, "oracle_reported": m.oracle} if m.oracle else m.provenance
    return m.model_copy(update={"oracle": identity, "provenance": prov})


def extended(spec: dict, to_ps: float, key: str | None) -> dict:
    """An oracle's task spec {kind, settings, path} with its run length setting `key` raised to `to_ps` per field
    (an extension; the oracle resumes in the run directory). `key`: the built oracle's `length_setting` (MD's
    `production_ps`, or `max_production_ps` until decisive; a user oracle's own attribute; `Rung.length_setting`).
    Raises OracleError when it is None: the oracle cannot extend a run."""
    if key is None:
        raise OracleError(f"oracle {spec['kind']} {spec.get('path') or ''} cannot extend a run: it names no "
                          "length_setting")
    return {**spec, "settings": {**spec["settings"], key: to_ps}}


def reaches(m: Measurement, to_ps: float | None) -> bool:
    """Whether a saved measurement answers a task that asks for `to_ps` of production per field (None: a first
    run, any length): it ran that long, or its run-length rule decided before."""
    run = m.run
    return to_ps is None or run is None or run.stopped not in ("cap", "fixed") or run.production_ps >= to_ps - 1e-6


def check_measurement(m, design: Design, conditions: Conditions, fidelity: str) -> Measurement:
    """The oracle's answer as a Measurement; a wrong type, another design or NaN numbers give a failed one."""
    if not isinstance(m, Measurement):
        return Measurement.failed(design, conditions, fidelity,
                                  f"oracle returned {type(m).__name__}, not a Measurement")
    want = design_id(design, conditions)
    if m.design_id != want:
        return Measurement.failed(design, conditions, fidelity,
                                  f"oracle returned a measurement of design {m.design_id}, not {want}")
    if m.status != "ok":
        return m
    if not m.fields:
        return Measurement.failed(design, conditions, m.fidelity, "oracle returned no field results",
                                  m.provenance)
    for f in m.fields:
        nums = [f.current_nA, *f.current_ci_nA]
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in nums):
            return Measurement.failed(design, conditions, m.fidelity,
                                      f"oracle returned a non-finite current at {f.field_V_per_nm:+g} V/nm: "
                                      f"{f.current_nA} nA", m.provenance)
    for r in m.icr:
        if not (math.isfinite(r.icr) and r.icr >= 0):
            return Measurement.failed(design, conditions, m.fidelity,
                                      f"oracle returned ICR {r.icr} at |E|={r.field_abs_V_per_nm:g} V/nm",
                                      m.provenance)
    return m
