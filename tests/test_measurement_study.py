"""The measurement notebook's results.json blocks and headline come from package functions
(cxresearch.measurement.study): their keys, their numbers (the same draws as the tables) and JSON form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxresearch.diagnostics import Diagnostics, failed
from cxresearch.measurement import (
    benchmark_position,
    league_table,
    nps_posterior,
    select_wave,
    strengths_and_weaknesses,
    study,
    touchpoint_scorecard,
    touchpoint_tracking,
    touchpoint_wave_change,
)
from cxresearch.results import recorded_results, to_jsonable
from test_measurement_data import simulated


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return simulated(tmp_path_factory)


def _json_round_trip(block: dict) -> dict:
    """What results.json would hold (to_jsonable refuses anything without a faithful JSON form)."""
    return json.loads(json.dumps(to_jsonable(block, "block"), allow_nan=False))


def test_headline_quotes_the_tracked_wave_and_builds_its_results(sim: dict) -> None:
    survey = sim["data"].survey
    rows, wave = select_wave(survey, "latest")
    head = study.headline(survey, rows, wave, target_nps=20.0, level=0.8, draws=2000, seed=1)
    tracked = head.tracking.set_index("wave").loc[wave]
    # the banner, the KPI table and results.json quote the same draws: the tracking row of the headline wave
    assert (head.mean, head.low, head.high) == (tracked["mean"], tracked["low"], tracked["high"])
    assert head.p_target == tracked["p_meets_target"] and head.n == int(tracked["n"])
    assert head.change is not None and head.change["to_wave"] == wave and head.change["from_wave"] == "1"
    results = _json_round_trip(study.headline_results(head))
    assert set(results) == {"n", "counts", "nps", "shares", "shares_interval"}
    assert sum(results["counts"].values()) == results["n"] and results["nps"]["estimate"] == "all customers"
    assert results["nps"]["interval"] == [head.low, head.high] and results["nps"]["level"] == 0.8
    assert results["nps"]["change"]["p_increase"] == head.change["p_increase"]
    assert math.isclose(sum(results["shares"].values()), 1.0, abs_tol=1e-9)
    for name, (low, high) in results["shares_interval"].items():
        assert low < results["shares"][name] < high, name
    title, text = study.headline_sentences(head, "all customers")
    assert title.startswith("NPS ") and "80% interval" in title and "From wave 1 to wave 2" in text
    # 'all' waves: no tracked row, so the headline comes from the posterior of every answer
    everything = study.headline(survey, survey, "all", target_nps=20.0, draws=2000, seed=1)
    assert everything.n == int(nps_posterior(survey).groups["n"].iloc[0])
    assert everything.level == 0.9


def test_result_blocks_of_every_section(sim: dict) -> None:
    data = sim["data"]
    survey, spec = data.survey, data.spec
    tracking = study.headline(survey, survey, "all", 20.0, draws=1000, seed=2).tracking
    kpi = _json_round_trip(study.kpi_results(tracking, 20.0))["kpi"]
    assert kpi["target_nps"] == 20.0 and set(kpi["by_wave"]) == {"1", "2"}
    assert kpi["by_wave"]["2"]["interval"] == [tracking["low"].iloc[1], tracking["high"].iloc[1]]

    post = nps_posterior(survey, by="segment", pooling=True, draws=1000, seed=2)
    groups = _json_round_trip(study.group_results(post.table(), "segment"))["by_segment"]
    assert set(groups) == set(post.groups["segment"]) and all(g["n"] > 0 for g in groups.values())

    card = touchpoint_scorecard(survey, spec, draws=500, seed=2)
    touchpoints = _json_round_trip(study.touchpoint_results(card))["touchpoints"]
    assert set(touchpoints) == set(spec.survey.touchpoints)
    first = card.iloc[0]
    assert touchpoints[first["touchpoint"]]["top_box_interval"] == [first["top_box_low"], first["top_box_high"]]

    changes = touchpoint_wave_change(survey, spec, draws=500, seed=2)
    moved = _json_round_trip(study.touchpoint_change_results(changes))["touchpoint_changes"]
    assert set(moved) == set(changes["touchpoint"]) and all(0 <= v["p_increase"] <= 1 for v in moved.values())

    targets = touchpoint_tracking(survey, spec, targets={"mobile_app": 0.3}, draws=500, seed=2)
    targets = targets[targets["touchpoint"] == "mobile_app"]
    assert set(_json_round_trip(study.touchpoint_target_results(targets))["touchpoint_targets"]) == {
        "mobile_app_wave1",
        "mobile_app_wave2",
    }

    position = benchmark_position(data.benchmark, spec, draws=500, seed=2)
    named = strengths_and_weaknesses(position)
    bench = _json_round_trip(study.benchmark_results(position, named, 0.9))
    assert len(bench["benchmark"]) == len(position)
    assert bench["benchmark_summary"] == {
        "strengths": len(named["strength"]),
        "weaknesses": len(named["weakness"]),
        "threshold": 0.9,
    }

    league = league_table(survey, draws=500, seed=2)
    block = _json_round_trip(study.league_results(league))["league"]
    assert block["units"] == len(league.table) and block["top_unit"] == league.table["unit"].iloc[0]
    top = league.table.iloc[0]
    assert block["top_unit_rank_interval"] == [top["rank_low"], top["rank_high"]]
    assert block["median_shrinkage"] == pytest.approx(league.table["shrinkage"].median())


def test_diagnostics_block_is_the_one_gate_over_the_pooled_fits() -> None:
    closed = _json_round_trip(study.diagnostics_results({}))["diagnostics"]
    assert closed["passed"] is True and "closed form" in closed["method"] and "gate" in closed
    counts = pd.DataFrame(
        {
            "segment": pd.array(["a", "b"], dtype="string"),
            "detractor": [30, 50],
            "passive": [30, 20],
            "promoter": [40, 30],
        }
    ).assign(n=100)
    from cxresearch.measurement import hierarchical_shares

    pooled = hierarchical_shares(counts, "segment", draws=500, seed=1).diagnostics()
    ok = study.diagnostics_results({"by_segment": pooled, "league": None})["diagnostics"]
    assert ok["passed"] is True and ok["fits"]["by_segment"]["edge_mass"] < 1e-3
    bad = study.diagnostics_results({"by_segment": pooled, "league": failed("NUTS", "R-hat 1.2")})["diagnostics"]
    assert bad["passed"] is False and bad["reasons"] == ["league: R-hat 1.2"]
    _json_round_trip(bad)


def test_fit_check_banner_reads_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    from cxresearch.diagnostics import GATE

    shown: list[tuple[str, str]] = []
    import cxresearch.reports as reports

    monkeypatch.setattr(reports, "banner", lambda text, level="info", title=None: shown.append((level, title)))
    monkeypatch.setattr(reports, "diagnostics_banner", lambda d: shown.append(("gate", d.verdict)))
    grid = Diagnostics(passed=True, method="exact", extra={"edge_mass": 1e-5})
    study.fit_check_banner(grid, "NPS by segment")
    study.fit_check_banner(Diagnostics(passed=False, method="exact", extra={"edge_mass": 0.01}), "x")
    study.fit_check_banner(failed("NUTS", f"R-hat above {GATE['rhat_max']}"), "x")
    assert study.fit_check_banner(None, "x") is None
    from cxresearch.diagnostics import exact

    assert study.fit_check_banner(exact("closed form"), "x") is None  # nothing to check: no banner
    assert shown == [("ok", "Model check passed"), ("error", "MODEL CHECK FAILED"), ("gate", "failed")]


def test_record_writes_each_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    monkeypatch.setenv("CXRESEARCH_RESULTS", str(target))
    study.record({"kpi_test": {"a": np.float64(1.5), "b": [np.int64(2)]}})
    assert json.loads(target.read_text())["kpi_test"] == {"a": 1.5, "b": [2]}
    assert recorded_results()["kpi_test"]["a"] == 1.5
