"""Ion transport through the membrane, counted on the fly: a crossing counter (full transits of the membrane,
displacement sums and the membrane's polarisation) and the OpenMM reporter that feeds it. The estimators with their
intervals are in `sim.estimators`.

Units: nm, ps inside the counter (docs/physics.md §1, §3). Positive flux and current point along +z. Crossings are
full transits of the membrane: an ion changes side only when it leaves the hysteresis band around a membrane image
on the other side from where it entered.

Polarisation (docs/physics.md §3). With u an ion's unwrapped z - z_mid, its transport progress s(u) counts the band
images it has passed, continuously inside a band (s rises by 1 across each band of width 2*half_width), and
phi(u) = u / Lz - s(u) + 1/2 is periodic in u: the ion's place in its reservoir relative to the reservoir's middle,
in units of Lz, from about -1/2 just above a membrane image to about +1/2 just below the next one.
Q_pol = sum_i q_i phi_i (e) is the charge-weighted position of the ions relative to the membrane, the charge on the
membrane's capacitor. Exactly, for any interval of time:
    sum_i q_i dz_i / Lz  =  sum_i q_i ds_i  +  dQ_pol,
displacement charge = charge carried through the band + change of polarisation. The last term is bounded: it is
the charging of the membrane and its double layers after the field is switched on, not transport.
"""

from __future__ import annotations

import numpy as np
from openmm import unit

PS_PER_NS = 1000.0


