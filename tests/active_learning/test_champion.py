"""The `champion` is judged prospectively (on the designs each model picked, before they ran): the newest scored
model unless an earlier one predicted clearly better; the final model once the campaign finished; the latest while
no model has enough such designs; and the MLflow alias follows that rule."""

import json
import math

import numpy as np
import pytest

from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.tracking.champion import (
    MIN_PROSPECTIVE,
    Z_BETTER,
    Picks,
    champion,
    prospective_scores,
)


def pick(did: str, step: int, mean: float, std: float) -> dict:
    return {"design_id": did, "design": {"layers": [did]}, "conditions": {}, "round": step, "source": "ucb",
            "prediction": {"log_icr_mean": mean, "log_icr_std": std}, "score": 0.0}


def campaign_ledger(path, picks_per_model: int, errors: dict[int, float], censored_step: int | None = None,
                    noise: float = 0.0) -> Ledger:
    """Models at steps 1..3 (step 3 the final one, no picks); step s's picks measured at truth, predicted at
    truth + errors[s] (+ N(0, noise) each) with std 0.3 (ln ICR). `censored_step`: that model's picks are censored
    measurements."""
    led = Ledger(path)
    rng = np.random.default_rng(0)
    for step in (1, 2, 3):
        truth = rng.normal(1.0, 0.5, picks_per_model)
        off = errors.get(step, 0.0) + noise * rng.standard_normal(picks_per_model)
        picks = [] if step == 3 else [pick(f"s{step}d{k}", step, float(truth[k] + off[k]), 0.3)
                                      for k in range(picks_per_model)]
        led.record_iteration(step, step, 0.0, 4 * step, {}, {"kind": "rf", "path": f"models/step_{step:03d}",
                                                              "sha256": "x"}, picks)
        for p, y in zip(picks, truth, strict=False):
            led.start(p["design_id"])
            t = {"log_icr": float(y), "log_icr_lo": float(y) - 0.1,
                 "log_icr_hi": None if step == censored_step else float(y) + 0.1, "log_on_current": 0.0}
            led.finish(p["design_id"], "completed", json.dumps({}), "md", t)
    return led


def test_an_earlier_model_that_predicted_clearly_better_is_champion_not_the_latest(tmp_path):
    led = campaign_ledger(tmp_path / "l.sqlite", MIN_PROSPECTIVE, {1: 0.0, 2: 1.5})
    scores = prospective_scores(led, "log_icr")
    assert set(scores) == {1, 2} and scores[1][1] == scores[2][1] == MIN_PROSPECTIVE  # the final model: none
    assert scores[1][0] < scores[2][0]
    c = champion(led, "log_icr")
    assert (c.step, c.n) == (1, MIN_PROSPECTIVE) and c.nll == pytest.approx(scores[1][0])
    assert "prospective NLL" in c.rule and "by more than" in c.rule and c.version == led.models()[0]["version"]
    led.close()
    led = campaign_ledger(tmp_path / "m.sqlite", MIN_PROSPECTIVE, {1: 1.5, 2: 0.0})
    assert champion(led, "log_icr").step == 2
    led.close()


def test_an_earlier_model_better_only_by_noise_does_not_displace_the_newest(tmp_path):
    led = campaign_ledger(tmp_path / "l.sqlite", 3 * MIN_PROSPECTIVE, {1: 0.0, 2: 0.05}, noise=0.3)
    (nll1, _, se1), (nll2, _, se2) = prospective_scores(led, "log_icr")[1], prospective_scores(led, "log_icr")[2]
    assert nll1 < nll2 and nll2 - nll1 < Z_BETTER * math.hypot(se1, se2)  # lower, within the noise
    c = champion(led, "log_icr")
    assert c.step == 2 and "the newest scored" in c.rule
    led.close()


def test_once_the_campaign_finished_its_final_model_stands_in_for_the_newest_scored(tmp_path):
    led = campaign_ledger(tmp_path / "l.sqlite", MIN_PROSPECTIVE, {1: 1.5, 2: 0.0})
    assert champion(led, "log_icr").step == 2
    led.set("final_step", 3)
    c = champion(led, "log_icr")
    assert c.step == 3 and c.version == led.models()[-1]["version"] and "stands in for model" in c.rule
    assert c.nll == pytest.approx(prospective_scores(led, "log_icr")[2][0])
    led.close()
    led = campaign_ledger(tmp_path / "m.sqlite", MIN_PROSPECTIVE, {1: 0.0, 2: 1.5})
    led.set("final_step", 3)
    assert champion(led, "log_icr").step == 1  # clearly better than the newest scored: not replaced
    led.close()


