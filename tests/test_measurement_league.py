"""League tables: a unit with very few answers is shrunk toward the mean and not ranked first on noise;
the exact hierarchical normal model is calibrated; rank intervals behave."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxresearch.measurement import league_table
from cxresearch.measurement.league import rank_draws
from cxresearch.measurement.pooling import hierarchical_normal
from test_measurement_data import simulated


def _units_survey(seed: int = 0) -> tuple[pd.DataFrame, float]:
    """20 branches of 150 answers with true NPS spread around +10, plus 'TINY' with 8 answers, all 10."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(20):
        shift = rng.normal(0, 0.25)
        p = np.array([0.30, 0.30, 0.40]) * np.exp([0.0, 0.0, shift])
        p /= p.sum()
        classes = rng.choice(3, size=150, p=p)
        rows += [(f"U{u:02d}", (0, 7, 10)[c]) for c in classes]
    rows += [("TINY", 10)] * 8
    frame = pd.DataFrame(rows, columns=["unit", "recommend"]).astype({"unit": "string", "recommend": "Int64"})
    r = frame["recommend"].astype(int)
    overall = 100.0 * ((r >= 9).mean() - (r <= 6).mean())
    return frame, overall


def test_a_unit_with_eight_answers_is_shrunk_toward_the_mean_and_not_ranked_first() -> None:
    survey, overall = _units_survey()
    raw = league_table(survey, pooling=False, seed=1).table.set_index("unit")
    pooled = league_table(survey, pooling=True, seed=1)
    table = pooled.table.set_index("unit")
    assert pooled.diagnostics["passed"]
    tiny = table.loc["TINY"]
    assert tiny["observed"] == 100.0 and tiny["n"] == 8
    assert raw.loc["TINY", "rank"] == 1  # ranked on raw scores it would top the table
    # shrunk: most of its distance from the overall NPS is removed by pooling
    assert abs(tiny["estimate"] - overall) < 0.5 * abs(tiny["observed"] - overall)
    assert tiny["shrinkage"] > 0.5
    assert tiny["rank"] > 1
    # its rank interval is wide: the data cannot place it
    assert tiny["rank_high"] - tiny["rank_low"] >= 8
    # large units move much less than the tiny one
    large = table.drop(index="TINY")
    assert large["shrinkage"].median() < tiny["shrinkage"]
    assert (table["rank_low"] <= table["rank"]).all() and (table["rank"] <= table["rank_high"]).all()


def test_pooling_within_markets_keeps_a_strong_market_strong() -> None:
    """Units of a market whose customers are happier overall are pooled toward their own market."""
    rng = np.random.default_rng(5)
    rows = []
    for market, p in (("HI", [0.15, 0.30, 0.55]), ("LO", [0.40, 0.30, 0.30])):
        for u in range(8):
            classes = rng.choice(3, size=150, p=p)
            rows += [(f"{market}-{u}", market, (0, 7, 10)[c]) for c in classes]
    survey = pd.DataFrame(rows, columns=["unit", "market", "recommend"]).astype(
        {"unit": "string", "market": "string", "recommend": "Int64"}
    )
    across = league_table(survey, seed=1).table.set_index("unit")
    within = league_table(survey, seed=1, within="market").table.set_index("unit")
    hi = [u for u in within.index if u.startswith("HI")]
    # pooled across markets the HI units are pulled toward the LO market; pooled within they are not
    gap_across = (across.loc[hi, "observed"] - across.loc[hi, "estimate"]).mean()
    gap_within = (within.loc[hi, "observed"] - within.loc[hi, "estimate"]).mean()
    assert gap_across > 2.0 and abs(gap_within) < 0.3 * gap_across, (gap_across, gap_within)
    assert (within["market"] == within.index.str[:2]).all()
    assert set(within.head(8).index) == set(hi)  # all HI units rank above all LO units
    broken = survey.copy()
    broken.loc[0, "market"] = "LO"  # unit HI-0 now appears in two markets
    with pytest.raises(ValueError, match="several 'market' groups"):
        league_table(broken, within="market")


