"""The driver model's one forward pass and predict(), checked against the kernels nutpie samples.

No sampling: the posterior is a handful of known parameter draws (as in test_drivers_effects), so every
number has an exact answer computed another way (the numba kernels' table and gather, the kernels'
log-likelihood, the level deviations themselves).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from cxresearch.drivers.draws import dev_features
from cxresearch.drivers.fit import DriverFit
from cxresearch.drivers.kernels import _gather, build_table, row_offsets
from cxresearch.drivers.model import prepare_data
from cxresearch.drivers.predict import (
    RowInputs,
    fitted_rows,
    forward_pass,
    outcome_probabilities,
    pointwise_log_likelihood,
)
from cxresearch.drivers.spec import default_model_spec
from driver_fakes import fake_fit as make_fake_fit
from driver_fakes import kernel_loglik, known_draws

N_DRAWS = 4


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, 1200, 5, population_samples=1000)
    data = load_dataset(out / "dataset.yaml")
    data.survey["promoter"] = (data.survey["recommend"] >= 9).astype(int)
    return data


def fake_fit(prep, seed=0, overrides=None) -> DriverFit:
    """A DriverFit whose posterior is N_DRAWS known draws (the draws of test_drivers_effects' _fake_fit)."""
    layout, post = known_draws(prep, N_DRAWS, seed)
    post.update(overrides or {})
    return make_fake_fit(prep, post, layout)


def _prep(demo, model=None):
    return prepare_data(demo.survey, model or default_model_spec(demo.spec), demo.spec)


def _fitted_frame(prep) -> pd.DataFrame:
    """The fitted rows as a new survey frame (their original index)."""
    frame = prep.frame.copy()
    frame.index = prep.index
    return frame


BERNOULLI = {
    "touchpoints": "all",
    "constructs": {
        "emotion": {"items": ["emo_happy", "emo_trust", "emo_frustrated"]},
        "promoter": {"items": ["promoter"], "likelihood": "bernoulli"},
    },
    "paths": ["touchpoints -> emotion", "emotion -> promoter", "touchpoints -> promoter"],
    "group_by": ["segment", "market"],
    "outcome": "promoter",
}
GAUSSIAN = {
    "touchpoints": "all",
    "constructs": {"emotion": {"items": ["emo_happy", "emo_trust", "emo_frustrated"]}},
    "paths": ["touchpoints -> emotion"],
    "group_by": ["segment", "market"],
    "outcome": "emotion",
}


def _kernel_eta(prep, eq, s: int, extra: np.ndarray) -> np.ndarray:
    """eta of one equation at draw s by the numba kernels the sampler runs (build_table + _gather)."""
    features = np.stack([prep.features[t][eq.cols] for t in eq.layout.terms])
    table, _ = build_table(
        eq.coef[s], eq.cell_dev[s], eq.intercept_cell[s], features, dev_features(prep, eq.layout), eq.cols, prep.freq
    )
    eta = np.empty(prep.n)
    _gather(
        table,
        np.ascontiguousarray(extra, dtype=float),
        row_offsets(prep.states, prep.cell, eq.cols, prep.n_cells, prep.n_states),
        eta,
    )
    return eta


def _extra(prep, eq, s: int) -> np.ndarray:
    return sum(
        (eq.paths[s, i] * prep.scores[src] for i, src in enumerate(eq.layout.construct_sources)), np.zeros(prep.n)
    )


@pytest.mark.parametrize("model", [None, BERNOULLI, GAUSSIAN], ids=["ordinal", "bernoulli", "gaussian"])
def test_predict_reproduces_the_in_sample_linear_predictors_exactly(demo, model):
    """predict() on the fitted rows, read as new rows (scores re-standardised with the fitted moments), gives
    the linear predictors of the kernels nutpie samples, and the per-row log-likelihood sums to the kernels'."""
    prep = _prep(demo, model)
    fit = fake_fit(prep, seed=1)
    post = fit.posterior()
    outcome = prep.outcome
    eta = fit.predict(_fitted_frame(prep), kind="linear_predictor", mediators="observed")
    assert eta.dims == ("sample", "respondent") and eta.shape == (N_DRAWS, prep.n)
    assert list(eta.respondent.values) == list(prep.index)
    loglik = pointwise_log_likelihood(fit)
    assert set(loglik.data_vars) == set(j for j in prep.resolved.endogenous)
    for s in range(N_DRAWS):
        eq = post.equations[outcome]
        np.testing.assert_allclose(eta.values[s], _kernel_eta(prep, eq, s, _extra(prep, eq, s)), rtol=0, atol=1e-10)
        for j in prep.resolved.endogenous:
            eq = post.equations[j]
            total = float(loglik[j].values[0, s].sum())
            assert total == pytest.approx(kernel_loglik(prep, eq, s, _extra(prep, eq, s), j), rel=1e-10, abs=1e-8)


def test_ordinal_probabilities_and_expectations(demo):
    prep = _prep(demo)
    fit = fake_fit(prep, seed=2)
    rows = demo.survey.iloc[:40]
    for mediators in ("observed", "predicted"):
        probs = fit.predict(rows, kind="probability", mediators=mediators)
        assert probs.dims == ("sample", "respondent", "class") and probs.shape == (N_DRAWS, 40, 11)
        np.testing.assert_array_equal(probs["class"].values, np.arange(11.0))
        np.testing.assert_allclose(probs.sum("class").values, 1.0, atol=1e-12)
        assert (probs.values >= 0).all()
        expected = fit.predict(rows, kind="expected", mediators=mediators)
        np.testing.assert_allclose(expected.values, probs.values @ np.arange(11.0), atol=1e-12)
        assert probs.attrs["mediators"] == mediators and probs.attrs["unseen_levels"] == []


def test_predicted_mediators_are_the_forward_pass_with_emotion_at_its_prediction(demo):
    """mediators='predicted' = the observed-mode pass with emotion's score set to its own linear predictor;
    its probabilities integrate emotion's residual (sd = |path| x sigma) out of the outcome."""
    prep = _prep(demo)
    fit = fake_fit(prep, seed=4)
    post = fit.posterior()
    rows = fitted_rows(post)
    predicted = forward_pass(post, rows, mediators="predicted")
    plugged = RowInputs(states=rows.states, cell=rows.cell, scores={"emotion": predicted["emotion"]})
    np.testing.assert_allclose(
        forward_pass(post, plugged, mediators="observed")["recommend"], predicted["recommend"], atol=1e-12
    )
    eq = post.equations["recommend"]
    sd = np.abs(eq.paths[:, 0] * post.equations["emotion"].theta[:, 0])
    z = np.random.default_rng(0).standard_normal(200_000)
    eta0 = predicted["recommend"][:, :1]
    gh = outcome_probabilities(eta0, eq.theta, "ordered_logistic", sd)
    for s in range(N_DRAWS):  # Monte Carlo over the residual: 200,000 draws, sd of a share < 0.0012
        mc = outcome_probabilities((eta0[s, 0] + sd[s] * z)[None, :], eq.theta[s : s + 1], "ordered_logistic")
        np.testing.assert_allclose(gh[s, 0], mc[0].mean(axis=0), atol=5e-3)


def test_unseen_level_falls_back_to_the_population_with_a_warning(demo):
    """A row of an unseen segment differs from the same row in segment k by exactly segment k's deviations."""
    prep = _prep(demo)
    fit = fake_fit(prep, seed=5)
    post = fit.posterior()
    rows = demo.survey.iloc[:30].copy()
    unseen = rows.assign(segment="new_segment")
    with pytest.warns(UserWarning, match=r"segment: \['new_segment'\]"):
        eta_new = fit.predict(unseen, kind="linear_predictor", mediators="observed")
    assert eta_new.attrs["unseen_levels"] == ["segment=new_segment"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eta_known = fit.predict(rows, kind="linear_predictor", mediators="observed")
    eq = post.equations["recommend"]
    d_seg = prep.group_dims.index("segment")
    level = np.array([prep.levels["segment"].index(v) for v in rows["segment"].astype(str)])  # segment first
    assert d_seg == 0
    states = prep.states[:30] if (prep.index[:30] == rows.index).all() else None
    assert states is not None
    st = states[:, eq.cols]
    own = eq.intercept_level_dev[:, level]
    for term, dev in eq.level_devs.items():  # slope, penalty and reward vary by level
        column = prep.features[term][eq.cols]  # (T_j, S)
        own = own + np.einsum("srt,rt->sr", dev[:, level, :], column[np.arange(len(eq.cols))[None, :], st])
    np.testing.assert_allclose(eta_known.values - eta_new.values, own, atol=1e-10)


def test_bernoulli_and_gaussian_outcomes(demo):
    fit_b = fake_fit(_prep(demo, BERNOULLI), seed=6)
    rows = demo.survey.iloc[:25]
    p_one = fit_b.predict(rows, kind="probability")
    assert p_one.dims == ("sample", "respondent") and ((p_one > 0) & (p_one < 1)).all()
    np.testing.assert_array_equal(fit_b.predict(rows, kind="expected").values, p_one.values)
    fit_g = fake_fit(_prep(demo, GAUSSIAN), seed=7)
    with pytest.raises(ValueError, match="'emotion' is gaussian: it has no class probabilities"):
        fit_g.predict(rows, kind="probability")
    mean = fit_g.predict(rows, kind="expected")
    np.testing.assert_array_equal(mean.values, fit_g.predict(rows, kind="linear_predictor").values)
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_g.predict(rows, kind="mean")


def test_new_rows_errors_name_the_column(demo):
    fit = fake_fit(_prep(demo), seed=8)
    rows = demo.survey.iloc[:5]
    with pytest.raises(ValueError, match=r"new rows.mobile_app: ratings must be whole points on 1-5; got \[2.5\]"):
        fit.predict(rows.assign(mobile_app=2.5))
    with pytest.raises(ValueError, match=r"construct 'emotion' needs item column\(s\) \['emo_trust'\]"):
        fit.predict(rows.drop(columns="emo_trust"), mediators="observed")
    fit.predict(rows.drop(columns="emo_trust"), mediators="predicted")  # emotion predicted from the ratings
    with pytest.raises(ValueError, match=r"missing group column\(s\) \['market'\]"):
        fit.predict(rows.drop(columns="market"))


def test_fitted_driver_model_uses_the_forward_pass_for_any_ordinal_or_binary_outcome(demo):
    from cxresearch.initiatives.fitted import FittedDriverModel

    prep = _prep(demo)
    fit = fake_fit(prep, seed=9)
    rows = demo.survey.iloc[:60]
    model = FittedDriverModel(fit, max_draws=N_DRAWS)
    mix = model.class_mix(rows, N_DRAWS)
    probs = fit.predict(rows, kind="probability", mediators="predicted").values.mean(axis=1)  # (S, 11)
    direct = np.stack([probs[:, :7].sum(axis=1), probs[:, 7:9].sum(axis=1), probs[:, 9:].sum(axis=1)], axis=1)
    np.testing.assert_allclose(mix, direct, atol=1e-4)  # the grid interpolation of the same integral
    np.testing.assert_allclose(model.outcome_mix(rows, N_DRAWS), probs, atol=1e-4)
    binary = FittedDriverModel(fake_fit(_prep(demo, BERNOULLI), seed=10), max_draws=N_DRAWS)
    mix_b = binary.outcome_mix(rows, N_DRAWS)
    assert mix_b.shape == (N_DRAWS, 2) and np.allclose(mix_b.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="NPS classes need a 0-10 recommend outcome; 'promoter' is bernoulli"):
        binary.class_mix(rows, N_DRAWS)
    with pytest.raises(ValueError, match="outcome 'emotion' is gaussian: it has no answer classes"):
        FittedDriverModel(fake_fit(_prep(demo, GAUSSIAN), seed=11), max_draws=N_DRAWS)


ORDINAL = {
    "touchpoints": "all",
    "constructs": {
        "emotion": {"items": ["emo_happy", "emo_frustrated"]},
        "trust": {"items": ["emo_trust"], "likelihood": "ordered_logistic"},
    },
    "paths": ["touchpoints -> emotion", "emotion -> trust", "touchpoints -> trust"],
    "group_by": ["segment", "market"],
    "outcome": "trust",
}


@pytest.mark.parametrize("model", [None, ORDINAL, BERNOULLI, GAUSSIAN], ids=["nps", "ordinal", "bernoulli", "gaussian"])
def test_impact_kernel_equals_pushing_each_change_through_the_equations(demo, model, monkeypatch):
    """The one-pass impact kernel (total contribution tables, linear mediators) gives the numbers of the numpy
    propagation through every equation, for every outcome kind, with the Bayesian bootstrap weights."""
    from cxresearch.drivers import effects as fx

    post = fx.posterior(fake_fit(_prep(demo, model), seed=3))
    assert fx._linear_mediators(post)
    fast = fx.impact_draws(post, population=True, seed=4)
    monkeypatch.setattr(fx, "_linear_mediators", lambda p: False)
    slow = fx.impact_draws(post, population=True, seed=4)
    assert fast.keys() == slow.keys()
    for key in slow:
        assert np.abs(slow[key]).max() > 0
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-12 * max(1.0, np.abs(slow[key]).max()))
