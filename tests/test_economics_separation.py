"""Separation in the lifelines wrappers: a class without churn, a reference class without churn, a numeric
covariate that splits churners perfectly, and data on which lifelines' own Newton-Raphson fails.

Every file is small and synthetic. What is checked: a term the data cannot estimate shows no number (NaN),
says why in words with the counts, is fitted with a ridge penalty only where it must be, and nothing
raises or prints lifelines' warnings (each test turns warnings into errors); ordinary data gives exactly
lifelines' plain fit.
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError

from cxresearch.economics import CoxResult, fit_cox, fit_parametric, kaplan_meier
from cxresearch.economics.survival import SEPARATION_COLUMNS, SEPARATION_PENALIZER, separation_table

HAZARD = {"detractor": 0.04, "passive": 0.025, "promoter": 0.02}


@pytest.fixture(autouse=True)
def no_warnings() -> Iterator[None]:
    """lifelines' warnings are caught inside the wrappers, never printed raw."""
    # objects other tests left behind in this worker (an unclosed event loop, say) are collected first: freed
    # inside the block, their ResourceWarning would fail a test whose code raised nothing
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def cohort(seed: int = 1, n: int = 1500) -> pd.DataFrame:
    """Monthly tenure (whole months, ties as in real files), uniform censoring, three NPS classes."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(list(HAZARD), n, p=[0.3, 0.3, 0.4])
    churn_time = rng.exponential(1 / pd.Series(classes).map(HAZARD).to_numpy())
    censor = rng.uniform(1, 48, n)
    return pd.DataFrame(
        {
            "tenure": np.ceil(np.minimum(churn_time, censor)),
            "churn": (churn_time <= censor).astype(int),
            "nps_class": classes,
            "score": rng.normal(size=n),
        }
    )


def direct_cox(frame: pd.DataFrame, covariates: list[str], **fit: object) -> CoxPHFitter:
    """lifelines called directly on the same design (reference = first level, sorted)."""
    parts = [
        pd.get_dummies(frame[c], prefix=c, prefix_sep="=", dtype=float).iloc[:, 1:]
        if frame[c].dtype == object
        else frame[[c]]
        for c in covariates
    ]
    X = pd.concat([*parts, frame[["tenure", "churn"]]], axis=1)
    return CoxPHFitter().fit(X, duration_col="tenure", event_col="churn", **fit)


@pytest.fixture(scope="module")
def passive_stay() -> pd.DataFrame:
    """Every passive stays (like 'everyone rating 4-5 stays'): a class with zero events."""
    frame = cohort()
    frame.loc[frame["nps_class"] == "passive", "churn"] = 0
    return frame


def test_a_class_without_churn_is_not_estimable(passive_stay: pd.DataFrame) -> None:
    n_passive = int((passive_stay["nps_class"] == "passive").sum())
    # lifelines alone: a ratio of ~1e-9 with an interval from 0 to infinity, and warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = direct_cox(passive_stay, ["nps_class", "score"])
    assert math.exp(plain.params_["nps_class=passive"]) < 1e-4
    assert plain.confidence_intervals_.loc["nps_class=passive"].iloc[1] > 50  # upper ratio > e^50

    result = fit_cox(passive_stay, covariates=["nps_class", "score"])
    sep = result.separation
    assert list(sep.columns) == list(SEPARATION_COLUMNS) and len(sep) == 1
    row = sep.iloc[0]
    assert (row["term"], row["level"], row["problem"]) == ("nps_class=passive", "passive", "zero events in this level")
    assert (row["customers"], row["events"], row["censored"]) == (n_passive, 0, n_passive)
    hr = result.hazard_ratios.set_index("term")
    passive = hr.loc["nps_class=passive"]
    assert not passive["estimable"]
    assert passive[["coef", "se", "hr", "low", "high", "p"]].isna().all()
    assert passive["note"] == f"not estimable from these data: zero events among {n_passive:,} customers in this level"
    assert hr.loc[["nps_class=promoter", "score"], "estimable"].all()
    assert (hr.loc[["nps_class=promoter", "score"], "note"] == "").all()
    assert np.isfinite(hr.loc[["nps_class=promoter", "score"], ["hr", "low", "high"]].to_numpy()).all()
    # penalised on the separated term only, and said so
    assert result.penalizer == {"nps_class=passive": SEPARATION_PENALIZER, "nps_class=promoter": 0.0, "score": 0.0}
    assert result.penalized_reason.startswith("penalised fit (L2 0.0001 on 'nps_class=passive' only)")
    assert "not estimable from these data (separation)" in result.penalized_reason
    assert result.model_config["penalized_reason"] == result.penalized_reason
    assert result.not_estimable == {"nps_class=passive": passive["note"]}
    # the other ratios are those of the limit of the maximum likelihood: the fit without the passives
    without = direct_cox(passive_stay[passive_stay["nps_class"] != "passive"], ["nps_class", "score"])
    for term in ("nps_class=promoter", "score"):
        assert hr.loc[term, "coef"] == pytest.approx(without.params_[term], abs=2e-3)
        assert hr.loc[term, "se"] == pytest.approx(without.standard_errors_[term], rel=1e-2)
    # summary and hazard_ratio show no number either; the PH test is not run on it
    summary = result.summary(0.9)
    assert summary.loc["log_hazard_ratio[nps_class=passive]"].isna().all()
    assert np.isfinite(summary.loc["log_hazard_ratio[score]", ["mean", "low", "high"]].to_numpy(float)).all()
    assert math.isnan(result.hazard_ratio("nps_class=passive")["mean"])
    ph = result.ph_test.set_index("term")
    assert math.isnan(ph.loc["nps_class=passive", "p"]) and not ph.loc["nps_class=passive", "violated"]


def test_diagnostics_pass_with_the_separated_terms_as_notes(passive_stay: pd.DataFrame) -> None:
    """A penalised fit is not a failure of the gate: the penalty and the not-estimable terms are extras
    (the method names the penalty), and the finiteness check runs over the reported terms."""
    result = fit_cox(passive_stay, covariates=["nps_class", "score"])
    d = result.diagnostics()
    assert d.passed and not d.reasons
    assert "penalised fit (L2 0.0001 on 'nps_class=passive' only)" in d.method
    assert d.extra["penalized"] == result.penalized_reason
    assert list(d.extra["not_estimable"]) == ["nps_class=passive"]
    assert any("zero events among" in note for note in d.extra["notes"])
    assert d.to_dict()["not_estimable"]["nps_class=passive"].startswith("not estimable from these data")


def test_a_reference_class_without_churn_flags_every_contrast(passive_stay: pd.DataFrame) -> None:
    n_passive = int((passive_stay["nps_class"] == "passive").sum())
    result = fit_cox(passive_stay, covariates=["nps_class", "score"], reference={"nps_class": "passive"})
    sep = result.separation
    assert sep["term"].tolist() == ["nps_class=detractor", "nps_class=promoter"]
    assert (sep["level"] == "passive").all() and (sep["events"] == 0).all() and (sep["customers"] == n_passive).all()
    assert (sep["problem"] == "reference level 'passive' has zero events").all()
    hr = result.hazard_ratios.set_index("term")
    assert not hr.loc[["nps_class=detractor", "nps_class=promoter"], "estimable"].any()
    assert hr.loc[["nps_class=detractor", "nps_class=promoter"], ["hr", "low", "high"]].isna().all().all()
    assert "the reference level 'passive' has zero events among" in hr.loc["nps_class=promoter", "note"]
    assert hr.loc["score", "estimable"] and np.isfinite(hr.loc["score", "hr"])
    assert set(result.penalizer) == {"nps_class=detractor", "nps_class=promoter", "score"}
    assert result.penalizer["score"] == 0.0 and result.diagnostics().passed


def test_zero_events_within_strata_and_save_load(passive_stay: pd.DataFrame, tmp_path) -> None:
    frame = passive_stay.assign(segment=np.where(np.arange(len(passive_stay)) % 3 == 0, "mass", "affluent"))
    result = fit_cox(frame, covariates=["nps_class", "score"], strata=["segment"])
    assert result.hazard_ratios.set_index("term").loc["nps_class=passive", "estimable"] == False  # noqa: E712
    assert list(result.fitter.params_.index) == ["nps_class=passive", "nps_class=promoter", "score"]
    loaded = CoxResult.load(result.save(tmp_path / "cox"))
    pd.testing.assert_frame_equal(loaded.hazard_ratios, result.hazard_ratios)
    pd.testing.assert_frame_equal(loaded.separation, result.separation)
    assert loaded.penalized_reason == result.penalized_reason


def test_a_numeric_covariate_that_splits_churners_is_flagged() -> None:
    frame = cohort(seed=2, n=400)
    rng = np.random.default_rng(5)
    # churners all below every active customer, in an order unrelated to when they churned: flagged, and
    # the ratio is finite (it rests on the order of churn alone) but fragile
    frame["split"] = np.where(frame["churn"] == 1, rng.uniform(0, 1, len(frame)), rng.uniform(2, 3, len(frame)))
    result = fit_cox(frame, covariates=["split"])
    row = result.separation.iloc[0]
    assert (row["term"], row["problem"], row["estimable"]) == ("split", "perfectly separates churners", True)
    assert (row["customers"], row["events"]) == (len(frame), int(frame["churn"].sum()))
    hr = result.hazard_ratios.iloc[0]
    assert hr["estimable"] and np.isfinite(hr["hr"]) and "read it with care" in hr["note"]
    assert result.penalized_reason is None
    # and when churn order follows it too (earlier churners lower), the ratio runs off: not estimable
    frame["ordered"] = np.where(frame["churn"] == 1, frame["tenure"], 100 + frame["tenure"])
    result = fit_cox(frame, covariates=["ordered", "score"])
    row = result.separation.iloc[0]
    assert (row["term"], row["problem"], row["estimable"]) == ("ordered", "perfectly separates churners", False)
    hr = result.hazard_ratios.set_index("term")
    assert math.isnan(hr.loc["ordered", "hr"]) and "churn order follows it" in hr.loc["ordered", "note"]
    assert hr.loc["score", "estimable"] and np.isfinite(hr.loc["score", "hr"])
    assert result.penalized_reason is not None and "'ordered'" in result.penalized_reason


def test_a_level_that_all_churned_before_anyone_else_is_not_estimable() -> None:
    frame = cohort(seed=3, n=600)
    first = frame.index[:8]
    frame.loc[first, ["nps_class", "churn", "tenure"]] = ["vip", 1, 0.5]  # churned before the first month
    frame.loc[frame.index[8:], "tenure"] = np.maximum(frame.loc[frame.index[8:], "tenure"], 1.0)
    result = fit_cox(frame, covariates=["nps_class"], reference={"nps_class": "promoter"})
    row = result.separation.set_index("term").loc["nps_class=vip"]
    assert row["problem"] == "no customer still active in this level" and not row["estimable"]
    assert "all 8 customers in this level churned, all before the first churn outside it" in row["note"]
    # when they churn among the others, the ratio is finite: flagged, estimable, with a caution
    frame.loc[first, "tenure"] = [1, 3, 5, 8, 12, 20, 30, 40]
    result = fit_cox(frame, covariates=["nps_class"], reference={"nps_class": "promoter"})
    hr = result.hazard_ratios.set_index("term").loc["nps_class=vip"]
    assert hr["estimable"] and np.isfinite(hr["hr"]) and "none still active" in hr["note"]
    assert result.penalized_reason is None


def test_ordinary_data_is_lifelines_plain_fit() -> None:
    frame = cohort(seed=4)
    result = fit_cox(frame, covariates=["nps_class", "score"], level=0.95)
    assert result.separation.empty and list(result.separation.columns) == list(SEPARATION_COLUMNS)
    assert result.penalizer == 0.0 and result.penalized_reason is None and result.fit_attempts[0]["outcome"] == "ok"
    assert result.hazard_ratios["estimable"].all() and (result.hazard_ratios["note"] == "").all()
    direct = direct_cox(frame, ["nps_class", "score"])
    ours = result.hazard_ratios.set_index("term")
    np.testing.assert_allclose(ours["coef"], direct.params_[ours.index], rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours["se"], direct.standard_errors_[ours.index], rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours["hr"], np.exp(direct.params_[ours.index]), rtol=1e-8, atol=0)
    np.testing.assert_allclose(ours["low"], np.exp(direct.confidence_intervals_.iloc[:, 0]), rtol=1e-8, atol=0)
    np.testing.assert_allclose(ours["high"], np.exp(direct.confidence_intervals_.iloc[:, 1]), rtol=1e-8, atol=0)
    # a float penalizer is lifelines' penalizer as given
    fixed = fit_cox(frame, covariates=["nps_class", "score"], penalizer=0.05, check_ph=False)
    pen = CoxPHFitter(penalizer=0.05).fit(
        pd.concat(
            [
                pd.get_dummies(frame["nps_class"], dtype=float).iloc[:, 1:].add_prefix("nps_class="),
                frame[["score", "tenure", "churn"]],
            ],
            axis=1,
        ),
        duration_col="tenure",
        event_col="churn",
    )
    np.testing.assert_allclose(fixed.hazard_ratios["coef"], pen.params_, rtol=0, atol=1e-8)
    assert fixed.penalized_reason is None and fixed.penalizer == 0.05


def delta_nan_cohort() -> pd.DataFrame:
    """A small class whose 31 customers all churned in the first month, with a few others churning then:
    the maximum likelihood is finite, but lifelines' default Newton step gives 'delta contains nan'."""
    rng = np.random.default_rng(4)
    n, k = int(rng.integers(20, 200)), int(rng.integers(2, 6))
    classes = rng.choice([f"c{i}" for i in range(k)], n)
    churn_time, censor = rng.exponential(20, n), rng.uniform(1, 48, n)
    churn, tenure = (churn_time <= censor).astype(int), np.ceil(np.minimum(churn_time, censor))
    churn[classes == "c1"], tenure[classes == "c1"] = 1, 1.0
    return pd.DataFrame({"tenure": tenure, "churn": churn, "cls": classes})


