"""One iteration is a pure function of a ledger snapshot: the same snapshot gives the same picks, reads and writes
no file, and reports the model's prospective quality with surrogate.metrics.regression_metrics."""

import dataclasses
import math
import os

import numpy as np
import pytest
from al_helpers import write_study

from porelab.active_learning.campaign.directory import create
from porelab.active_learning.campaign.driver import candidate_pool
from porelab.active_learning.campaign.iteration import Snapshot, plan, prospective, prospective_rows, train_digest
from porelab.active_learning.campaign.ledger import Ledger, MeasuredRow
from porelab.active_learning.campaign.study import load_study
from porelab.active_learning.campaign.targets import predictive, targets
from porelab.sim.continuum import run_continuum


def files(root) -> set:
    return {(p, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def snapshot(tmp_path):
    """A campaign whose round 0 (6 designs) finished, each with a pick-time prediction of ln ICR = -(measured
    |ln ICR| + 1), the mirror image's sign, with std 0.1: the predicted |ln ICR| (campaign.targets.predictive) is
    measured + 1 with std 0.1 (to 1e-12), so the held-out RMSE is 1 and no error lies within 1.96 std."""
    study = load_study(write_study(tmp_path / "s.yaml"))
    d = create(study, tmp_path / "c")
    pool, _ = candidate_pool(study)
    led = Ledger(d / "ledger.sqlite")
    for c in pool[:6]:
        m = run_continuum(c.design, c.conditions)
        tg = targets(m, study.goal)
        pred = {"log_icr_mean": -(tg["abs_log_icr"] + 1.0), "log_icr_std": 0.1}
        led.add_trial(c.design_id, c.design.model_dump(mode="json"), c.conditions.model_dump(mode="json"), 0,
                      "initial", prediction=pred)
        led.start(c.design_id)
        led.finish(c.design_id, "completed", m.to_json(), "continuum", targets=tg)
    led.record_iteration(0, 0, 0.0, 0, {"picks": 6}, None, [])
    snap = Snapshot.read(led)
    led.close()
    return study, pool, snap


def test_the_same_snapshot_gives_the_same_picks_and_touches_no_file(snapshot, tmp_path, monkeypatch):
    study, pool, snap = snapshot
    monkeypatch.chdir(tmp_path)
    before = files(tmp_path)
    a = plan(snap, study, pool, 1, 0, 12)
    b = plan(snap, study, pool, 1, 0, 12)
    assert files(tmp_path) == before and set(os.listdir(tmp_path)) == {"s.yaml", "c"}
    assert a.model is not None and a.n_train == 6 and len(a.picks) == study.budget.batch
    assert [p["design_id"] for p in a.picks] == [p["design_id"] for p in b.picks]
    assert not {p["design_id"] for p in a.picks} & snap.known_ids and all(p["round"] == 1 for p in a.picks)
    assert all(p["prediction"]["log_icr_std"] > 0 and p["prediction"]["abs_log_icr_std"] > 0 for p in a.picks)
    assert all((p["prediction"]["abs_log_icr_mean"], p["prediction"]["abs_log_icr_std"])
               == predictive(p["prediction"], "abs_log_icr") for p in a.picks)  # comparable with a measurement
    again = plan(snap, study, pool, 1, 0, 12, cached=a.model)  # a cached model trained on this set: same picks
    assert [p["design_id"] for p in again.picks] == [p["design_id"] for p in a.picks]
    assert a.metrics["train_digest"] == train_digest(snap, 0) != train_digest(snap, -1)
    final = plan(snap, study, pool, 2, None, 12, final=True)
    assert final.picks == [] and final.metrics["picks"] == 0 and final.n_train == 6


def test_prospective_metrics_are_regression_metrics_with_known_answers(snapshot):
    from porelab.surrogate.metrics import regression_metrics

    study, pool, snap = snapshot
    m = plan(snap, study, pool, 1, 0, 12).metrics
    y, mu, sd = prospective(snap, "abs_log_icr", 0)
    assert len(y) == 6 and np.allclose(mu - y, 1.0) and np.allclose(sd, 0.1)
    assert m["heldout_n"] == 6 and m["heldout_rmse"] == pytest.approx(1.0) and m["heldout_mae"] == pytest.approx(1.0)
    assert m["heldout_coverage_68"] == 0.0 and m["heldout_coverage_95"] == 0.0
    expected = regression_metrics(y, mu, sd)
    for k, v in expected.items():
        assert m[f"heldout_{k}"] == (None if isinstance(v, float) and math.isnan(v) else v), k
    assert m["completed"] == 6 and m["best_objective"] == pytest.approx(math.exp(max(y)))


def test_the_summary_gives_the_prospective_error_of_every_pick_with_its_interval(snapshot, tmp_path):
    """Every pick predicted 1 too high with std 0.1: RMSE 1 and no 68 % interval holding its label, in every
    bootstrap resample too, so both intervals are points; R² has an interval around its value."""
    from porelab.active_learning.campaign.summary import summarize

    study, _, snap = snapshot
    led = Ledger(tmp_path / "c" / "ledger.sqlite")
    s = summarize(led, study)
    led.close()
    y, mu, _ = prospective(snap, "abs_log_icr", None)
    r2 = 1 - ((y - mu) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert s["heldout_n"] == 6 and s["heldout_rmse"] == pytest.approx(1.0) and s["heldout_r2"] == pytest.approx(r2)
    assert s["heldout_rmse_ci"] == pytest.approx([1.0, 1.0]) and s["heldout_coverage_68_ci"] == [0.0, 0.0]
    assert s["heldout_r2_ci"][0] <= r2 <= s["heldout_r2_ci"][1]


def test_prospective_scores_values_not_bounds(snapshot):
    """A measured objective known only from below (`_hi` None: censored, or unresolved) is left out of the
    prospective rows, as the champion leaves it out."""
    study, pool, snap = snapshot
    first = snap.measured[0]
    bound = dataclasses.replace(first, targets={**first.targets, "abs_log_icr_hi": None})
    rows = prospective_rows(dataclasses.replace(snap, measured=[bound, *snap.measured[1:]]), "abs_log_icr", 0)
    assert [r.design_id for r, *_ in rows] == [r.design_id for r in snap.measured[1:]]


def test_predictive_is_the_fold_of_the_total_predictive_of_ln_icr():
    """What a measured |ln ICR| is compared with: ln ICR's total predictive folded (a noisy measurement of a design
    predicted at ln ICR 0 averages 0.6 sqrt(2/pi) = 0.48 with total std 0.6), whatever the row stored for the
    objective (an earlier version stored the epistemic fold, 0.16 with epistemic std 0.2); other objectives as
    stored; None without a prediction."""
    p = {"log_icr_mean": 0.0, "log_icr_std": 0.6, "abs_log_icr_mean": 0.16, "abs_log_icr_std": 0.6,
         "log_selectivity_mean": 1.0, "log_selectivity_std": 0.3}
    mean, sd = predictive(p, "abs_log_icr")
    assert mean == pytest.approx(0.6 * math.sqrt(2 / math.pi)) and sd == pytest.approx(0.6 * math.sqrt(1 - 2 / math.pi))
    assert predictive(p, "log_selectivity") == (1.0, 0.3)
    assert predictive({}, "abs_log_icr") is None and predictive({"log_icr_mean": 1.0}, "log_selectivity") is None


def test_an_on_current_known_only_from_above_is_not_known_feasible(tmp_path):
    """EI's incumbent is the best design known to meet the ON-current constraint: "< 5 nA" is not known to reach
    1 nA; nor is an upper bound reported as the ON current of the best design."""
    from porelab.active_learning.campaign.iteration import _best_feasible, _metrics

    study = load_study(write_study(tmp_path / "s.yaml", goal={"on_current_min_nA": 1.0}))
    on = {"log_on_current": math.log(5.0), "log_on_current_lo": None, "log_on_current_hi": math.log(5.0)}
    rows = [MeasuredRow(did, "{}", {"abs_log_icr": obj, **on, "on_current_upper_censored": cens}, "ok", 0, k, "md",
                        None, 0) for k, (did, obj, cens) in enumerate((("a", 2.0, 1.0), ("b", 1.0, 0.0)))]
    snap = Snapshot(rows, {}, {"completed": 2, "failed": 0, "abandoned": 0}, frozenset({"a", "b"}))
    assert _best_feasible(snap, study, "ei", None) == 1.0
    m = _metrics(snap, study, None, 2, None)
    assert m["best_objective"] == pytest.approx(math.exp(2.0)) and m["on_current_of_best_nA"] is None


@pytest.mark.parametrize("fraction, q, n_fill", [(0.25, 4, 1), (0.25, 12, 3), (0.5, 4, 2), (0.1, 4, 1),
                                                  (0.25, 1, 0), (0.0, 8, 0), (1.0, 4, 4)])
def test_space_filling_share_of_a_batch(fraction, q, n_fill):
    from porelab.active_learning.campaign.iteration import space_filling_count

    assert space_filling_count(q, fraction) == n_fill


def test_part_of_each_guided_batch_continues_the_pools_sobol_order(snapshot):
    """However the model scores, explore_fraction of the batch are the next unknown designs of the pool in its
    space-filling order (source space_filling), so exploration cannot collapse on a model that saw only a flat
    region; the rest follow the acquisition; explore_fraction 0 gives the acquisition alone."""
    from porelab.active_learning.campaign.iteration import SPACE_FILLING

    study, pool, snap = snapshot
    study.budget.batch, study.acquisition.explore_fraction = 4, 0.25
    p = plan(snap, study, pool, 1, 0, 12)
    fill = [r["design_id"] for r in p.picks if r["source"] == SPACE_FILLING]
    unknown = [c.design_id for c in pool if c.design_id not in snap.known_ids]
    guided = [r["design_id"] for r in p.picks if r["source"] == study.acquisition.kind]
    assert len(fill) == 1 and len(guided) == 3 and len(set(fill + guided)) == 4
    assert fill == [i for i in unknown if i not in guided][:1]
    assert all(r["prediction"] is not None for r in p.picks)  # every pick is also a prospective test of the model
    study.acquisition.explore_fraction = 0.0
    assert {r["source"] for r in plan(snap, study, pool, 1, 0, 12).picks} == {study.acquisition.kind}


def test_prospective_error_per_round_has_known_answers(tmp_path):
    """Round 1's picks were predicted ln ICR = measured |ln ICR| + 1 with std 0.6 (its fold inside 1.96 std), round
    2's measured + 2 with std 0.2 (outside): RMSE about 1 then 2 (the fold's mean lies a little above |mean|),
    coverage 100 % then 0 %, and the two rounds pooled sqrt((1 + 4) / 2); round 0 (no prediction) is not a row."""
    from porelab.active_learning.campaign.summary import prospective_by_round

    study = load_study(write_study(tmp_path / "s.yaml"))
    d = create(study, tmp_path / "c")
    pool, _ = candidate_pool(study)
    led = Ledger(d / "ledger.sqlite")
    for k, c in enumerate(pool[:6]):
        m = run_continuum(c.design, c.conditions)
        tg = targets(m, study.goal)
        rnd = k // 2
        pred = None if rnd == 0 else {"log_icr_mean": tg["abs_log_icr"] + float(rnd),
                                      "log_icr_std": 0.6 if rnd == 1 else 0.2}
        led.add_trial(c.design_id, c.design.model_dump(mode="json"), c.conditions.model_dump(mode="json"), rnd,
                      "ucb", prediction=pred)
        led.start(c.design_id)
        led.finish(c.design_id, "completed", m.to_json(), "continuum", targets=tg)
    rows = prospective_by_round(Snapshot.read(led, study.goal), study.goal)
    led.close()
    assert [(r["round"], r["n"]) for r in rows] == [(1, 2), (2, 2)]
    assert [r["rmse"] for r in rows] == pytest.approx([1.0, 2.0], abs=0.05)
    assert [r["coverage_95"] for r in rows] == [1.0, 0.0]
    assert [r["rmse_window"] for r in rows] == pytest.approx([1.0, 2.5**0.5], abs=0.05)


def test_a_decaying_floor_is_weighted_by_the_share_of_the_budget_left(snapshot):
    study, pool, snap = snapshot
    decay = study.model_copy(update={"model": study.model.model_copy(update={"novelty_floor": "decay"})})
    assert plan(snap, decay, pool, 1, 0, 12).model.floor_weight == pytest.approx(1 - 6 / 12)
    assert plan(snap, decay, pool, 1, 0, 8).model.floor_weight == pytest.approx(1 - 6 / 8)
    assert plan(snap, study, pool, 1, 0, 12).model.floor_weight == 1.0  # a constant floor


def test_a_flat_floor_is_weighted_by_the_spread_of_the_means_over_the_unmeasured_pool(snapshot):
    study, pool, snap = snapshot
    flat = study.model_copy(update={"model": study.model.model_copy(update={"novelty_floor": "flat"})})
    p = plan(snap, flat, pool, 1, 0, 12)
    avail = [c for c in pool if c.design_id not in snap.known_ids]
    assert 0 <= p.model.floor_weight <= 1 and p.model.floor_weight == pytest.approx(p.model.flat_floor_weight(avail))
    assert any("novelty floor weight" in n for n in p.notes)
