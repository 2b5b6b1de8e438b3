"""An ICR goal maximises the rectification of the better orientation, |ln ICR| = ln max(ICR, 1/ICR)
(campaign.targets): a design and its mirror image at the opposite field are one question, measured or predicted, an
ICR is censored either way, and every table shows a design in the orientation that rectifies (campaign.measured)."""

import copy
import math

import numpy as np
import pytest
from al_helpers import CENSORED, DECISIVE, DIPOLE_MD, REVERSED, SMALL, UNRESOLVED, UPPER
from typer.testing import CliRunner

from porelab.active_learning.campaign.directory import create
from porelab.active_learning.campaign.driver import Campaign, candidate_pool
from porelab.active_learning.campaign.measured import interval, measured, row_of
from porelab.active_learning.campaign.study import Goal, parse_study
from porelab.active_learning.campaign.targets import fold_interval, fold_normal, targets
from porelab.active_learning.cli.main import app
from porelab.sim.measurement import Measurement
from porelab.sim.observables import oriented


def mirror(m: Measurement) -> Measurement:
    """The same simulation read as the mirror image at the opposite fields."""
    return oriented(m, m.design.mirrored(), m.conditions.with_fields([-e for e in m.conditions.fields_V_per_nm]))


def shown(m: Measurement, goal: Goal | None = None):
    goal = goal or Goal()
    return measured(row_of(m, targets(m, goal)), goal)


@pytest.mark.parametrize("m", [DECISIVE, REVERSED, CENSORED, UPPER, UNRESOLVED], ids=lambda m: str(m.icr[0].icr))
def test_a_reversed_measurement_has_the_objective_of_its_forward_one(m):
    a, b = targets(m, Goal()), targets(mirror(m), Goal())
    assert b["log_icr"] == pytest.approx(-a["log_icr"], abs=1e-12)  # ln ICR is signed: the mirror rectifies back
    for k in ("abs_log_icr", "abs_log_icr_lo", "abs_log_icr_hi", "log_on_current"):
        assert b[k] == pytest.approx(a[k]), k
    sa, sb = shown(m), shown(mirror(m))
    assert sa.design_id == sb.design_id and str(sa.objective) == str(sb.objective)
    if sa.on_field != "unresolved":  # either way round, the same membrane is shown, ON at +E, with the same ICR
        assert sa.design == sb.design and sa.mirrored != sb.mirrored and str(sa.icr) == str(sb.icr)
        assert sa.on_field.startswith("+E") and sa.icr.value >= 1


def test_a_reverse_rectifier_is_shown_as_its_mirror_image_with_the_inverse_icr():
    r = REVERSED.icr[0]
    assert r.icr < 1 and r.icr_ci[1] < 1  # ICR 0.25 [0.18, 0.34] as drawn
    t = targets(REVERSED, Goal())
    assert (t["abs_log_icr"], t["abs_log_icr_lo"], t["abs_log_icr_hi"]) == pytest.approx(
        (-math.log(r.icr), -math.log(r.icr_ci[1]), -math.log(r.icr_ci[0])))
    s = shown(REVERSED)
    assert s.mirrored and s.design == REVERSED.design.mirrored() and list(s.design.layers) == ["COO-", "OH", "NH3+"]
    assert (s.icr.value, s.icr.low, s.icr.high) == pytest.approx((1 / r.icr, 1 / r.icr_ci[1], 1 / r.icr_ci[0]))
    assert s.on_field == "+E (COO- side to NH3+ side)" and s.conditions.fields_V_per_nm == (-1.0, 1.0)
    assert s.rank_bound == pytest.approx(-math.log(r.icr_ci[1]))  # ranked by the lower bound of 1/ICR
    assert s.rank_bound > shown(DECISIVE).rank_bound  # ICR 4 [2.96, 5.48] reversed beats 2.12 [1.86, 2.43]
    assert not shown(REVERSED, Goal(objective="selectivity", selectivity={"numerator": ["K+"],
                                                                          "denominator": ["Cl-"]})).mirrored


