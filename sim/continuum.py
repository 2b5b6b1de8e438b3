"""Continuum twin of the MD measurement: steady 1D Poisson–Nernst–Planck along the pore axis (docs/physics.md §7).

    J_i = -D_i(z) A(z) [c_i' + z_i c_i psi'],  J_i' = 0,  (A psi')' = -4 pi l_B A (sum_i z_i c_i + rho_fixed)

psi = e phi / kT, l_B = e^2 / (4 pi eps0 eps_r kT). Units: nm, ns, e; concentrations inside in nm^-3
(1 M = 0.6022 nm^-3), D in nm^2/ns (= 1e-9 m^2/s), fluxes in ions/ns, positive along +z.

Model of a design (documented choices; each is a keyword of `design_column`):
- Domain z in [0, box_z_nm], the MD periodic box; the layers sit at Design.layer_z_nm() (stack centred).
  Both ends are bulk reservoirs: concentrations = the electrolyte, phi(0) = 0 and phi(box_z) = -E * box_z.
  So the applied voltage is V = E * Lz as in the periodic MD box, and a positive field (along +z, from
  layer 0 to the top layer) is a potential falling along +z that pushes cations toward +z.
- Pore: A = Pore.area_nm2(), the geometric area of the cut shape (no reduction for the rim groups'
  footprint or the wall's van der Waals radius: the D factor below lumps the hindrance), the same in
  each layer and in the gaps between layers. Lateral offsets and h-BN partial charges (net neutral) are
  not represented.
- Each layer is a slab of thickness `layer_thickness_nm` = 0.34 nm (graphene's van der Waals thickness)
  centred on its plane; its rim charge Design.layer_charge_e() is spread uniformly over that slab of the
  pore, rho = Q / (A t). Overlapping slabs (spacing < t) add.
- Inside the pore (bottom face of layer 0 to top face of the last layer) every D_i is multiplied by
  `pore_d_factor` = 0.5, a round value within what MD gives for ions in ~1 nm pores.
- Access regions on both sides: A(s) = pi (a + 4 s / pi)^2 at distance s from the pore mouth, a the radius
  of the circle of area A_pore, until it reaches the cell area sheet_nm^2 (after s = pi/4 (R_cell - a),
  ~2 pore radii); this profile gives exactly Hall's access resistance 1 / (4 sigma a) of an unbounded
  reservoir. Then the reservoir at the cell area.
- eps_r: water at the temperature (Malmberg–Maryott fit, 77.6 at 300 K), everywhere.

Numerics: vertex-centred finite volumes, Scharfetter–Gummel fluxes, unknowns (psi, ln c_i) per node,
damped Newton with a banded LU (scipy.linalg.solve_banded), continuation in fixed charge (0 -> 1) and in
voltage (adaptive steps, secant predictor). Numbers come from the finer of two nested grids (N and 2N
nodes); their numerical error is 3 |X(N) - X(2N)| (Roache's grid convergence index with safety factor 3 and
a conservative order 1; at order 2 it would be |X(N) - X(2N)|, which the pre-asymptotic convergence seen at
~1 V/nm exceeded by up to 1.7x) plus a solver-tolerance floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy
from scipy.linalg import solve_banded

import porelab
from porelab.base.errors import PorelabError
from porelab.sim.design import SPECIES, Conditions, Design, design_id
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement, SpeciesResult, oracle_identity
from porelab.sim.observables import icr_results

E_CHARGE = 1.602176634e-19  # C
EPS0 = 8.8541878128e-12  # F/m
K_B = 1.380649e-23  # J/K
M_TO_PER_NM3 = 0.602214076  # 1 mol/L in nm^-3

LAYER_THICKNESS_NM = 0.34
PORE_D_FACTOR = 0.5
GCI_FACTOR = 3.0  # Roache's two-grid convergence index, safety factor 3, order 1: err = 3 |X(N) - X(2N)|
GRID_NM = {"pore": 0.02, "access": 0.03, "reservoir": 0.08}  # node spacing at resolution 1


class ContinuumError(PorelabError, RuntimeError):
    """The PNP solver did not converge; the message says where (voltage or fixed-charge scale) and why."""


class _NoConvergence(Exception):
    pass


def thermal_voltage_V(temperature_K: float) -> float:
    """kT/e, V."""
    return K_B * temperature_K / E_CHARGE


def water_eps_r(temperature_K: float) -> float:
    """Static relative permittivity of water (Malmberg & Maryott 1956 fit, 0-100 C)."""
    t = temperature_K - 273.15
    return 87.740 - 0.40008 * t + 9.398e-4 * t**2 - 1.410e-6 * t**3


def bjerrum_nm(temperature_K: float, eps_r: float | None = None) -> float:
    """Bjerrum length e^2 / (4 pi eps0 eps_r kT), nm."""
    eps_r = water_eps_r(temperature_K) if eps_r is None else eps_r
    return E_CHARGE**2 / (4 * math.pi * EPS0 * eps_r * K_B * temperature_K) * 1e9


# --- geometry --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A discretised 1D channel: N+1 nodes, node 0 and node N are the bulk reservoirs (Dirichlet).

    z_nm (N+1,) node positions, nm; area_edge_nm2 (N,) cross-section between nodes k and k+1, nm^2;
    volume_nm3 (N+1,) control-volume volumes, nm^3; fixed_charge_e (N+1,) fixed charge in each control
    volume, e; d_factor_edge (N,) multiplier of every D between nodes k and k+1.
    """

    z_nm: np.ndarray
    area_edge_nm2: np.ndarray
    volume_nm3: np.ndarray
    fixed_charge_e: np.ndarray
    d_factor_edge: np.ndarray

    @property
    def n_nodes(self) -> int:
        return len(self.z_nm)

    def resistance_profile(self) -> np.ndarray:
        """Cumulative ohmic resistance fraction at each node, 0 at z[0] to 1 at z[N], shape (N+1,)."""
        r = np.diff(self.z_nm) / (self.area_edge_nm2 * self.d_factor_edge)
        return np.concatenate([[0.0], np.cumsum(r)]) / r.sum()