def test_mean_rating_league_shrinks_a_tiny_unit() -> None:
    rng = np.random.default_rng(3)
    rows = [
        (f"B{u:02d}", float(v))
        for u in range(15)
        for v in np.clip(np.round(rng.normal(3 + 0.2 * rng.normal(), 1, 120)), 1, 5)
    ]
    rows += [("TINY", 5.0)] * 3
    survey = pd.DataFrame(rows, columns=["unit", "recommend"]).astype({"unit": "string"})
    result = league_table(survey, metric="recommend", seed=2)
    table = result.table.set_index("unit")
    overall = result.overall_observed
    assert abs(table.loc["TINY", "estimate"] - overall) < 0.5 * abs(5.0 - overall)
    assert table.loc["TINY", "rank"] > 1 and result.diagnostics["passed"]


def test_exact_hierarchical_normal_is_calibrated_on_data_from_the_model() -> None:
    """Simulation-based check: draw tau, sigma, unit means and answers from the model; the 90% intervals of
    the unit means must cover the drawn means about 90% of the time."""
    rng = np.random.default_rng(7)
    sizes = np.array([3, 5, 10, 20, 40, 80, 150, 300])
    hits = total = 0
    for _ in range(150):
        tau, sigma, mu = abs(rng.normal(0, 0.5)), abs(rng.normal(0, 1.5)) + 0.2, rng.normal(3, 1)
        theta = mu + tau * rng.normal(size=len(sizes))
        answers = [theta[i] + sigma * rng.normal(size=n) for i, n in enumerate(sizes)]
        means = np.array([a.mean() for a in answers])
        ss = np.array([((a - a.mean()) ** 2).sum() for a in answers])
        fit = hierarchical_normal(sizes, means, ss, draws=2000, seed=rng)
        low, high = np.quantile(fit["theta"], [0.05, 0.95], axis=1)
        hits += int(((low <= theta) & (theta <= high)).sum())
        total += len(theta)
    # 1200 checks, correlated within a replicate: 0.9 +/- 0.04
    assert abs(hits / total - 0.9) < 0.04, hits / total


def test_rank_draws_and_input_errors() -> None:
    est = np.array([[3.0, 1.0], [2.0, 3.0], [1.0, 2.0]])
    assert rank_draws(est).tolist() == [[1, 3], [2, 1], [3, 2]]
    one = pd.DataFrame({"unit": pd.array(["A"] * 5, dtype="string"), "recommend": pd.array([9] * 5, dtype="Int64")})
    with pytest.raises(ValueError, match="at least two units"):
        league_table(one)
    with pytest.raises(KeyError, match="branch"):
        league_table(one, unit="branch")
    with pytest.raises(KeyError, match="neither 'nps'"):
        league_table(one.assign(unit=["A", "B", "A", "B", "A"]), metric="nope", spec=_spec_stub())


def _spec_stub() -> dict:
    from cxresearch.data.spec import Scale, Touchpoint

    return {"app": Touchpoint(column="tp_app", scale=Scale(min=1, max=5))}


def test_branch_league_on_simulator_data_follows_the_true_unit_effects(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    sim = simulated(tmp_path_factory)
    survey, truth = sim["data"].survey, sim["truth"]
    result = league_table(survey, metric="branch_visit", spec=sim["data"].spec, seed=4)
    table = result.table
    assert result.diagnostics["passed"] and len(table) == len(truth["units"])
    effect = table["unit"].map(truth["drivers"]["unit_effects_quality"])
    # the shrunk estimates track the true unit quality effects better than the raw means do
    corr_shrunk = np.corrcoef(table["estimate"], effect)[0, 1]
    corr_raw = np.corrcoef(table["observed"], effect)[0, 1]
    assert corr_shrunk > 0.5 and corr_shrunk >= corr_raw - 0.01, (corr_shrunk, corr_raw)
