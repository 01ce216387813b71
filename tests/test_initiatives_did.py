"""Bayesian difference-in-differences against the simulator's planted intervention, a placebo, and a
churn panel with a known effect.

Intervals are 90% posterior intervals; each test uses a fixed seed, so it is deterministic. Every fit is
judged by the one gate (cxresearch.diagnostics: R-hat <= 1.01, bulk / tail ESS >= 400, divergences <= 0.1%
of draws, E-BFMI >= 0.3). The tests run 4 chains x 500 draws to fit the CI budget, and R-hat is the maximum
over ~85 parameters, so they require the gate's divergence share and E-BFMI exactly, R-hat and ESS a little
looser, and that the verdict agrees with its figures (a fit that misses the gate says why).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from cxresearch.data import load_dataset
from cxresearch.data.simulator import Intervention, simulate_dataset
from cxresearch.diagnostics import GATE, Diagnostics
from cxresearch.initiatives.did import (
    DidResult,
    churn_by_period,
    combine_diagnostics,
    did_churn,
    did_nps,
    did_rating,
    did_table,
)
from cxresearch.protocol import SUMMARY_COLUMNS

MCMC = {"draws": 500, "tune": 500, "chains": 4, "seed": 7}


def _healthy(result) -> None:
    d = result.diagnostics
    assert isinstance(d, Diagnostics) and d.chains == 4 and d.draws == 2000
    assert d.divergences <= GATE["divergence_share_max"] * d.draws  # the gate's divergence share, exactly
    assert d.bfmi_min is not None and d.bfmi_min >= GATE["bfmi_min"]  # the gate's E-BFMI, exactly
    assert d.rhat_max < 1.02
    assert d.ess_bulk_min > 300 and d.ess_tail_min > 300
    assert d.passed == (not d.reasons)  # a fit that misses the gate says why


def _covers(result, value) -> bool:
    row = result.summary().iloc[0]
    return row["low"] <= value <= row["high"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("iv")
    simulate_dataset(
        out, customers=20_000, seed=5, population_samples=100_000, intervention=Intervention("branch_visit", 0.5, 0.5)
    )
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
    for result in (
        did_rating(data.survey, "branch_visit", pseudo, ["2"], **MCMC),
        did_nps(data.survey, pseudo, ["2"], **MCMC),
    ):
        _healthy(result)
        s = result.summary().iloc[0]
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
    customers = pd.DataFrame(
        {
            "unit": ["A", "A", "B", "B"],
            "start_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-06-01", "2023-01-01"]),
            "end_date": pd.to_datetime(["2024-03-15", None, None, "2024-01-15"]),
        }
    )
    panel = churn_by_period(customers, ["2024-02-01", "2024-07-01"], window_months=3)
    first = panel[panel["period"] == "1"]
    # on 2024-02-01: customers 0 and 1 (A) are active; 2 not yet; 3 already gone. 0 leaves within 3 months
    assert first["unit"].tolist() == ["A", "A"] and first["churn"].tolist() == [1, 0]
    second = panel[panel["period"] == "2"]
    assert second["unit"].tolist() == ["A", "B"] and second["churn"].tolist() == [0, 0]
    with pytest.raises(KeyError, match="customers need column 'end_date'"):
        churn_by_period(customers.drop(columns="end_date"), ["2024-02-01"], 3)


def test_did_result_summary_follows_the_protocol_and_the_gate():
    """DidResult.summary is the standard frame (mean, sd, low, high; attrs level), to_dict its JSON block with
    the gate's diagnostics, and did_table / combine_diagnostics read them; no sampling needed."""
    import arviz as az

    rng = np.random.default_rng(0)
    effect = rng.normal(1.5, 0.5, 4000)
    idata = az.from_dict(
        posterior={"tau": rng.normal(0.3, 0.1, (4, 1000))},
        sample_stats={"diverging": np.zeros((4, 1000), dtype=bool), "energy": rng.normal(0, 1, (4, 1000))},
    )
    from cxresearch.diagnostics import check_mcmc

    cells = pd.DataFrame({"n": [100, 120, 90, 110]})
    result = DidResult(
        outcome="rating:app",
        effect=effect,
        unit_label="rating points",
        diagnostics=check_mcmc(idata, ["tau"]),
        cells=cells,
        tau=effect,
        treated_units=["a"],
        control_units=["b", "c"],
    )
    s80, s95 = result.summary(level=0.8), result.summary(level=0.95)
    assert list(s80.columns[:4]) == list(SUMMARY_COLUMNS) and s80.attrs["level"] == 0.8
    assert result.summary().attrs["level"] == 0.9
    row80, row95 = s80.iloc[0], s95.iloc[0]
    assert row95["low"] < row80["low"] < row80["mean"] < row80["high"] < row95["high"]
    assert row80["mean"] == pytest.approx(effect.mean()) and row80["sd"] == pytest.approx(effect.std(ddof=1))
    assert (row80["low"], row80["high"]) == pytest.approx(tuple(np.quantile(effect, [0.1, 0.9])))
    assert row80["respondents"] == 420 and row80["treated_units"] == 1 and row80["control_units"] == 2
    block = result.to_dict()
    json.dumps(block)  # JSON-native for results.json
    assert block["interval"] == pytest.approx(list(np.quantile(effect, [0.05, 0.95])))
    assert block["level"] == 0.9 and block["diagnostics"]["passed"] is True and "gate" in block["diagnostics"]
    assert "90% interval" in result.describe() and "80% interval" in result.describe(level=0.8)
    table = did_table([result], level=0.8)
    assert table.loc[0, "low"] == pytest.approx(row80["low"]) and table.loc[0, "diagnostics"] == "passed"
    # a second fit that misses the gate (one chain: no R-hat) makes the combined verdict fail, naming it
    short = az.from_dict(posterior={"tau": rng.normal(0.3, 0.1, (1, 200))})
    bad = DidResult(
        outcome="nps",
        effect=effect,
        unit_label="NPS points",
        diagnostics=check_mcmc(short, ["tau"]),
        cells=cells,
        tau=effect,
    )
    combined = combine_diagnostics([result, bad])
    assert not combined.passed and any(r.startswith("nps: ") for r in combined.reasons)
    assert did_table([bad]).loc[0, "diagnostics"] == "failed"
