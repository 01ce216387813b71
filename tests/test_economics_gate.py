"""The piecewise-exponential survival model passes its diagnostics gate at the default target_accept (0.9).

Hierarchical covariates with few levels (segments, markets: at most ``fixed_scale_levels``) get zero-sum
offsets with a fixed prior sd (``group_offset_sd``): no between-level sd to learn, so no funnel. On the
synthetic data here (3 segments of very unequal size, one with about 60 events) the learned-sd model it
replaces diverges at target_accept 0.9 (measured on data seeds 1-8: 4-26 divergences in 4,000 draws, 7 of 8
fits fail the gate), the fixed-scale one passes on all 8 with none (bulk ESS 3,200-4,000). A class with
zero events (its log hazard ratio bounded above by the data, below by the prior) samples cleanly too.
Every fit is small (tens of exposure cells, 4 chains x 1000 draws after 500 tuning steps: a few seconds
each; with 500 draws per chain the gate's R-hat <= 1.01 fails now and then by chance alone, on well-mixed
chains).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import PiecewiseExponentialFit, build_exposure_table, fit_piecewise_exponential
from cxresearch.economics.bayes_survival import FIXED_SCALE, build_model
from cxresearch.protocol import DifferentModelError

H0 = 0.02  # true monthly hazard of class "a" at the average segment
SEGMENT_OFFSET = {"s1": -0.30, "s2": 0.05, "s3": 0.25}  # true log-hazard offsets from the segments' average
SEGMENT_SIZE = {"s1": 2000, "s2": 1000, "s3": 150}  # s3: about 60 events
LOG_HR_B = math.log(1.5)
SAMPLING = {"draws": 1000, "tune": 500, "chains": 4}


def segment_cohort(seed: int = 1) -> pd.DataFrame:
    """Constant hazards (the model is correctly specified), uniform censoring over 1-36 months."""
    rng = np.random.default_rng(seed)
    segment = np.concatenate([[s] * n for s, n in SEGMENT_SIZE.items()])
    cls = rng.choice(["a", "b"], size=len(segment))
    log_h = math.log(H0) + pd.Series(segment).map(SEGMENT_OFFSET).to_numpy() + np.where(cls == "b", LOG_HR_B, 0.0)
    churn_time = rng.exponential(1 / np.exp(log_h))
    censor = rng.uniform(1.0, 36.0, size=len(segment))
    return pd.DataFrame(
        {
            "tenure": np.minimum(churn_time, censor),
            "churn": (churn_time <= censor).astype(int),
            "segment": segment,
            "cls": cls,
        }
    )


def zero_event_cohort(seed: int = 7) -> pd.DataFrame:
    """3 classes x 400 customers, administrative censoring at 36 months; class "none" never churns."""
    rng = np.random.default_rng(seed)
    hazards = {"a": H0, "b": 2 * H0, "none": 0.0}
    cls = np.repeat(list(hazards), 400)
    h = pd.Series(cls).map(hazards).to_numpy()
    churn_time = np.where(h > 0, rng.exponential(1 / np.where(h > 0, h, 1.0)), np.inf)
    return pd.DataFrame({"tenure": np.minimum(churn_time, 36.0), "churn": (churn_time <= 36.0).astype(int), "cls": cls})


def region_cohort(seed: int = 5) -> pd.DataFrame:
    """8 regions (more than fixed_scale_levels): the between-region sd is learned."""
    rng = np.random.default_rng(seed)
    offsets = dict(zip([f"r{i}" for i in range(8)], rng.normal(0.0, 0.3, 8), strict=True))
    region = np.repeat(list(offsets), 500)
    log_h = math.log(H0) + pd.Series(region).map(offsets).to_numpy()
    churn_time = rng.exponential(1 / np.exp(log_h))
    censor = rng.uniform(1.0, 36.0, size=len(region))
    return pd.DataFrame(
        {"tenure": np.minimum(churn_time, censor), "churn": (churn_time <= censor).astype(int), "region": region}
    )


def _fit(exposure, **kwargs) -> PiecewiseExponentialFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_piecewise_exponential(exposure, **SAMPLING, seed=1, **kwargs)


@pytest.fixture(scope="module")
def segment_exposure():
    return build_exposure_table(segment_cohort(), covariates=["cls", "segment"])


@pytest.fixture(scope="module")
def segment_fit(segment_exposure) -> PiecewiseExponentialFit:
    """Fitted at the default target_accept (not passed)."""
    return _fit(segment_exposure, fixed=["cls"], hierarchical=["segment"], reference={"cls": "a"})


@pytest.fixture(scope="module")
def region_fit() -> PiecewiseExponentialFit:
    exposure = build_exposure_table(region_cohort(), covariates=["region"])
    return _fit(exposure, hierarchical=["region"])


def _assert_baseline_is(fit: PiecewiseExponentialFit, hazard: float) -> None:
    """Every period's baseline hazard within 3.5 posterior sds of the true constant hazard."""
    summary = fit.summary()
    rows = summary[summary.index.str.startswith("baseline_hazard[")]
    assert len(rows) == len(fit.breaks)
    for name, row in rows.iterrows():
        assert abs(row["mean"] - hazard) < 3.5 * row["sd"], (name, row.to_dict())


