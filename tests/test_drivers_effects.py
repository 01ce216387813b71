"""Effects computed through the model, checked against brute-force recomputation and closed forms.

No sampling here: the posterior is a handful of known parameter draws, so every number has an exact
answer computed another way.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cxresearch.drivers import effects as fx
from cxresearch.drivers.draws import dev_features
from cxresearch.drivers.fit import DriverFit
from cxresearch.drivers.kernels import gaussian_suffstat_kernel
from cxresearch.drivers.model import gaussian_statistics, prepare_data
from cxresearch.drivers.spec import default_model_spec
from cxresearch.drivers.summary import fix_first_markdown, results_dict, summarize_drivers
from driver_fakes import fake_fit, kernel_loglik, known_draws

N_DRAWS = 4


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, 1200, 5, population_samples=1000)
    return load_dataset(out / "dataset.yaml")


def _fake_fit(prep, overrides=None, seed=0, diagnostics=None, method="nuts") -> DriverFit:
    """A DriverFit whose posterior is N_DRAWS known draws (random where not overridden)."""
    layout, post = known_draws(prep, N_DRAWS, seed)
    overrides = dict(overrides or {})
    if overrides.pop("no_group_slopes", False):
        overrides.update(
            {eq.name(f"{term}_dev"): 0.0 for eq in layout.equations.values() if eq.slope_dims for term in eq.dev_terms}
        )
    for k, v in overrides.items():
        post[k] = np.broadcast_to(v, post[k].shape).copy()
    return fake_fit(prep, post, layout, gate=diagnostics, method=method)


@pytest.fixture(scope="module")
def prep(demo):
    return prepare_data(demo.survey, default_model_spec(demo.spec), demo.spec)


def test_numpy_linear_predictor_matches_the_likelihood_kernel(prep):
    """The NumPy twin used for effects gives the same log-likelihood as the kernel nutpie samples."""
    fit = _fake_fit(prep)
    post = fx.posterior(fit)
    eta = fx.linear_predictors(post)
    for j in ("emotion", "recommend"):
        eq = post.equations[j]
        features = np.stack([prep.features[t][eq.cols] for t in eq.layout.terms])
        for s in range(N_DRAWS):
            extra = (
                sum(eq.paths[s, i] * prep.scores[src] for i, src in enumerate(eq.layout.construct_sources))
                if eq.layout.construct_sources
                else np.zeros(prep.n)
            )
            logp = kernel_loglik(prep, eq, s, np.asarray(extra, dtype=float), j)
            if j == "recommend":
                from cxresearch.drivers.likelihoods import ordered_logistic_probs

                probs = ordered_logistic_probs(eta[j][s], eq.theta[s])
                ours = np.log(probs[np.arange(prep.n), prep.outcomes[j]]).sum()
            else:
                sigma = eq.theta[s, 0]
                resid = prep.outcomes[j] - eta[j][s]
                ours = (-0.5 * (resid / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)).sum()
                # the same equation on per-cell sufficient statistics (what the sampler uses on large data)
                stats = gaussian_statistics(prep, eq.layout).values()
                on_stats = gaussian_suffstat_kernel(
                    eq.coef[s],
                    eq.cell_dev[s],
                    eq.intercept_cell[s],
                    eq.theta[s],
                    features,
                    dev_features(prep, eq.layout),
                    eq.cols,
                    prep.freq,
                    *stats,
                )[0]
                assert on_stats == pytest.approx(ours, rel=1e-9)
            assert logp == pytest.approx(ours, rel=1e-9)


def test_impact_equals_brute_force_recomputation(prep):
    """impact_nps = NPS after pushing the +1 step through emotion and recommend, minus NPS before (a rise of
    25% of a 1-5 range is one step); the default 10% of the range (0.4 points) is one step for 40% of users."""
    fit = _fake_fit(prep, seed=1)
    post = fx.posterior(fit)
    draws = fx.impact_draws(post, population=False, share=0.25)
    default = fx.impact_draws(post, population=False)
    assert fx.improvement_steps(prep.scales[prep.touchpoints[0]]) == (0, pytest.approx(0.4))
    np.testing.assert_allclose(default["nps"], 0.4 * draws["nps"], atol=1e-10)
    base = fx.linear_predictors(post)
    cuts = post.equations["recommend"].theta
    for t, tp in enumerate(prep.touchpoints[:4]):
        moved = copy.copy(prep)
        moved.states = prep.states.copy()
        used = moved.states[:, t] > 0
        moved.states[used, t] = np.minimum(moved.states[used, t] + 1, prep.scales[tp].points)
        moved_post = copy.copy(post)
        moved_post.fit = copy.copy(fit)
        moved_post.fit.prep = moved
        after = fx.linear_predictors(moved_post)
        d_emotion = after["emotion"] - base["emotion"]  # emotion residual held fixed
        eta1 = after["recommend"] + post.equations["recommend"].paths[:, :1] * d_emotion
        d0, p0 = fx._class_probs(base["recommend"], cuts)
        d1, p1 = fx._class_probs(eta1, cuts)
        brute = 100 * ((p1 - d1) - (p0 - d0)).mean(axis=1)
        np.testing.assert_allclose(draws["nps"][:, t], brute, atol=1e-10)
        np.testing.assert_allclose(draws["promoter"][:, t] - draws["detractor"][:, t], brute / 100, atol=1e-12)


def test_impact_is_zero_for_a_touchpoint_without_effect_and_grows_with_its_slope(prep):
    t = prep.touchpoints.index("website")
    coef_e = np.zeros((4, len(prep.touchpoints)))
    coef_r = np.zeros((4, len(prep.touchpoints)))
    fit0 = _fake_fit(prep, {"emotion__coef": coef_e, "recommend__coef": coef_r, "no_group_slopes": True})
    d0 = fx.impact_draws(fx.posterior(fit0), population=False)
    np.testing.assert_allclose(d0["nps"], 0.0, atol=1e-12)
    coef_r[1, t] = 0.3  # slope of website on recommend
    d1 = fx.impact_draws(
        fx.posterior(_fake_fit(prep, {"emotion__coef": coef_e, "recommend__coef": coef_r, "no_group_slopes": True})),
        population=False,
    )
    assert (d1["nps"][:, t] > 0).all()
    assert np.delete(d1["nps"], t, axis=1) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "slope,penalty,reward,expected",
    [
        (0.05, -1.0, 0.0, "must-be"),
        (0.05, 0.0, 1.0, "delighter"),
        (0.4, 0.0, 0.0, "performance"),
        (0.02, 0.0, 0.01, "indifferent"),
    ],
)
def test_kano_class_from_penalty_and_reward(prep, slope, penalty, reward, expected):
    """With known total effects (recommend equation only, no path through emotion) the class is certain."""
    n_tp = len(prep.touchpoints)
    coef_r = np.zeros((4, n_tp))
    # terms: used, slope, penalty, reward; ``slope`` is per rating step, the model's per half range (2 steps on 1-5)
    coef_r[1], coef_r[2], coef_r[3] = 2 * slope, penalty, reward
    coef_r[1, 0], coef_r[2, 0], coef_r[3, 0] = 1.0, 0.0, 0.0  # touchpoint 0: a strong performance driver
    fit = _fake_fit(
        prep,
        {
            "emotion__coef": np.zeros((4, n_tp)),
            "recommend__coef": coef_r,
            "recommend__path": np.zeros(1),
            "no_group_slopes": True,
        },
    )
    kano = fx.kano_classes(fx.posterior(fit))
    assert kano.kano.iloc[0] == "performance"
    assert (kano.kano.iloc[1:] == expected).all()
    assert (kano.p_kano == 1.0).all()
    # closed form on a 1-5 scale: penalty = 2 x slope - penalty term, reward = 2 x slope + reward term
    assert kano.penalty.iloc[1] == pytest.approx(max(0.0, 2 * slope - penalty))
    assert kano.reward.iloc[1] == pytest.approx(max(0.0, 2 * slope + reward))


def test_ranking_and_fix_first_probabilities(prep):
    fit = _fake_fit(prep, seed=2)
    post = fx.posterior(fit)
    n_tp = len(prep.touchpoints)
    imp = np.tile(np.arange(n_tp, 0, -1, dtype=float), (N_DRAWS, 1))  # touchpoint 0 strongest, always
    imp[1, [0, 1]] = imp[1, [1, 0]]  # one draw swaps the first two
    draws = {"nps": imp}
    rank = fx.driver_ranking(post, draws).set_index("touchpoint")
    first, second = prep.touchpoints[0], prep.touchpoints[1]
    assert rank.loc[first, "p_rank_1"] == pytest.approx(0.75)
    assert rank.loc[second, "p_rank_1"] == pytest.approx(0.25)
    probs = rank[[f"p_rank_{r}" for r in range(1, n_tp + 1)]]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0)
    ipa = fx.importance_performance(post, draws).set_index("touchpoint")
    perf = ipa.performance
    expected = [
        (imp[:, t] > np.median(imp, axis=1)).mean() if perf.iloc[t] < perf.median() - 0.05 else None
        for t in range(n_tp)
    ]
    for t, e in enumerate(expected):  # clearly poor performers: P(fix first) = P(important)
        if e is not None:
            assert ipa.p_fix_first.iloc[t] == pytest.approx(e, abs=0.01)
    assert (ipa.p_fix_first <= ipa.p_important + 1e-12).all()


def test_root_causes_point_at_the_touchpoint_with_the_penalty(prep):
    n_tp = len(prep.touchpoints)
    t = prep.touchpoints.index("call_centre")
    coef_r = np.zeros((4, n_tp))
    coef_r[2, t] = -1.5  # a bad call-centre experience: -1.5 logits of recommending
    fit = _fake_fit(prep, {"emotion__coef": np.zeros((4, n_tp)), "recommend__coef": coef_r, "no_group_slopes": True})
    rc = fx.detractor_root_causes(fx.posterior(fit), population=False)
    assert rc.touchpoint.iloc[0] == "call_centre"
    assert rc.excess_detractor_risk_pts.iloc[0] > 5
    assert rc.excess_detractor_risk_pts.iloc[1:].abs().max() < 1e-9


def test_results_payload_and_first_screen_text(prep):
    fit = _fake_fit(prep, seed=3)
    summary = summarize_drivers(fit, max_draws=N_DRAWS)
    payload = results_dict(summary)
    assert set(payload) == {"diagnostics", "outcome", "touchpoints", "paths", "top3", "shared_slopes"}
    assert payload["shared_slopes"] == {}  # every grouping here has enough answers per level for its own slopes
    assert payload["outcome"]["kind"] == "nps" and payload["outcome"]["higher_is_better"] is True
    assert set(payload["diagnostics"]) >= {
        "rhat_max",
        "ess_bulk_min",
        "ess_tail_min",
        "divergences",
        "passed",
        "method",
    }
    for tp in prep.touchpoints:
        entry = payload["touchpoints"][tp]
        assert set(entry) >= {"impact_nps", "p_fix_first", "kano"}
        low, high = entry["impact_nps"]["interval"]
        assert low <= entry["impact_nps"]["mean"] <= high
    assert "emotion__recommend" in payload["paths"]
    assert "branch_visit__emotion" in payload["paths"]
    assert len(payload["top3"]) == 3
    text = fix_first_markdown(summary)
    labels = summary.impacts.set_index("touchpoint").label
    assert all(labels[t] in text for t in payload["top3"])
    assert "90% interval" in text and "Provisional" not in text
    # a failed gate is said on the first screen, an approximate fit is labelled
    failed = _fake_fit(
        prep,
        seed=3,
        diagnostics={**fit.diagnostics().to_dict(), "passed": False, "reasons": ["R-hat 1.2 > 1.01 (x)"]},
        method="approx",
    )
    text = fix_first_markdown(summarize_drivers(failed, max_draws=N_DRAWS))
    assert "Provisional" in text and "R-hat 1.2" in text and "Approximate fit" in text


def test_failed_gate_banner():
    from cxresearch.reports import diagnostics_banner

    html = diagnostics_banner(
        {
            "rhat_max": 1.2,
            "ess_bulk_min": 30,
            "ess_tail_min": 20,
            "divergences": 3,
            "passed": False,
            "method": "nuts (nutpie)",
        }
    )
    assert "MODEL FAILED ITS DIAGNOSTICS GATE" in html
    html = diagnostics_banner(
        {
            "rhat_max": float("nan"),
            "ess_bulk_min": 1000,
            "ess_tail_min": 1000,
            "divergences": 0,
            "passed": True,
            "method": "advi (approximate)",
        }
    )
    assert "approximate" in html


def test_plots_draw_a_mean_outside_its_interval_instead_of_crashing():
    """Kano penalties / rewards are clipped at 0 per draw: with few positive draws the mean exceeds the 95%
    quantile (0). The Kano plot used to raise "'xerr' must not contain negative values" and take the whole
    report down (real survey, 23 touchpoints on 1-100)."""
    import types

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from cxresearch.drivers.plots import plot_kano
    from cxresearch.reports.display import error_bars

    draws = np.r_[np.zeros(97), [2.0, 3.0, 4.0]]  # 3% positive: mean 0.09, 5% and 95% quantiles both 0
    mean, (low, high) = draws.mean(), np.quantile(draws, [0.05, 0.95])
    assert high < mean
    assert np.array_equal(error_bars(mean, low, high), [[mean], [0.0]])
    kano = pd.DataFrame(
        {
            "touchpoint": ["a", "b"],
            "kano": ["indifferent", "must-be"],
            "p_kano": [0.9, 0.8],
            "penalty": [mean, 1.0],
            "penalty_low": [low, 0.6],
            "penalty_high": [high, 1.4],
            "reward": [mean, 0.2],
            "reward_low": [low, 0.0],
            "reward_high": [high, 0.5],
        }
    )
    summary = types.SimpleNamespace(
        kano=kano,
        impacts=pd.DataFrame({"touchpoint": ["a", "b"], "label": ["A", "B"]}),
        words=types.SimpleNamespace(label="recommend"),
    )
    fig = plot_kano(summary)
    assert len(fig.axes[0].collections) > 0
    plt.close(fig)


def test_a_segment_gets_its_own_kano_class_and_its_own_performance(prep):
    """A touchpoint that matters only in one segment (a partially pooled slope deviation there) is indifferent
    for all customers together and a performance driver in that segment's report; one whose bad experiences
    hurt only there (a penalty deviation) is a must-be there; the segment's performance and usage are its
    own customers'."""
    n_tp = len(prep.touchpoints)
    t = prep.touchpoints.index("website")
    coef_r = np.zeros((4, n_tp))
    coef_r[1, 0] = 1.0  # touchpoint 0: a strong performance driver everywhere
    level = prep.group_dims.index("segment")
    offset = sum(len(prep.levels[d]) for d in prep.group_dims[:level])
    private = offset + prep.levels["segment"].index("private")
    slope_dev = np.zeros((1, sum(len(v) for v in prep.levels.values()), n_tp))
    slope_dev[0, private, t] = 2.0  # website: slope 2 per half range in the private segment only
    fit = _fake_fit(
        prep,
        {
            "emotion__coef": np.zeros((4, n_tp)),
            "recommend__coef": coef_r,
            "recommend__path": np.zeros(1),
            "no_group_slopes": True,
        },
    )
    fit.idata.posterior["recommend__slope_dev"][:] = slope_dev[0][None, None]
    # statements: a bad experience hurts badly in the private segment only (its own penalty deviation)
    penalty_dev = np.zeros_like(slope_dev[0])
    penalty_dev[private, prep.touchpoints.index("statements")] = -3.0
    fit.idata.posterior["recommend__penalty_dev"][:] = penalty_dev[None, None]
    post = fx.posterior(fit)
    rows = (prep.frame["segment"].astype(str) == "private").to_numpy()
    everyone = fx.kano_classes(post).set_index("touchpoint")
    segment = fx.kano_classes(post, rows=rows).set_index("touchpoint")
    assert everyone.loc["website", "kano"] == "indifferent" and everyone.loc["statements", "kano"] == "indifferent"
    assert segment.loc["website", "kano"] == "performance" and segment.loc["website", "p_kano"] == 1.0
    assert segment.loc["statements", "kano"] == "must-be" and segment.loc["statements", "p_kano"] == 1.0
    draws = fx.impact_draws(post, rows=rows, population=False)
    ipa = fx.importance_performance(post, draws, rows=rows).set_index("touchpoint")
    st = prep.states[rows, t]
    assert ipa.loc["website", "mean_rating"] == pytest.approx(st[st > 0].mean())  # states 1-5 = ratings 1-5
    table = fx.impact_table(post, draws, rows=rows).set_index("touchpoint")
    assert table.loc["website", "users"] == pytest.approx((st > 0).mean())