def column_from_profiles(z_nm, area_nm2, rho_fixed_e_per_nm3=None, d_factor=None) -> Column:
    """A Column from values at the nodes (all shape (N+1,)): area nm^2, fixed charge density e/nm^3, D factor.

    Edge values are node means; a control volume spans half of each neighbouring edge.
    """
    z = np.asarray(z_nm, float)
    a = np.broadcast_to(np.asarray(area_nm2, float), z.shape)
    rho = np.zeros_like(z) if rho_fixed_e_per_nm3 is None else np.broadcast_to(rho_fixed_e_per_nm3, z.shape)
    f = np.ones_like(z) if d_factor is None else np.broadcast_to(np.asarray(d_factor, float), z.shape)
    if np.any(np.diff(z) <= 0) or np.any(a <= 0) or np.any(f <= 0):
        raise ValueError("z must increase strictly; area and D factor must be positive")
    h = np.diff(z)
    half = np.zeros_like(z)
    half[:-1] += h / 2
    half[1:] += h / 2
    vol = a * half
    return Column(z, (a[1:] + a[:-1]) / 2, vol, rho * vol, (f[1:] + f[:-1]) / 2)


def _overlap(lo: np.ndarray, hi: np.ndarray, a: float, b: float) -> np.ndarray:
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)


