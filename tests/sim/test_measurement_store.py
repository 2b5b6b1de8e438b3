"""The measurement store (sim/store.py): one entry per (oracle identity, design id), kept in its first asker's
orientation and turned to the one asked, other oracles' answers never returned."""

import threading

from porelab.sim.continuum import continuum_identity, run_continuum
from porelab.sim.design import make_conditions, make_design
from porelab.sim.measurement import Measurement
from porelab.sim.store import MEASUREMENT_FILE, MeasurementStore, default_store, oracle_key

COND = make_conditions({"fields_V_per_nm": [0.2, -0.2], "electrolyte": {"K+": 0.1, "Cl-": 0.1}})
JANUS = make_design({"layers": ["COO-", "NH3+"], "groups_per_rim": 4}, "tiny")
MIRROR = JANUS.mirrored()


def test_round_trip_in_both_orientations(tmp_path):
    store = MeasurementStore(tmp_path)
    ident = continuum_identity()
    m = run_continuum(JANUS, COND)
    assert m.oracle == ident
    path = store.put(m)
    assert path == tmp_path / oracle_key(ident) / m.design_id / MEASUREMENT_FILE
    assert Measurement.load(path).design == JANUS  # kept as first asked
    assert store.get(ident, JANUS, COND) == m
    back = store.get(ident, MIRROR, COND.with_fields([-0.2, 0.2]))
    assert back.design == MIRROR and back.field(0.2).current_nA == -m.field(-0.2).current_nA  # z -> -z
    assert [x.design_id for x in store.measurements()] == [m.design_id]
    assert list(store.measurements("md")) == []
    # a later asker of the mirror image runs (and stores) in the entry's orientation
    assert store.question(ident, MIRROR, COND.with_fields([-0.2, 0.2])) == (JANUS, COND)
    store.put(back)
    assert Measurement.load(path).design == JANUS


def test_another_oracle_finds_nothing(tmp_path):
    store = MeasurementStore(tmp_path)
    store.put(run_continuum(JANUS, COND))
    assert store.get(continuum_identity(resolution=2.0), JANUS, COND) is None


def test_a_measurement_without_an_oracle_is_refused(tmp_path):
    m = run_continuum(JANUS, COND).model_copy(update={"oracle": {}})
    try:
        MeasurementStore(tmp_path).put(m)
    except ValueError as err:
        assert "names no oracle" in str(err)
    else:
        raise AssertionError("stored a measurement that names no oracle")


def test_the_lock_serialises_two_holders(tmp_path):
    store, ident, order = MeasurementStore(tmp_path), continuum_identity(), []
    inside = threading.Event()

    def hold():
        with store.lock(ident, JANUS, COND):
            order.append("first in")
            inside.set()
            threading.Event().wait(0.3)
            order.append("first out")

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(5)
    with store.lock(ident, MIRROR, COND.with_fields([-0.2, 0.2])):  # the same question, mirrored
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]


def test_default_store_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PORELAB_STORE", str(tmp_path / "s"))
    assert default_store() == tmp_path / "s"
    monkeypatch.setenv("PORELAB_STORE", "off")
    assert default_store() is None
    monkeypatch.delenv("PORELAB_STORE")
    monkeypatch.setenv("PORELAB_WORKSPACE", str(tmp_path))
    assert default_store() == tmp_path.resolve() / "porelab-store"


def test_a_measurement_holding_nan_or_inf_is_refused_when_built():
    """Every number is finite, so no serialiser can write NaN as null (surrogate.store writes with pydantic's)."""
    import pydantic
    import pytest

    doc = run_continuum(JANUS, COND).model_dump()
    for bad in (float("nan"), float("inf")):
        at_field = {**doc, "fields": [{**doc["fields"][0], "current_nA": bad}] + doc["fields"][1:]}
        in_provenance = {**doc, "provenance": {**doc["provenance"], "cpu_s": bad}}
        for case in (at_field, in_provenance):
            with pytest.raises(pydantic.ValidationError):
                Measurement.model_validate(case)
    Measurement.model_validate(doc)  # and the finite original is accepted
