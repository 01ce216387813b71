"""Transactional measurement: touchpoint scorecards (exact Dirichlet over the scale points), not-applicable
as missing, the journey map, and coverage of the simulator's true means and top-box shares."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cxresearch.data.spec import Scale, Touchpoint
from cxresearch.measurement import journey_map, rating_draws, touchpoint_scorecard, touchpoint_wave_change
from cxresearch.measurement.touchpoints import box_labels, journey_stages
from test_measurement_data import family_z, min_coverage, simulated, within


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return simulated(tmp_path_factory)


TPS = {
    "app": Touchpoint(
        column="tp_app",
        label="Mobile app",
        channel="digital",
        stage="usage",
        scale=Scale(min=1, max=5),
        not_applicable=[0],
    ),
    "call": Touchpoint(
        column="tp_call",
        label="Call centre",
        channel="phone",
        stage="service",
        scale=Scale(min=1, max=5),
        not_applicable=[99],
    ),
    "open": Touchpoint(
        column="tp_open", label="Account opening", channel="branch", stage="onboarding", scale=Scale(min=1, max=5)
    ),
}


def test_rating_posterior_is_the_exact_dirichlet_with_one_answer_of_prior_over_the_scale_points() -> None:
    values = np.array([1] * 10 + [2] * 5 + [3] * 20 + [4] * 40 + [5] * 25 + [np.nan] * 30)
    draws = 40_000
    d = rating_draws(values, Scale(min=1, max=5), draws=draws, seed=1, top_box_points=1, bottom_box_points=2)
    alpha = np.array([10, 5, 20, 40, 25]) + 1.0 / 5  # prior of total weight 1 over 5 points; NaN ignored
    a0 = alpha.sum()
    exact_mean = float(np.dot(alpha / a0, np.arange(1, 6)))
    assert abs(d["mean"].mean() - exact_mean) < 4 * d["mean"].std() / math.sqrt(draws)
    top = stats.beta(alpha[4], a0 - alpha[4])  # a sum of Dirichlet components is Beta
    bottom = stats.beta(alpha[0] + alpha[1], a0 - alpha[0] - alpha[1])
    for dist, sample in ((top, d["top_box"]), (bottom, d["bottom_box"])):
        for q in (0.05, 0.95):
            exact = dist.ppf(q)
            se = math.sqrt(q * (1 - q) / draws) / dist.pdf(exact)
            assert abs(np.quantile(sample, q) - exact) < 4 * se
    assert box_labels(Scale(min=1, max=5)) == {"top_box": "5", "bottom_box": "1-2"}
    assert box_labels(Scale(min=0, max=10), 2, 3) == {"top_box": "9-10", "bottom_box": "0-2"}


def test_not_applicable_is_missing_never_the_lowest_score() -> None:
    rng = np.random.default_rng(0)
    answers = rng.integers(3, 6, size=200).astype(float)  # real answers 3-5: nobody rated low
    app = answers.copy()
    app[::4] = 0  # "not applicable" code 0 left in the frame
    call = answers.copy()
    call[::5] = 99
    opened = answers.copy()
    opened[::3] = np.nan  # blank
    survey = pd.DataFrame(
        {
            "customer_id": pd.array([f"c{i % 150}" for i in range(200)], dtype="string"),
            "app": app,
            "call": call,
            "open": opened,
        }
    )
    card = touchpoint_scorecard(survey, TPS, draws=2000, seed=1).set_index("touchpoint")
    for key, used in (("app", app != 0), ("call", call != 99), ("open", ~np.isnan(opened))):
        assert card.loc[key, "n_answers"] == used.sum()
        assert card.loc[key, "observed_bottom_box"] == 0.0  # not one low score: the codes were not scored
        assert card.loc[key, "observed_mean"] == pytest.approx(answers[used].mean())
        assert card.loc[key, "usage"] == pytest.approx(used.mean())
        assert card.loc[key, "n_customers"] == survey.loc[used, "customer_id"].nunique()
    # an undeclared code is refused, with the column named
    survey.loc[0, "open"] = 0.0
    with pytest.raises(ValueError, match=r"survey column 'open'.*\[0\.0\].*outside the scale"):
        touchpoint_scorecard(survey, TPS, draws=100)
    with pytest.raises(KeyError, match="not declared"):
        touchpoint_scorecard(survey, TPS, touchpoints=["nope"])


def test_journey_map_orders_rows_by_journey_stage_and_has_one_column_per_segment() -> None:
    rng = np.random.default_rng(1)
    survey = pd.DataFrame(
        {
            "segment": pd.array(["mass", "private"] * 100, dtype="string"),
            "app": rng.integers(1, 6, 200).astype(float),
            "call": rng.integers(1, 6, 200).astype(float),
            "open": rng.integers(1, 6, 200).astype(float),
        }
    )
    card = touchpoint_scorecard(survey, TPS, by="segment", draws=500, seed=2)
    table = journey_map(card, TPS, by="segment", metric="top_box")
    assert journey_stages(TPS) == ["usage", "service", "onboarding"]  # spec order
    assert list(table.index) == ["Usage: Mobile app", "Service: Call centre", "Onboarding: Account opening"]
    assert list(table.columns) == ["mass", "private"]
    expected = card.set_index(["segment", "touchpoint"]).loc[("private", "call"), "top_box"]
    assert table.loc["Service: Call centre", "private"] == pytest.approx(expected)


def test_scorecard_covers_the_true_means_and_top_box_shares(sim: dict) -> None:
    data, population = sim["data"], sim["truth"]["population"]
    checks, in_90 = [], []
    for wave in ("1", "2"):
        rows = data.survey[data.survey["wave"] == wave]
        card = touchpoint_scorecard(rows, data.spec, draws=4000, seed=int(wave)).set_index("touchpoint")
        for key in data.spec.survey.touchpoints:
            for metric, truth_key in (("mean", "mean_rating_by_wave"), ("top_box", "top_box_by_wave")):
                truth = population[truth_key][wave][key]
                se = population["se"][truth_key][wave][key]
                row = card.loc[key]
                sd = (row[f"{metric}_high"] - row[f"{metric}_low"]) / (2 * 1.6449)  # 90% interval -> sd
                checks.append((row[metric], truth, sd, se, wave, key, metric))
                in_90.append(row[f"{metric}_low"] <= truth <= row[f"{metric}_high"])
    z = family_z(len(checks))
    for est, truth, sd, se, *where in checks:
        assert within(est, truth, sd, se, z), (where, est, truth, sd)
    assert np.mean(in_90) >= min_coverage(len(in_90)), np.mean(in_90)


def test_touchpoint_wave_change_finds_the_planted_changes(sim: dict) -> None:
    data, population = sim["data"], sim["truth"]["population"]
    changes = touchpoint_wave_change(data.survey, data.spec, draws=4000, seed=3).set_index("touchpoint")
    z = family_z(2 * len(changes))
    for key, row in changes.iterrows():
        for metric, truth_key in (("mean", "mean_rating_by_wave"), ("top_box", "top_box_by_wave")):
            truth = population[truth_key]["2"][key] - population[truth_key]["1"][key]
            se = math.hypot(population["se"][truth_key]["2"][key], population["se"][truth_key]["1"][key])
            sd = (row[f"{metric}_change_high"] - row[f"{metric}_change_low"]) / (2 * 1.6449)
            assert within(row[f"{metric}_change"], truth, sd, se, z), (key, metric, row[f"{metric}_change"], truth)
    # mobile app quality rose in wave 2 and statements fell: the posterior says so clearly
    assert changes.loc["mobile_app", "mean_p_increase"] > 0.99
    assert changes.loc["statements", "mean_p_increase"] < 0.01
