"""Free-energy profiles of one ion species through the pore, and their enthalpy and entropy parts.

Method: umbrella sampling along the pore axis z, analysed with MBAR (pymbar 4). One ion of the species is
tagged and restrained by one `CustomExternalForce` (the field is off, Ez = 0):

    U = 1/2 k_z dz^2 + 1/2 k_r max(0, r - R0)^2,   dz = z - z0 - Lz floor((z - z0)/Lz + 1/2)

z0 is the window centre; r is the distance in xy from the pore axis (the mean of the layers' pore centres),
with the same periodic-safe differences. The flat-bottom cylinder (R0 = the pore's larger semi-axis unless
given) is identical in every window and at every temperature, so it belongs to the reference Hamiltonian: it
keeps the ion above the pore in the bulk windows and does nothing inside the pore, where the sheets already
confine the ion. Windows are evenly spaced over the stack (outer layer planes) +- `margin_nm`; by default
k_z = 3 kT0/spacing^2, so a window's z spread is about 0.6 spacing and neighbours overlap.

Why umbrella sampling + MBAR rather than OpenMM's well-tempered `Metadynamics` or OPES (`openmm-opes`):
- it needs only pymbar (already a dependency, pure Python from PyPI); OPES is a compiled plugin tied to
  OpenMM builds;
- MBAR gives an asymptotic uncertainty for every bin and for differences between bins, with no bias
  deposition history to converge or reweighting factor to estimate;
- windows are independent jobs: they run in parallel (one process or GPU each) and a killed run resumes by
  skipping finished windows;
- the same windows and analysis are reused unchanged at every temperature of the entropy/enthalpy split,
  where a metadynamics bias would have to be rebuilt and re-converged at each one.

Start: the solvated pore of `sim.system` with the field off, after swapping cation/anion positions so that the
ions' dipole about the membrane is ~0 (`balance_ions`: random ion placement can leave one side several e
richer than the other, which ps windows cannot relax), minimised and equilibrated at T0 with the tagged ion
free along z. Each window moves the tagged ion onto the water oxygen nearest (axis, z0) and that water to the
ion's old place (`place_ion`), so nothing overlaps.

Profiles (z in the box frame of `Design.layer_z_nm()`, nm; free energies kJ/mol):
- 1D: G(z) = -kT ln(rho(z)/rho_bulk), rho the density of the ion along z integrated over the cylinder's
  cross-section r < R0 (an r-integrated profile, not a minimum free-energy path). Zero is the mean density
  in the outer `bulk_nm` of the window range on both sides. The narrowing of the pore relative to the
  cylinder enters G as an entropic term, so compare 1D profiles at the same R0.
- 2D: G(z, r) = -kT ln(rho(z, r)/rho_bulk) with rho per unit volume (bin weight over dz pi (r2^2 - r1^2)), for
  r < R0 only (beyond it the wall biases), same zero as 1D. It does not depend on R0.
Each window's series is thinned to uncorrelated samples by the statistical inefficiency of z
(`pymbar.timeseries`); estimates and MBAR's analytical uncertainties (bins relative to the bulk) come from
those samples. Convergence is shown by MBAR on the first and on the second half of every window.

Enthalpy and entropy: each temperature is its own MBAR (the energy distributions of a solvated box 20 K
apart do not overlap, so samples are not reweighted across temperatures). With the slope s(z) = dG/dT from
the least-squares line through the temperatures (the finite difference for two, the central difference for
three evenly spaced): -T dS = T0 s and dH = dG(T0) + T0 dS = dG(T0) - T0 s, errors propagated from the
independent runs at each temperature. The windows at the other temperatures start from the end of the same
window at T0 (no second placement/minimisation); with window_equil_ps shorter than the ion's correlation time
they remember it, which correlates the temperatures positively: the propagated slope errors are then
conservative, and too short an equilibration pulls the slope towards zero. The box is fixed (NVT), so
"enthalpy" here is strictly the energy; the difference, P dV, is negligible for an ion moving in a liquid.

Limits: MBAR's errors only count the sampling noise inside the windows. Slow parts of the system (the other
ions' arrangement around the pore rearranges over ~ns) are frozen in ps-long windows and bias every window the
same way. For a design equal to its mirror image the mirror test (`mirror_asymmetry`, `design_symmetric` in
the JSON) exposes that: an asymmetric profile there means the run is not converged.

Run directory (every file written atomically; a rerun skips what is done and redoes only the analysis). It is
orientation-specific: a profile along z of a design is not that of its mirror image, so the directory is claimed by
the physical state of the design as given (`sim.design.physical_state`), not by the mirror-folded design id.
  run.json                    what the samples depend on (physical state, ion, windows, temperatures, settings)
  state/start.xml, start.json the equilibrated start at T0 (tagged ion free along z) and its cost
  windows/T<T>/w<k>.npz       one finished window: z, r (n_samples,) nm, its cost and the final positions
  free_energy.json            profiles, split, extrema table, symmetry, (z, r) surface, cost (written last)
  profile.png, convergence.png, surface.png

Modules: settings (FESettings), target (the restrained ion in its pore, window placement), windows (UmbrellaRun:
running the windows on `sim.engine`), mbar (profiles), thermodynamics (enthalpy/entropy split, extrema, mirror test),
result (FreeEnergyResult, analyse), plots, run (run_free_energy), cli (the `porelab free-energy` command).
"""

import importlib

#: public names -> the module that defines them (imported on first use: the CLI stays light to start)
_EXPORTS = {"FESettings": "settings", "FreeEnergyResult": "result", "analyse": "result", "check_ion": "target",
            "run_free_energy": "run"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