def design_column(design: Design, resolution: float = 1.0, layer_thickness_nm: float = LAYER_THICKNESS_NM,
                  pore_d_factor: float = PORE_D_FACTOR) -> Column:
    """The Column of a design (see the module docstring for the model); node spacing GRID_NM / resolution."""
    t = layer_thickness_nm
    lz = design.box_z_nm
    zl = np.array(design.layer_z_nm())
    a_pore = design.pore.area_nm2()
    a_cell = design.sheet_nm**2
    r_pore = math.sqrt(a_pore / math.pi)
    bot, top = zl[0] - t / 2, zl[-1] + t / 2
    l_acc = min(math.pi / 4 * (math.sqrt(a_cell / math.pi) - r_pore), bot, lz - top)

    # breakpoints and the grid spacing of each segment between them
    edges = sorted({0.0, bot - l_acc, bot, top, top + l_acc, lz, *(zl - t / 2), *(zl + t / 2)})
    nodes = [np.array([0.0])]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi - lo < 1e-9:
            continue
        mid = (lo + hi) / 2
        kind = "pore" if bot <= mid <= top else "access" if bot - l_acc <= mid <= top + l_acc else "reservoir"
        n = max(1, round(math.ceil((hi - lo) / GRID_NM[kind] - 1e-9) * resolution))  # nested when doubled
        nodes.append(np.linspace(lo, hi, n + 1)[1:])
    z = np.concatenate(nodes)

    def area(zz: np.ndarray) -> np.ndarray:
        s = np.maximum(bot - zz, zz - top)  # distance outside the pore, <= 0 inside
        hall = math.pi * (r_pore + 4 * np.clip(s, 0, None) / math.pi) ** 2
        return np.where(s <= 0, a_pore, np.minimum(a_cell, hall))

    zm = (z[1:] + z[:-1]) / 2
    # control volumes [lo_k, hi_k] around each node; volume = integral of A, Simpson's rule on each half
    lo = np.concatenate([[z[0]], zm])
    hi = np.concatenate([zm, [z[-1]]])
    vol = sum((b - a) * (area(a) + 4 * area((a + b) / 2) + area(b)) / 6 for a, b in ((lo, z), (z, hi)))
    q = np.zeros_like(z)
    for qe, zc in zip(design.layer_charge_e(), zl, strict=True):
        q += qe * _overlap(lo, hi, zc - t / 2, zc + t / 2) / t
    f = np.where((zm > bot) & (zm < top), pore_d_factor, 1.0)
    return Column(z, area(zm), vol, q, f)


