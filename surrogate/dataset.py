"""Measurements -> training samples (one per design, conditions and field), and a processed-data cache.

A sample is (design, electrolyte, temperature, signed field, fidelity) with, per species S of SPECIES_NAMES,
y = asinh(J / scale) (NaN where the species is absent), its noise sigma_y, and censoring bounds. J and its interval
are what surrogate.labels reads at that field (the crossing counts for MD, the oracle's own numbers otherwise), the
same a campaign's measured targets use. Arrays are (n,) or (n, S). The cache stores the
featurised graphs and samples beside the hash of the featuriser and target settings and the list of source files;
any mismatch rebuilds it (as PyG's processed data).
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from porelab.base.errors import PorelabError
from porelab.base.files import atomic_write_bytes, atomic_write_text
from porelab.sim.design import Conditions, Design
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement
from porelab.surrogate.graph import (
    FIDELITY_COLUMNS,
    DesignGraph,
    GraphSettings,
    featurise_designs,
    fidelity_onehot,
    global_features,
)
from porelab.surrogate.labels import labelled
from porelab.surrogate.targets import SPECIES_NAMES, FluxTransform

CACHE_VERSION = 4  # 4: MD labels are the crossing counts only; an ICR label is censored either way
DEFAULT_SETTINGS = GraphSettings()
DEFAULT_TRANSFORM = FluxTransform()


@dataclass
class Samples:
    """Samples over unique designs. designs[k] is the design of every sample with design_index == k.

    u (n, G) global features; field (n,) V/nm; group (n,) index of the source measurement (design + conditions +
    fidelity); electrolyte/temperature/fidelity per group. Labels (absent for queries): y, sigma, lo, hi (n, S)
    on the transformed scale; mask (n, S) labelled; censored (n, S).
    """

    designs: list[Design]
    design_index: np.ndarray
    u: np.ndarray
    field: np.ndarray
    group: np.ndarray
    electrolytes: list[dict[str, float]]
    temperatures: list[float]
    fidelities: list[str]
    y: np.ndarray | None = None
    sigma: np.ndarray | None = None
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    mask: np.ndarray | None = None
    censored: np.ndarray | None = None
    settings: GraphSettings = GraphSettings()
    transform: FluxTransform = DEFAULT_TRANSFORM
    # per measured ICR: group, field_abs, icr, censored (only a bound known, "> x" or "< x")
    icr_labels: list[dict] = dc_field(default_factory=list)
    _graphs: list[DesignGraph] | None = None

    def __len__(self) -> int:
        return len(self.field)

    @property
    def n_designs(self) -> int:
        return len(self.designs)

    @property
    def species_present(self) -> np.ndarray:
        """(n, S) bool: the species is in the sample's electrolyte."""
        per_group = np.array([[s in el for s in SPECIES_NAMES] for el in self.electrolytes], bool)
        return per_group.reshape(-1, len(SPECIES_NAMES))[self.group]

    def graphs(self) -> list[DesignGraph]:
        """Featurised graph of each design (built once, then kept)."""
        if self._graphs is None:
            self._graphs = featurise_designs(self.designs, self.settings)
        return self._graphs

    def with_settings(self, settings: GraphSettings) -> Samples:
        """The same samples featurised with other settings."""
        if settings == self.settings:
            return self
        return _replace(self, settings=settings, _graphs=None)

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_measurements(cls, measurements: list[Measurement], settings: GraphSettings = DEFAULT_SETTINGS,
                          transform: FluxTransform = DEFAULT_TRANSFORM) -> Samples:
        """Labelled samples of every field of every successful measurement (failed ones are skipped)."""
        b = _Builder(settings, transform)
        for m in measurements:
            if m.status == "ok" and m.fields:
                b.add(m.design, m.conditions, [f.field_V_per_nm for f in m.fields], m.fidelity, m)
        return b.finish()

    @classmethod
    def from_queries(cls, designs: list[Design], conditions: Conditions | list[Conditions],
                     fidelity: str = "continuum", settings: GraphSettings = DEFAULT_SETTINGS,
                     transform: FluxTransform = DEFAULT_TRANSFORM) -> Samples:
        """Unlabelled samples: every design at every field of its conditions (one Conditions or one each)."""
        conds = conditions if isinstance(conditions, list) else [conditions] * len(designs)
        b = _Builder(settings, transform)
        for d, c in zip(designs, conds, strict=True):
            b.add(d, c, list(c.fields_V_per_nm), fidelity, None)
        return b.finish()

    # --- selection ---------------------------------------------------------------------------------
    def subset_designs(self, keep: np.ndarray | list[int]) -> Samples:
        """Samples of the designs with the given indices (renumbered in that order)."""
        keep = np.asarray(keep, int)
        new_index = np.full(self.n_designs, -1)
        new_index[keep] = np.arange(len(keep))
        return self._subset(np.flatnonzero(new_index[self.design_index] >= 0), keep)

    def subset_rows(self, rows: np.ndarray | list[int]) -> Samples:
        """The samples `rows` (sorted), their designs and groups renumbered in order of first appearance."""
        rows = np.sort(np.asarray(rows, int))
        return self._subset(rows, np.unique(self.design_index[rows]))

    def _subset(self, rows: np.ndarray, keep: np.ndarray) -> Samples:
        new_index = np.full(self.n_designs, -1)
        new_index[keep] = np.arange(len(keep))
        groups, ginv = np.unique(self.group[rows], return_inverse=True)
        gmap = {int(g): k for k, g in enumerate(groups)}
        out = Samples(
            designs=[self.designs[k] for k in keep], design_index=new_index[self.design_index[rows]],
            u=self.u[rows], field=self.field[rows], group=ginv.astype(int).reshape(-1),
            electrolytes=[self.electrolytes[g] for g in groups], temperatures=[self.temperatures[g] for g in groups],
            fidelities=[self.fidelities[g] for g in groups], settings=self.settings, transform=self.transform,
            icr_labels=[{**r, "group": gmap[r["group"]]} for r in self.icr_labels if r["group"] in gmap],
            _graphs=None if self._graphs is None else [self._graphs[k] for k in keep])
        for name in ("y", "sigma", "lo", "hi", "mask", "censored"):
            v = getattr(self, name)
            setattr(out, name, None if v is None else v[rows])
        return out

    @property
    def row_fidelity(self) -> np.ndarray:
        """(n,) the fidelity of each sample."""
        return np.asarray(self.fidelities, dtype=object)[self.group] if len(self) else np.zeros(0, object)

    def at_fidelity(self, fidelity: str) -> Samples:
        """The same questions asked at another fidelity (globals recomputed; labels dropped)."""
        u = self.u.copy()
        u[:, list(FIDELITY_COLUMNS)] = fidelity_onehot(fidelity)
        return _replace(self, u=u, fidelities=[fidelity] * len(self.fidelities), y=None, sigma=None, lo=None,
                        hi=None, mask=None, censored=None, icr_labels=[])

    def split_designs(self, fraction: float, seed: int = 0) -> tuple[Samples, Samples]:
        """(rest, held out): `fraction` of the designs (at least 1 when there are 2 or more) held out whole."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.n_designs)
        n_out = min(max(int(round(fraction * self.n_designs)), 1 if self.n_designs > 1 else 0), self.n_designs - 1)
        return self.subset_designs(np.sort(order[n_out:])), self.subset_designs(np.sort(order[:n_out]))

    def icr_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices (i_on, i_off) of samples at +|E| and -|E| of the same group, and |E| (V/nm), each (p,)."""
        on, off, fa = [], [], []
        by_key = {(int(g), round(float(e), 9)): i for i, (g, e) in enumerate(zip(self.group, self.field, strict=True))}
        for (g, e), i in by_key.items():
            if e > 0 and (g, -e) in by_key:
                on.append(i)
                off.append(by_key[(g, -e)])
                fa.append(e)
        return np.array(on, int), np.array(off, int), np.array(fa, float)


