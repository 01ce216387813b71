"""The CX simulator: determinism, the files' contract (docs/SIMULATOR.md) and the planted truths.

Tolerances: data-vs-truth comparisons allow 4 combined standard errors (sampling SE of the data statistic
and the Monte-Carlo SE recorded in truth.json), a false-alarm rate of about 6e-5 per check.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cxresearch.data.simulator import (
    EMOTION_SATURATION,
    MARKETS,
    SEGMENTS,
    TOUCHPOINTS,
    Intervention,
    TouchpointScales,
    _eta_mean,
    _make_params,
    parse_intervention,
    simulate_command,
    simulate_dataset,
)
from cxresearch.data.spec import load_spec
from cxresearch.initiatives.truth import TrueDriverModel

AS_OF = date(2026, 6, 30)
NA_CODES = {"call_centre": 99, "complaint_handling": 99, "website": None}  # None = NULL; others 0


def _within(estimate: float, truth: float, *ses: float, k: float = 4.0) -> bool:
    return abs(estimate - truth) <= k * math.sqrt(sum(s * s for s in ses))


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    """50,000 customers (about 25,000 answers per wave)."""
    out = tmp_path_factory.mktemp("sim50k")
    summary = simulate_dataset(out, customers=50_000, seed=11)
    return {
        "out": out,
        "summary": summary,
        "truth": json.loads((out / "truth.json").read_text()),
        "survey": pq.read_table(out / "survey.parquet").to_pandas(),
        "customers": pq.read_table(out / "customers.parquet").to_pandas(),
        "benchmark": pq.read_table(out / "benchmark.parquet").to_pandas(),
    }


def _recommend(survey: pd.DataFrame) -> pd.Series:
    return survey["nps_raw"].astype(float) - 1.0


def _nps_and_se(rec: pd.Series) -> tuple[float, float]:
    prom, det = (rec >= 9).astype(float), (rec <= 6).astype(float)
    score = 100.0 * (prom - det)
    return float(score.mean()), float(score.std(ddof=1) / math.sqrt(len(score)))


# ---------------------------------------------------------------------------------------------------- files


def test_deterministic_per_seed_and_independent_of_chunk_size(tmp_path: Path) -> None:
    kwargs = {"customers": 60_000, "seed": 3, "population_samples": 20_000}  # 2 RNG blocks
    a = simulate_dataset(tmp_path / "a", chunk_size=500_000, **kwargs)
    b = simulate_dataset(tmp_path / "b", chunk_size=500_000, **kwargs)
    c = simulate_dataset(tmp_path / "c", chunk_size=40_000, **kwargs)  # 2 Parquet writes instead of 1
    for name in ("survey.parquet", "customers.parquet", "benchmark.parquet", "dataset.yaml", "truth.json"):
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes(), name
    for name in ("survey.parquet", "customers.parquet"):
        assert pq.read_table(a.out / name).equals(pq.read_table(c.out / name)), name
    assert pq.ParquetFile(c.out / "customers.parquet").metadata.num_row_groups == 2
    d = simulate_dataset(tmp_path / "d", customers=2_000, seed=4, population_samples=20_000)
    e = simulate_dataset(tmp_path / "e", customers=2_000, seed=5, population_samples=20_000)
    assert (d.out / "survey.parquet").read_bytes() != (e.out / "survey.parquet").read_bytes()


def test_dataset_yaml_is_a_valid_spec(sim: dict) -> None:
    spec = load_spec(sim["out"] / "dataset.yaml")
    assert spec.as_of == AS_OF
    for name, table in spec.tables.items():
        assert not Path(table.path).is_absolute() and spec.resolve(table.path).is_file(), name
    tps = spec.survey.touchpoints
    assert list(tps) == list(TOUCHPOINTS)
    for key, tp in tps.items():
        assert tp.column == f"tp_{key}" and (tp.scale.min, tp.scale.max) == (1, 5)
        assert tp.label and tp.channel and tp.stage and tp.need
        assert tp.not_applicable == (["blank"] if key == "website" else [NA_CODES.get(key, 0)])
    items = spec.survey.emotion.items
    assert {k: v.reverse for k, v in items.items()} == {"emo_happy": False, "emo_trust": False, "emo_frustrated": True}
    assert (spec.survey.emotion.scale.min, spec.survey.emotion.scale.max) == (1, 7)
    outcome = spec.survey.outcome
    assert outcome.kind == "recommend" and outcome.column == "nps_raw"
    assert (outcome.recode.from_.min, outcome.recode.from_.max, outcome.recode.to.max) == (1, 11, 10)
    cust = spec.customers
    assert (cust.start, cust.end, cust.churn, cust.margin, cust.cross_sell, cust.unit) == (
        "start_date",
        "end_date",
        "churned",
        "monthly_margin",
        ["n_products"],
        "unit",
    )
    assert spec.benchmark.own_brand == sim["truth"]["benchmark"]["own_brand"]
    assert set(spec.benchmark.attributes) == {"price", "service", "digital", "trust"}


def test_structure_and_dtypes(sim: dict) -> None:
    survey, customers, truth = sim["survey"], sim["customers"], sim["truth"]
    schema = pq.read_schema(sim["out"] / "survey.parquet")
    for col in ("customer_id", "segment", "market", "unit", "wave"):
        assert str(schema.field(col).type) == "string", col
    assert str(schema.field("survey_date").type) == "date32[day]"
    assert all(str(schema.field(f"tp_{k}").type) == "int16" for k in TOUCHPOINTS)
    assert set(survey["wave"]) == {"1", "2"}
    assert set(survey["segment"]) == set(SEGMENTS) and set(survey["market"]) == set(MARKETS)  # "NO" stays a string
    assert survey["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert not survey.duplicated(["customer_id", "wave"]).any()
    assert set(survey["unit"]) <= set(truth["units"]) and len(truth["units"]) == 200  # 50,000 / 250
    assert all(re.fullmatch(r"(ES|PT|MX|NO)-\d{3}", u) for u in truth["units"])
    assert (survey["unit"].str[:2] == survey["market"]).all()
    assert survey["nps_raw"].between(1, 11).all() and {1, 11} <= set(survey["nps_raw"])
    for item in ("emo_happy", "emo_trust", "emo_frustrated"):
        assert survey[item].between(1, 7).all() and survey[item].nunique() == 7
    for w, window in truth["waves"].items():
        dates = pd.to_datetime(survey.loc[survey["wave"] == w, "survey_date"])
        assert dates.min() >= pd.Timestamp(window["start"]) and dates.max() <= pd.Timestamp(window["end"])
    # respondents answer each wave with probability response_rate
    for w in ("1", "2"):
        share = (survey["wave"] == w).sum() / len(customers)
        assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(customers))

    assert len(customers) == 50_000 and customers["customer_id"].is_unique
    assert set(survey["customer_id"]) <= set(customers["customer_id"])
    merged = survey.merge(customers, on="customer_id", suffixes=("", "_crm"))
    for col in ("segment", "market", "unit"):
        assert (merged[col] == merged[f"{col}_crm"]).all(), col
    cschema = pq.read_schema(sim["out"] / "customers.parquet")
    assert str(cschema.field("end_date").type) == "date32[day]" and str(cschema.field("churned").type) == "int8"
    assert set(customers["churned"]) == {0, 1}
    assert (customers["end_date"].isna() == (customers["churned"] == 0)).all()
    start = pd.to_datetime(customers["start_date"])
    end = pd.to_datetime(customers["end_date"])
    assert start.min() >= pd.Timestamp(AS_OF - timedelta(days=round(72 * 30.4375)))
    assert start.max() < pd.Timestamp(AS_OF)
    assert (end[customers["churned"] == 1] > start[customers["churned"] == 1]).all()
    assert end.max() <= pd.Timestamp(AS_OF)
    assert (customers["monthly_margin"] > 0).all() and (customers["n_products"] >= 1).all()

    bench = sim["benchmark"]
    assert set(bench["brand"]) == set(truth["benchmark"]["brands"])
    assert (bench.groupby("respondent_id")["brand"].nunique() == 4).all()
    assert bench["recommend"].between(0, 10).all()
    for attr in ("price", "service", "digital", "trust"):
        assert bench[f"attr_{attr}"].between(1, 10).all()


def test_not_applicable_codes_only_where_declared(sim: dict) -> None:
    survey, truth = sim["survey"], sim["truth"]
    for key in TOUCHPOINTS:
        col = survey[f"tp_{key}"]
        code = NA_CODES.get(key, 0)
        if code is None:
            not_used = col.isna()
            assert not (col == 0).any()
        else:
            assert col.notna().all()
            not_used = col == code
        assert not_used.any(), key
        assert col[~not_used].between(1, 5).all(), key
        assert set(col[~not_used].astype(int)) == {1, 2, 3, 4, 5}, key
        # the share not used matches 1 - p_use of the respondent's segment (binomial, 4 SE)
        p_use = survey["segment"].map(truth["touchpoints"][key]["p_use"])
        expected = float((1 - p_use).mean())
        se = math.sqrt(float((p_use * (1 - p_use)).sum())) / len(survey)
        assert abs(not_used.mean() - expected) < 4 * se, (key, not_used.mean(), expected)


# ---------------------------------------------------------------------------------------------------- truth


def test_truth_has_the_documented_keys(sim: dict) -> None:
    truth = sim["truth"]
    for key in (
        "seed",
        "customers",
        "as_of",
        "response_rate",
        "segments",
        "markets",
        "units",
        "touchpoints",
        "drivers",
        "population",
        "churn",
        "value",
        "benchmark",
        "intervention",
    ):
        assert key in truth, key
    assert truth["seed"] == 11 and truth["customers"] == 50_000 and truth["intervention"] is None
    for key in TOUCHPOINTS:
        tp = truth["touchpoints"][key]
        assert {
            "label",
            "channel",
            "stage",
            "kano",
            "p_use",
            "mu",
            "na_code",
            "beta",
            "penalty",
            "reward",
            "nu",
            "wave_shift",
        } <= set(tp)
    assert truth["touchpoints"]["website"]["na_code"] == "blank"
    drivers = truth["drivers"]
    for key in (
        "alpha_seg",
        "alpha_mkt",
        "beta_by_group",
        "dev_seg",
        "dev_mkt",
        "planted_differences",
        "emotion_items",
        "recommend",
        "unit_effects_recommend",
        "unit_effects_quality",
    ):
        assert key in drivers, key
    assert len(drivers["beta_by_group"]) == len(SEGMENTS) * len(MARKETS)
    # beta_by_group is exactly beta + dev_seg + dev_mkt, and the planted differences are in the deviations
    for s in SEGMENTS:
        for m in MARKETS:
            for k in TOUCHPOINTS:
                expected = truth["touchpoints"][k]["beta"] + drivers["dev_seg"][s][k] + drivers["dev_mkt"][m][k]
                assert drivers["beta_by_group"][f"{s}|{m}"][k] == pytest.approx(expected, abs=1e-12)
    for planted in drivers["planted_differences"]:
        table = drivers["dev_seg"] if planted["dimension"] == "segment" else drivers["dev_mkt"]
        assert table[planted["level"]][planted["touchpoint"]] == planted["delta"]
    pop = truth["population"]
    for key in ("shares_by_wave", "shares_by_segment", "shares_by_market", "impact_nps", "mean_rating", "top_box"):
        assert key in pop and key in pop["se"], key
    for w in ("1", "2"):
        s = pop["shares_by_wave"][w]
        assert s["detractor"] + s["passive"] + s["promoter"] == pytest.approx(1.0)
        assert s["nps"] == pytest.approx(100 * (s["promoter"] - s["detractor"]))
        assert 0 < pop["se"]["shares_by_wave"][w]["nps"] < 0.3  # 400k Monte-Carlo draws
    assert set(truth["churn"]["log_hr_class"]) == {"promoter", "passive", "detractor"}
    assert truth["churn"]["log_hr_class"]["promoter"] == 0
    assert set(truth["value"]) >= {
        "base_margin_by_segment",
        "product_margin",
        "product_rate_by_segment",
        "product_multiplier_by_class",
    }
    assert set(truth["benchmark"]) >= {"brands", "own_brand", "attribute_means", "shares"}


def test_impact_positive_for_performance_and_delighter_touchpoints(sim: dict) -> None:
    truth = sim["truth"]
    impact, se = truth["population"]["impact_nps"], truth["population"]["se"]["impact_nps"]
    for key, tp in truth["touchpoints"].items():
        if tp["kano"] in ("performance", "delighter", "must-be"):
            assert impact[key] > 1.0 and impact[key] > 10 * se[key], (key, impact[key], se[key])
    # moments of truth weigh more per user than indifferent touchpoints
    users = truth["population"]["impact_nps_users"]
    assert min(users["online_payment"], users["tech_support"]) > 3 * max(users["website"], users["communications"])


# ---------------------------------------------------------------------------------------- the data shows the truth


def test_nps_by_wave_and_segment_match_population_truth(sim: dict) -> None:
    survey, pop = sim["survey"], sim["truth"]["population"]
    rec = _recommend(survey)
    for w in ("1", "2"):
        est, se = _nps_and_se(rec[survey["wave"] == w])
        assert _within(est, pop["shares_by_wave"][w]["nps"], se, pop["se"]["shares_by_wave"][w]["nps"]), (w, est)
    for seg in SEGMENTS:
        est, se = _nps_and_se(rec[survey["segment"] == seg])
        assert _within(est, pop["shares_by_segment"][seg]["nps"], se, pop["se"]["shares_by_segment"][seg]["nps"])
    for mkt in MARKETS:
        est, se = _nps_and_se(rec[survey["market"] == mkt])
        assert _within(est, pop["shares_by_market"][mkt]["nps"], se, pop["se"]["shares_by_market"][mkt]["nps"])


def test_wave_two_change_in_ratings_matches_truth(sim: dict) -> None:
    survey, truth = sim["survey"], sim["truth"]
    pop = truth["population"]
    means = {}
    for key in ("mobile_app", "statements", "branch_visit"):
        col = survey[f"tp_{key}"]
        for w in ("1", "2"):
            vals = col[(survey["wave"] == w) & col.between(1, 5)].astype(float)
            means[key, w] = vals.mean()
            se = vals.std(ddof=1) / math.sqrt(len(vals))
            assert _within(
                vals.mean(), pop["mean_rating_by_wave"][w][key], se, pop["se"]["mean_rating_by_wave"][w][key]
            ), (key, w)
    assert truth["touchpoints"]["mobile_app"]["wave_shift"]["2"] == 0.4
    assert means["mobile_app", "2"] - means["mobile_app", "1"] > 0.2  # true change about +0.35 points
    assert means["statements", "2"] - means["statements", "1"] < -0.1  # true change about -0.17 points
    top = survey["tp_statements"] == 5
    assert _within(
        top[survey["tp_statements"] > 0][survey["wave"] == "1"].mean(),
        pop["top_box"]["statements"],
        math.sqrt(0.25 / 20_000),
        pop["se"]["top_box"]["statements"],
    )


def test_kano_asymmetry_shows_in_the_data(sim: dict) -> None:
    """Must-be: going 2 -> 3 lifts recommend far more than 4 -> 5; delighter: the reverse."""
    survey = sim["survey"]
    rec = _recommend(survey)

    def step(key: str, low: int) -> tuple[float, float]:
        col = survey[f"tp_{key}"]
        a, b = rec[col == low], rec[col == low + 1]
        return b.mean() - a.mean(), math.sqrt(a.var() / len(a) + b.var() / len(b))

    for key, kind in (
        ("call_centre", "must-be"),
        ("statements", "must-be"),
        ("complaint_handling", "must-be"),
        ("online_payment", "delighter"),
        ("tech_support", "delighter"),
    ):
        (low_step, se_low), (high_step, se_high) = step(key, 2), step(key, 4)
        gap = low_step - high_step if kind == "must-be" else high_step - low_step
        assert gap > 4 * math.hypot(se_low, se_high), (key, low_step, high_step)
    # performance: both steps clearly positive and of similar size (no planted asymmetry)
    (low_step, se_low), (high_step, se_high) = step("mobile_app", 2), step("mobile_app", 4)
    assert low_step > 4 * se_low and high_step > 4 * se_high


def test_emotion_items_follow_recommend_and_reverse_item_is_reversed(sim: dict) -> None:
    survey = sim["survey"]
    rec = _recommend(survey)
    # the model gives correlations of 0.44-0.51 between items and with recommend (all share eta);
    # with 25k+ answers the sampling SE of a correlation is about 0.006, so 0.35 leaves a wide margin
    assert survey["emo_happy"].corr(rec) > 0.35 and survey["emo_trust"].corr(rec) > 0.35
    assert survey["emo_frustrated"].corr(rec) < -0.35  # raw export: high = frustrated
    assert (8 - survey["emo_frustrated"]).corr(survey["emo_happy"]) > 0.35


def test_detractors_churn_faster_with_the_true_hazard_ratio(sim: dict) -> None:
    """Cox model on wave-1 respondents (their answer is the draw that drives churn), stratified by segment
    (Weibull baselines differ by segment, same shape), adjusted for market: log HRs match the truth."""
    from lifelines import CoxPHFitter

    survey, customers, truth = sim["survey"], sim["customers"], sim["truth"]
    wave1 = survey.loc[survey["wave"] == "1", ["customer_id", "nps_raw"]]
    df = customers.merge(wave1, on="customer_id")
    start = pd.to_datetime(df["start_date"])
    end = pd.to_datetime(df["end_date"]).fillna(pd.Timestamp(AS_OF))
    rec = df["nps_raw"] - 1
    data = pd.DataFrame(
        {
            "months": (end - start).dt.days / 30.4375,
            "churned": df["churned"],
            "detractor": (rec <= 6).astype(float),
            "passive": rec.between(7, 8).astype(float),
            **{f"mkt_{m}": (df["market"] == m).astype(float) for m in ("PT", "MX", "NO")},
            "segment": df["segment"],
        }
    )
    fit = CoxPHFitter().fit(data, duration_col="months", event_col="churned", strata=["segment"])
    churn = truth["churn"]
    for name, true in (
        ("detractor", churn["log_hr_class"]["detractor"]),
        ("passive", churn["log_hr_class"]["passive"]),
        ("mkt_MX", churn["log_hr_market"]["MX"]),
        ("mkt_NO", churn["log_hr_market"]["NO"]),
    ):
        est, se = fit.params_[name], fit.standard_errors_[name]
        assert abs(est - true) < 4 * se, (name, est, se, true)
    assert churn["hazard_ratio"]["detractor"] > 2  # detractors churn faster


def test_products_and_margin_follow_segment_and_class(sim: dict) -> None:
    survey, customers, truth = sim["survey"], sim["customers"], sim["truth"]
    wave1 = survey.loc[survey["wave"] == "1", ["customer_id", "nps_raw"]]
    df = customers.merge(wave1, on="customer_id")
    cls = pd.cut(df["nps_raw"] - 1, [-1, 6, 8, 10], labels=["detractor", "passive", "promoter"])
    value = truth["value"]
    for (seg, c), group in df.groupby([df["segment"], cls], observed=True):
        rate = value["product_rate_by_segment"][seg] * value["product_multiplier_by_class"][c]
        se = math.sqrt(rate / len(group))  # Poisson
        assert abs(group["n_products"].mean() - (1 + rate)) < 4 * se, (seg, c)
    mass = customers[customers["segment"] == "mass"]
    lognormal = value["base_margin_by_segment"]["mass"]
    expected = (
        math.exp(lognormal["meanlog"] + lognormal["sdlog"] ** 2 / 2)
        + value["product_margin"] * (mass["n_products"] - 1).mean()
    )
    se = mass["monthly_margin"].std() / math.sqrt(len(mass))
    assert abs(mass["monthly_margin"].mean() - expected) < 4 * se


def test_benchmark_matches_its_truth(sim: dict) -> None:
    bench, truth = sim["benchmark"], sim["truth"]["benchmark"]
    for brand, group in bench.groupby("brand"):
        est, se = _nps_and_se(group["recommend"].astype(float))
        assert _within(est, truth["shares"][brand]["nps"], se), brand
        for attr in truth["attributes"]:
            vals = group[f"attr_{attr}"].astype(float)
            assert _within(vals.mean(), truth["attribute_means"][brand][attr], vals.std() / math.sqrt(len(vals)))


# ---------------------------------------------------------------------------------------------------- intervention


def test_parse_intervention() -> None:
    assert parse_intervention("touchpoint=branch_visit,effect=0.5,treated_share=0.3") == Intervention(
        "branch_visit", 0.5, 0.3
    )
    assert parse_intervention(" touchpoint = mobile_app , effect=-0.2 ").treated_share == 0.5
    for bad, word in (
        ("touchpoint=atm,effect=0.5", "atm"),
        ("touchpoint=website", "effect"),
        ("touchpoint=website,effect=big", "big"),
        ("touchpoint=website,effect=1,share=0.5", "share"),
        ("touchpoint=website,effect=1,treated_share=1", "treated_share"),
        ("website", "key=value"),
    ):
        with pytest.raises(ValueError, match=word):
            parse_intervention(bad)


def test_planted_intervention_is_recovered_by_difference_in_differences(tmp_path: Path) -> None:
    iv = Intervention("branch_visit", effect=0.8, treated_share=0.4)
    simulate_dataset(tmp_path, customers=40_000, seed=21, intervention=iv, population_samples=200_000)
    truth = json.loads((tmp_path / "truth.json").read_text())["intervention"]
    units = json.loads((tmp_path / "truth.json").read_text())["units"]
    assert truth["touchpoint"] == "branch_visit" and truth["effect"] == 0.8
    assert len(truth["treated_units"]) == round(0.4 * len(units)) and set(truth["treated_units"]) <= set(units)
    assert truth["true_effect_untreated"] == 0.0 and truth["true_effect_rating"] > 0.3
    assert truth["true_effect_nps"] > 0

    survey = pq.read_table(tmp_path / "survey.parquet").to_pandas()
    treated = survey["unit"].isin(truth["treated_units"])

    def did(values: pd.Series, mask: pd.Series) -> tuple[float, float]:
        est, var = 0.0, 0.0
        for group, sign_g in ((treated, 1), (~treated, -1)):
            for w, sign_w in (("2", 1), ("1", -1)):
                v = values[mask & group & (survey["wave"] == w)]
                est += sign_g * sign_w * v.mean()
                var += v.var() / len(v)
        return est, math.sqrt(var)

    col = survey["tp_branch_visit"].astype(float)
    est, se = did(col, col.between(1, 5))
    assert _within(est, truth["true_effect_rating"], se, truth["true_effect_rating_se"]), (est, truth)
    rec = _recommend(survey)
    nps_points = 100.0 * ((rec >= 9).astype(float) - (rec <= 6).astype(float))
    est, se = did(nps_points, pd.Series(True, index=survey.index))
    assert _within(est, truth["true_effect_nps"], se, truth["true_effect_nps_se"]), (est, truth)
    # other touchpoints: no effect (placebo)
    col = survey["tp_online_payment"].astype(float)
    est, se = did(col, col.between(1, 5))
    assert abs(est) < 4 * se


# ---------------------------------------------------------------------------------------- CLI, speed, loader


def test_simulate_command(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        simulate_command,
        [
            "--customers",
            "2000",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "d"),
            "--intervention",
            "touchpoint=mobile_app,effect=0.3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2,000 customers" in result.output and "truth.json" in result.output
    truth = json.loads((tmp_path / "d" / "truth.json").read_text())
    assert truth["seed"] == 3 and truth["intervention"]["touchpoint"] == "mobile_app"
    assert len(truth["units"]) == 8  # at least 8 units
    bad = runner.invoke(
        simulate_command,
        ["--customers", "10", "--out", str(tmp_path / "x"), "--intervention", "touchpoint=atm,effect=1"],
    )
    assert bad.exit_code == 2 and "atm" in bad.output
    with pytest.raises(ValueError, match="response_rate"):
        simulate_dataset(tmp_path / "y", customers=10, seed=1, response_rate=0)


def test_ten_thousand_customers_in_a_few_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    summary = simulate_dataset(tmp_path, customers=10_000, seed=2)
    elapsed = time.perf_counter() - started
    assert summary.customer_rows == 10_000 and summary.survey_rows > 9_000
    assert elapsed < 15, elapsed  # about 2-3 s here (most of it the 400k-draw Monte-Carlo truth)


def test_output_loads_through_load_dataset(sim: dict) -> None:
    try:
        from cxresearch.data import load_dataset
    except ImportError:
        pytest.skip("cxresearch.data.load_dataset is not available yet")
    data = load_dataset(sim["out"] / "dataset.yaml")
    survey, raw = data.survey, sim["survey"]
    assert len(survey) == len(raw)
    assert (survey["recommend"].astype(int).to_numpy() == raw["nps_raw"].to_numpy() - 1).all()
    # not applicable is NaN, never the lowest score
    for key in TOUCHPOINTS:
        assert survey[key].dropna().between(1, 5).all(), key
        assert survey[key].isna().sum() == (raw[f"tp_{key}"].isna() | ~raw[f"tp_{key}"].between(1, 5)).sum()
    assert (survey["emo_frustrated"].to_numpy() == 8 - raw["emo_frustrated"].to_numpy()).all()  # reversed
    customers = data.customers
    assert customers is not None and len(customers) == 50_000 and customers["churn"].isin([0, 1]).all()
    assert (customers["tenure"] > 0).all()
    assert data.benchmark is not None and data.benchmark["is_own"].sum() == len(sim["benchmark"]) / 4


# ---------------------------------------------------------------------------------------- emotion form


def _model_frame(survey: pd.DataFrame, scales: dict | None = None) -> pd.DataFrame:
    """Raw survey rows as the initiatives models read them: touchpoint keys, not applicable = NaN (``scales``:
    touchpoint -> (min, max), default 1-5)."""
    frame = survey[["segment", "market", "unit", "wave"]].copy()
    for key in TOUCHPOINTS:
        raw = survey[f"tp_{key}"].astype("float64")
        frame[key] = raw.where(raw.between(*(scales or {}).get(key, (1, 5))))
    frame["recommend"] = survey["nps_raw"].to_numpy() - 1
    return frame


def _simulator_eta(frame: pd.DataFrame, customers: int, seed: int, form: str, scales: dict | None = None) -> np.ndarray:
    """alpha + f(lin) by the simulator's own code for these rows (state = rating - scale min + 1, 0 unused)."""
    params = _make_params(customers, seed, None, TouchpointScales.build(scales), emotion_form=form)
    group = np.array([SEGMENTS.index(s) * len(MARKETS) + MARKETS.index(m) for s, m in zip(frame.segment, frame.market)])
    lows = np.array([params.scales.minimum[t] for t in range(len(TOUCHPOINTS))])
    rated = (frame[list(TOUCHPOINTS)].to_numpy() - lows[None, :] + 1).astype(float)
    return _eta_mean(params, group, np.nan_to_num(rated, nan=0.0).astype(np.int64))