# --- the solver ------------------------------------------------------------------------------------
def _bernoulli(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B(x) = x / (e^x - 1) and B'(x), elementwise."""
    small = np.abs(x) < 1e-5
    xs = np.where(small, 1.0, x)
    with np.errstate(over="ignore"):
        b = xs / np.expm1(xs)
    b = np.where(small, 1 - x / 2 + x * x / 12, b)
    db = np.where(small, -0.5 + x / 6, b * (1 - b - xs) / xs)
    return b, db


@dataclass
class Solution:
    """A converged state. psi (N+1,) in kT/e; conc_per_nm3 (S, N+1); flux_per_ns (S, N) on every edge."""

    bias_V: float
    psi: np.ndarray
    conc_per_nm3: np.ndarray
    flux_per_ns: np.ndarray
    valence: np.ndarray

    def flux(self) -> np.ndarray:
        """Flux of each species, ions/ns, shape (S,): the mean over edges (constant to solver tolerance)."""
        return self.flux_per_ns.mean(axis=1)

    def current_nA(self) -> float:
        return float(self.valence @ self.flux()) * E_PER_NS_TO_NA


class PNPSolver:
    """Steady PNP on a Column for species with valences (S,), D (S,) nm^2/ns and bulk concentrations (S,) M.

    bias_V = phi(z[0]) - phi(z[N]) = E * L; a positive bias drives cations toward +z.
    """

    def __init__(self, column: Column, valence, d_nm2_per_ns, bulk_M, temperature_K: float = 300.0,
                 eps_r: float | None = None, tol: float = 1e-9, max_iter: int = 25, max_halvings: int = 12,
                 max_step_kT: float = 5.0):
        self.col = column
        self.z = np.asarray(valence, float)
        self.d = np.asarray(d_nm2_per_ns, float)
        self.bulk = np.asarray(bulk_M, float) * M_TO_PER_NM3
        if abs(self.z @ self.bulk) > 1e-9 * self.bulk.sum():
            raise ValueError("bulk electrolyte is not electroneutral")
        self.kt = thermal_voltage_V(temperature_K)
        self.four_pi_lb = 4 * math.pi * bjerrum_nm(temperature_K, eps_r)
        self.tol, self.max_iter, self.max_halvings, self.max_step = tol, max_iter, max_halvings, max_step_kT
        col = column
        h = np.diff(col.z_nm)
        self.g = self.d[:, None] * (col.area_edge_nm2 * col.d_factor_edge / h)[None, :]  # (S, N) nm^3/ns
        self.a_h = col.area_edge_nm2 / h  # (N,) nm
        self.shape_s = col.resistance_profile()
        self.nv = len(self.z) + 1
        self.n_unknown = (col.n_nodes - 2) * self.nv
        self.bw = 2 * self.nv - 1
        self.newton_iterations = 0
        self._pattern()

    # state U: (N+1, S+1) with U[:, 0] = psi and U[:, 1:] = ln c
    def _boundary(self, u: np.ndarray, bias_V: float) -> np.ndarray:
        u = u.copy()
        u[0, 0], u[-1, 0] = 0.0, -bias_V / self.kt
        u[0, 1:] = u[-1, 1:] = np.log(self.bulk)
        return u

    def _fluxes(self, u: np.ndarray):
        """c (S, N+1); B(x), B'(x), B(-x) and the SG flux J (S, N) on each edge, x = z_i (psi_k+1 - psi_k)."""
        psi, c = u[:, 0], np.exp(u[:, 1:]).T
        x = self.z[:, None] * np.diff(psi)[None, :]
        b, db = _bernoulli(x)
        bm = b + x  # B(-x)
        return c, b, db, bm, self.g * (b * c[:, :-1] - bm * c[:, 1:])

    def _jacobian_values(self, c, b, db, bm) -> list[np.ndarray]:
        """Jacobian entries in _pattern's order: Poisson edges, then per species charge and flux terms."""
        out = [self.a_h, -self.a_h, self.a_h, -self.a_h]
        for i in range(len(self.z)):
            dpsi1 = self.g[i] * self.z[i] * (db[i] * c[i, :-1] - (1 + db[i]) * c[i, 1:])  # dJ_e / dpsi_e+1
            dw0, dw1 = self.g[i] * b[i] * c[i, :-1], -self.g[i] * bm[i] * c[i, 1:]  # dJ_e / d ln c_e, _e+1
            out.append(self.four_pi_lb * self.col.volume_nm3 * self.z[i] * c[i])
            for dv in (-dpsi1, dpsi1, dw0, dw1):  # J_e enters node e+1 with + and node e with -
                out += [dv, -dv]
        return out

    def _pattern(self) -> None:
        """Row/column of every Jacobian entry (same order as _jacobian_values), as banded-storage indices."""
        nn, nv = self.col.n_nodes, self.nv
        e, k = np.arange(nn - 1), np.arange(nn)
        ent = [(e, 0, e + 1, 0), (e, 0, e, 0), (e + 1, 0, e, 0), (e + 1, 0, e + 1, 0)]
        for v in range(1, nv):
            ent.append((k, 0, k, v))
            for cnode, cvar in ((e, 0), (e + 1, 0), (e, v), (e + 1, v)):
                ent += [(e + 1, v, cnode, cvar), (e, v, cnode, cvar)]
        rn, rv, cn, cv = (np.concatenate([np.broadcast_to(t[m], t[0].shape) for t in ent]) for m in range(4))
        self._keep = (rn > 0) & (rn < nn - 1) & (cn > 0) & (cn < nn - 1)
        self._rows = (rn[self._keep] - 1) * nv + rv[self._keep]
        cols = (cn[self._keep] - 1) * nv + cv[self._keep]
        self._band_index = (self.bw + self._rows - cols) * self.n_unknown + cols

    def _assemble(self, u: np.ndarray, lam: float):
        """Residual (n,) and banded Jacobian (2 bw + 1, n) on interior nodes, rows scaled to unit L1 norm."""
        c, b, db, bm, j = self._fluxes(u)
        res = np.zeros((self.col.n_nodes, self.nv))
        pe = self.a_h * np.diff(u[:, 0])
        res[:, 0] = self.four_pi_lb * (self.col.volume_nm3 * (self.z @ c) + lam * self.col.fixed_charge_e)
        res[:-1, 0] += pe
        res[1:, 0] -= pe
        res[1:, 1:] += j.T
        res[:-1, 1:] -= j.T
        n = self.n_unknown
        val = np.concatenate(self._jacobian_values(c, b, db, bm))[self._keep]
        scale = np.bincount(self._rows, np.abs(val), minlength=n)
        scale[scale == 0] = 1.0
        ab = np.bincount(self._band_index, val / scale[self._rows], minlength=(2 * self.bw + 1) * n)
        return res[1:-1].ravel() / scale, ab.reshape(2 * self.bw + 1, n)

    def _newton(self, u0: np.ndarray, bias_V: float, lam: float) -> np.ndarray:
        """Damped Newton from u0 at a bias (V) and fixed-charge scale lam; raises _NoConvergence."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._newton_loop(self._boundary(u0, bias_V), lam)

    def _newton_loop(self, u: np.ndarray, lam: float) -> np.ndarray:
        step = math.inf
        for _ in range(self.max_iter):
            self.newton_iterations += 1
            f, ab = self._assemble(u, lam)
            if not np.all(np.isfinite(f)):
                raise _NoConvergence("non-finite residual")
            try:
                du = solve_banded((self.bw, self.bw), ab, -f, check_finite=False)
            except (np.linalg.LinAlgError, ValueError) as err:
                raise _NoConvergence(f"singular Jacobian ({err})") from None
            step = np.max(np.abs(du)) if du.size else 0.0
            if not np.isfinite(step):
                raise _NoConvergence("non-finite Newton step")
            if step > self.max_step:
                du *= self.max_step / step
            u[1:-1] += du.reshape(-1, self.nv)
            if step < self.tol:
                return u
        raise _NoConvergence(f"Newton did not converge in {self.max_iter} iterations (last step {step:.2e})")

    def solution(self, u: np.ndarray, bias_V: float) -> Solution:
        c, *_, j = self._fluxes(u)
        return Solution(bias_V, u[:, 0].copy(), c, j, self.z)

    def equilibrium(self) -> np.ndarray:
        """State at zero bias and full fixed charge, by continuation in the fixed charge 0 -> 1."""
        u = self._boundary(np.zeros((self.col.n_nodes, self.nv)), 0.0)
        return self._walk(u, "charge", 0.0, 1.0)[0]

    def _walk(self, u: np.ndarray, name: str, p0: float, p1: float, prev=None):
        """Continuation of state u in p = bias (V, at full charge) or fixed-charge scale (at zero bias).

        Adaptive steps: halved on failure, doubled after an easy Newton solve. prev = (state, p) of an
        earlier point for a secant predictor. Returns (state at p1, prev).
        """
        p, step, fails = p0, p1 - p0, 0
        while p != p1:
            target = p1 if abs(p1 - p) <= abs(step) * (1 + 1e-12) else p + step
            guess = u.copy()
            if prev is not None and prev[1] != p and abs(target - p) <= 4 * abs(p - prev[1]):
                guess += (u - prev[0]) * (target - p) / (p - prev[1])  # secant
            elif name == "bias":
                guess[:, 0] -= (target - p) / self.kt * self.shape_s  # ohmic drop
            n0 = self.newton_iterations
            try:
                un = self._newton(guess, target, 1.0) if name == "bias" else self._newton(guess, 0.0, target)
            except _NoConvergence as err:
                fails += 1
                if fails > self.max_halvings:
                    where = f"bias {p:.4g} -> {target:.4g} V" if name == "bias" else f"fixed charge x{p:.3g}"
                    raise ContinuumError(f"PNP solver failed at {where} after {self.max_halvings} step "
                                         f"halvings: {err}") from None
                step /= 2
                continue
            prev, u, p, fails = (u, p), un, target, 0
            if self.newton_iterations - n0 <= 5:
                step *= 2
        return u, prev

    def sweep(self, biases_V, u_eq: np.ndarray | None = None) -> dict[float, np.ndarray]:
        """States at each bias (V), continued outward from equilibrium along each sign; {bias: U}."""
        u_eq = self.equilibrium() if u_eq is None else u_eq
        out = {}
        for branch in (sorted(b for b in set(biases_V) if b >= 0), sorted((b for b in set(biases_V) if b < 0),
                                                                         reverse=True)):
            u, p, prev = u_eq, 0.0, None
            for b in branch:
                if b != p:
                    u, prev = self._walk(u, "bias", p, b, prev)
                    p = b
                out[b] = u
        return out

    def solve(self, bias_V: float, guess: np.ndarray | None = None) -> np.ndarray:
        """State at one bias: Newton from `guess` (a state on this column) if given, else continuation."""
        if guess is not None:
            try:
                return self._newton(guess, bias_V, 1.0)
            except _NoConvergence:
                pass
        return self.sweep([bias_V])[bias_V]

    def interpolate(self, u: np.ndarray, z_from: np.ndarray) -> np.ndarray:
        """A state given on nodes z_from, linearly interpolated (psi, ln c) onto this column's nodes."""
        return np.stack([np.interp(self.col.z_nm, z_from, u[:, v]) for v in range(self.nv)], axis=1)


def iv_curve(column: Column, valence, d_nm2_per_ns, bulk_M, biases_V, **solver_kw) -> np.ndarray:
    """Current (nA) at each bias (V) on a Column, shape (len(biases_V),); raises ContinuumError."""
    s = PNPSolver(column, valence, d_nm2_per_ns, bulk_M, **solver_kw)
    states = s.sweep(list(biases_V))
    return np.array([s.solution(states[b], b).current_nA() for b in biases_V])


# --- design -> measurement -------------------------------------------------------------------------
def design_solver(design: Design, conditions: Conditions, resolution: float = 1.0,
                  layer_thickness_nm: float = LAYER_THICKNESS_NM, pore_d_factor: float = PORE_D_FACTOR,
                  **solver_kw) -> PNPSolver:
    """A PNPSolver on design_column(design, ...) for the electrolyte and temperature of `conditions`."""
    names = list(conditions.electrolyte)
    col = design_column(design, resolution, layer_thickness_nm, pore_d_factor)
    return PNPSolver(col, [SPECIES[n]["valence"] for n in names], [SPECIES[n]["D"] for n in names],
                     [conditions.electrolyte[n] for n in names], conditions.temperature_K, **solver_kw)


def simulate_continuum(design: Design, conditions: Conditions, resolution: float = 1.0,
                       layer_thickness_nm: float = LAYER_THICKNESS_NM, pore_d_factor: float = PORE_D_FACTOR,
                       **solver_kw) -> Measurement:
    """Continuum Measurement of a design at every field of `conditions`; raises ContinuumError.

    Numbers come from the grid at 2 x resolution; their interval is +- (3 |X(N) - X(2N)| + floor), the grid
    at `resolution` giving X(N). solver_kw go to PNPSolver (eps_r, tol, max_iter, max_halvings, ...).
    """
    fields = list(conditions.fields_V_per_nm)
    lz = design.box_z_nm
    biases = [e * lz for e in fields]
    coarse = design_solver(design, conditions, resolution, layer_thickness_nm, pore_d_factor, **solver_kw)
    fine = design_solver(design, conditions, 2 * resolution, layer_thickness_nm, pore_d_factor, **solver_kw)
    states = coarse.sweep(biases)
    names = list(conditions.electrolyte)
    results = []
    fine_states: dict[float, np.ndarray] = {}
    for e, b in zip(fields, biases, strict=True):
        if b not in fine_states:
            fine_states[b] = fine.solve(b, fine.interpolate(states[b], coarse.col.z_nm))
        s_c, s_f = coarse.solution(states[b], b), fine.solution(fine_states[b], b)
        jc, jf = s_c.flux(), s_f.flux()
        floor = 10 * fine.tol * np.abs(s_f.flux_per_ns).max(axis=1) + 1e-12
        jerr = GCI_FACTOR * np.abs(jf - jc) + floor
        species = {n: SpeciesResult(crossings=0.0, flux_per_ns=float(jf[i]),
                                    flux_ci_per_ns=(float(jf[i] - jerr[i]), float(jf[i] + jerr[i])))
                   for i, n in enumerate(names)}
        i_f, i_c = s_f.current_nA() + 0.0, s_c.current_nA()
        ierr = GCI_FACTOR * abs(i_f - i_c) + float(np.abs(fine.z) @ floor) * E_PER_NS_TO_NA
        results.append(FieldResult(field_V_per_nm=e, time_ns=0.0, current_nA=i_f,
                                   current_ci_nA=(i_f - ierr, i_f + ierr), species=species))
    icr = icr_results(results, bound=True)  # the intervals are numerical error bounds
    prov = {
        "oracle": "porelab.sim.continuum", "porelab_version": porelab.__version__, "scipy_version": scipy.__version__,
        "numpy_version": np.__version__, "model": "steady 1D PNP, Scharfetter-Gummel finite volumes",
        "voltage": "V = E * box_z_nm; phi(0) = 0, phi(box_z) = -V",
        "grid_nodes": [coarse.col.n_nodes, fine.col.n_nodes], "resolution": resolution,
        "grid_spacing_nm": {k: v / resolution for k, v in GRID_NM.items()},
        "error_estimate": f"{GCI_FACTOR} |X(N) - X(2N)| + 10 tol |J|",
        "layer_thickness_nm": layer_thickness_nm,
        "pore_d_factor": pore_d_factor, "pore_area_nm2": design.pore.area_nm2(),
        "access": "A = pi (a + 4s/pi)^2 up to sheet_nm^2 (Hall access resistance)",
        "eps_r": solver_kw.get("eps_r") or water_eps_r(conditions.temperature_K),
        "solver": {"tol": fine.tol, "max_iter": fine.max_iter, "max_halvings": fine.max_halvings,
                   "max_step_kT": fine.max_step, "newton_iterations": coarse.newton_iterations
                   + fine.newton_iterations},
    }
    return Measurement(design_id=design_id(design, conditions), design=design, conditions=conditions,
                       fidelity="continuum", fields=results, icr=icr, provenance=prov,
                       oracle=continuum_identity(resolution, layer_thickness_nm, pore_d_factor, **solver_kw))


def continuum_identity(resolution: float = 1.0, layer_thickness_nm: float = LAYER_THICKNESS_NM,
                       pore_d_factor: float = PORE_D_FACTOR, **solver_kw) -> dict:
    """The oracle identity of a continuum measurement: every setting changes the numbers."""
    return oracle_identity("continuum", {"resolution": resolution, "layer_thickness_nm": layer_thickness_nm,
                                         "pore_d_factor": pore_d_factor, **solver_kw})


def run_continuum(design: Design, conditions: Conditions, **kw) -> Measurement:
    """simulate_continuum, with a solver failure returned as Measurement.failed(...) carrying the reason."""
    try:
        return simulate_continuum(design, conditions, **kw)
    except ContinuumError as err:
        return Measurement.failed(design, conditions, "continuum", f"continuum solver: {err}",
                                  provenance={"oracle": "porelab.sim.continuum", "porelab_version": porelab.__version__,
                                              "scipy_version": scipy.__version__, "settings": dict(kw)},
                                  oracle=continuum_identity(**kw))
