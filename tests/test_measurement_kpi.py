"""KPI tracking: wave-over-wave NPS with uncertainty and P(meeting the target)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cxresearch.measurement import nps_tracking, target_probability, touchpoint_tracking
from test_measurement_data import family_z, simulated, within


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return simulated(tmp_path_factory)


def _two_waves(counts_1: tuple[int, int, int], counts_2: tuple[int, int, int]) -> pd.DataFrame:
    rows = []
    for wave, counts in (("1", counts_1), ("2", counts_2)):
        for value, count in zip((0, 7, 10), counts):
            rows += [(wave, value)] * count
    return pd.DataFrame(rows, columns=["wave", "recommend"]).astype({"wave": "string", "recommend": "Int64"})


def test_target_probability_matches_the_exact_posterior() -> None:
    """With only detractors and promoters the NPS is 100 (2 p - 1), p ~ Beta(1 + promoters, 1 + detractors)
    (the Dirichlet margin after merging passives, here none): P(NPS >= t) is a Beta tail, in closed form."""
    survey = _two_waves((40, 0, 60), (30, 0, 70))
    table = nps_tracking(survey, target_nps=30.0, draws=40_000, seed=1).set_index("wave")
    for wave, (det, pro) in (("1", (40, 60)), ("2", (30, 70))):
        # shares (det, pas, pro) ~ Dirichlet(1 + det, 1, 1 + pro); NPS >= 30 <=> pro - det >= 0.3
        draws = np.random.default_rng(0).dirichlet([1 + det, 1, 1 + pro], 400_000)
        exact = float(np.mean(draws[:, 2] - draws[:, 0] >= 0.3))
        assert table.loc[wave, "p_meets_target"] == pytest.approx(exact, abs=0.01)
    assert np.isnan(table.loc["1", "change_mean"]) and table.loc["2", "change_from"] == "1"
    assert table.loc["2", "change_mean"] == pytest.approx(100 * (71 / 103 - 31 / 103 - 61 / 103 + 41 / 103), abs=0.5)


def test_target_probability_limits() -> None:
    draws = np.random.default_rng(1).normal(10, 2, 100_000)
    assert target_probability(draws, -50) == 1.0 and target_probability(draws, 60) == 0.0
    assert target_probability(draws, 10) == pytest.approx(0.5, abs=0.01)
    assert target_probability(draws, 12) == pytest.approx(stats.norm.sf(1.0), abs=0.01)
    with pytest.raises(ValueError, match="finite"):
        target_probability(draws, float("nan"))


def test_tracking_covers_the_true_nps_per_wave_and_its_change(sim: dict) -> None:
    survey, population = sim["data"].survey, sim["truth"]["population"]
    table = nps_tracking(survey, target_nps=10.0, draws=20_000, seed=2).set_index("wave")
    z = family_z(3)
    for wave in ("1", "2"):
        truth, se = population["shares_by_wave"][wave]["nps"], population["se"]["shares_by_wave"][wave]["nps"]
        sd = (table.loc[wave, "high"] - table.loc[wave, "low"]) / (2 * 1.6449)
        assert within(table.loc[wave, "mean"], truth, sd, se, z), wave
    true_change = population["shares_by_wave"]["2"]["nps"] - population["shares_by_wave"]["1"]["nps"]
    change_sd = (table.loc["2", "change_high"] - table.loc["2", "change_low"]) / (2 * 1.6449)
    assert within(table.loc["2", "change_mean"], true_change, change_sd, 0.0, z)
    # P(meeting the target) is consistent with the interval: the target lies below / above accordingly
    row = table.loc["2"]
    if row["low"] > 10.0:
        assert row["p_meets_target"] > 0.95
    if row["high"] < 10.0:
        assert row["p_meets_target"] < 0.05


def test_tracking_by_segment_and_touchpoint_targets(sim: dict) -> None:
    data = sim["data"]
    by_segment = nps_tracking(data.survey, target_nps=10.0, by="segment", draws=2000, seed=3)
    assert set(by_segment["segment"]) == {"mass", "affluent", "private"}
    assert (
        by_segment.groupby("segment")["wave"].apply(list)
        == pd.Series({s: ["1", "2"] for s in ("affluent", "mass", "private")})
    ).all()
    tp = touchpoint_tracking(data.survey, data.spec, targets={"mobile_app": 0.15}, draws=2000, seed=4)
    app = tp[tp["touchpoint"] == "mobile_app"].set_index("wave")
    truth = sim["truth"]["population"]["top_box_by_wave"]
    assert app.loc["2", "p_increase"] > 0.99  # the planted wave-2 rise of the mobile app
    assert (app.loc["1", "p_meets_target"] < 0.5) == (truth["1"]["mobile_app"] < 0.15)
    with pytest.raises(KeyError, match="not touchpoints"):
        touchpoint_tracking(data.survey, data.spec, targets={"atm": 0.2})