def test_delta_contains_nan_never_escapes() -> None:
    frame = delta_nan_cohort()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConvergenceError, match="delta contains nan"):
            direct_cox(frame, ["cls"])
        exact = direct_cox(frame, ["cls"], fit_options={"step_size": 0.1, "max_steps": 500})
    for penalizer in ("auto", 0.0):
        result = fit_cox(frame, covariates=["cls"], penalizer=penalizer)
        assert result.fit_attempts[0]["outcome"] == "failed"
        assert "delta contains nan" in result.fit_attempts[0]["message"]
        # the maximum exists: smaller Newton steps find it, with no penalty
        assert result.penalized_reason is None and result.penalizer == 0.0
        assert any("refitted with smaller steps" in n for n in result.notes)
        np.testing.assert_allclose(result.hazard_ratios["coef"], exact.params_, rtol=0, atol=1e-6)
        assert result.diagnostics().passed
    flagged = result.separation.set_index("term").loc["cls=c1"]
    assert flagged["problem"] == "no customer still active in this level" and flagged["estimable"]


def test_a_fit_lifelines_cannot_make_is_penalised_and_said_so() -> None:
    """Two copies of one covariate: lifelines cannot invert the information matrix, whatever the step."""
    frame = cohort(seed=6, n=300).assign(double=lambda d: 2 * d["score"])
    result = fit_cox(frame, covariates=["score", "double"])
    assert result.penalizer == 0.1
    assert result.penalized_reason == (
        "penalised fit (L2 0.1): plain fit: lifelines did not converge (Convergence halted due to matrix "
        "inversion problems) (also with smaller Newton steps); every ratio is shrunk towards 1"
    )
    assert [a["outcome"] for a in result.fit_attempts] == ["failed", "failed", "ok"]
    assert result.diagnostics().passed and result.penalized_reason in result.diagnostics().method


