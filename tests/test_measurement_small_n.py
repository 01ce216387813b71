"""Measurement that is right on any scale and honest about small groups.

- The scorecard's prior weighs one answer whatever the number of scale points: on 1-100 a sample mean of
  73.8 (n=187) is no longer reported as 65.7 (62.9-68.4), and the posterior mean sits with the sample mean
  on 1-5, 0-10 and 1-100.
- Boxes are shares of each scale (as in the driver models and the simulator) or points per touchpoint.
- On simulated 1-100 data the 90% intervals of the mean cover the simulator's true (population) means
  at 85-95%; on a known distribution over 1-100 the box shares are covered too.
- Below ``min_answers`` a group gets counts and "too few answers", in the report's tables, in results.json
  and in the index headline; the wording is the drivers study's.
- A group's NPS has one figure wherever it is shown "alone", and the pooled figure is labelled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxresearch.data.spec import Scale, Touchpoint
from cxresearch.measurement import (
    nps_posterior,
    nps_tracking,
    rankable_units,
    rating_draws,
    study,
    touchpoint_scorecard,
    touchpoint_tracking,
    touchpoint_wave_change,
)
from cxresearch.measurement.touchpoints import box_points

SCALES = {"five": (1, 5), "eleven": (0, 10), "hundred": (1, 100)}


def _tps(**scales: tuple[int, int]) -> dict[str, Touchpoint]:
    return {
        k: Touchpoint(column=f"tp_{k}", label=k.capitalize(), scale=Scale(min=lo, max=hi))
        for k, (lo, hi) in scales.items()
    }


@pytest.mark.parametrize("name", list(SCALES))
def test_the_posterior_mean_sits_with_the_sample_mean_on_any_scale(name: str) -> None:
    lo, hi = SCALES[name]
    rng = np.random.default_rng(19)
    n = 187
    x = np.clip(np.round(rng.normal(lo + 0.76 * (hi - lo), 0.18 * (hi - lo), n)), lo, hi)
    bottom, top = box_points(_tps(t=(lo, hi)))["t"]
    d = rating_draws(x, Scale(min=lo, max=hi), draws=20_000, seed=1, top_box_points=top, bottom_box_points=bottom)
    # the prior weighs one answer at the scale's midpoint: (sum + midpoint) / (n + 1), whatever the scale
    expected = (x.sum() + (lo + hi) / 2) / (n + 1)
    mc = 5 * d["mean"].std() / math.sqrt(20_000)
    assert abs(d["mean"].mean() - expected) < mc
    assert abs(d["mean"].mean() - x.mean()) < 0.002 * (hi - lo) + mc  # within a fraction of a point on 1-100
    low, high = np.quantile(d["mean"], [0.05, 0.95])
    assert low < x.mean() < high
    # the box shares from the same draws stay with the sample's shares (prior weight 1 answer in n + 1)
    for metric, share in (("top_box", np.mean(x > hi - top)), ("bottom_box", np.mean(x < lo + bottom))):
        assert abs(d[metric].mean() - share) <= 1 / (n + 1) + 0.002, (metric, d[metric].mean(), share)


def test_the_issue_case_on_1_100_is_no_longer_pulled_to_the_midpoint() -> None:
    """73.8 from 187 answers on 1-100 was reported as 65.7 (62.9-68.4), outside its own interval."""
    rng = np.random.default_rng(5)
    x = np.clip(np.round(rng.normal(73.8, 17.0, 187)), 1, 100)
    x += round(73.8 * 187 - x.sum()) / 187  # sample mean exactly 73.8 (then back to whole points)
    x = np.clip(np.round(x), 1, 100)
    frame = pd.DataFrame({"customer_id": pd.array([f"c{i}" for i in range(len(x))], dtype="string"), "score": x})
    card = touchpoint_scorecard(frame, _tps(score=(1, 100)), draws=4000, seed=2).iloc[0]
    assert abs(card["mean"] - x.mean()) < 0.3 and card["mean_low"] < x.mean() < card["mean_high"]
    assert card["top_box_definition"] == "81-100" and card["bottom_box_definition"] == "1-40"
    assert abs(card["top_box"] - np.mean(x >= 81)) < 0.01  # not pulled to ~20% by 100 pseudo-answers


def test_boxes_are_shares_of_each_scale_like_the_simulator_or_points_per_touchpoint() -> None:
    from cxresearch.data.simulator import TouchpointScales

    tps = _tps(five=(1, 5), eleven=(0, 10), hundred=(1, 100))
    assert box_points(tps) == {"five": (2, 1), "eleven": (4, 2), "hundred": (40, 20)}
    sim = TouchpointScales.build({"mobile_app": (0, 10), "online_payment": (1, 100)})
    from cxresearch.data.simulator import TOUCHPOINTS

    for key, ours in (("mobile_app", "eleven"), ("online_payment", "hundred")):
        t = list(TOUCHPOINTS).index(key)
        assert (sim.bottom[t], sim.top[t]) == box_points(tps)[ours]
    assert box_points(tps, boxes={"hundred": {"bottom": 30, "top": 10}})["hundred"] == (30, 10)
    assert box_points(_tps(a=(1, 5), b=(1, 5)), bottom_box=1, top_box=2) == {"a": (1, 2), "b": (1, 2)}
    with pytest.raises(
        ValueError, match=r"top_box: 1 points mean different things on the scales \['0-10', '1-100', '1-5'\]"
    ):
        box_points(tps, top_box=1)
    with pytest.raises(ValueError, match=r"boxes: \['nope'\] are not touchpoints"):
        box_points(tps, boxes={"nope": (1, 1)})
    with pytest.raises(ValueError, match=r"bottom box \(4 points\) and top box \(2\) of touchpoint 'five' overlap"):
        box_points(tps, boxes={"five": {"bottom": 4, "top": 2}})


def test_scorecard_intervals_cover_the_true_means_on_a_simulated_1_100_scale(tmp_path: Path) -> None:
    """Coverage across 353 groups of 40 answers: the simulator's true mean of each wave (its population
    truth, 100,000 Monte-Carlo draws of the generative model, standard error 0.02 points) against each group's
    90% interval. Measured: 88.4% (the Dirichlet posterior's sd is sqrt((n-1)/(n+1)) of the sampling sd)."""
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    simulate_dataset(tmp_path, customers=20_000, seed=7, population_samples=100_000, scales={"mobile_app": (1, 100)})
    data = load_dataset(tmp_path / "dataset.yaml")
    truth = json.loads((tmp_path / "truth.json").read_text())["population"]["mean_rating_by_wave"]
    assert data.spec.survey.touchpoints["mobile_app"].scale.points == 100
    rng = np.random.default_rng(1)
    hits = []
    for wave in ("1", "2"):
        rows = data.survey[(data.survey["wave"] == wave) & data.survey["mobile_app"].notna()]
        rows = rows.iloc[rng.permutation(len(rows))]  # random groups of 40 answers: independent samples
        groups = len(rows) // 40
        rows = rows.iloc[: groups * 40].assign(group=np.repeat(np.arange(groups), 40).astype(str))
        card = touchpoint_scorecard(rows, data.spec, by="group", touchpoints=["mobile_app"], draws=2000, seed=rng)
        true_mean = truth[wave]["mobile_app"]
        hits += list((card["mean_low"] <= true_mean) & (true_mean <= card["mean_high"]))
    assert len(hits) > 300
    assert 0.85 <= np.mean(hits) <= 0.95, np.mean(hits)


def test_box_shares_are_covered_on_a_known_1_100_distribution() -> None:
    """A known, skewed distribution over 1-100: true mean, top box (81-100) and bottom box (1-40) in closed
    form; 400 samples of 40 answers."""
    points = np.arange(1, 101)
    p = np.exp(-0.5 * ((points - 72) / 16) ** 2) + 0.15 * (points <= 15)
    p /= p.sum()
    truth = {
        "mean": float(p @ points),
        "top_box": float(p[points >= 81].sum()),
        "bottom_box": float(p[points <= 40].sum()),
    }
    rng = np.random.default_rng(3)
    hits: dict[str, list[bool]] = {k: [] for k in truth}
    for _ in range(400):
        d = rating_draws(
            rng.choice(points, size=40, p=p),
            Scale(min=1, max=100),
            draws=1000,
            seed=rng,
            top_box_points=20,
            bottom_box_points=40,
        )
        for k, value in truth.items():
            lo, hi = np.quantile(d[k], [0.05, 0.95])
            hits[k].append(bool(lo <= value <= hi))
    for k, h in hits.items():
        assert 0.85 <= np.mean(h) <= 0.95, (k, np.mean(h))


def test_a_touchpoint_nobody_answered_has_no_estimate() -> None:
    frame = pd.DataFrame({"customer_id": pd.array(["a", "b", "c"], dtype="string"), "x": [np.nan] * 3})
    card = touchpoint_scorecard(frame, _tps(x=(1, 5)), draws=200, seed=1)
    assert card["n_answers"].iloc[0] == 0 and np.isnan(card["mean"].iloc[0]) and np.isnan(card["mean_low"].iloc[0])
    assert study.scorecard_table(card)["Mean rating"].iloc[0] == "no answers"


def test_below_min_answers_a_group_gets_counts_only() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([f"c{i}" for i in range(65)], dtype="string"),
            "market": pd.array(["NO"] * 60 + ["XX"] * 5, dtype="string"),
            "x": rng.integers(1, 101, 65).astype(float),
            "y": np.r_[rng.integers(1, 6, 20).astype(float), np.full(45, np.nan)],
        }
    )
    tps = _tps(x=(1, 100), y=(1, 5))
    card = touchpoint_scorecard(frame, tps, by="market", draws=300, seed=1, min_answers=30).set_index(
        ["market", "touchpoint"]
    )
    assert bool(card.loc[("NO", "x"), "enough"]) and not bool(card.loc[("XX", "x"), "enough"])
    assert np.isnan(card.loc[("XX", "x"), "mean"]) and card.loc[("XX", "x"), "n_answers"] == 5
    assert card.loc[("XX", "x"), "observed_mean"] == pytest.approx(frame["x"].iloc[60:].mean())  # counts kept
    overall = touchpoint_scorecard(frame, tps, draws=300, seed=1, min_answers=30)
    table = study.scorecard_table(overall)
    assert table["Mean rating"].tolist()[1] == "too few answers (n=20)" and table["Top box is"].tolist() == [
        "81-100",
        "5",
    ]
    assert study.too_few_note(overall, 30) == (
        "1 touchpoints with fewer than min_answers = 30 answers show counts only, no estimates: Y (n=20)."
    )
    block = study.touchpoint_results(overall)["touchpoints"]
    assert block["y"]["too_few_answers"] is True and "mean" not in block["y"] and block["x"]["mean"] > 1
    # waves: a wave with too few answers has no NPS, no change to or from it and no P(meets target)
    waves = pd.DataFrame({"wave": ["1"] * 50 + ["2"] * 3, "recommend": rng.integers(0, 11, 53)})
    tracking = nps_tracking(waves, target_nps=10.0, draws=500, seed=1, min_answers=30).set_index("wave")
    assert np.isnan(tracking.loc["2", "mean"]) and np.isnan(tracking.loc["2", "change_mean"])
    assert np.isnan(tracking.loc["2", "p_meets_target"]) and not tracking.loc["2", "enough"]
    kpi = study.kpi_table(tracking.reset_index())
    assert kpi["NPS"].tolist()[1] == "too few answers (n=3)"
    assert study.kpi_results(tracking.reset_index(), 10.0)["kpi"]["by_wave"]["2"] == {"n": 3, "too_few_answers": True}
    changes = touchpoint_wave_change(
        frame.assign(wave=["1"] * 40 + ["2"] * 25), tps, draws=300, seed=1, min_answers=30
    ).set_index("touchpoint")
    assert not changes.loc["x", "enough"] and np.isnan(changes.loc["x", "mean_p_increase"])


