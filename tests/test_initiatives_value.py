"""End-to-end value of initiatives, checked against the simulator's truth computed independently.

The independent computation (``brute_force_value``) simulates the generative model of docs/SIMULATOR.md
directly: emotion noise and logistic recommendation noise for every respondent (common random numbers
for the baseline and the changed ratings), and remaining lifetimes and margins for every active customer
(Weibull proportional hazards conditioned on the current tenure, lognormal base margin, Poisson extra
products). It shares no code with cxresearch.initiatives.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cxresearch.data import load_dataset
from cxresearch.data.simulator import simulate_dataset
from cxresearch.initiatives.catalogue import load_catalogue, touchpoint_info_from_spec
from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel
from cxresearch.initiatives.value import ClvDraws, ClvDrawsValueModel, InitiativeEngine

CLASSES = ("detractor", "passive", "promoter")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """20,000 simulated customers (seed 11), loaded through the dataset spec, and their truth."""
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, customers=20_000, seed=11, population_samples=100_000)
    data = load_dataset(out / "dataset.yaml")
    truth = json.loads((out / "truth.json").read_text())
    survey = data.survey[data.survey["wave"] == "2"].reset_index(drop=True)
    return {"data": data, "truth": truth, "survey": survey, "tps": touchpoint_info_from_spec(data.spec)}


def _engine(world, draws=40, seed=1, horizon=36, rate=0.10, driver=None, value=None, survey=None):
    truth = world["truth"]
    return InitiativeEngine(
        survey if survey is not None else world["survey"],
        world["tps"],
        driver or TrueDriverModel(truth),
        value or TrueValueModel(truth),
        customers=world["data"].customers,
        draws=draws,
        horizon_months=horizon,
        discount_rate_annual=rate,
        seed=seed,
    )


# ------------------------------------------------------------------------------ the independent truth
def _eta_linear(resp: pd.DataFrame, truth: dict, seg: str, mkt: str) -> np.ndarray:
    """alpha_seg + alpha_mkt + sum over used touchpoints of the emotion contribution (docs/SIMULATOR.md)."""
    drivers = truth["drivers"]
    eta = np.full(len(resp), drivers["alpha_seg"][seg] + drivers["alpha_mkt"][mkt])
    for tp, par in truth["touchpoints"].items():
        r = resp[tp].to_numpy(dtype=float)
        used = ~np.isnan(r)
        beta = drivers["beta_by_group"][f"{seg}|{mkt}"][tp]
        term = par["nu"] + beta * (r - 3) + par["penalty"] * (r <= 2) + par["reward"] * (r == 5)
        eta = eta + np.where(used, term, 0.0)
    return eta


def brute_force_value(world, change, scope_segments, horizon, rate, cost_pv, reps=240, batches=8, seed=0):
    """Net value of changing the ratings of the in-scope respondents, by simulating the generative model.

    Returns (estimate, Monte-Carlo standard error over ``batches`` independent batches).
    """
    truth = world["truth"]
    rng = np.random.default_rng(seed)
    cuts = np.asarray(truth["drivers"]["recommend"]["cutpoints"])
    gamma = truth["drivers"]["recommend"]["gamma"]
    unit_rec = truth["drivers"]["unit_effects_recommend"]
    churn, value = truth["churn"], truth["value"]
    disc = (1 + rate) ** (-np.arange(1, horizon + 1) / 12)
    annuity = np.concatenate([[0.0], np.cumsum(disc)])  # discounted value of k months paid, k = 0..horizon
    customers = world["data"].customers
    active = customers[customers["churn"] == 0]
    per_batch = np.zeros(batches)
    for (seg, mkt), resp in world["survey"].groupby(["segment", "market"]):
        if seg not in scope_segments:
            continue
        eta0 = _eta_linear(resp, truth, seg, mkt)
        u = np.array([unit_rec[x] for x in resp["unit"]])
        cust = active[(active["segment"] == seg) & (active["market"] == mkt)]
        tenure = cust["tenure"].to_numpy()
        scale = churn["scale_by_segment"][seg]
        for b in range(batches):
            eta1 = _eta_linear(change(resp.copy(), rng), truth, seg, mkt)  # a random change is redrawn per batch
            k = reps // batches
            z = rng.standard_normal((len(resp), k))
            noise = rng.logistic(size=(len(resp), k))
            y0 = np.searchsorted(cuts, gamma * (eta0[:, None] + z) + u[:, None] + noise)
            y1 = np.searchsorted(cuts, gamma * (eta1[:, None] + z) + u[:, None] + noise)
            shift = np.array(
                [
                    ((y1 <= 6).mean() - (y0 <= 6).mean()),
                    (((y1 >= 7) & (y1 <= 8)).mean() - ((y0 >= 7) & (y0 <= 8)).mean()),
                    ((y1 >= 9).mean() - (y0 >= 9).mean()),
                ]
            )
            clv = np.zeros(3)
            for c, name in enumerate(CLASSES):
                hr = np.exp(churn["log_hr_class"][name] + churn["log_hr_market"][mkt])
                m = 6  # lifetimes per customer and batch
                e = rng.standard_exponential((len(cust), m))
                total = scale * ((tenure[:, None] / scale) ** churn["shape"] + e / hr) ** (1 / churn["shape"])
                months_paid = np.minimum(np.floor(total - tenure[:, None]), horizon).astype(int)
                base = value["base_margin_by_segment"][seg]
                margin = np.exp(base["meanlog"] + base["sdlog"] * rng.standard_normal((len(cust), m))) + value[
                    "product_margin"
                ] * rng.poisson(
                    value["product_rate_by_segment"][seg] * value["product_multiplier_by_class"][name], (len(cust), m)
                )
                clv[c] = (margin * annuity[months_paid]).mean()
            per_batch[b] += len(cust) * float(shift @ clv)
    per_batch -= cost_pv
    return per_batch.mean(), per_batch.std(ddof=1) / np.sqrt(batches)


def _plus_one(tp):
    def change(frame, rng):
        frame[tp] = np.minimum(frame[tp] + 1, 5)  # NaN (not used) stays NaN
        return frame

    return change


# ------------------------------------------------------------------------------------------ tests
def test_true_driver_model_reproduces_the_population_class_mix(world):
    """The class mix of wave-2 respondents under the truth is the simulator's population truth
    (sampling error of ~10,000 respondents ~0.003 plus the population Monte Carlo ~0.002 per share; 4 sd)."""
    mix = TrueDriverModel(world["truth"]).class_mix(world["survey"], 3)
    assert mix.shape == (3, 3) and np.allclose(mix.sum(axis=1), 1)
    pop = world["truth"]["population"]["shares_by_wave"]["2"]
    assert np.allclose(mix[0], [pop[c] for c in CLASSES], atol=0.015)


@pytest.mark.parametrize("effect_touchpoint", ["mobile_app", "statements"])
def test_value_equals_the_truth_computed_independently(world, effect_touchpoint):
    """A +1 rating step (capped at 5) for the mass and affluent segments: the engine's value with the true
    models equals a brute-force simulation of the generative model within 4 Monte-Carlo standard errors
    (plus 0.5% for the engine's quadrature, which is far more precise than that)."""
    horizon, rate = 36, 0.10
    ini = load_catalogue(
        [
            {
                "name": "step",
                "touchpoints": [effect_touchpoint],
                "effect": {"uplift": 1},
                "cost": {"one_off": 20_000},
                "scope": {"segments": ["mass", "affluent"]},
            }
        ]
    )["step"]
    result = _engine(world, horizon=horizon, rate=rate).evaluate([ini])
    assert np.ptp(result.net_value) < 1e-6  # the truth has no posterior uncertainty and the effect is a point
    truth_value, se = brute_force_value(
        world, _plus_one(effect_touchpoint), {"mass", "affluent"}, horizon, rate, cost_pv=20_000
    )
    assert abs(result.net_value.mean() - truth_value) < 4 * se + 0.005 * abs(truth_value + 20_000), (
        result.net_value.mean(),
        truth_value,
        se,
    )
    assert result.customers_in_scope == int(
        ((world["data"].customers["churn"] == 0) & world["data"].customers["segment"].isin(["mass", "affluent"])).sum()
    )


def test_removing_bad_experiences_equals_the_truth(world):
    """All bottom-box (1-2) statements experiences become 4s: exact change, checked against brute force."""
    horizon, rate = 24, 0.08
    ini = load_catalogue(
        [
            {
                "name": "fix",
                "touchpoints": ["statements"],
                "effect": {"remove_bad": 1.0, "becomes": 4},
                "cost": {"one_off": 5_000},
                "scope": {"segments": ["mass"]},
            }
        ]
    )["fix"]
    result = _engine(world, horizon=horizon, rate=rate).evaluate([ini])

    def change(frame, rng):
        r = frame["statements"]
        frame.loc[r <= 2, "statements"] = 4.0
        return frame

    truth_value, se = brute_force_value(world, change, {"mass"}, horizon, rate, cost_pv=5_000)
    assert abs(result.net_value.mean() - truth_value) < 4 * se + 0.005 * abs(truth_value + 5_000)


def test_fractional_uplift_is_a_full_step_with_that_probability(world):
    """+0.5 points = each user's rating rises one step with probability 0.5. The engine takes the exact
    expectation over those coin flips (weighted rows), so its value does not depend on its seed; the brute
    force redraws the coins in each of its batches."""
    horizon, rate = 36, 0.10
    ini = load_catalogue(
        [{"name": "half", "touchpoints": ["mobile_app"], "effect": {"uplift": 0.5}, "cost": {"one_off": 0}}]
    )["half"]
    values = [
        _engine(world, horizon=horizon, rate=rate, seed=s, draws=10).evaluate([ini]).net_value.mean() for s in range(3)
    ]
    assert np.ptp(values) < 1e-9 * abs(values[0])

    def change(frame, rng):
        coin = rng.random(len(frame)) < 0.5
        frame["mobile_app"] = np.minimum(frame["mobile_app"] + coin, 5)
        return frame

    truth_value, se = brute_force_value(world, change, {"mass", "affluent", "private"}, horizon, rate, 0.0, reps=160)
    assert abs(values[0] - truth_value) < 4 * se + 0.005 * abs(truth_value), (values[0], truth_value, se)


def test_removing_half_the_bad_experiences_to_typical_ratings_is_their_expectation(world):
    """Half of the bottom-box statements experiences become a typical rating (drawn from the users' ratings
    above the bottom box). The engine's value is the expectation over who is fixed and what they become
    (the same at every seed), equal to a brute force that redraws both in each batch."""
    horizon, rate = 24, 0.08
    ini = load_catalogue(
        [
            {
                "name": "fix_half",
                "touchpoints": ["statements"],
                "effect": {"remove_bad": 0.5},
                "cost": {"one_off": 0},
                "scope": {"segments": ["mass", "affluent"]},
            }
        ]
    )["fix_half"]
    values = [
        _engine(world, horizon=horizon, rate=rate, seed=s, draws=10).evaluate([ini]).net_value.mean() for s in range(3)
    ]
    assert np.ptp(values) < 1e-9 * abs(values[0])
    survey = world["survey"]
    pool = survey.loc[survey["segment"].isin(["mass", "affluent"]), "statements"].dropna()
    pool = pool[pool > 2].to_numpy()

    def change(frame, rng):
        r = frame["statements"].to_numpy(dtype=float, copy=True)
        fixed = (r <= 2) & (rng.random(len(r)) < 0.5)
        r[fixed] = rng.choice(pool, int(fixed.sum()))
        frame["statements"] = r
        return frame

    truth_value, se = brute_force_value(world, change, {"mass", "affluent"}, horizon, rate, 0.0, reps=160)
    assert abs(values[0] - truth_value) < 4 * se + 0.005 * abs(truth_value), (values[0], truth_value, se)


def test_a_many_point_scale_replaces_bad_experiences_by_ten_quantiles(world):
    """On a 1-100 scale the typical ratings are summarised by 10 equal-probability quantiles: at most 10
    replacement levels, probabilities summing to 1, and a mean within a point of the ratings' own mean."""
    from cxresearch.initiatives.catalogue import TouchpointInfo
    from cxresearch.initiatives.value import REPLACEMENT_NODES

    rng = np.random.default_rng(5)
    survey = world["survey"][["segment", "market", "unit"]].copy()
    survey["score"] = np.clip(np.round(rng.normal(70, 18, len(survey))), 1, 100)
    tps = {"score": TouchpointInfo(key="score", scale_min=1, scale_max=100)}
    ini = load_catalogue([{"name": "fix", "touchpoints": ["score"], "effect": {"remove_bad": 0.5}, "cost": {}}])["fix"]
    engine = InitiativeEngine(
        survey,
        tps,
        TrueDriverModel(world["truth"]),
        TrueValueModel(world["truth"]),
        customers=world["data"].customers,
        draws=2,
    )
    levels, prob = engine._typical_ratings(ini, "score", 40)
    above = survey["score"][survey["score"] > 40]
    assert len(levels) <= REPLACEMENT_NODES and prob.sum() == pytest.approx(1.0)
    assert levels.min() > 40 and abs(levels @ prob - above.mean()) < 1.0
    frame, share, origin = engine.apply(survey, [(ini, 0.5)])
    bad = int((survey["score"] <= 40).sum())
    assert len(frame) == len(survey) + bad * len(levels)
    assert share.sum() == pytest.approx(len(survey)) and np.allclose(np.bincount(origin, weights=share), 1.0)


def test_zero_effect_costs_exactly_its_cost(world):
    """Zero effect: net value = -(one-off + discounted recurring cost) in every draw, also when the driver
    and value models have posterior uncertainty (common random numbers cancel it exactly)."""
    cat = load_catalogue(
        [
            {
                "name": "nothing",
                "touchpoints": ["mobile_app", "call_centre"],
                "effect": {"uplift": 0},
                "cost": {"one_off": 12_000, "recurring_monthly": 500},
            },
            {"name": "no_fix", "touchpoints": ["statements"], "effect": {"remove_bad": 0}, "cost": {"one_off": 3_000}},
        ]
    )
    horizon, rate = 24, 0.08
    recurring_pv = 500 * sum((1 + rate) ** (-m / 12) for m in range(1, horizon + 1))
    engine = _engine(
        world,
        draws=200,
        horizon=horizon,
        rate=rate,
        driver=JitteredTruthDriver(world["truth"]),
        value=JitteredValue(world["truth"]),
    )
    nothing = engine.evaluate([cat["nothing"]], decompose=True)
    assert np.allclose(nothing.net_value, -(12_000 + recurring_pv), rtol=0, atol=1e-6)
    assert nothing.p_roi_positive == 0 and nothing.payback_summary()["p_within_horizon"] == 0
    assert nothing.variance_shares is None
    assert np.allclose(engine.evaluate([cat["no_fix"]]).net_value, -3_000, atol=1e-6)


class JitteredTruthDriver(TrueDriverModel):
    """The true driver model with posterior-like uncertainty: draw d scales the recommendation slope gamma
    by factor d % 8 of a fixed set of 8 (a small real model giving the driver link draw-to-draw variation)."""

    factors = 1 + 0.25 * np.random.default_rng(123).standard_normal(8)

    def class_mix(self, survey, draws, rng=None):
        gamma = self.gamma
        mixes = []
        try:
            for f in self.factors:
                self.gamma = gamma * f
                mixes.append(self.class_probabilities(survey).mean(axis=0))
        finally:
            self.gamma = gamma
        return np.array(mixes)[np.arange(draws) % len(self.factors)]


class JitteredValue(TrueValueModel):
    """True cash flows scaled by a per-draw factor (value-model uncertainty)."""

    def cashflows(self, customers, draws, horizon_months, rng=None):
        base = super().cashflows(customers, draws, horizon_months, rng)
        factors = 1 + 0.3 * np.random.default_rng(321).standard_normal(draws)
        return ClvDraws(base.cashflow * factors[:, None, None])


def test_time_to_effect_discounting_and_payback_in_closed_form(world):
    """Constant cash flow of 10 a month for promoters only, no churn: the benefit is customers x change in
    promoter share x 10 x the discount factors of the months where the effect is active."""
    horizon, rate, draws = 30, 0.12, 5
    cash = np.zeros((draws, 3, horizon))
    cash[:, 2, :] = 10.0
    value = ClvDrawsValueModel(default=ClvDraws(cash))
    driver = TrueDriverModel(world["truth"])
    ini = load_catalogue(
        [
            {
                "name": "app",
                "touchpoints": ["mobile_app"],
                "effect": {"uplift": 1},
                "cost": {"one_off": 1_000, "recurring_monthly": 50},
                "time_to_effect_months": 6,
                "ramp_months": 4,
                "scope": {"markets": ["ES"]},
            }
        ]
    )["app"]
    result = _engine(world, draws=draws, horizon=horizon, rate=rate, value=value).evaluate([ini])
    survey, customers = world["survey"], world["data"].customers
    benefit_per_month = 0.0
    for seg in ("mass", "affluent", "private"):
        resp = survey[(survey["segment"] == seg) & (survey["market"] == "ES")]
        after = resp.assign(mobile_app=np.minimum(resp["mobile_app"] + 1, 5))
        d_promoter = driver.class_mix(after, 1)[0, 2] - driver.class_mix(resp, 1)[0, 2]
        n = int(((customers["segment"] == seg) & (customers["market"] == "ES") & (customers["churn"] == 0)).sum())
        benefit_per_month += n * d_promoter * 10.0
    months = np.arange(1, horizon + 1)
    # linear ramp from month 6 to 10; month m is credited the ramp's average over (m-1, m]:
    # 0.125, 0.375, 0.625, 0.875 in months 7-10, then 1
    active = np.clip((months - 6 - 0.5) / 4, 0, 1)
    disc = (1 + rate) ** (-months / 12)
    cost = 1_000 + 50 * disc.sum()
    expected = benefit_per_month * (active * disc).sum() - cost
    assert np.allclose(result.net_value, expected, rtol=1e-9)
    cumulative = np.cumsum(benefit_per_month * active * disc - 50 * disc) - 1_000
    payback = np.argmax(cumulative >= 0) + 1 if (cumulative >= 0).any() else np.inf
    assert np.all(result.payback_months == payback)
    assert result.roi[0] == pytest.approx(expected / cost)


def test_overlapping_initiatives_are_simulated_jointly(world):
    """Two +1 uplifts on the same touchpoint and customers = one +2 uplift (capped at 5), not the sum of
    two +1 values; an initiative on another touchpoint adds to them on the class-mix scale."""
    cat = load_catalogue(
        [
            {"name": "a", "touchpoints": ["mobile_app"], "effect": {"uplift": 1}, "cost": {"one_off": 100}},
            {"name": "b", "touchpoints": ["mobile_app"], "effect": {"uplift": 1}, "cost": {"one_off": 200}},
            {"name": "two", "touchpoints": ["mobile_app"], "effect": {"uplift": 2}, "cost": {"one_off": 300}},
            {"name": "c", "touchpoints": ["statements"], "effect": {"uplift": 1}, "cost": {"one_off": 400}},
        ]
    )
    engine = _engine(world, draws=10)
    joint = engine.evaluate([cat["a"], cat["b"]])
    assert np.allclose(joint.net_value, engine.evaluate([cat["two"]]).net_value, rtol=1e-12)
    separate = engine.evaluate([cat["a"]]).net_value + engine.evaluate([cat["b"]]).net_value
    assert joint.net_value.mean() < separate.mean() - 0.05 * abs(separate.mean())  # diminishing: caps + link
    three = engine.evaluate([cat["a"], cat["b"], cat["c"]])
    assert np.allclose(three.net_value, joint.net_value + engine.evaluate([cat["c"]]).net_value, rtol=1e-12)


class MeanJitteredDriver(JitteredTruthDriver):
    """Every draw is the average class mix over the jittered driver's draws (the driver 'held at its mean')."""

    def class_mix(self, survey, draws, rng=None):
        mean = super().class_mix(survey, len(self.factors)).mean(axis=0)
        return np.tile(mean, (draws, 1))


def test_uncertainty_decomposition_matches_holding_the_other_sources_fixed(world):
    """Variance shares: each source varied alone, the others held at their mean. Checked by rebuilding
    the 'alone' scenarios by hand: a point effect at the mean effect draw, a mean driver (average class mix
    over its draws), mean customer values. An uplift within one rating step moves the expected class mix
    linearly (the engine takes the expectation over who steps up), so the engine's interpolation between
    effect levels equals the hand-built point effect to rounding."""
    uncertain = load_catalogue(
        [{"name": "u", "touchpoints": ["mobile_app"], "effect": {"uplift": [0.2, 1.0]}, "cost": {"one_off": 1_000}}]
    )["u"]
    true_only = _engine(world, draws=300).evaluate([uncertain], decompose=True)
    assert true_only.variance_shares["effect_size"] == pytest.approx(1.0, abs=1e-9)

    draws = 400
    jittered = _engine(
        world, draws=draws, driver=JitteredTruthDriver(world["truth"]), value=JitteredValue(world["truth"])
    )
    full = jittered.evaluate([uncertain], decompose=True)
    shares = full.variance_shares
    assert all(shares[k] > 0 for k in ("effect_size", "driver_model", "value_model"))
    assert sum(shares.values()) == pytest.approx(1.0)
    total = np.var(full.net_value)
    mean_values = ClvDrawsValueModel(
        by_stratum={
            s: ClvDraws(np.repeat(jittered.cashflows(s).cashflow.mean(axis=0, keepdims=True), draws, axis=0))
            for s in jittered.strata
        }
    )
    mean_effect = float(jittered.effect_draws(uncertain).mean())
    at_mean_effect = load_catalogue(
        [{"name": "u", "touchpoints": ["mobile_app"], "effect": {"uplift": mean_effect}, "cost": {"one_off": 1_000}}]
    )["u"]
    driver_alone = _engine(world, draws=draws, driver=JitteredTruthDriver(world["truth"]), value=mean_values)
    assert np.var(driver_alone.evaluate([at_mean_effect]).net_value) / total == pytest.approx(
        shares["driver_model"], rel=1e-6
    )
    effect_alone = _engine(world, draws=draws, driver=MeanJitteredDriver(world["truth"]), value=mean_values)
    assert np.var(effect_alone.evaluate([uncertain]).net_value) / total == pytest.approx(
        shares["effect_size"], rel=1e-6
    )
    value_alone = _engine(
        world, draws=draws, driver=MeanJitteredDriver(world["truth"]), value=JitteredValue(world["truth"])
    )
    assert np.var(value_alone.evaluate([at_mean_effect]).net_value) / total == pytest.approx(
        shares["value_model"], rel=1e-6
    )
    point = jittered.evaluate(
        [
            load_catalogue(
                [{"name": "p", "touchpoints": ["mobile_app"], "effect": {"uplift": 0.6}, "cost": {"one_off": 1_000}}]
            )["p"]
        ],
        decompose=True,
    )
    assert point.variance_shares["effect_size"] == pytest.approx(0.0, abs=1e-12)


def test_effect_grid_interpolation_matches_direct_evaluation(world):
    """Per-draw effects are interpolated between simulated levels: at a draw's own effect, a direct
    simulation of that exact level agrees to 1% of the benefit (on two touchpoints the expected shift is
    not exactly linear between levels: both may step up)."""
    uncertain = load_catalogue(
        [
            {
                "name": "u",
                "touchpoints": ["mobile_app", "website"],
                "effect": {"uplift": [0.1, 0.9]},
                "cost": {"one_off": 0},
            }
        ]
    )["u"]
    engine = _engine(world, draws=50)
    result = engine.evaluate([uncertain])
    effects = engine.effect_draws(uncertain)
    for d in (0, 7, 31):
        direct = 0.0
        for stratum in engine.strata:
            shift = engine.class_mix(stratum, [(uncertain, effects[d])])[d] - engine.class_mix(stratum)[d]
            clv = engine.cashflows(stratum).clv_by_class(0.10, 36)[d]
            direct += engine.customer_counts.get(stratum, 0) * shift @ clv
        assert result.net_value[d] == pytest.approx(direct, rel=0.01)