def _without_form(truth: dict) -> dict:
    """The same truth read as linear (the emotion-form keys dropped)."""
    out = copy.deepcopy(truth)
    out["drivers"].pop("emotion_form")
    out["drivers"].pop("emotion_saturation")
    return out


@pytest.fixture(scope="module")
def saturating(tmp_path_factory) -> dict:
    """20,000 customers with saturating emotion (about 10,000 answers per wave)."""
    out = tmp_path_factory.mktemp("sim_saturating")
    simulate_dataset(out, customers=20_000, seed=20261122, population_samples=100_000, emotion_form="saturating")
    truth = json.loads((out / "truth.json").read_text())
    return {"truth": truth, "frame": _model_frame(pq.read_table(out / "survey.parquet").to_pandas())}


def test_linear_emotion_form_is_unchanged(tmp_path: Path) -> None:
    """The default (and explicit "linear") output is that of the simulator before emotion forms existed: the
    data's content hashes and truth values below were computed with the earlier code (same settings)."""
    kwargs = {"customers": 3_000, "seed": 7, "population_samples": 20_000}
    simulate_dataset(tmp_path / "a", **kwargs)
    simulate_dataset(tmp_path / "b", emotion_form="linear", **kwargs)
    for name in ("survey.parquet", "customers.parquet", "benchmark.parquet", "dataset.yaml", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    expected = {
        "survey": "38aeca7cbbcceb1f9f51ebbb83213d73f59c56bd9d3b9cd372c44c5068e46480",
        "customers": "f1f544ac2012094ee20d0cafb873e42c2c5bac5dca6734bd46b8c00fc8207137",
    }
    for name, digest in expected.items():
        frame = pq.read_table(tmp_path / "a" / f"{name}.parquet").to_pandas()
        assert hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest() == digest, name
    truth = json.loads((tmp_path / "a" / "truth.json").read_text())
    assert "emotion_form" not in truth["drivers"] and "emotion_saturation" not in truth["drivers"]
    pop = truth["population"]
    assert pop["shares_by_wave"]["1"]["nps"] == pytest.approx(18.191689970354155, rel=1e-9)
    assert pop["shares_by_wave"]["2"]["nps"] == pytest.approx(20.906742363991103, rel=1e-9)
    assert pop["impact_nps"]["mobile_app"] == pytest.approx(8.419903658767591, rel=1e-9)
    assert pop["impact_nps_range"]["statements"] == pytest.approx(1.0396937478065984, rel=1e-9)
    # the linear path is the documented formula; the saturating path bends the same sum of contributions
    frame = _model_frame(pq.read_table(tmp_path / "a" / "survey.parquet").to_pandas())
    drivers = truth["drivers"]
    alpha = frame.segment.map(drivers["alpha_seg"]).to_numpy() + frame.market.map(drivers["alpha_mkt"]).to_numpy()
    lin = np.zeros(len(frame))
    for key, tp in truth["touchpoints"].items():
        r = frame[key].to_numpy()
        beta = np.array([drivers["beta_by_group"][f"{s}|{m}"][key] for s, m in zip(frame.segment, frame.market)])
        term = tp["nu"] + beta * (r - 3) + tp["penalty"] * (r <= 2) + tp["reward"] * (r == 5)
        lin += np.where(np.isnan(r), 0.0, term)
    np.testing.assert_allclose(_simulator_eta(frame, 3_000, 7, "linear"), alpha + lin, rtol=0, atol=1e-12)
    bent = alpha + EMOTION_SATURATION * (1 - np.exp(-lin / EMOTION_SATURATION))
    np.testing.assert_allclose(_simulator_eta(frame, 3_000, 7, "saturating"), bent, rtol=0, atol=1e-12)


def test_saturating_emotion_form_changes_emotion_only_and_is_recorded(tmp_path: Path) -> None:
    kwargs = {"customers": 2_000, "seed": 4, "population_samples": 20_000}
    iv = Intervention("branch_visit", 0.5)
    simulate_dataset(tmp_path / "lin", intervention=iv, **kwargs)
    summary = simulate_dataset(tmp_path / "sat", intervention=iv, emotion_form="saturating", **kwargs)
    assert "saturating emotion" in summary.describe()
    lin = pq.read_table(tmp_path / "lin" / "survey.parquet").to_pandas()
    sat = pq.read_table(tmp_path / "sat" / "survey.parquet").to_pandas()
    # same random draws up to emotion: who answers and the ratings are identical (survey dates are drawn after
    # the Poisson products, whose draws consume the stream by class, so they and churn/value differ)
    same = ["customer_id", "segment", "market", "unit", "wave", *(f"tp_{k}" for k in TOUCHPOINTS)]
    pd.testing.assert_frame_equal(lin[same], sat[same])
    # f(lin) <= lin everywhere (concave, f(0) = 0, f'(0) = 1) and the noise is shared: row by row, no answer
    # is higher under the bend (frustration, reverse-keyed in the export, no lower), and some are lower
    assert (sat["nps_raw"] <= lin["nps_raw"]).all() and (sat["nps_raw"] < lin["nps_raw"]).sum() > 50
    assert (sat["emo_happy"] <= lin["emo_happy"]).all() and (sat["emo_frustrated"] >= lin["emo_frustrated"]).all()
    truth_lin = json.loads((tmp_path / "lin" / "truth.json").read_text())
    truth_sat = json.loads((tmp_path / "sat" / "truth.json").read_text())
    assert truth_sat["drivers"]["emotion_form"] == "saturating"
    assert truth_sat["drivers"]["emotion_saturation"] == EMOTION_SATURATION
    assert "emotion_form" not in truth_lin["drivers"]
    assert truth_sat["population"]["impact_nps"] != truth_lin["population"]["impact_nps"]
    assert truth_sat["population"]["shares_by_wave"]["1"]["nps"] < truth_lin["population"]["shares_by_wave"]["1"]["nps"]
    for truth in (truth_lin, truth_sat):
        assert math.isfinite(truth["intervention"]["true_effect_nps"]) and truth["intervention"]["true_effect_nps"] > 0
    assert truth_sat["intervention"]["true_effect_nps"] != truth_lin["intervention"]["true_effect_nps"]
    assert "saturating emotion" in (tmp_path / "sat" / "dataset.yaml").read_text()
    with pytest.raises(ValueError, match="emotion_form"):
        simulate_dataset(tmp_path / "bad", customers=10, seed=1, emotion_form="cubic")
    runner = CliRunner()
    ok = runner.invoke(
        simulate_command, ["-n", "500", "--seed", "4", "--out", str(tmp_path / "cli"), "--emotion-form", "saturating"]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "cli" / "truth.json").read_text())["drivers"]["emotion_form"] == "saturating"
    bad = runner.invoke(simulate_command, ["-n", "10", "--out", str(tmp_path / "x"), "--emotion-form", "cubic"])
    assert bad.exit_code == 2 and "cubic" in bad.output