def test_a_middle_wave_with_too_few_answers_keeps_its_row_and_breaks_the_change() -> None:
    """Touchpoint tracking over waves of 50 / 5 / 50 answers (min_answers 30): wave 2 stays in the table and
    in results.json with its count and "too few answers", and no change is computed to or from it (wave 3 is
    not compared with wave 1 across it)."""
    rng = np.random.default_rng(7)
    survey = pd.DataFrame({"wave": ["1"] * 50 + ["2"] * 5 + ["3"] * 50, "x": rng.integers(1, 6, 105).astype(float)})
    tracking = touchpoint_tracking(
        survey, _tps(x=(1, 5)), targets={"x": 0.2}, draws=500, seed=1, min_answers=30
    ).set_index("wave")
    assert tracking.index.tolist() == ["1", "2", "3"] and tracking["n"].tolist() == [50, 5, 50]
    assert tracking["enough"].tolist() == [True, False, True]
    assert tracking.loc["2", ["mean", "low", "high", "p_meets_target"]].isna().all()
    assert tracking["change_mean"].isna().all() and tracking["change_from"].isna().all()  # not 1 -> 3
    assert 0 < tracking.loc["1", "mean"] < 1 and 0 <= tracking.loc["3", "p_meets_target"] <= 1
    table = study.touchpoint_target_table(tracking.reset_index())
    assert table["Wave"].tolist() == ["1", "2", "3"] and table["Customers who used it"].tolist() == ["50", "5", "50"]
    assert table["Top-box share"].tolist()[1] == "too few answers (n=5)"
    assert table["Probability of meeting the target"].tolist()[1] == "" and table["Target"].tolist()[1] == "20%"
    block = json.loads(json.dumps(study.touchpoint_target_results(tracking.reset_index(), 30)))["touchpoint_targets"]
    assert block["x_wave2"] == {"n": 5, "too_few_answers": True, "min_answers": 30}
    assert isinstance(block["x_wave1"], float) and isinstance(block["x_wave3"], float)
    # with enough answers in every wave the change is computed wave over wave
    full = touchpoint_tracking(
        survey.assign(wave=["1"] * 50 + ["2"] * 5 + ["2"] * 50), _tps(x=(1, 5)), draws=300, seed=1, min_answers=30
    )
    assert full["change_from"].tolist()[1] == "1" and not math.isnan(full["change_mean"].iloc[1])