def _assert_clean(fit: PiecewiseExponentialFit) -> None:
    d = fit.diagnostics()
    assert d.passed, d.reasons
    assert d.divergences == 0, d.to_dict()


# --- few levels: fixed-scale offsets ----------------------------------------------------------------------
def test_fixed_scale_segments_pass_the_gate_at_the_default_target_accept(segment_fit) -> None:
    assert segment_fit.sampler_config["target_accept"] == 0.9
    assert segment_fit.parametrization == {"segment": FIXED_SCALE}
    _assert_clean(segment_fit)


def test_fixed_scale_segments_recover_the_true_offsets(segment_fit) -> None:
    """Within 3 posterior sds of the truth (sds 0.05-0.09 here; fixed seed). The fixed prior sd 0.5 barely
    moves levels with 60-700 events: each posterior sd is within 10% of the data's own standard error
    (sqrt(1 / events) x the zero-sum factor), so the prior does not narrow the intervals either."""
    table = segment_cohort().groupby("segment")["churn"].sum()
    for s, truth in SEGMENT_OFFSET.items():
        draws = segment_fit.contrast("segment", s)  # against the segments' average
        assert abs(draws.mean() - truth) < 3 * draws.std(), (s, draws.mean(), draws.std())
        # se of log(rate_s) - mean_k log(rate_k): sqrt((1 - 2/3) / e_s + sum_k 1 / (9 e_k))
        se = math.sqrt((1 - 2 / 3) / table[s] + sum(1 / (9 * table[k]) for k in table.index))
        assert draws.std() == pytest.approx(se, rel=0.1), (s, draws.std(), se)
    log_hr = segment_fit.contrast("cls", "b")
    assert abs(log_hr.mean() - LOG_HR_B) < 3 * log_hr.std()
    _assert_baseline_is(segment_fit, H0)  # class a at the segments' average: the centring is undone


def test_learned_sd_diverges_where_the_fixed_scale_does_not() -> None:
    """Why the fixed scale: learning a between-segment sd from 3 segments (here non-centred, since s3 has
    fewer than 100 events) leaves a funnel that NUTS at target_accept 0.9 does not cross cleanly (26
    divergences on this data seed); the fixed-scale offsets on the same data have none."""
    exposure = build_exposure_table(segment_cohort(seed=3), covariates=["cls", "segment"])
    args = {"fixed": ["cls"], "hierarchical": ["segment"], "reference": {"cls": "a"}}
    learned = _fit(exposure, **args, fixed_scale_levels=0)
    assert learned.parametrization == {"segment": "non-centred"}
    assert learned.diagnostics().divergences > 0
    fixed_scale = _fit(exposure, **args)
    assert fixed_scale.parametrization == {"segment": "fixed-scale"}
    _assert_clean(fixed_scale)


def test_model_config_records_the_fixed_scale_choice(segment_fit) -> None:
    config = segment_fit.model_config
    assert config["fixed_scale_levels"] == 5 and config["group_offset_sd"] == 0.5
    assert config["parametrization"] == {"segment": "fixed-scale"}
    assert config["priors"] == {"sd_log_hr": 2.0, "sd_baseline": 2.0, "scale_group_sd": 0.5}
    # no variance parameter: the gate checks the offsets themselves
    assert segment_fit.free_parameters == ["log_h0", "log_hr_cls", "effect_segment"]
    assert "sigma_segment" not in segment_fit.idata.posterior
    np.testing.assert_allclose(segment_fit.effect_draws("segment").sum(axis=1), 0.0, atol=1e-9)  # zero-sum


def test_summary_and_group_sd_report_the_fixed_scale(segment_fit) -> None:
    summary = segment_fit.summary(level=0.9)
    assert not any(name.startswith("group_sd") for name in summary.index)  # a prior, not an estimate
    assert {"hazard_ratio[segment=s1]", "log_hazard_ratio[cls=b]", "baseline_hazard[0-1]"} <= set(summary.index)
    sd = segment_fit.group_sd()
    assert sd.to_dict("records") == [{"covariate": "segment", "sd": 0.5, "low": 0.5, "high": 0.5, "kind": "fixed"}]
    hr = segment_fit.hazard_ratios().set_index("term")
    assert hr.loc["segment=s3", "kind"] == "hierarchical" and hr.loc["segment=s3", "reference"] == "average"


