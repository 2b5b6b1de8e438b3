"""Membrane design and the conditions it is exposed to: validated, canonical, hashable.

Units: nm, V/nm, mol/L (M), kelvin, elementary charge e (docs/physics.md §1). `layers` lists the rim group of
each sheet, bottom (lowest z) to top; `janus_layers: N` is shorthand for the seed study's N-layer Janus pore,
N COO- sheets under N NH3+ sheets (docs/physics.md §6).

The design id names the physical question (`design_id`): see `physical_state` for what it covers.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from porelab.base.errors import PorelabError
from porelab.base.yaml_file import read_yaml

#: Species porelab knows: valence (e) and bulk diffusion coefficient (1e-9 m^2/s = nm^2/ns), docs/physics.md §7.
SPECIES: dict[str, dict[str, float]] = {
    "K+": {"valence": 1, "D": 1.96},
    "Na+": {"valence": 1, "D": 1.33},
    "Li+": {"valence": 1, "D": 1.03},
    "Mg2+": {"valence": 2, "D": 0.71},
    "Ca2+": {"valence": 2, "D": 0.79},
    "Cl-": {"valence": -1, "D": 2.03},
    "SO4^2-": {"valence": -2, "D": 1.07},
}
#: Species with sound MD parameters in OpenMM's amber14/tip3p.xml (Joung-Cheatham, Li-Merz).
MD_SPECIES = ("K+", "Na+", "Li+", "Mg2+", "Ca2+", "Cl-")

#: Net charge (e) each rim group carries.
GROUP_CHARGE = {"COO-": -1.0, "NH3+": 1.0, "OH": 0.0, "none": 0.0}

MAX_SHEETS = 16  # the seed study's 8-layer Janus pore
MIN_SPACING_NM = 0.20  # closer than this, stacked sheet atoms overlap (C-C nonbonded contact)
MAX_SPACING_NM = 2.0
MIN_LIGAMENT_NM = 0.4  # sheet left between the pore edge and the periodic cell edge
MIN_PORE_NM = 0.4
MIN_RESERVOIR_NM = 1.0  # electrolyte on each side of the stack
MAX_TOTAL_CONCENTRATION_M = 6.0  # beyond this there is no room left for water (55.5 M) in a small box
MAX_FIELD_V_PER_NM = 10.0
FLOAT_DIGITS = 6


class DesignError(PorelabError, ValueError):
    """An impossible or malformed design/conditions; the message names the field and the limit."""


class Pore(BaseModel):
    """Pore cut through every layer, centred on the cell's xy centre plus the layer's offset."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN slips past < and >
    shape: Literal["circle", "ellipse", "hexagon", "rectangle"] = "ellipse"
    width_nm: float = Field(1.42, description="extent along x, nm")
    height_nm: float = Field(1.26, description="extent along y, nm")

    @model_validator(mode="after")
    def _check(self) -> Pore:
        for name in ("width_nm", "height_nm"):
            v = getattr(self, name)
            if not (v >= MIN_PORE_NM):
                raise ValueError(f"pore.{name}={v} is below the minimum pore size {MIN_PORE_NM} nm")
        if self.shape in ("circle", "hexagon") and not math.isclose(self.width_nm, self.height_nm, rel_tol=1e-6):
            raise ValueError(
                f"pore.shape={self.shape} needs width_nm == height_nm (got {self.width_nm} and {self.height_nm})"
            )
        return self

    def area_nm2(self) -> float:
        """Geometric area of the cut shape, nm^2."""
        a, b = self.width_nm / 2, self.height_nm / 2
        if self.shape in ("circle", "ellipse"):
            return math.pi * a * b
        if self.shape == "hexagon":  # regular, vertex-to-vertex width along x
            return 3 * math.sqrt(3) / 2 * a * a
        return self.width_nm * self.height_nm