def _replace(s: Samples, **kw) -> Samples:
    d = {k: getattr(s, k) for k in Samples.__dataclass_fields__}
    d.update(kw)
    return Samples(**d)


class _Builder:
    """Accumulates samples, deduplicating designs."""

    def __init__(self, settings: GraphSettings, transform: FluxTransform):
        self.settings, self.transform = settings, transform
        self.designs: list[Design] = []
        self.index: dict[Design, int] = {}
        self.rows: list[tuple] = []
        self.groups: list[tuple] = []
        self.icr: list[dict] = []

    def add(self, design: Design, conditions: Conditions, fields: list[float], fidelity: str,
            m: Measurement | None) -> None:
        k = self.index.setdefault(design, len(self.designs))
        if k == len(self.designs):
            self.designs.append(design)
        g = len(self.groups)
        self.groups.append((dict(conditions.electrolyte), conditions.temperature_K, fidelity))
        lab = labelled(m) if m is not None else None
        for e in fields:
            labels = None
            if lab is not None:
                res = lab.field(e)[0]
                labels = {sp: self.transform.label(r.flux_per_ns, r.flux_ci_per_ns) for sp, r in res.species.items()}
            u = global_features(design, conditions.electrolyte, conditions.temperature_K, e, fidelity)
            self.rows.append((k, u, float(e), g, labels))
        if lab is not None:
            self.icr += [{"group": g, "field_abs": r.field_abs_V_per_nm, "icr": r.icr,
                          "censored": r.icr_censored or r.icr_upper_censored} for r in lab.icr]

    def finish(self) -> Samples:
        n, ns = len(self.rows), len(SPECIES_NAMES)
        has_labels = n > 0 and all(r[4] is not None for r in self.rows)
        s = Samples(
            designs=self.designs, design_index=np.array([r[0] for r in self.rows], int),
            u=np.stack([r[1] for r in self.rows]) if n else np.zeros((0, 0), np.float32),
            field=np.array([r[2] for r in self.rows], float), group=np.array([r[3] for r in self.rows], int),
            electrolytes=[g[0] for g in self.groups], temperatures=[g[1] for g in self.groups],
            fidelities=[g[2] for g in self.groups], settings=self.settings, transform=self.transform,
            icr_labels=self.icr)
        if has_labels:
            arr = {k: np.full((n, ns), np.nan) for k in ("y", "sigma", "lo", "hi")}
            cens = np.zeros((n, ns), bool)
            for i, r in enumerate(self.rows):
                for sp, (y, sd, c, lo, hi) in r[4].items():
                    j = SPECIES_NAMES.index(sp)
                    arr["y"][i, j], arr["sigma"][i, j], arr["lo"][i, j], arr["hi"][i, j], cens[i, j] = y, sd, lo, hi, c
            s.y, s.sigma, s.lo, s.hi = arr["y"], arr["sigma"], arr["lo"], arr["hi"]
            s.mask, s.censored = ~np.isnan(arr["y"]), cens
        return s