class CrossingCounter:
    """Counts each ion's full transits of the membrane (all periodic images) and sums its displacements.

    charges: (n_ions,) e; species: (n_ions,) labels; z0: (n_ions,) initial z, nm (wrapped or not);
    box_z: Lz, nm; z_mid: membrane mid-plane, nm; half_width: half-width of the hysteresis band, nm.
    The membrane's images sit at z_mid + m*Lz. An ion's cell is the reservoir it was last seen in: cell m
    lies between the bands of images m and m+1. A transit is a change of cell; time inside a band changes
    nothing. The initial cell is the side of the nearest image the ion starts on.
    """

    def __init__(self, charges, species, z0, box_z: float, z_mid: float, half_width: float):
        self.charges = np.asarray(charges, dtype=float).copy()
        self.species = [str(s) for s in species]
        z0 = np.asarray(z0, dtype=float)
        n = self.charges.shape[0]
        if self.charges.ndim != 1 or len(self.species) != n or z0.shape != (n,):
            raise ValueError(f"charges, species and z0 must all have shape (n_ions,); got "
                             f"{self.charges.shape}, {len(self.species)}, {z0.shape}")
        if not np.all(np.isfinite(z0)):
            raise ValueError("z0 holds a non-finite coordinate")
        self.box_z, self.z_mid, self.half_width = float(box_z), float(z_mid), float(half_width)
        if not 0.0 < self.half_width < self.box_z / 2:
            raise ValueError(f"half_width={half_width} nm must lie in (0, box_z/2={self.box_z / 2}) nm")
        self.species_names = list(dict.fromkeys(self.species))
        self._species_index = np.array([self.species_names.index(s) for s in self.species], dtype=np.intp)
        self.species_charge: dict[str, float] = {}
        for name in self.species_names:
            q = np.unique(self.charges[self._species_index == self.species_names.index(name)])
            if q.size != 1:
                raise ValueError(f"species {name!r} has ions with different charges {q.tolist()} e")
            self.species_charge[name] = float(q[0])
        self.z = z0.copy()  # unwrapped z, nm
        self.cell = np.floor((self.z - self.z_mid) / self.box_z).astype(np.int64)
        self.up = np.zeros(n, dtype=np.int64)
        self.down = np.zeros(n, dtype=np.int64)
        self.time_ps = 0.0
        self.charge_displacement = 0.0  # sum of q*dz over all updates, e*nm
        self.species_displacement = np.zeros(len(self.species_names))  # sum of dz per species, nm
        self.current_series: list[float] = []  # instantaneous displacement current per update, e/ns
        self.dt_series: list[float] = []  # length of each update, ps
        self.species_series: list[list[float]] = []  # per update: displacement flux of each species, ions/ns
        self.crossed_series: list[float] = []  # per update: net charge that completed a transit along +z, e
        self.transit_series: list[int] = []  # per update: number of transits completed (either way)
        self.polarisation0 = self.polarisation_e()  # Q_pol at z0, e
        self.polarisation_series: list[float] = []  # Q_pol after each update, e
        # the production window starts at update `start` (time start_ps, transit counts up0/down0): mark_start()
        self.start, self.start_ps = 0, 0.0
        self.up0, self.down0 = self.up.copy(), self.down.copy()

    def update(self, z, dt_ps: float) -> None:
        """Advance by dt_ps (ps) to new positions z: (n_ions,) nm, wrapped or unwrapped.

        Valid while no ion moves more than box_z/2 between updates (minimum-image unwrapping).
        """
        z = np.asarray(z, dtype=float)
        if z.shape != self.z.shape:
            raise ValueError(f"z has shape {z.shape}, expected {self.z.shape}")
        if not dt_ps > 0:
            raise ValueError(f"dt_ps={dt_ps} must be positive")
        dz = z - self.z
        dz -= self.box_z * np.round(dz / self.box_z)
        self.z += dz
        u = self.z - self.z_mid
        k = np.floor(u / self.box_z)
        r = u - k * self.box_z
        in_reservoir = (r > self.half_width) & (r < self.box_z - self.half_width)
        new_cell = np.where(in_reservoir, k.astype(np.int64), self.cell)
        step = new_cell - self.cell
        self.up += np.maximum(step, 0)
        self.down += np.maximum(-step, 0)
        self.cell = new_cell
        qdz = float(self.charges @ dz)
        sdz = np.bincount(self._species_index, weights=dz, minlength=len(self.species_names))
        self.charge_displacement += qdz
        self.species_displacement += sdz
        self.time_ps += float(dt_ps)
        self.current_series.append(qdz / (self.box_z * dt_ps) * PS_PER_NS)
        self.dt_series.append(float(dt_ps))
        self.species_series.append((sdz / (self.box_z * dt_ps) * PS_PER_NS).tolist())
        self.crossed_series.append(float(self.charges @ step))
        self.transit_series.append(int(np.abs(step).sum()))
        self.polarisation_series.append(self.polarisation_e())

    def polarisation_e(self) -> float:
        """Q_pol = sum_i q_i phi(u_i) at the current positions, e (module docstring)."""
        u = self.z - self.z_mid
        r = u - self.box_z * np.round(u / self.box_z)  # in [-Lz/2, Lz/2]: position relative to the nearest image
        inside = np.clip((r + self.half_width) / (2 * self.half_width), 0.0, 1.0)  # s - round(u / Lz)
        return float(self.charges @ (r / self.box_z - inside + 0.5))

    def mark_start(self) -> None:
        """Start the production window here: the summaries below count from this update on."""
        self.start, self.start_ps = len(self.current_series), self.time_ps
        self.up0, self.down0 = self.up.copy(), self.down.copy()

    def window(self, series: list) -> list:
        """The production window's part of a per-update series (e.g. `current_series`)."""
        return series[self.start:]

    def polarisation_change_e(self) -> float:
        """Change of Q_pol over the production window, e (0 before any update in it)."""
        if len(self.polarisation_series) <= self.start:
            return 0.0
        before = self.polarisation_series[self.start - 1] if self.start else self.polarisation0
        return self.polarisation_series[-1] - before

    # --- summaries ---------------------------------------------------------------------------------
    @property
    def time_ns(self) -> float:
        """Length of the production window, ns."""
        return (self.time_ps - self.start_ps) / PS_PER_NS

    def species_counts(self) -> dict[str, tuple[int, int]]:
        """Transits (up, down) in the production window, summed over the ions of each species."""
        up = np.bincount(self._species_index, weights=self.up - self.up0, minlength=len(self.species_names))
        down = np.bincount(self._species_index, weights=self.down - self.down0, minlength=len(self.species_names))
        return {s: (int(up[i]), int(down[i])) for i, s in enumerate(self.species_names)}

    def net_charge_crossings(self) -> float:
        """Net charge carried through the membrane along +z in the production window, e."""
        return float(self.charges @ (self.up - self.up0 - self.down + self.down0))

    # --- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Full state as JSON-serialisable lists and floats; load_state_dict restores it exactly."""
        return {
            "charges": self.charges.tolist(), "species": list(self.species), "box_z": self.box_z,
            "z_mid": self.z_mid, "half_width": self.half_width, "z": self.z.tolist(),
            "cell": self.cell.tolist(), "up": self.up.tolist(), "down": self.down.tolist(),
            "time_ps": self.time_ps, "charge_displacement": self.charge_displacement,
            "species_displacement": self.species_displacement.tolist(),
            "current_series": list(self.current_series), "dt_series": list(self.dt_series),
            "species_series": [list(r) for r in self.species_series], "crossed_series": list(self.crossed_series),
            "transit_series": list(self.transit_series), "polarisation0": self.polarisation0,
            "polarisation_series": list(self.polarisation_series),
            "start": self.start, "start_ps": self.start_ps, "up0": self.up0.tolist(), "down0": self.down0.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict() taken from a counter with the same ions and geometry."""
        for key in ("box_z", "z_mid", "half_width"):
            if float(state[key]) != getattr(self, key):
                raise ValueError(f"state has {key}={state[key]}, this counter has {getattr(self, key)}")
        if state["species"] != self.species or not np.array_equal(state["charges"], self.charges):
            raise ValueError("state was saved for different ions (species or charges differ)")
        self.z = np.array(state["z"], dtype=float)
        self.cell = np.array(state["cell"], dtype=np.int64)
        self.up = np.array(state["up"], dtype=np.int64)
        self.down = np.array(state["down"], dtype=np.int64)
        self.time_ps = float(state["time_ps"])
        self.charge_displacement = float(state["charge_displacement"])
        self.species_displacement = np.array(state["species_displacement"], dtype=float)
        self.current_series = [float(x) for x in state["current_series"]]
        n = len(self.current_series)
        # states saved before the per-update lengths and species series existed: equal updates, no species series
        self.dt_series = [float(x) for x in state.get("dt_series", [self.time_ps / n] * n if n else [])]
        self.species_series = [[float(x) for x in r] for r in state.get("species_series", [])]
        # states saved before the polarisation and the production window existed: no series, window from the start
        self.crossed_series = [float(x) for x in state.get("crossed_series", [])]
        self.transit_series = [int(x) for x in state.get("transit_series", [])]
        self.polarisation0 = float(state.get("polarisation0", 0.0))
        self.polarisation_series = [float(x) for x in state.get("polarisation_series", [])]
        self.start, self.start_ps = int(state.get("start", 0)), float(state.get("start_ps", 0.0))
        self.up0 = np.array(state.get("up0", np.zeros_like(self.up)), dtype=np.int64)
        self.down0 = np.array(state.get("down0", np.zeros_like(self.down)), dtype=np.int64)

    @classmethod
    def from_state_dict(cls, state: dict) -> CrossingCounter:
        counter = cls(state["charges"], state["species"], state["z"], state["box_z"], state["z_mid"],
                      state["half_width"])
        counter.load_state_dict(state)
        return counter


class TransportReporter:
    """OpenMM reporter feeding the z of `ion_indices` to a CrossingCounter every `interval` steps.

    counter: a CrossingCounter whose z0 are the ions' positions at simulation time `time_ps` (ps).
    periodic: passed to OpenMM; None (default) shares the wrapped-position State with other reporters.
    """

    def __init__(self, counter: CrossingCounter, ion_indices, interval: int, time_ps: float,
                 periodic: bool | None = None):
        self.counter = counter
        self.ion_indices = np.asarray(ion_indices, dtype=np.intp)
        if self.ion_indices.shape != counter.z.shape:
            raise ValueError(f"{self.ion_indices.size} ion indices for a counter of {counter.z.size} ions")
        if interval < 1:
            raise ValueError(f"interval={interval} must be at least 1 step")
        self.interval = int(interval)
        self.time_ps = float(time_ps)
        self.periodic = periodic

    @classmethod
    def from_simulation(cls, simulation, ion_indices, charges, species, z_mid: float, half_width: float,
                        interval: int, periodic: bool | None = None) -> TransportReporter:
        """A reporter whose counter starts from the simulation's current positions, box and time."""
        state = simulation.context.getState(getPositions=True)
        z0 = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)[np.asarray(ion_indices), 2]
        box_z = state.getPeriodicBoxVectors()[2][2].value_in_unit(unit.nanometer)
        counter = CrossingCounter(charges, species, z0, box_z, z_mid, half_width)
        return cls(counter, ion_indices, interval, state.getTime().value_in_unit(unit.picosecond), periodic)

    def describeNextReport(self, simulation):
        steps = self.interval - simulation.currentStep % self.interval
        return {"steps": steps, "periodic": self.periodic, "include": ["positions"]}

    def report(self, simulation, state) -> None:
        t = state.getTime().value_in_unit(unit.picosecond)
        if t < self.time_ps:
            raise ValueError(f"simulation time {t} ps precedes the counter's {self.time_ps} ps: was the "
                             "reporter state saved after the checkpoint it is resumed from?")
        if t == self.time_ps:
            return
        z = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)[self.ion_indices, 2]
        self.counter.update(z, t - self.time_ps)
        self.time_ps = t

    def sync(self, simulation) -> None:
        """Count up to the simulation's current time (e.g. at the end of a run between two reports)."""
        self.report(simulation, simulation.context.getState(getPositions=True))

    def state_dict(self) -> dict:
        return {"counter": self.counter.state_dict(), "time_ps": self.time_ps}

    def load_state_dict(self, state: dict) -> None:
        self.counter.load_state_dict(state["counter"])
        self.time_ps = float(state["time_ps"])