def test_the_data_line_says_what_loading_left_out_and_that_there_is_one_wave() -> None:
    """The report's data line, from CXData ``rows``, ``left_out`` and the spec's survey id."""
    from types import SimpleNamespace

    def data(rows: int, left_out: dict[str, int], id_column: str | None = "customer_id") -> SimpleNamespace:
        return SimpleNamespace(
            rows={"survey": rows},
            left_out={"survey": left_out},
            spec=SimpleNamespace(survey=SimpleNamespace(id=id_column)),
        )

    assert study.loading_line(data(17_942, {"blank outcome": 83})) == (
        "17,859 answers from 17,942 rows: 83 blank outcome answers left out."
    )
    assert study.loading_line(data(80, {"blank outcome": 1, "not-applicable code": 2}, None)) == (
        "77 answers from 80 rows: 1 blank outcome answer and 2 not-applicable outcome codes left out. "
        "No survey.id column: each row's number (in file order) is its id."
    )
    assert study.loading_line(data(10, {})) == "10 answers from 10 rows: none left out."
    assert study.loading_line(SimpleNamespace(rows={}, left_out={})) is None
    assert study.data_text(data(40, {}), ["1"]) == (
        "**Data**: 40 answers from 40 rows: none left out. One survey wave (1): no change over time to show."
    )
    assert study.data_text(data(40, {"blank outcome": 2}), ["1", "2"]).endswith("left out. 2 survey waves (1, 2).")