def test_true_driver_model_reads_the_emotion_form(saturating: dict, tmp_path: Path) -> None:
    """TrueDriverModel's expected emotion is the simulator's own alpha + f(lin) for every respondent, under
    either form; an unknown form or a saturating form without its S is an error, never read as linear."""
    truth, frame = saturating["truth"], saturating["frame"].head(3_000)
    model = TrueDriverModel(truth)
    assert (model.emotion_form, model.emotion_saturation) == ("saturating", EMOTION_SATURATION)
    sim_eta = _simulator_eta(frame, 20_000, 20261122, "saturating")
    np.testing.assert_allclose(model.expected_emotion(frame), sim_eta, rtol=0, atol=1e-9)
    linear = TrueDriverModel(_without_form(truth))
    np.testing.assert_allclose(
        linear.expected_emotion(frame), _simulator_eta(frame, 20_000, 20261122, "linear"), rtol=0, atol=1e-9
    )
    assert np.abs(linear.expected_emotion(frame) - sim_eta).mean() > 0.1
    # on mixed scales too (2 beta x on each touchpoint's own scale and boxes, as the simulator)
    scales = {"mobile_app": (0, 10), "online_payment": (1, 100), "statements": (1, 7)}
    simulate_dataset(tmp_path / "mixed", 2_000, 5, population_samples=20_000, scales=scales, emotion_form="saturating")
    mixed = _model_frame(pq.read_table(tmp_path / "mixed" / "survey.parquet").to_pandas(), scales)
    assert mixed["online_payment"].max() > 50 and mixed["mobile_app"].min() == 0
    mixed_model = TrueDriverModel(tmp_path / "mixed" / "truth.json")
    mixed_eta = _simulator_eta(mixed, 2_000, 5, "saturating", scales)
    np.testing.assert_allclose(mixed_model.expected_emotion(mixed), mixed_eta, rtol=0, atol=1e-9)
    bad = copy.deepcopy(truth)
    bad["drivers"]["emotion_form"] = "cubic"
    with pytest.raises(ValueError, match=r"drivers\.emotion_form = 'cubic'"):
        TrueDriverModel(bad)
    (tmp_path / "truth.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="cubic"):
        TrueDriverModel(tmp_path / "truth.json")
    del bad["drivers"]["emotion_saturation"]
    bad["drivers"]["emotion_form"] = "saturating"
    with pytest.raises(KeyError, match="emotion_saturation"):
        TrueDriverModel(bad)


def test_true_driver_model_class_mix_matches_saturating_data(saturating: dict) -> None:
    """Given each row's ratings, group and unit, the rows' NPS classes are independent draws with the true
    probabilities p_i, so observed share - mean(p_i) has sd sqrt(sum p_i (1 - p_i)) / n (about 0.003 for the
    ~20,000 rows here; for NPS points, per-row variance p_prom + p_det - (p_prom - p_det)^2, about 0.5).
    The truth must match within 4 sd; the linear truth on the same rows misses the NPS by about 5 points
    (some 11 sd): the check would catch a TrueDriverModel that ignored the form."""
    truth, frame = saturating["truth"], saturating["frame"]
    rec = frame["recommend"].to_numpy()
    observed = np.array([(rec <= 6).mean(), ((rec >= 7) & (rec <= 8)).mean(), (rec >= 9).mean()])
    n = len(frame)

    def nps_gap(model: TrueDriverModel) -> tuple[np.ndarray, float, float, float]:
        p = model.class_probabilities(frame)
        se_share = np.sqrt((p * (1 - p)).sum(axis=0)) / n
        diff = p[:, 2] - p[:, 0]
        se_nps = 100 * math.sqrt(float((p[:, 2] + p[:, 0] - diff**2).sum())) / n
        gap = 100 * (observed[2] - observed[0]) - 100 * float(diff.mean())
        return p.mean(axis=0), se_share, gap, se_nps

    mix, se_share, gap, se_nps = nps_gap(TrueDriverModel(truth))
    assert np.all(np.abs(observed - mix) <= 4 * se_share), (observed, mix, se_share)
    assert abs(gap) <= 4 * se_nps, (gap, se_nps)
    _, _, gap_linear, se_linear = nps_gap(TrueDriverModel(_without_form(truth)))
    assert gap_linear < -6 * se_linear, (gap_linear, se_linear)  # the linear truth overstates the NPS


def test_population_truth_follows_the_emotion_form(saturating: dict) -> None:
    """truth.population.impact_nps (+1 step for the users of a touchpoint, wave 1) against the same change
    computed with TrueDriverModel on the wave-1 respondents (an iid sample of the population: response does
    not depend on anything): the per-row NPS change is exact given the row, so the sampling se is
    sd(change) / sqrt(n); combined with the truth's Monte-Carlo se, within 4 se. The linear truth's impact
    on the same rows is well outside (more than 6 se)."""
    truth, frame = saturating["truth"], saturating["frame"]
    wave1 = frame[frame["wave"] == "1"].reset_index(drop=True)
    pop = truth["population"]
    model, linear = TrueDriverModel(truth), TrueDriverModel(_without_form(truth))
    for key in ("mobile_app", "online_payment"):
        after = wave1.copy()
        after[key] = np.minimum(after[key] + 1, 5)  # NaN (not used) stays NaN

        def change(m: TrueDriverModel, after: pd.DataFrame = after) -> tuple[float, float]:
            before, then = m.class_probabilities(wave1), m.class_probabilities(after)
            d = 100 * ((then[:, 2] - then[:, 0]) - (before[:, 2] - before[:, 0]))
            return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))

        est, se = change(model)
        assert _within(est, pop["impact_nps"][key], se, pop["se"]["impact_nps"][key]), (key, est, se)
        est_linear, se_linear = change(linear)
        assert not _within(est_linear, pop["impact_nps"][key], se_linear, pop["se"]["impact_nps"][key], k=6.0)
    mix = model.class_mix(wave1, 1)[0]
    shares = pop["shares_by_wave"]["1"]
    assert _within(100 * (mix[2] - mix[0]), shares["nps"], pop["se"]["shares_by_wave"]["1"]["nps"], 0.6)