def test_an_upper_censored_icr_gives_a_lower_censored_objective():
    r = UPPER.icr[0]  # no transit at +E: ICR < x
    assert r.icr_upper_censored and not r.icr_censored and r.icr_ci == (0.0, r.icr) and r.icr < 1
    t = targets(UPPER, Goal())
    assert t["icr_upper_censored"] == 1.0 and t["log_icr_lo"] is None
    assert t["log_icr"] == t["log_icr_hi"] == pytest.approx(math.log(r.icr))
    assert t["abs_log_icr"] == t["abs_log_icr_lo"] == pytest.approx(-math.log(r.icr)) and t["abs_log_icr_hi"] is None
    s = shown(UPPER)
    assert s.mirrored and s.icr.censored and str(s.icr) == f"> {1 / r.icr:.3g}" and str(s.objective) == str(s.icr)
    assert s.rank_bound == pytest.approx(-math.log(r.icr))
    assert str(interval(t, "log_icr")) == f"< {r.icr:.3g}"  # as drawn
    # a bound on the side that does not rectify says nothing of the rectification: "< 3" or "> 1/3" give ">= 1"
    for row in (r.model_copy(update={"icr": 3.0, "icr_ci": (0.0, 3.0)}),
                r.model_copy(update={"icr": 1 / 3, "icr_ci": (1 / 3, None), "icr_censored": True,
                                     "icr_upper_censored": False})):
        m = UPPER.model_copy(update={"icr": [row]})
        t = targets(m, Goal())
        assert (t["abs_log_icr"], t["abs_log_icr_lo"], t["abs_log_icr_hi"]) == (0.0, 0.0, None)
        s = shown(m)
        assert not s.mirrored and s.on_field == "unresolved" and str(s.objective) == "> 1"


def old_style(point: float, high: float) -> Measurement:
    """UPPER as a measurement made before ICRs were censored from above: its ICR row unflagged, (0, high)."""
    row = UPPER.icr[0].model_copy(update={"icr": point, "icr_ci": (0.0, high), "icr_upper_censored": False})
    return UPPER.model_copy(update={"icr": [row]})


def test_an_icr_row_from_before_upper_censoring_reads_as_an_upper_bound():
    """An older measurement's ICR row with its lower end 0 and no flag (no net crossing at +E: value 0) is "< high",
    like the flagged row of today's: the value is the bound, whatever the point, and the ON field follows the
    bound ("< 5" does not say which field is ON, "< 0.8" does: its mirror image, "> 1.25")."""
    r = UPPER.icr[0]
    assert targets(old_style(0.0, r.icr_ci[1]), Goal()) == targets(UPPER, Goal())
    for point, high, mirrored in ((2.0, 5.0, False), (0.5, 0.8, True)):
        m = old_style(point, high)
        t = targets(m, Goal())
        assert t["icr_upper_censored"] == 1.0 and t["log_icr_lo"] is None
        assert t["log_icr"] == t["log_icr_hi"] == pytest.approx(math.log(high))
        s = shown(m)
        assert s.mirrored == mirrored and (s.on_field == "unresolved") == (not mirrored)
        assert str(s.icr) == (f"> {1 / high:.3g}" if mirrored else f"< {high:.3g}")


def test_a_ledger_written_before_the_icr_objective_reads_every_measurement(tmp_path):
    """Targets stored by an earlier version (no |ln ICR|, no intervals) are computed again from the measurement, an
    old-style "< x" ICR row included (it is shown, as its mirror image); a measurement that yields no targets
    any more is left out of the rows a campaign reads, instead of failing its iteration."""
    from porelab.active_learning.campaign.iteration import (
        Snapshot,
        _best_feasible,
        best_observed,
        extension_options,
        prospective,
    )
    from porelab.active_learning.campaign.ledger import Ledger
    from porelab.active_learning.campaign.summary import summarize

    old, broken = old_style(0.0, UPPER.icr[0].icr_ci[1]), CENSORED.model_copy(update={"icr": []})
    study = parse_study({**SMALL, "goal": {"on_current_min_nA": 1e-6}})
    led = Ledger(create(study, tmp_path / "camp") / "ledger.sqlite")
    for m in (old, DECISIVE, broken):
        led.add_trial(m.design_id, m.design.model_dump(mode="json"), m.conditions.model_dump(mode="json"), 0,
                      "initial")
        led.start(m.design_id)
        led.finish(m.design_id, "completed", m.to_json(), "md", {"log_icr": 0.0, "log_on_current": 0.0})
    snap = Snapshot.read(led, study.goal)
    assert [r.design_id for r in snap.measured] == [old.design_id, DECISIVE.design_id]
    assert snap.measured[0].targets == targets(UPPER, study.goal)
    top = max(r.targets["abs_log_icr"] for r in snap.measured)
    assert best_observed(snap.measured, study)[0] == pytest.approx(math.exp(top))
    assert _best_feasible(snap, study, "ei", None) == top
    assert extension_options(snap, study) == [] and len(prospective(snap, "abs_log_icr", None)[0]) == 0
    shown_old = next(b for b in summarize(led, study)["best"] if b["design_id"] == old.design_id)
    assert shown_old["mirrored"] and shown_old["icr_censored"]
    led.close()


def test_an_unresolved_icr_ranks_after_a_resolved_one():
    u, c = shown(UNRESOLVED), shown(CENSORED)
    assert str(u.objective) == "> 1" and u.rank_bound == 0.0 and u.on_field == "unresolved" and not u.mirrored
    assert c.icr.censored and c.rank_bound > 0 and c.on_field.startswith("+E")