# --- many levels: the sd is still learned -----------------------------------------------------------------
def test_many_levels_learn_their_sd(region_fit) -> None:
    assert region_fit.parametrization == {"region": "centred"}  # every region has >= 100 events
    assert region_fit.free_parameters == ["log_h0", "sigma_region", "effect_region"]
    _assert_clean(region_fit)
    row = region_fit.summary(level=0.9).loc["group_sd[region]"]
    assert row["scale"] == "sd of log hazard" and 0.05 < row["low"] < row["high"] < 1.0
    sd = region_fit.group_sd(level=0.9).iloc[0]
    assert sd["kind"] == "learned" and sd["low"] == pytest.approx(row["low"])


def test_parametrization_choices_and_arguments(segment_exposure) -> None:
    region = build_exposure_table(region_cohort(), covariates=["region"])

    def choose(exposure, **kw) -> dict[str, str]:
        return build_model(exposure, **kw)[1]["parametrization"]

    assert choose(segment_exposure, hierarchical=["segment"]) == {"segment": "fixed-scale"}
    assert choose(segment_exposure, hierarchical=["segment"], fixed_scale_levels=2) == {"segment": "non-centred"}
    assert choose(region, hierarchical=["region"]) == {"region": "centred"}
    assert choose(region, hierarchical=["region"], fixed_scale_levels=8) == {"region": "fixed-scale"}
    assert choose(region, hierarchical=["region"], parametrization="fixed-scale") == {"region": "fixed-scale"}
    assert choose(segment_exposure, hierarchical=["segment"], parametrization={"segment": "centred"}) == {
        "segment": "centred"
    }
    with pytest.raises(ValueError, match="parametrization"):
        build_model(segment_exposure, hierarchical=["segment"], parametrization="fixed")
    with pytest.raises(KeyError, match="not hierarchical"):
        build_model(segment_exposure, hierarchical=["segment"], parametrization={"segmnet": "centred"})
    with pytest.raises(ValueError, match="group_offset_sd"):
        build_model(segment_exposure, hierarchical=["segment"], group_offset_sd=0.0)
    with pytest.raises(ValueError, match="fixed_scale_levels"):
        build_model(segment_exposure, hierarchical=["segment"], fixed_scale_levels=-1)


# --- a class with zero events ----------------------------------------------------------------------------
def test_a_class_with_zero_events_samples_cleanly() -> None:
    """Its log hazard ratio has no finite estimate: the data bound it above (400 x 36 months at risk
    with no event: a hazard ratio over about 3 / (14,400 x 0.02) = 0.01 would very likely have shown one)
    and the prior N(0, 2) below. A one-sided, smooth posterior: no divergences at target_accept 0.9."""
    frame = zero_event_cohort()
    assert frame.groupby("cls")["churn"].sum()["none"] == 0
    exposure = build_exposure_table(frame, covariates=["cls"])
    fit = _fit(exposure, fixed=["cls"], reference={"cls": "a"})
    _assert_clean(fit)
    # events weight the centring: the zero-event class has weight 0 and does not move the baseline
    np.testing.assert_allclose(fit.centering["cls"][fit.levels["cls"][1:].index("none")], 0.0)
    hr_none = np.exp(fit.contrast("cls", "none"))
    assert np.quantile(hr_none, 0.95) < 0.03  # the data's upper bound (about 0.01), with a margin
    log_hr_b = fit.contrast("cls", "b")
    assert abs(log_hr_b.mean() - math.log(2)) < 3 * log_hr_b.std()
    _assert_baseline_is(fit, H0)


def test_a_reference_level_with_zero_events_warns() -> None:
    exposure = build_exposure_table(zero_event_cohort(), covariates=["cls"])
    with pytest.warns(UserWarning, match="reference level 'none' of 'cls' has no events"):
        build_model(exposure, fixed=["cls"], reference={"cls": "none"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model(exposure, fixed=["cls"], reference={"cls": "a"})


# --- save / load --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["segment_fit", "region_fit"])
def test_save_load_round_trip(request, name: str, tmp_path) -> None:
    fit: PiecewiseExponentialFit = request.getfixturevalue(name)
    folder = fit.save(tmp_path / name)
    back = PiecewiseExponentialFit.load(folder, model_config=fit.model_config, data_hash=fit.data_hash)
    assert back.parametrization == fit.parametrization and back.model_config == fit.model_config
    assert back.free_parameters == fit.free_parameters
    assert back.diagnostics().to_dict() == fit.diagnostics().to_dict()
    pd.testing.assert_frame_equal(back.hazard_ratios(), fit.hazard_ratios())
    pd.testing.assert_frame_equal(back.group_sd(), fit.group_sd())
    pd.testing.assert_frame_equal(back.summary(0.8), fit.summary(0.8))
    for c in fit.hierarchical:
        np.testing.assert_array_equal(back.centering[c], fit.centering[c])
    profile = pd.DataFrame({c: [fit.levels[c][-1]] for c in fit.covariates})
    np.testing.assert_array_equal(back.predict(profile).values, fit.predict(profile).values)
    changed = {**fit.model_config, "group_offset_sd": 1.0}
    with pytest.raises(DifferentModelError, match="model config"):
        PiecewiseExponentialFit.load(folder, model_config=changed)