def test_the_data_line_of_a_real_load(tmp_path: Path) -> None:
    """load_dataset on a survey with no id column and two blank outcome answers: the data line says both."""
    from cxresearch.data import load_dataset

    rows = ["wave,segment,market,tp_x,recommend"]
    rows += [f"1,retail,NO,{1 + i % 5},{'' if i in (3, 8) else i % 11}" for i in range(40)]
    (tmp_path / "survey.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "dataset.yaml").write_text(
        "version: 1\nname: no-ids\nas_of: 2026-10-31\ntables:\n  survey: {path: survey.csv}\n"
        "survey:\n  table: survey\n  wave: wave\n  segment: segment\n  market: market\n"
        "  touchpoints:\n    x: {column: tp_x, scale: [1, 5]}\n"
        "  outcome: {kind: recommend, column: recommend}\n",
        encoding="utf-8",
    )
    data = load_dataset(tmp_path / "dataset.yaml")
    assert study.data_text(data, ["1"]) == (
        "**Data**: 38 answers from 40 rows: 2 blank outcome answers left out. No survey.id column: each row's "
        "number (in file order) is its id. One survey wave (1): no change over time to show."
    )


def test_the_league_note_says_why_units_need_fewer_answers() -> None:
    note = study.league_note(5, 30, 3)
    assert note.startswith("Units need only league_min_answers = 5 answers to be ranked, not min_answers = 30")
    assert "partial pooling shrinks a small unit's fair score toward the typical unit" in note
    assert note.endswith("units with fewer answers are left out and counted (3 units in this run).")
    assert "without partial pooling" in study.league_note(5, 30, 1, pooled=False)
    assert study.league_note(5, 30, 1).endswith("(1 unit in this run).")


def test_one_respondent_gets_a_too_few_answers_headline_in_the_report_and_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxresearch.results import recorded_results
    from cxresearch.studies.index import headline_entries

    monkeypatch.setenv("CXRESEARCH_RESULTS", str(tmp_path / "results.json"))
    one = pd.DataFrame({"wave": ["1"], "recommend": [9]})
    head = study.headline(one, one, "1", target_nps=20.0, draws=500, seed=1, min_answers=30)
    assert not head.enough and math.isnan(head.mean) and head.counts == {"detractor": 0, "passive": 0, "promoter": 1}
    title, text = study.headline_sentences(head, "customers in market XX", "all", "XX")
    assert title == "Too few answers for an NPS (market XX: n=1)"
    assert "1 answer: 0 detractors, 0 passives, 1 promoter." in text and "+" not in text
    statement = study.too_few_statement(head, "all", "XX")
    assert statement.startswith(
        "**Too few answers for an NPS, touchpoint scores or any other estimate** (market XX: n=1"
    )
    results = study.record_headline_numbers(head, "all", "XX")
    assert results["nps"]["mean"] is None and results["too_few_answers"] == statement
    written = json.loads((tmp_path / "results.json").read_text())
    assert headline_entries(written)[0] == ("NPS (this market alone)", "too few answers (n=1)")
    assert recorded_results()["nps"]["interval"] is None