class Design(BaseModel):
    """What a membrane is. `layers[i]` is the rim group of sheet i, bottom to top (`janus_layers: N` expands to
    N COO- sheets then N NH3+ sheets)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN slips past < and >
    material: Literal["graphene_oxide", "hbn"] = "graphene_oxide"
    sheet_nm: float = Field(4.0, description="side of the square periodic sheet (snapped to the lattice), nm")
    box_z_nm: float = Field(10.0, description="periodic box length along z, nm")
    layers: tuple[Literal["COO-", "NH3+", "OH", "none"], ...] = ("COO-", "NH3+")
    spacing_nm: float = Field(0.34, description="interlayer distance, nm")
    pore: Pore = Pore()
    groups_per_rim: int = Field(4, description="rim groups attached around the pore of each layer")
    offsets_nm: tuple[tuple[float, float], ...] | None = Field(
        None, description="lateral (dx, dy) shift of each layer, nm; None = aligned"
    )
    bn_charge_e: float = Field(0.3, description="h-BN partial charge +q on B, -q on N (e); ignored for GO")

    @model_validator(mode="before")
    @classmethod
    def _janus(cls, data):
        """`janus_layers: N` -> layers = N x COO- then N x NH3+ (the seed study's N-layer Janus pore)."""
        if not isinstance(data, dict) or "janus_layers" not in data:
            return data
        data = dict(data)
        n = data.pop("janus_layers")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SHEETS // 2:
            raise ValueError(f"janus_layers={n!r} must be an integer in [1, {MAX_SHEETS // 2}] (2N sheets)")
        layers = ("COO-",) * n + ("NH3+",) * n
        if data.get("layers") is not None and tuple(data["layers"]) != layers:
            raise ValueError(f"janus_layers={n} and layers={list(data['layers'])} disagree; give one of them")
        data["layers"] = layers
        return data

    @field_validator("layers", mode="before")
    @classmethod
    def _layers_list(cls, v):
        if isinstance(v, str):
            return (v,)
        return v

    @model_validator(mode="after")
    def _check(self) -> Design:
        n = len(self.layers)
        if not 1 <= n <= MAX_SHEETS:
            raise ValueError(f"layers has {n} entries; a membrane has 1 to {MAX_SHEETS} sheets")
        if not MIN_SPACING_NM <= self.spacing_nm <= MAX_SPACING_NM:
            raise ValueError(
                f"spacing_nm={self.spacing_nm} is outside [{MIN_SPACING_NM}, {MAX_SPACING_NM}] nm "
                f"(below {MIN_SPACING_NM} nm stacked sheet atoms overlap)"
            )
        if self.offsets_nm is not None and len(self.offsets_nm) != n:
            raise ValueError(f"offsets_nm has {len(self.offsets_nm)} entries but there are {n} layers")
        if not 0 <= self.groups_per_rim <= 64:
            raise ValueError(f"groups_per_rim={self.groups_per_rim} is outside [0, 64]")
        if not 0.0 <= self.bn_charge_e <= 1.5:
            raise ValueError(f"bn_charge_e={self.bn_charge_e} is outside [0, 1.5] e")
        if self.sheet_nm > 20:
            raise ValueError(f"sheet_nm={self.sheet_nm} exceeds 20 nm")
        max_shift = max((max(abs(dx), abs(dy)) for dx, dy in self.offsets_nm), default=0.0) if self.offsets_nm else 0
        widest = max(self.pore.width_nm, self.pore.height_nm) + 2 * max_shift
        if widest + 2 * MIN_LIGAMENT_NM > self.sheet_nm:
            shifted = f" with offsets_nm up to {max_shift:g} nm" if max_shift else ""
            raise ValueError(
                f"pore ({widest:.2f} nm wide{shifted}) is too wide for sheet_nm={self.sheet_nm}: "
                f"it must leave {MIN_LIGAMENT_NM} nm of sheet on each side"
            )
        need = self.stack_thickness_nm() + 2 * MIN_RESERVOIR_NM
        if self.box_z_nm < need:
            raise ValueError(
                f"box_z_nm={self.box_z_nm} is too short: {n} layers at {self.spacing_nm} nm spacing need "
                f"at least {need:.2f} nm ({MIN_RESERVOIR_NM} nm of electrolyte on each side)"
            )
        if self.box_z_nm > 40:
            raise ValueError(f"box_z_nm={self.box_z_nm} exceeds 40 nm")
        if any(g in ("COO-", "NH3+", "OH") for g in self.layers) and self.groups_per_rim == 0:
            raise ValueError("layers name rim groups but groups_per_rim=0")
        return self

    # --- geometry shared by the builder and the continuum model -------------------------------
    def stack_thickness_nm(self) -> float:
        """Distance between the bottom and top layer planes, nm."""
        return (len(self.layers) - 1) * self.spacing_nm

    def layer_z_nm(self) -> list[float]:
        """z of each layer plane, bottom to top, nm; the stack is centred at box_z/2."""
        zc = self.box_z_nm / 2
        n = len(self.layers)
        return [zc + (k - (n - 1) / 2) * self.spacing_nm for k in range(n)]

    def layer_offsets_nm(self) -> list[tuple[float, float]]:
        return list(self.offsets_nm) if self.offsets_nm else [(0.0, 0.0)] * len(self.layers)

    def layer_charge_e(self) -> list[float]:
        """Net fixed charge of each layer's rim groups, e."""
        return [GROUP_CHARGE[g] * (self.groups_per_rim if g != "none" else 0) for g in self.layers]

    def mirrored(self) -> Design:
        """The same membrane reflected through its mid-plane (z -> -z): layer order and offsets reversed.

        The builder's layers do not depend on their index and their rim groups are symmetric under z -> -z, so
        the mirrored design's atoms are exactly the reflected atoms of this one."""
        offs = tuple(reversed(self.offsets_nm)) if self.offsets_nm else None
        return self.model_copy(update={"layers": tuple(reversed(self.layers)), "offsets_nm": offs})

    def is_symmetric(self) -> bool:
        """Equal to its own mirror image: then I(-E) = -I(+E) and ICR = 1 exactly (docs/physics.md §3)."""
        return _physical_design(self) == _physical_design(self.mirrored())


class Conditions(BaseModel):
    """What the membrane is exposed to. Fields are signed, along z; +E points from layer 0 to the top layer."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN slips past < and >
    electrolyte: dict[str, float] = Field(default_factory=lambda: {"K+": 1.0, "Cl-": 1.0}, description="M")
    fields_V_per_nm: tuple[float, ...] = (2.0, -2.0)
    temperature_K: float = 300.0

    @field_validator("fields_V_per_nm", mode="before")
    @classmethod
    def _fields_list(cls, v):
        if isinstance(v, int | float):
            return (v,)
        return v

    @model_validator(mode="after")
    def _check(self) -> Conditions:
        if not self.electrolyte:
            raise ValueError("electrolyte is empty; give species -> molar concentration, e.g. {K+: 1.0, Cl-: 1.0}")
        for sp, c in self.electrolyte.items():
            if sp not in SPECIES:
                raise ValueError(f"electrolyte species {sp!r} is unknown; known: {', '.join(SPECIES)}")
            if not (c > 0 and math.isfinite(c)):
                raise ValueError(f"electrolyte[{sp!r}]={c} M must be a positive number")
        total = sum(self.electrolyte.values())
        if total > MAX_TOTAL_CONCENTRATION_M:
            raise ValueError(
                f"electrolyte total {total:.2f} M exceeds {MAX_TOTAL_CONCENTRATION_M} M: no room left for water"
            )
        net = sum(SPECIES[s]["valence"] * c for s, c in self.electrolyte.items())
        if abs(net) > 1e-6 * total:
            raise ValueError(f"electrolyte is not electroneutral: sum(z*c) = {net:+.4g} M (must be 0)")
        if not self.fields_V_per_nm:
            raise ValueError("fields_V_per_nm is empty")
        for e in self.fields_V_per_nm:
            if not (math.isfinite(e) and abs(e) <= MAX_FIELD_V_PER_NM):
                raise ValueError(f"fields_V_per_nm: {e} V/nm is outside [-{MAX_FIELD_V_PER_NM}, "
                                 f"{MAX_FIELD_V_PER_NM}] V/nm")
        if not 250.0 <= self.temperature_K <= 400.0:
            raise ValueError(f"temperature_K={self.temperature_K} is outside [250, 400] K")
        return self

    def with_fields(self, fields: list[float] | tuple[float, ...]) -> Conditions:
        """These conditions at other fields; DesignError names a bad field."""
        return make_conditions({"electrolyte": self.electrolyte, "fields_V_per_nm": tuple(fields),
                                "temperature_K": self.temperature_K})

    def with_both_signs(self) -> Conditions:
        """These conditions at +E and -E for each |E| of theirs (sorted by |E|, +E first)."""
        signed = {v for x in self.fields_V_per_nm for v in (abs(x), -abs(x))}
        return self.with_fields(sorted(signed, key=lambda v: (abs(v), -v)))


# --- presets -------------------------------------------------------------------------------------
PRESETS: dict[str, dict] = {
    # ≈2.5 nm sheets in a ≈5 nm box: minutes on a CPU (docs/physics.md §8)
    "tiny": {"sheet_nm": 2.5, "box_z_nm": 5.0,
             "pore": {"shape": "ellipse", "width_nm": 1.42, "height_nm": 1.26},
             "groups_per_rim": 4, "spacing_nm": 0.34},
    # the seed study: 4 x 4 nm^2, 1.42 x 1.26 nm^2 pore, 4 groups per rim, 0.34 nm spacing, 1.0 M KCl
    "seed": {"sheet_nm": 4.0, "box_z_nm": 10.0,
             "pore": {"shape": "ellipse", "width_nm": 1.42, "height_nm": 1.26},
             "groups_per_rim": 4, "spacing_nm": 0.34},
}


def _round(x):
    """Floats rounded to FLOAT_DIGITS significant digits (-0.0 as 0.0), through dicts, lists and tuples (as lists)
    of JSON-mode dumps (plain types: `type` checks, the hot path of every design id)."""
    t = type(x)
    if t is float:
        return float(f"{x:.{FLOAT_DIGITS}g}") + 0.0
    if t is dict:
        return {k: _round(v) for k, v in x.items()}
    if t is list or t is tuple:
        return [_round(v) for v in x]
    return x


def _physical_design(design: Design) -> dict:
    """The design's fields that change an atom, rounded: without groups_per_rim when no sheet has a rim group,
    without bn_charge_e for graphene oxide, with aligned offsets (all zero) as None."""
    d = _round(design.model_dump(mode="json"))
    if all(g == "none" for g in design.layers):
        d.pop("groups_per_rim")
    if design.material != "hbn":
        d.pop("bn_charge_e")
    if design.offsets_nm is not None and not any(x or y for x, y in design.offsets_nm):
        d["offsets_nm"] = None
    return d


def _physical_conditions(conditions: Conditions, sign: float = 1.0) -> dict:
    """The conditions' part of `physical_state`, at sign * each field (sign -1: the mirror image's fields)."""
    c = _round(conditions.model_dump(mode="json"))
    c["fields_V_per_nm"] = sorted(_round(sign * e) for e in conditions.fields_V_per_nm)
    return c


def physical_state(design: Design, conditions: Conditions) -> dict:
    """The physical question as a JSON-able dict, in the orientation given.

    Covers every design field that changes an atom (`_physical_design`: material, sheet and box size, layers,
    spacing, pore, groups per rim when any sheet has groups, offsets, the h-BN charge for h-BN) and the
    conditions: electrolyte (species -> M), temperature, and the set of signed fields (sorted). Floats are
    rounded to 6 significant digits. It leaves out fields that change no atom and the order fields were given in.
    """
    return {"design": _physical_design(design), "conditions": _physical_conditions(conditions)}


def _mirror_flip(design: Design, conditions: Conditions) -> tuple[bool, dict, dict]:
    """Whether the mirror image at the opposite fields is the canonical orientation, and the physical design dicts
    of the design and of its mirror (layers and offsets reversed: what `_physical_design(design.mirrored())` is).

    The orientation whose physical design sorts first (as canonical JSON) wins; for a mirror-symmetric design, the
    one with the more positive fields."""
    a = _physical_design(design)
    b = {**a, "layers": a["layers"][::-1]}
    if b.get("offsets_nm") is not None:
        b["offsets_nm"] = b["offsets_nm"][::-1]
    # a and b differ only in layers, then offsets_nm (keys sorted: "layers" < "offsets_nm"), so their canonical
    # JSON strings compare as the JSON of [layers, offsets_nm] does
    ja, jb = (json.dumps([x["layers"], x.get("offsets_nm")], separators=(",", ":")) for x in (a, b))
    if ja != jb:
        return jb < ja, a, b
    fields = sorted(conditions.fields_V_per_nm, reverse=True)
    return sorted((-e for e in fields), reverse=True) > fields, a, b


def mirror_question(design: Design, conditions: Conditions) -> tuple[Design, Conditions]:
    """The mirror image of the question: the design reflected (`Design.mirrored`) at the opposite fields, the same
    simulation (z -> -z, docs/physics.md §1)."""
    return design.mirrored(), conditions.with_fields([-e for e in conditions.fields_V_per_nm])


def canonical(design: Design, conditions: Conditions) -> tuple[Design, Conditions, bool]:
    """The canonical orientation of the question: (design, conditions) or its mirror image at the opposite
    fields (`mirror_question`). Returns (design, conditions, mirrored); see `_mirror_flip`."""
    if _mirror_flip(design, conditions)[0]:
        return *mirror_question(design, conditions), True
    return design, conditions, False


def canonical_json(design: Design, conditions: Conditions) -> str:
    """Canonical JSON of the physical question in its canonical orientation (`physical_state` of `canonical`,
    computed without building the mirror image's objects)."""
    flip, a, b = _mirror_flip(design, conditions)
    state = {"design": b if flip else a, "conditions": _physical_conditions(conditions, -1.0 if flip else 1.0)}
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def design_id(design: Design, conditions: Conditions) -> str:
    """Stable 16-hex-digit id of the physical question: the same for inert-field variants of a design and for its
    mirror image at the opposite fields (see `physical_state` and `canonical`)."""
    return hashlib.sha256(canonical_json(design, conditions).encode()).hexdigest()[:16]


def _error_text(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def make_design(spec: dict | None = None, preset: str | None = None) -> Design:
    """A Design from a plain dict, on top of a preset's values; raises DesignError."""
    spec = dict(spec or {})
    base: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise DesignError(f"preset {preset!r} is unknown; known: {', '.join(PRESETS)}")
        base = {k: dict(v) if isinstance(v, dict) else v for k, v in PRESETS[preset].items()}  # a fresh pore
    if isinstance(spec.get("pore"), dict) and isinstance(base.get("pore"), dict):
        spec["pore"] = {**base["pore"], **spec["pore"]}
    try:
        return Design(**{**base, **spec})
    except ValidationError as err:
        raise DesignError(f"design: {_error_text(err)}") from None
    except TypeError as err:
        raise DesignError(f"design: {err}") from None


def make_conditions(spec: dict | None = None) -> Conditions:
    try:
        return Conditions(**(spec or {}))
    except ValidationError as err:
        raise DesignError(f"conditions: {_error_text(err)}") from None
    except TypeError as err:
        raise DesignError(f"conditions: {err}") from None


def load_design_file(path: str | Path, preset: str | None = None) -> tuple[Design, Conditions]:
    """Read a design YAML: top-level keys `preset` (optional), `design` and `conditions`.

    `preset` overrides the file's preset.
    """
    doc = read_yaml(path, DesignError, "design YAML")
    if not isinstance(doc, dict):
        raise DesignError(f"{path}: expected a mapping with keys preset/design/conditions")
    unknown = set(doc) - {"preset", "design", "conditions"}
    if unknown:
        raise DesignError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: preset, design, conditions")
    for key in ("design", "conditions"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise DesignError(f"{path}: '{key}' must be a mapping")
    return make_design(doc.get("design"), preset or doc.get("preset")), make_conditions(doc.get("conditions"))


def dump_design_file(design: Design, conditions: Conditions, path: str | Path) -> None:
    doc = {"design": design.model_dump(mode="json"), "conditions": conditions.model_dump(mode="json")}
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))