def test_the_latest_model_while_too_few_designs_were_predicted_before_they_ran(tmp_path):
    led = campaign_ledger(tmp_path / "l.sqlite", MIN_PROSPECTIVE - 1, {1: 0.0, 2: 1.5})
    c = champion(led, "log_icr")
    assert c.step == 3 and c.nll is None and "the latest" in c.rule
    assert champion(led, "log_icr", min_n=MIN_PROSPECTIVE - 1).step == 1
    led.close()
    assert champion(Ledger(tmp_path / "empty.sqlite"), "log_icr") is None


def test_censored_measurements_are_not_scored(tmp_path):
    led = campaign_ledger(tmp_path / "l.sqlite", MIN_PROSPECTIVE, {1: 0.0, 2: 1.5}, censored_step=1)
    assert 1 not in prospective_scores(led, "log_icr")
    assert champion(led, "log_icr").step == 2  # the only model with uncensored prospective data
    led.close()


def test_nll_is_the_mean_gaussian_negative_log_likelihood(tmp_path):
    led = campaign_ledger(tmp_path / "l.sqlite", MIN_PROSPECTIVE, {1: 0.3, 2: 0.0})
    nll, n, _ = prospective_scores(led, "log_icr")[1]
    assert nll == pytest.approx(0.5 * math.log(2 * math.pi * 0.3**2) + 0.5)  # every error exactly 1 sd
    led.close()


def test_the_icr_objective_is_scored_against_the_fold_of_the_predicted_ln_icr(tmp_path):
    """|ln ICR| is compared with the fold of the pick-time ln ICR prediction (campaign.targets.predictive), also
    for picks that stored no prediction of |ln ICR| itself: predicted ln ICR -(|ln ICR| + 0.3), the mirror image's
    sign, with std 0.3 is one sd off."""
    led = Ledger(tmp_path / "l.sqlite")
    truth = np.linspace(3.0, 4.0, MIN_PROSPECTIVE)
    picks = [pick(f"d{k}", 1, -(y + 0.3), 0.3) for k, y in enumerate(truth)]
    led.record_iteration(1, 1, 0.0, 4, {}, {"kind": "rf", "path": "models/step_001", "sha256": "x"}, picks)
    for p, y in zip(picks, truth, strict=True):
        led.start(p["design_id"])
        led.finish(p["design_id"], "completed", json.dumps({}), "md",
                   {"abs_log_icr": y, "abs_log_icr_lo": y - 0.1, "abs_log_icr_hi": y + 0.1})
    nll, n, _ = prospective_scores(led, "abs_log_icr")[1]
    assert n == MIN_PROSPECTIVE and nll == pytest.approx(0.5 * math.log(2 * math.pi * 0.3**2) + 0.5)
    led.close()


def test_scores_kept_from_one_judgement_to_the_next_equal_scores_read_in_full(tmp_path):
    """The MLflow view keeps the picks it judged (Picks) and reads again only the trials changed since: after new
    picks, a failure, a new model and an extension the scores equal a full read."""
    led = campaign_ledger(tmp_path / "l.sqlite", MIN_PROSPECTIVE, {1: 0.0, 2: 1.5})
    kept = Picks()
    assert prospective_scores(led, "log_icr", kept) == prospective_scores(led, "log_icr")
    more = [pick(f"s4d{k}", 4, 0.2 * k, 0.3) for k in range(MIN_PROSPECTIVE + 1)]
    led.record_iteration(4, 4, 0.0, 30, {}, {"kind": "rf", "path": "models/step_004", "sha256": "x"}, more)
    for k, p in enumerate(more):
        led.start(p["design_id"])
        if k == 0:
            led.finish(p["design_id"], "failed", None, "md", error="boom")
        else:
            led.finish(p["design_id"], "completed", json.dumps({}), "md", {"log_icr": 0.1 * k, "log_icr_lo": 0.0,
                                                                          "log_icr_hi": 0.1 * k + 0.1})
        if k == 3:
            assert prospective_scores(led, "log_icr", kept) == prospective_scores(led, "log_icr")
    full, inc = prospective_scores(led, "log_icr"), prospective_scores(led, "log_icr", kept)
    assert set(inc) == {1, 2, 4} and inc[4][1] == MIN_PROSPECTIVE
    assert inc == full and champion(led, "log_icr", picks=kept) == champion(led, "log_icr")
    led.extend("s4d1", 20.0, 5)  # running on: not a completed pick until it ends
    inc = prospective_scores(led, "log_icr", kept)
    assert inc == prospective_scores(led, "log_icr") and inc[4][1] == MIN_PROSPECTIVE - 1
    led.close()