def test_kaplan_meier_and_parametric_on_a_class_without_churn(passive_stay: pd.DataFrame) -> None:
    km = kaplan_meier(passive_stay, by="nps_class")
    medians = km.medians.set_index("group")
    assert medians.loc["passive", "events"] == 0 and math.isinf(medians.loc["passive", "median"])
    model = fit_parametric(passive_stay, covariates=["nps_class"], n_draws=100)
    coef = model.coefficients().set_index("term")
    assert not coef.loc["nps_class=passive", "estimable"] and math.isnan(coef.loc["nps_class=passive", "time_ratio"])
    assert "zero events among" in coef.loc["nps_class=passive", "note"]
    assert coef.loc["nps_class=promoter", "estimable"] and np.isfinite(coef.loc["nps_class=promoter", "time_ratio"])
    assert model.summary().filter(like="nps_class=passive", axis=0).isna().all().all()
    assert list(model.not_estimable) == ["nps_class=passive"] and model.diagnostics().passed
    assert any("rest on no observed churn" in note for note in model.notes)
    reference = fit_parametric(passive_stay, covariates=["nps_class"], reference={"nps_class": "passive"}, n_draws=100)
    assert not reference.coefficients()["estimable"].any()


def test_separation_table_of_a_clean_design_is_empty() -> None:
    from cxresearch.economics.survival import make_design

    frame = cohort(seed=7, n=500)
    design = make_design(frame, ["nps_class", "score"])
    table = separation_table(frame, design, duration_col="tenure", event_col="churn")
    assert table.empty and list(table.columns) == list(SEPARATION_COLUMNS)