# --- measurement directories and the processed cache --------------------------------------------------
def find_measurements(root: str | Path) -> list[Path]:
    """Every measurement.json under root, sorted."""
    return sorted(Path(root).rglob(MEASUREMENT_FILE))


def _sources(root: Path, files: list[Path]) -> dict[str, list[int]]:
    return {str(p.relative_to(root)): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _cache_key(settings: GraphSettings, transform: FluxTransform) -> str:
    return f"{settings.hash()}-{transform.scale_per_ns:.6g}-v{CACHE_VERSION}"


class MeasurementFileError(PorelabError, ValueError):
    """A measurement.json that cannot be read or does not validate; the message names the file."""


def read_measurement(path: Path) -> Measurement:
    """The measurement in `path`; MeasurementFileError (one line, naming the file) when it cannot be read."""
    try:
        return Measurement.load(path)
    except (OSError, UnicodeDecodeError) as err:
        raise MeasurementFileError(f"{path}: unreadable ({getattr(err, 'strerror', None) or err})") from None
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        raise MeasurementFileError(f"{path}: not a measurement ({loc + ': ' if loc else ''}{e['msg']})") from None


def load_dataset(root: str | Path, settings: GraphSettings = DEFAULT_SETTINGS,
                 transform: FluxTransform = DEFAULT_TRANSFORM, cache_dir: str | Path | None = None) -> Samples:
    """Samples of every measurement.json under root, via a processed cache in cache_dir (default root/processed).

    The cache is used when its featuriser hash, target scale and source list (path, size, mtime) all match;
    otherwise it is rebuilt. `load_dataset.last_rebuilt` tells whether the last call rebuilt it.
    """
    import torch  # torch (seconds to import) for the processed cache only: Samples and queries need none

    root = Path(root)
    cache = Path(cache_dir) if cache_dir is not None else root / "processed"
    files = find_measurements(root)
    meta = {"key": _cache_key(settings, transform), "settings": settings.to_dict(),
            "scale_per_ns": transform.scale_per_ns, "sources": _sources(root, files)}
    meta_path, data_path = cache / "meta.json", cache / "processed.pt"
    if meta_path.exists() and data_path.exists():
        try:
            if json.loads(meta_path.read_text()) == meta:
                load_dataset.last_rebuilt = False
                return _from_cache(torch.load(data_path, weights_only=True), settings, transform)
        except (json.JSONDecodeError, RuntimeError, KeyError, OSError, pickle.UnpicklingError):
            pass  # unreadable cache, or one holding more than tensors (weights_only refuses it): rebuild it
    samples = Samples.from_measurements([read_measurement(p) for p in files], settings, transform)
    cache.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(_to_cache(samples), buf)
    atomic_write_bytes(data_path, buf.getvalue())
    atomic_write_text(meta_path, json.dumps(meta, indent=1))  # written last: it marks the cache valid
    load_dataset.last_rebuilt = True
    return samples


load_dataset.last_rebuilt = False


def _to_cache(s: Samples) -> dict:
    import torch  # for the processed cache only (as in load_dataset)

    graphs = s.graphs()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    out = {
        "designs": [d.model_dump_json() for d in s.designs],
        "graphs": [{k: getattr(g, k) for k in ("x", "edge_index", "edge_attr", "layer", "layer_z")}
                   for g in graphs],
        "design_index": t(s.design_index), "u": t(s.u), "field": t(s.field), "group": t(s.group),
        "groups": json.dumps({"electrolytes": s.electrolytes, "temperatures": s.temperatures,
                              "fidelities": s.fidelities, "icr": s.icr_labels}),
    }
    if s.y is not None:
        for k in ("y", "sigma", "lo", "hi", "mask", "censored"):
            out[k] = t(getattr(s, k))
    return out


def _from_cache(c: dict, settings: GraphSettings, transform: FluxTransform) -> Samples:
    g = json.loads(c["groups"])
    s = Samples(designs=[Design.model_validate_json(d) for d in c["designs"]],
                design_index=c["design_index"].numpy(), u=c["u"].numpy(), field=c["field"].numpy(),
                group=c["group"].numpy(), electrolytes=g["electrolytes"], temperatures=g["temperatures"],
                fidelities=g["fidelities"], settings=settings, transform=transform, icr_labels=g["icr"],
                _graphs=[DesignGraph(**d) for d in c["graphs"]])
    if "y" in c:
        for k in ("y", "sigma", "lo", "hi", "mask", "censored"):
            setattr(s, k, c[k].numpy())
    return s
