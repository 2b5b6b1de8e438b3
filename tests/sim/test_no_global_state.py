"""Importing and using floor 1's plotting and statistics changes no global state: no matplotlib backend or pyplot,
no logger level or filter left behind, no warnings filter (checked in a fresh interpreter)."""

import subprocess
import sys
import textwrap

CODE = textwrap.dedent("""
    import logging, sys, warnings
    import matplotlib
    backend = dict.__getitem__(matplotlib.rcParams, "backend")
    import numpy as np
    import porelab.sim.cli, porelab.sim.plots, porelab.sim.structure, porelab.sim.protocol
    import porelab.sim.free_energy.cli, porelab.sim.free_energy.mbar, porelab.sim.free_energy.plots
    from porelab.sim.design import make_conditions, make_design
    from porelab.sim.estimators import correlated_mean
    from porelab.sim.free_energy.mbar import uncorrelated
    from porelab.sim.measurement import FieldResult, Measurement
    from porelab.sim.observables import icr_results, mirrored_field
    from porelab.sim.plots import plot_icr, plot_iv

    def loggers():
        return {n: (lg.level, list(lg.filters), lg.disabled) for n, lg in logging.root.manager.loggerDict.items()
                if isinstance(lg, logging.Logger)}

    before_loggers, before_filters = loggers(), list(warnings.filters)
    rng = np.random.default_rng(0)
    correlated_mean(rng.normal(size=500))
    uncorrelated(np.cumsum(rng.normal(size=400)))
    plus = FieldResult(field_V_per_nm=2.0, time_ns=0.1, current_nA=3.0, current_ci_nA=(1.0, 5.0),
                       current_displacement_nA=3.0, current_displacement_ci_nA=(2.0, 4.0), species={})
    minus = mirrored_field(plus).model_copy(update={"derived_by_symmetry": True})
    design = make_design({"layers": ["COO-"]}, "tiny")
    m = Measurement(design_id="x", design=design, conditions=make_conditions({}), fields=[plus, minus],
                    icr=icr_results([plus, minus]))
    plot_iv(m, sys.argv[1] + "/iv.png")
    plot_icr(m, sys.argv[1] + "/icr.png")
    assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
    assert dict.__getitem__(matplotlib.rcParams, "backend") == backend, "the matplotlib backend changed"
    after = loggers()
    changed = [n for n, v in before_loggers.items() if after.get(n) != v]
    assert not changed, f"loggers changed: {changed}"
    assert all(v[0] == logging.NOTSET and not v[1] for n, v in after.items() if n.startswith("pymbar")), after
    assert warnings.filters == before_filters, "warnings filters changed"
    print("clean")
""")


def test_plots_and_statistics_leave_no_global_state(tmp_path):
    p = subprocess.run([sys.executable, "-c", CODE, str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and "clean" in p.stdout, p.stdout + p.stderr
    assert "JAX" not in p.stderr and "timeseries module" not in p.stderr  # pymbar's notices stay silent
    for name in ("iv.png", "icr.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
