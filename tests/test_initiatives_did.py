"""Bayesian difference-in-differences against the simulator's planted intervention, a placebo, and a
churn panel with a known effect.

Intervals are 90% posterior intervals; each test uses a fixed seed, so it is deterministic. The
diagnostic thresholds here are looser than the report's gate (R-hat <= 1.01, ESS >= 400) because the
tests run 4 chains x 500 draws to fit the CI budget: R-hat is the maximum over ~85 parameters.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from cxresearch.data import load_dataset
from cxresearch.data.simulator import Intervention, simulate_dataset
from cxresearch.initiatives.did import churn_by_period, did_churn, did_nps, did_rating, did_table

MCMC = {"draws": 500, "tune": 500, "chains": 4, "seed": 7}


def _healthy(result) -> None:
    d = result.diagnostics
    assert d["divergences"] == 0
    assert d["rhat_max"] < 1.02
    assert d["ess_bulk_min"] > 300 and d["ess_tail_min"] > 300


def _covers(result, value) -> bool:
    low, high = result.summary()["interval"]
    return low <= value <= high


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("iv")
    simulate_dataset(out, customers=20_000, seed=5, population_samples=100_000,
                     intervention=Intervention("branch_visit", 0.5, 0.5))
    return load_dataset(out / "dataset.yaml"), json.loads((out / "truth.json").read_text())["intervention"]


@pytest.fixture(scope="module")
def placebo(tmp_path_factory):
    out = tmp_path_factory.mktemp("placebo")
    simulate_dataset(out, customers=20_000, seed=6, population_samples=1_000)
    data = load_dataset(out / "dataset.yaml")
    units = sorted(data.survey["unit"].dropna().unique())
    pseudo = sorted(np.random.default_rng(1).choice(units, size=len(units) // 2, replace=False).tolist())
    return data, pseudo


@pytest.mark.slow
def test_rating_did_covers_the_planted_effect(planted):
    data, truth = planted
    result = did_rating(data.survey, truth["touchpoint"], truth["treated_units"], ["2"], **MCMC)
    _healthy(result)
    assert _covers(result, truth["true_effect_rating"]), (result.summary(), truth["true_effect_rating"])
    assert result.p_positive > 0.99
    assert len(result.treated_units) == len(truth["treated_units"])


@pytest.mark.slow
def test_nps_did_covers_the_planted_effect(planted):
    data, truth = planted
    result = did_nps(data.survey, truth["treated_units"], ["2"], **MCMC)
    _healthy(result)
    assert _covers(result, truth["true_effect_nps"]), (result.summary(), truth["true_effect_nps"])
    assert result.p_positive > 0.5
    table = did_table([result])
    assert table.loc[0, "unit"] == "NPS points"
    assert table.loc[0, "effect"] == pytest.approx(result.effect.mean())


@pytest.mark.slow
def test_placebo_is_centred_on_zero(placebo):
    """No planted effect, half the units labelled treated at random: both intervals cover 0 and the
    posterior mean is within 2 posterior sd of 0."""
    data, pseudo = placebo
    for result in (did_rating(data.survey, "branch_visit", pseudo, ["2"], **MCMC),
                   did_nps(data.survey, pseudo, ["2"], **MCMC)):
        _healthy(result)
        s = result.summary()
        assert _covers(result, 0.0), s
        assert abs(s["mean"]) < 2 * s["sd"], s
        assert 0.05 < result.p_positive < 0.95


@pytest.mark.slow
def test_churn_did_recovers_a_known_effect():
    """A churn panel generated in the test: 40 units, 2 periods, logistic churn with unit effects, a period
    effect and tau = 0.6 on the log-odds in treated units after the start; the true effect in percentage
    points is computed from the generating probabilities."""
    rng = np.random.default_rng(3)
    units = [f"U{k:02d}" for k in range(40)]
    treated = units[:20]
    unit_effect = dict(zip(units, rng.normal(0, 0.3, 40)))
    rows, true_diff, n_treated_post = [], 0.0, 0
    for u in units:
        for period, shift in (("1", 0.0), ("2", 0.2)):
            n = int(rng.integers(150, 250))
            logit = -2.0 + unit_effect[u] + shift
            d = u in treated and period == "2"
            p = expit(logit + 0.6 * d)
            if d:
                true_diff += n * 100 * (p - expit(logit))
                n_treated_post += n
            rows.append(pd.DataFrame({"unit": u, "period": period, "churn": (rng.random(n) < p).astype(int)}))
    panel = pd.concat(rows, ignore_index=True)
    result = did_churn(panel, treated, ["2"], **MCMC)
    _healthy(result)
    assert _covers(result, true_diff / n_treated_post), (result.summary(), true_diff / n_treated_post)
    assert result.p_positive > 0.95


def test_did_input_errors(planted):
    data, truth = planted
    with pytest.raises(KeyError, match="no column 'nope'"):
        did_rating(data.survey, "nope", truth["treated_units"], ["2"])
    with pytest.raises(ValueError, match=r"post wave\(s\) \['3'\] not in the data"):
        did_nps(data.survey, truth["treated_units"], ["3"])
    with pytest.raises(ValueError, match="none of the treated units"):
        did_nps(data.survey, ["XX-999"], ["2"])
    with pytest.raises(ValueError, match="need both treated and control units"):
        did_nps(data.survey, sorted(data.survey["unit"].unique()), ["2"])
    with pytest.raises(ValueError, match="must be 0/1"):
        did_churn(pd.DataFrame({"unit": ["a", "b"], "period": ["1", "2"], "churn": [0, 2]}), ["a"], ["2"])


def test_churn_by_period_counts_active_customers_and_exits():
    customers = pd.DataFrame({
        "unit": ["A", "A", "B", "B"],
        "start_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-06-01", "2023-01-01"]),
        "end_date": pd.to_datetime(["2024-03-15", None, None, "2024-01-15"]),
    })
    panel = churn_by_period(customers, ["2024-02-01", "2024-07-01"], window_months=3)
    first = panel[panel["period"] == "1"]
    # on 2024-02-01: customers 0 and 1 (A) are active; 2 not yet; 3 already gone. 0 leaves within 3 months
    assert first["unit"].tolist() == ["A", "A"] and first["churn"].tolist() == [1, 0]
    second = panel[panel["period"] == "2"]
    assert second["unit"].tolist() == ["A", "B"] and second["churn"].tolist() == [0, 0]
    with pytest.raises(KeyError, match="customers need column 'end_date'"):
        churn_by_period(customers.drop(columns="end_date"), ["2024-02-01"], 3)