def test_the_small_n_wording_is_the_drivers_studys() -> None:
    from cxresearch.drivers.study import too_few_answers as drivers_statement

    text = drivers_statement(1, 30, "all", "XX")
    assert text == (
        "**Too few answers for driver estimates** (market XX: n=1, fewer than min_answers = 30). No driver numbers "
        "are shown for this group: whole-sample numbers would not describe it, and its own answers cannot support them."
    )
    assert drivers_statement(30, 30) is None


def test_one_nps_figure_per_group_alone_and_the_pooled_one_labelled() -> None:
    rng = np.random.default_rng(8)
    survey = pd.DataFrame(
        {
            "wave": ["1"] * 260,
            "market": pd.array(["NO"] * 200 + ["ES"] * 40 + ["XX"] * 20, dtype="string"),
            "recommend": np.r_[rng.integers(3, 11, 200), rng.integers(0, 9, 40), rng.integers(0, 11, 20)],
        }
    )
    post = nps_posterior(survey, by="market", pooling=True, draws=1000, seed=1)
    summary = post.table()
    table = study.nps_table(summary, "Market", pooled=True, min_answers=30).set_index("Market")
    assert "NPS with partial pooling" in table.columns and "NPS, this market alone" in table.columns
    assert table.loc["XX", "NPS with partial pooling"] == "too few answers (n=20)"
    assert table.loc["XX", "NPS, this market alone"] == ""
    es = survey[survey["market"] == "ES"]
    own = study.headline(es, es, "1", target_nps=0.0, draws=1000, seed=2, min_answers=30)
    # the ES report's headline and the ES 'alone' column are one figure (the exact posterior mean)
    assert table.loc["ES", "NPS, this market alone"] == study.signed(own.mean)
    assert table.loc["ES", "NPS with partial pooling"] != table.loc["ES", "NPS, this market alone"]
    title, text = study.headline_sentences(own, "customers in market ES", "all", "ES")
    assert title.endswith(", this market alone") and "with partial pooling" in text
    block = study.group_results(summary, "market", 30, pooled=True)["by_market"]
    assert block["ES"]["estimate"] == "with partial pooling" and block["ES"]["alone"] == pytest.approx(own.mean)
    assert block["XX"] == {"n": 20, "too_few_answers": True, "min_answers": 30}
    pairs = study.differences_table(
        pd.DataFrame(
            {
                "group_a": ["NO", "NO"],
                "group_b": ["ES", "XX"],
                "mean": [1.0, 2.0],
                "low": [0, 0],
                "high": [2, 4],
                "p_greater": [0.9, 0.9],
            }
        ),
        leave_out=study.small_groups(summary, 30),
    )
    assert pairs["Compared with"].tolist() == ["ES"]
    assert "partial pooling" in study.pooled_note("market", True) and "alone" in study.pooled_note("market", True)


def test_league_says_why_when_fewer_than_two_units_can_be_ranked() -> None:
    survey = pd.DataFrame({"unit": ["a"] * 10 + ["b"] * 2, "recommend": [9] * 12})
    assert rankable_units(survey, "nps", "unit", None, min_answers=5) == ["a"]
    assert rankable_units(survey.drop(columns="unit"), "nps", "unit", None, 5) == []
    assert study.one_wave_text(["1"]) == "One survey wave (1): no change over time to show."
    assert study.one_wave_text(["1", "2"]) is None


def test_measurement_settings_take_box_shares_points_per_touchpoint_and_min_answers() -> None:
    from cxresearch.studies.settings import MeasurementSettings, SettingsError, check_study_settings

    ok = MeasurementSettings(top_box=0.2, bottom_box=2, boxes={"app": {"bottom": 40, "top": 20}}, min_answers=10)
    assert ok.boxes["app"].top == 20 and ok.min_answers == 10
    with pytest.raises(SettingsError, match="top_box"):
        check_study_settings("measurement", {"top_box": 1.5})
    with pytest.raises(SettingsError, match="top_box_points"):
        check_study_settings("measurement", {"top_box_points": 1})
