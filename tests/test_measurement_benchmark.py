"""Competitive benchmark: every brand's NPS and attribute means cover the simulator's exact benchmark truth,
and strengths / weaknesses are named only where the posterior supports them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxresearch.measurement import benchmark_position, brand_summary, strengths_and_weaknesses, verdict
from test_measurement_data import family_z, simulated, within


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return simulated(tmp_path_factory)


def test_brand_estimates_cover_the_true_benchmark(sim: dict) -> None:
    data, truth = sim["data"], sim["truth"]["benchmark"]
    summary = brand_summary(data.benchmark, data.spec, draws=4000, seed=1)
    assert set(summary["brand"]) == set(truth["brands"])
    assert summary.loc[summary["is_own"], "brand"].unique().tolist() == [truth["own_brand"]]
    z = family_z(len(summary))
    for row in summary.itertuples(index=False):
        true_value = (
            truth["shares"][row.brand]["nps"]
            if row.metric == "nps"
            else truth["attribute_means"][row.brand][row.metric]
        )
        sd = (row.high - row.low) / (2 * 1.6449)
        assert within(row.mean, true_value, sd, 0.0, z), (row.brand, row.metric, row.mean, true_value)  # exact truth


def test_named_strengths_and_weaknesses_agree_with_the_true_differences(sim: dict) -> None:
    data, truth = sim["data"], sim["truth"]["benchmark"]
    position = benchmark_position(data.benchmark, data.spec, threshold=0.9, draws=4000, seed=2)
    own = truth["own_brand"]
    assert set(position["competitor"]) == set(truth["brands"]) - {own}
    assert set(position["metric"]) == {"nps", *truth["attributes"]}
    for row in position.itertuples(index=False):
        # the verdict follows the documented threshold
        expected = (
            "strength"
            if row.p_ours_better >= 0.9
            else "weakness"
            if row.p_ours_better <= 0.1
            else "no clear difference"
        )
        assert row.verdict == expected
        if row.metric == "nps":
            true_diff = truth["shares"][own]["nps"] - truth["shares"][row.competitor]["nps"]
            scale = 10.0  # NPS points
        else:
            true_diff = truth["attribute_means"][own][row.metric] - truth["attribute_means"][row.competitor][row.metric]
            scale = 0.3  # rating points
        # a named strength or weakness never contradicts a clear true difference
        if row.verdict == "strength":
            assert true_diff > -0.1 * scale, (row.metric, row.competitor, true_diff)
        if row.verdict == "weakness":
            assert true_diff < 0.1 * scale, (row.metric, row.competitor, true_diff)
        # and a large true difference is not missed (simulated groups of about 2,000 answers per brand)
        if abs(true_diff) > scale:
            assert row.verdict == ("strength" if true_diff > 0 else "weakness"), (row.metric, row.competitor)
        # the difference itself covers the true difference (family-wise band over all pairs)
        sd = (row.diff_high - row.diff_low) / (2 * 1.6449)
        assert within(row.diff_mean, true_diff, sd, 0.0, family_z(len(position))), (row.metric, row.competitor)
    sentences = strengths_and_weaknesses(position)
    assert len(sentences["strength"]) == (position["verdict"] == "strength").sum()
    assert all("probability that we are ahead" in s for s in sentences["strength"] + sentences["weakness"])


def test_threshold_is_validated_and_groups_by_market(sim: dict) -> None:
    data = sim["data"]
    with pytest.raises(ValueError, match="between 0.5 and 1"):
        benchmark_position(data.benchmark, data.spec, threshold=0.4)
    by_market = benchmark_position(data.benchmark, data.spec, by="market", draws=500, seed=3)
    assert set(by_market["market"]) == set(data.benchmark["market"])
    assert verdict(0.95) == "strength" and verdict(0.05) == "weakness" and verdict(0.5) == "no clear difference"


def test_benchmark_without_own_rows_is_refused() -> None:
    frame = pd.DataFrame(
        {"brand": pd.array(["A", "B"], dtype="string"), "is_own": [False, False], "recommend": [5.0, 9.0]}
    )
    with pytest.raises(ValueError, match="no rows of the own brand"):
        benchmark_position(frame)
    assert np.isfinite(benchmark_position(frame.assign(is_own=[True, False]), draws=100)["diff_mean"]).all()
