"""Economics on any outcome and honest words where the data cannot support a number.

Classes from a CSAT answer or a grouping; zero-event and no-active classes named before any model runs;
Net Promoter Economics that reports them as not estimable instead of crashing; word-of-mouth assumptions
with declared ranges kept apart from the data-only value; "no evidence" when that value's interval
includes zero; a negative-control cohort (class independent of churn) fitted end to end.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import (
    ConstantHazardModel,
    WordOfMouthAssumptions,
    customer_profile,
    group_summary,
    net_promoter_economics,
)
from cxresearch.economics.classes import CLASS_COL, assign_classes, class_evidence
from cxresearch.economics.study import headline_markdown, no_evidence


def cohort(n: int = 900, seed: int = 3, hazards: dict[str, float] | None = None) -> pd.DataFrame:
    """Customers with a CSAT 1-5 answer; monthly hazard by CSAT level (exponential), censoring at 1-48."""
    hazards = hazards or {"1": 0.06, "2": 0.05, "3": 0.03, "4": 0.02, "5": 0.015}
    rng = np.random.default_rng(seed)
    csat = rng.integers(1, 6, n)
    rate = np.array([hazards[str(c)] for c in csat])
    t = np.where(rate > 0, rng.exponential(1 / np.maximum(rate, 1e-12)), np.inf)
    c = rng.uniform(1, 48, n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "outcome": csat.astype(float),
            "tenure": np.ceil(np.minimum(t, c)),
            "churn": (t <= c).astype(int),
            "segment": rng.choice(["mass", "private"], n),
            "market": rng.choice(["ES", "NO"], n),
            "margin": rng.gamma(5.0, 6.0, n),
            "products": rng.integers(1, 4, n).astype(float),
            "recommend": np.nan,
            "nps_class": pd.Series([pd.NA] * n, dtype="string"),
        }
    )


CSAT = {"from": "outcome", "levels": {"dissatisfied": [1, 2], "neutral": [3], "satisfied": [4, 5]}}


def test_classes_from_a_csat_outcome_are_ordered_worst_first() -> None:
    frame, scheme = assign_classes(cohort(), CSAT, outcome_label="CSAT")
    assert scheme.levels == ("dissatisfied", "neutral", "satisfied") and scheme.reference == "satisfied"
    assert scheme.word_of_mouth_roles == {"satisfied": "promoter", "dissatisfied": "detractor"}
    expected = frame["outcome"].map(
        {1: "dissatisfied", 2: "dissatisfied", 3: "neutral", 4: "satisfied", 5: "satisfied"}
    )
    assert (frame[CLASS_COL] == expected).all()
    # each value its own class, lowest first, when no levels are given
    _, each = assign_classes(cohort(), {"from": "outcome"})
    assert each.levels == ("1", "2", "3", "4", "5")
    # a binary outcome named by the spec's labels
    binary = cohort().assign(outcome=lambda d: (d["outcome"] >= 4).astype(float))
    _, flag = assign_classes(binary, {"from": "outcome"}, value_labels={1: "Yes", 0: "No"})
    assert flag.levels == ("No", "Yes")


def test_classes_from_a_grouping_carry_no_word_of_mouth() -> None:
    frame, scheme = assign_classes(cohort(), {"from": "segment", "order": ["mass", "private"]})
    assert scheme.levels == ("mass", "private") and scheme.word_of_mouth_roles == {}
    assert (frame[CLASS_COL] == frame["segment"]).all()


def test_bad_class_settings_name_the_values() -> None:
    with pytest.raises(ValueError, match=r"values \['5'\] of 'outcome' belong to no class"):
        assign_classes(cohort(), {"from": "outcome", "levels": {"low": [1, 2], "mid": [3, 4]}})
    with pytest.raises(ValueError, match="'nps' needs a 0-10 recommend outcome"):
        assign_classes(cohort().drop(columns="recommend"), "nps")
    one_to_five = cohort().assign(recommend=lambda d: d["outcome"], nps_class="detractor")
    with pytest.raises(ValueError, match=r"only use 1-5"):
        assign_classes(one_to_five, "nps")
    with pytest.raises(ValueError, match="column 'contract' not found"):
        assign_classes(cohort(), {"from": "contract"})
    with pytest.raises(ValueError, match="gives one class"):
        assign_classes(cohort().assign(segment="mass"), {"from": "segment"})


def test_zero_events_and_no_active_customers_are_named_with_counts() -> None:
    frame = cohort(hazards={"1": 0.06, "2": 0.05, "3": 0.03, "4": 0.0, "5": 0.0})
    frame, scheme = assign_classes(frame, CSAT)
    # every dissatisfied customer churned: none left to value
    bad = frame[CLASS_COL] == "dissatisfied"
    frame.loc[bad, "churn"] = 1
    evidence = class_evidence(frame, scheme)
    n_sat = int((frame[CLASS_COL] == "satisfied").sum())
    assert evidence.value["satisfied"].startswith(f"zero churn events among {n_sat:,} customers")
    assert "no customer still active" in evidence.value["dissatisfied"]
    # the reference (best) class has zero events: no ratio against it is bounded
    assert set(evidence.hazard_ratio) == {"dissatisfied", "neutral"}
    assert all("reference class 'satisfied' has zero churn events" in r for r in evidence.hazard_ratio.values())
    ok = class_evidence(*assign_classes(cohort(), CSAT)[::-1][::-1])
    assert not ok.any


def _npe(frame: pd.DataFrame, scheme, wom: WordOfMouthAssumptions, not_estimable=None, seed: int = 1):
    model = ConstantHazardModel(np.random.default_rng(0).gamma(200, 0.03 / 200, 400), covariates=[CLASS_COL])
    profile = customer_profile(frame, covariates=[CLASS_COL, "segment", "market"], products_col="products")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return net_promoter_economics(
            model,
            profile,
            products=group_summary(frame, by=["segment", CLASS_COL], value_col="products"),
            margin_per_product={"estimate": 4.0, "se": 0.5},
            word_of_mouth=wom,
            horizon_months=24,
            discount_rate_annual=0.1,
            class_col=CLASS_COL,
            classes=scheme.levels,
            word_of_mouth_roles=scheme.word_of_mouth_roles,
            not_estimable=not_estimable,
            seed=seed,
        )


def test_a_class_with_no_active_customer_is_not_estimable_and_nothing_crashes() -> None:
    frame, scheme = assign_classes(cohort(), CSAT)
    frame.loc[frame[CLASS_COL] == "dissatisfied", "churn"] = 1  # nobody dissatisfied is still a customer
    npe = _npe(frame, scheme, WordOfMouthAssumptions(0.2, 0.3, 200.0))
    assert "class:dissatisfied" in npe.not_estimable and "dissatisfied" not in set(npe.clv_by_class["nps_class"])
    move = npe.move("dissatisfied", "satisfied")
    assert not move["estimable"] and np.isnan(move["mean"]) and "no customer" in move["reason"]
    assert npe.move("neutral", "satisfied")["estimable"]
    assert npe.value_at_risk.empty  # value at risk needs worst-class customers
    from cxresearch.economics import study

    table = study.moves_table(npe)
    assert table.set_index("Move one customer").loc["dissatisfied -> satisfied", "Not estimable because"]


def test_classes_flagged_by_the_caller_get_no_number() -> None:
    frame, scheme = assign_classes(cohort(), CSAT)
    npe = _npe(frame, scheme, WordOfMouthAssumptions(), not_estimable={"satisfied": "zero churn events among 360"})
    assert set(npe.clv_by_class["nps_class"]) == {"dissatisfied", "neutral"}
    assert npe.move("neutral", "satisfied")["reason"].startswith("satisfied: zero churn events")
    assert npe.move("dissatisfied", "neutral")["estimable"]


def test_word_of_mouth_ranges_widen_only_the_assumed_component() -> None:
    frame, scheme = assign_classes(cohort(), CSAT)
    point = _npe(frame, scheme, WordOfMouthAssumptions(0.2, 0.3, 200.0))
    ranged = _npe(frame, scheme, WordOfMouthAssumptions([0.1, 0.3], [0.2, 0.4], [100.0, 300.0]))
    for run in (point, ranged):
        data, total = run.move("dissatisfied", "satisfied", "clv"), run.move("dissatisfied", "satisfied")
        assert total["mean"] > data["mean"] + 50  # word of mouth adds on top of the data-only value
    # same data-only draws (same seed), a wider total interval under the declared ranges
    assert point.move("dissatisfied", "satisfied", "clv") == ranged.move("dissatisfied", "satisfied", "clv")
    width = {k: np.diff(r.move("dissatisfied", "satisfied")["interval"])[0] for k, r in (("p", point), ("r", ranged))}
    assert width["r"] > 1.5 * width["p"]
    # midpoints are the point values; the table shows the range
    wom = WordOfMouthAssumptions([0.1, 0.3], 0.3, [100.0, 300.0])
    assert wom.referrals_per_promoter == pytest.approx(0.2) and wom.value_per_referral == pytest.approx(200.0)
    assert wom.table()["range"].tolist()[:2] == ["0.1 to 0.3", "fixed (no range declared)"]
    with pytest.raises(ValueError, match="value_per_referral"):
        WordOfMouthAssumptions(value_per_referral=[300.0, 100.0])


def test_headline_puts_the_data_first_and_says_no_evidence_or_not_estimable() -> None:
    summary = pd.DataFrame(
        {"nps_class": ["detractor", "promoter"], "clv": [500.0, 520.0], "low": [400.0, 430.0], "high": [600.0, 610.0]}
    )
    args = dict(clv_summary=summary, diagnostics={"passed": True}, horizon_months=36, level=0.9, scope="all")
    text = headline_markdown(
        {"mean": 1.06, "interval": [0.97, 1.15]},
        move={"mean": 263.0, "interval": [235.0, 290.0]},
        move_data_only={"mean": 28.0, "interval": [-0.2, 54.0]},
        **args,
    )
    data_line = text.index("from the data alone")
    assert data_line < text.index("word-of-mouth **assumptions**")
    assert "**No evidence** that it is worth anything" in text and "**€28**" in text
    assert "no evidence** of a difference (the interval includes 1)" in text
    blocked = headline_markdown(
        {"mean": None, "interval": [None, None], "estimable": False, "reason": "reference has zero events"},
        move={"mean": float("nan"), "interval": [float("nan")] * 2, "estimable": False, "reason": "promoter: zero"},
        move_data_only={"mean": float("nan"), "interval": [float("nan")] * 2, "estimable": False, "reason": "x"},
        not_estimable={"promoter": "zero churn events among 812 customers"},
        **args,
    )
    assert "not estimable from these data (reference has zero events)" in blocked
    assert "**Not estimable from these data:** promoter: zero churn events among 812 customers" in blocked
    assert "a promoter: not estimable" in blocked and "times**" not in blocked
    assert no_evidence([-1.0, 2.0]) and not no_evidence([1.0, 2.0]) and no_evidence([float("nan"), 1.0])


@pytest.mark.slow
def test_negative_control_gives_no_evidence_whatever_word_of_mouth() -> None:
    """Class independent of churn (same hazard for every CSAT level): the data-only value of moving the worst
    class to the best has an interval covering zero and the headline says "no evidence", even with a large
    word-of-mouth assumption that makes the total clearly positive."""
    from cxresearch.economics import build_exposure_table, fit_piecewise_exponential

    flat = {str(k): 0.03 for k in range(1, 6)}
    frame, scheme = assign_classes(cohort(n=3000, seed=11, hazards=flat), CSAT)
    exposure = build_exposure_table(frame, covariates=[CLASS_COL, "segment", "market"])
    fit = fit_piecewise_exponential(
        exposure,
        fixed=[CLASS_COL],
        hierarchical=["segment", "market"],
        reference={CLASS_COL: scheme.reference},
        draws=1000,
        tune=500,
        chains=4,
        seed=2,
    )
    assert fit.diagnostics().passed, fit.diagnostics()
    profile = customer_profile(frame, covariates=[CLASS_COL, "segment", "market"], products_col="products")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        npe = net_promoter_economics(
            fit.thinned(400),
            profile,
            products=group_summary(frame, by=["segment", CLASS_COL], value_col="products"),
            margin_per_product={"estimate": 0.0, "se": 0.0},
            word_of_mouth=WordOfMouthAssumptions([0.5, 1.0], [0.5, 1.0], [300.0, 500.0]),
            horizon_months=36,
            discount_rate_annual=0.1,
            class_col=CLASS_COL,
            classes=scheme.levels,
            word_of_mouth_roles=scheme.word_of_mouth_roles,
        )
    data = npe.move("dissatisfied", "satisfied", "clv")
    total = npe.move("dissatisfied", "satisfied")
    assert no_evidence(data["interval"]), data
    assert total["interval"][0] > 0  # the assumptions alone make the total look sure
    summary = pd.DataFrame({"nps_class": list(scheme.levels), "clv": [1.0] * 3, "low": [0.0] * 3, "high": [2.0] * 3})
    text = headline_markdown(
        fit.hazard_ratio(CLASS_COL, "dissatisfied"),
        summary,
        total,
        {"passed": True},
        move_data_only=data,
        classes=scheme.levels,
        class_col="nps_class",
        horizon_months=36,
        scope="negative control",
    )
    assert "**No evidence** that it is worth anything" in text


def test_validation_warns_when_a_0_10_recommend_column_only_uses_1_to_5(tmp_path) -> None:
    from cxresearch.data.check import validate_dataset
    from data_factory import raw_frames, write_dataset

    frames = raw_frames(n_customers=80)
    frames["survey"]["nps_raw"] = (frames["survey"]["nps_raw"] % 5 + 1).where(frames["survey"]["nps_raw"].notna())

    def no_recode(spec: dict) -> None:
        spec["survey"]["outcome"].pop("recode")

    report = validate_dataset(write_dataset(tmp_path / "csat", "csv", frames=frames, edit_spec=no_recode))
    assert report.ok, report.summary()
    assert "warning: column 'nps_raw' is declared as the 0-10 recommend answer, but its" in report.summary()
    assert "only use 1-5" in report.summary()
    fine = validate_dataset(write_dataset(tmp_path / "nps", "csv", frames=raw_frames(n_customers=80)), min_answers=1)
    assert fine.ok and "warning" not in fine.summary()


def test_controls_split_into_groups_and_binned_numbers_with_notes() -> None:
    from cxresearch.economics.study import control_terms

    frame = cohort().assign(
        contract=lambda d: np.where(d["customer_id"] % 3 == 0, "two year", "monthly"),
        charges=lambda d: d["margin"] * 1.5,
        constant="x",
    )
    frame.loc[:4, "charges"] = np.nan
    groups, bins, notes = control_terms(frame, ["contract", "charges", "constant"])
    assert groups == ["contract"] and list(bins) == ["charges"]
    edges = bins["charges"]
    assert edges[0] == -np.inf and edges[-1] == np.inf and len(edges) == 5
    assert np.allclose(edges[1:-1], np.quantile(frame["charges"].dropna(), [0.25, 0.5, 0.75]))
    assert notes == [
        "charges: 5 customers without a value (left out of the models)",
        "constant: one value in these data, left out",
    ]
    with pytest.raises(ValueError, match=r"'controls': \['tenure_band'\] are not columns"):
        control_terms(frame, ["tenure_band"])


def test_declared_classes_without_customers_are_left_out_and_one_class_is_refused() -> None:
    from cxresearch.economics.study import present_classes

    five = {"from": "outcome", "levels": {"1": [1], "2": [2], "3": [3], "4": [4], "5": [5]}}
    frame, scheme = assign_classes(cohort(), five)
    frame = frame[frame["outcome"] != 1]  # nobody answered 1 in this market
    restricted, notes = present_classes(frame, scheme)
    assert restricted.levels == ("2", "3", "4", "5") and notes == [
        "Declared classes without customers in this run, left out: 1."
    ]
    with pytest.raises(ValueError, match=r"only \['3'\] has customers in this run"):
        present_classes(frame[frame["outcome"] == 3], scheme)


def test_prior_flags_are_keyed_by_covariate_and_only_unsupported_survival_stops_the_value() -> None:
    from cxresearch.economics.study import not_estimable_ratios, prior_driven_terms, value_not_estimable

    frame, scheme = assign_classes(cohort(), {"from": "outcome", "levels": {"DSL": [1, 2], "mid": [3], "top": [4, 5]}})
    evidence = class_evidence(frame, scheme)
    sensitivity = pd.DataFrame(
        [
            # a control level that happens to share a class's name, set by the prior
            {
                "covariate": "internet",
                "level": "DSL",
                "reference": "No",
                "prior_sd": 2.0,
                "hr": 3.0,
                "low": 1.0,
                "high": 9.0,
                "hr@1": 2.0,
                "low@1": 1.0,
                "high@1": 4.0,
                "hr@5": 9.0,
                "low@5": 2.0,
                "high@5": 40.0,
                "prior_driven": True,
            },
            {
                "covariate": CLASS_COL,
                "level": "mid",
                "reference": "top",
                "prior_sd": 2.0,
                "hr": 1.5,
                "low": 1.2,
                "high": 1.9,
                "hr@1": 1.5,
                "low@1": 1.2,
                "high@1": 1.9,
                "hr@5": 1.5,
                "low@5": 1.2,
                "high@5": 1.9,
                "prior_driven": False,
            },
        ]
    )
    assert set(prior_driven_terms(sensitivity)) == {("internet", "DSL")}
    assert not_estimable_ratios(evidence, sensitivity, CLASS_COL) == {}  # the class DSL is not flagged
    sensitivity.loc[1, "prior_driven"] = True
    flags = not_estimable_ratios(evidence, sensitivity, CLASS_COL)
    assert list(flags) == ["mid"] and flags["mid"].startswith("set by the prior, not the data (prior sd 2: 1.5")
    # the reference class has events: a prior-driven class ratio means the class's own hazard is the prior's
    assert list(value_not_estimable(evidence, flags)) == ["mid"]


def test_value_at_risk_shows_the_data_only_value_first_in_class_words() -> None:
    from cxresearch.economics import study

    frame, scheme = assign_classes(cohort(), CSAT)
    npe = _npe(frame, scheme, WordOfMouthAssumptions(0.5, 0.5, 300.0))
    table = study.value_at_risk_table(npe, "segment")
    assert list(table.columns[:4]) == ["Segment", "Active customers", "'dissatisfied' customers", "From the data"]
    # constant hazard for every class: the data-only value is noise around zero, the assumed total is not
    assert (table["Reading"] == "no evidence (data interval includes zero)").all()
    assert (table["Total 90% low"] > 0).all()


def test_a_negative_margin_per_extra_product_is_flagged_and_not_applied() -> None:
    from cxresearch.economics.study import checked_margin_per_product

    used, note = checked_margin_per_product({"estimate": -3.2, "se": 0.8, "n": 500})
    assert used["estimate"] == 0.0 and used["implausible_estimate"] == -3.2
    assert note is not None and "negative (-3.20, se 0.80)" in note and "not applied" in note
    assert checked_margin_per_product({"estimate": 4.0, "se": 0.5, "n": 500}) == (
        {"estimate": 4.0, "se": 0.5, "n": 500},
        None,
    )