def test_fold_interval_is_the_interval_of_the_absolute_value():
    assert fold_interval(1.0, 0.5, 2.0) == (1.0, 0.5, 2.0)
    assert fold_interval(-1.0, -2.0, -0.5) == (1.0, 0.5, 2.0)
    assert fold_interval(0.2, -0.4, 1.0) == (0.2, 0.0, 1.0)
    assert fold_interval(0.7, 0.7, None) == (0.7, 0.7, None)  # "> e^0.7"
    assert fold_interval(-0.7, None, -0.7) == (0.7, 0.7, None)  # "< e^-0.7": the mirror image's "> e^0.7"
    assert fold_interval(-0.7, -0.7, None) == (0.0, 0.0, None)  # "> e^-0.7": either side may be ON
    assert fold_interval(0.0, None, None) == (0.0, 0.0, None)  # unresolved


def test_fold_normal_is_the_folded_distribution_of_a_prediction():
    rng = np.random.default_rng(0)
    mean, sd = np.array([0.0, 0.3, -0.3, 2.0, -2.0, 1.0]), np.array([2.0, 1.0, 1.0, 0.5, 0.5, 0.0])
    e, s = fold_normal(mean, sd)
    assert e[0] == pytest.approx(2.0 * math.sqrt(2 / math.pi)) and e[0] > 0  # ln ICR 0 +- 2: |ln ICR| ~ 1.6
    np.testing.assert_allclose((e[1], s[1]), (e[2], s[2]))  # even in the mean: a design and its mirror image
    np.testing.assert_allclose((e[3], s[3]), (e[4], s[4]))
    assert (e[5], s[5]) == (1.0, 0.0)  # no spread: |mean|
    draws = np.abs(mean[:5, None] + sd[:5, None] * rng.standard_normal((5, 200_000)))
    np.testing.assert_allclose(e[:5], draws.mean(axis=1), rtol=0.01)
    np.testing.assert_allclose(s[:5], draws.std(axis=1), rtol=0.01)
    assert np.all(e >= np.abs(mean)) and np.all(s <= sd + 1e-12)


def test_a_campaign_finds_the_best_rectifier_drawn_reversed_and_shows_it_forward(tmp_path):
    """The pool holds the strongest rectifier only as its mirror image (NH3+/COO-, ICR 0.22 as drawn; the Janus
    COO-/NH3+ stack is ON at +E, docs/physics.md §6): the campaign ranks it first by the lower bound of max(ICR,
    1/ICR) and shows it forward, COO- NH3+, ICR 4.5 > 1."""
    oracle = tmp_path / "dipole.py"
    oracle.write_text(DIPOLE_MD)
    doc = copy.deepcopy(SMALL)
    doc |= {"space": {"layers": {"choices": [["NH3+", "COO-"], ["COO-", "OH"], ["OH", "NH3+"], ["NH3+", "none"]]}},
            "oracle": {"kind": "user", "path": f"{oracle}:DipoleMD"}, "acquisition": {"kind": "grid"},
            "budget": {"simulations": 4, "initial": 4, "batch": 4},
            "model": {"kind": "rf", "params": {"n_estimators": 20}}}
    study = parse_study(doc)
    pool, _ = candidate_pool(study)
    reversed_janus = next(c for c in pool if list(c.design.layers) == ["NH3+", "COO-"])
    assert not any(list(c.design.layers) == ["COO-", "NH3+"] for c in pool)  # drawn only reversed
    d = create(study, tmp_path / "camp")
    s = Campaign(d, log=lambda m: None).run()
    assert s["completed"] == 4
    best = s["best"][0]
    assert best["design_id"] == reversed_janus.design_id and best["mirrored"] and best["layers"] == ["COO-", "NH3+"]
    assert best["icr"] == pytest.approx(math.exp(1.5), rel=0.01) and best["icr_lo"] > 1
    assert best["objective_lo"] == pytest.approx(best["icr_lo"]) and best["on_field"] == "+E (COO- side to NH3+ side)"
    assert s["best_objective"] == best["icr"] and all(b["icr"] > 1 for b in s["best"])
    lows = [b["objective_lo"] for b in s["best"]]
    assert lows == sorted(lows, reverse=True) and lows[0] > 1.5 * lows[1]
    r = CliRunner().invoke(app, ["campaign", "status", str(d)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    row = text[text.index(reversed_janus.design_id):]
    assert row.startswith(f"{reversed_janus.design_id} COO- NH3+ † 2 {best['icr']:.3g} [")
    assert "+E (COO- side to NH3+ side)" in row and "† the mirror image of the trial as drawn" in text
    assert text.index(reversed_janus.design_id) < min(text.index(b["design_id"]) for b in s["best"][1:])
