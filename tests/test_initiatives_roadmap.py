"""Budget selection (exact, against brute-force enumeration), ranking and the ordered roadmap."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from cxresearch.data import load_dataset
from cxresearch.data.simulator import simulate_dataset
from cxresearch.initiatives.catalogue import load_catalogue, touchpoint_info_from_spec
from cxresearch.initiatives.report import (
    format_money,
    plan_headline_markdown,
    record_initiative_results,
)
from cxresearch.initiatives.roadmap import build_roadmap, rank_initiatives, select_under_budget
from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel
from cxresearch.initiatives.value import InitiativeEngine, overlap_groups
from cxresearch.reports.display import format_money_exact
from cxresearch.results import recorded_results


# ------------------------------------------------------------------------------------------ selection
def _random_instance(rng, n):
    names = [f"i{k}" for k in range(n)]
    costs = {nm: float(rng.integers(1, 60) * 1000) for nm in names}
    # random disjoint overlap groups of size 1-3, with non-additive joint values
    order = rng.permutation(names).tolist()
    groups = []
    while order:
        size = int(rng.integers(1, 4))
        groups.append(tuple(order[:size]))
        order = order[size:]
    single = {nm: float(rng.normal(5_000, 15_000)) for nm in names}
    synergy = {}
    for g in groups:
        for r in range(2, len(g) + 1):
            for combo in itertools.combinations(sorted(g), r):
                synergy[frozenset(combo)] = float(rng.normal(-3_000, 4_000))

    def group_value(subset):
        return sum(single[n] for n in subset) + synergy.get(frozenset(subset), 0.0)

    return names, costs, groups, group_value


def _brute_force(names, costs, groups, group_value, budget):
    """Every subset, itertools: the reference."""
    best, best_set = -np.inf, ()
    for r in range(len(names) + 1):
        for combo in itertools.combinations(names, r):
            if sum(costs[n] for n in combo) > budget:
                continue
            chosen = set(combo)
            value = sum(group_value(frozenset(chosen & set(g))) for g in groups if chosen & set(g))
            if value > best + 1e-9:
                best, best_set = value, combo
    return set(best_set), best


@pytest.mark.parametrize("seed", range(6))
def test_exact_selection_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    names, costs, groups, group_value = _random_instance(rng, n=int(rng.integers(6, 12)))
    for budget in (0.0, 40_000.0, 90_000.0, float(sum(costs.values()))):
        expected_set, expected_value = _brute_force(names, costs, groups, group_value, budget)
        for method in ("enumerate", "knapsack"):
            sel = select_under_budget(costs, group_value, groups, budget, method=method)
            assert sel.exact
            assert sel.expected_value == pytest.approx(expected_value, abs=1e-6), (method, budget)
            assert set(sel.names) == expected_set, (method, budget)
            assert sel.cost <= budget + 1e-6


def test_selection_input_errors():
    with pytest.raises(ValueError, match="budget must be a finite number >= 0"):
        select_under_budget({"a": 1.0}, lambda s: 1.0, [("a",)], -5)
    with pytest.raises(ValueError, match=r"costs must be finite and >= 0: \{'a': -1.0\}"):
        select_under_budget({"a": -1.0}, lambda s: 1.0, [("a",)], 5)
    with pytest.raises(ValueError, match=r"initiatives \['b'\] are in no overlap group"):
        select_under_budget({"a": 1.0, "b": 1.0}, lambda s: 1.0, [("a",)], 5)


def test_knapsack_handles_larger_catalogues_like_enumeration():
    rng = np.random.default_rng(42)
    names, costs, groups, group_value = _random_instance(rng, n=18)
    budget = 200_000.0
    a = select_under_budget(costs, group_value, groups, budget, method="enumerate")
    b = select_under_budget(costs, group_value, groups, budget, method="knapsack")
    assert a.names == b.names and a.expected_value == pytest.approx(b.expected_value)


# ------------------------------------------------------------------------------------------ roadmap
@pytest.fixture(scope="module")
def engine_and_catalogue(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, customers=12_000, seed=5, population_samples=1_000)
    data = load_dataset(out / "dataset.yaml")
    truth = json.loads((out / "truth.json").read_text())
    survey = data.survey[data.survey["wave"] == "2"].reset_index(drop=True)
    tps = touchpoint_info_from_spec(data.spec)
    engine = InitiativeEngine(
        survey,
        tps,
        TrueDriverModel(truth),
        TrueValueModel(truth),
        customers=data.customers,
        draws=200,
        horizon_months=48,
        discount_rate_annual=0.08,
        seed=3,
    )
    catalogue = load_catalogue(
        [
            {
                "name": "app",
                "label": "App redesign",
                "touchpoints": ["mobile_app"],
                "effect": {"uplift": [0.2, 0.6]},
                "cost": {"one_off": 12_000, "recurring_monthly": 100},
                "time_to_effect_months": 3,
            },
            {
                "name": "app_mx",
                "touchpoints": ["mobile_app"],
                "effect": {"uplift": [0.0, 0.4]},
                "scope": {"markets": ["MX"]},
                "cost": {"one_off": 2_000},
            },
            {
                "name": "fees",
                "touchpoints": ["statements"],
                "effect": {"remove_bad": [0.2, 0.5]},
                "cost": {"one_off": 4_000},
            },
            {
                "name": "payments",
                "touchpoints": ["online_payment"],
                "effect": {"remove_bad": {"beta": {"mean": 0.5, "sd": 0.1}}},
                "cost": {"one_off": 30_000},
            },
            {
                "name": "branch",
                "touchpoints": ["branch_visit"],
                "effect": {"uplift": {"normal": {"mean": 0.3, "sd": 0.1}}},
                "scope": {"segments": ["affluent", "private"]},
                "cost": {"one_off": 6_000},
                "ramp_months": 6,
            },
        ]
    )
    return engine, catalogue, tps


def test_overlap_groups_follow_touchpoint_and_scope(engine_and_catalogue):
    _, catalogue, _ = engine_and_catalogue
    assert overlap_groups(list(catalogue)) == [("app", "app_mx"), ("fees",), ("payments",), ("branch",)]
    other_market = catalogue["app_mx"].model_copy(
        update={"scope": catalogue["app_mx"].scope.model_copy(update={"markets": ("XX",)})}
    )
    assert overlap_groups([catalogue["app"], other_market]) == [("app", "app_mx")]  # app covers every market


def test_roadmap_is_the_best_affordable_plan_in_valued_steps(engine_and_catalogue):
    engine, catalogue, tps = engine_and_catalogue
    singles = engine.evaluate_each(catalogue)
    budget = 20_000.0
    roadmap = build_roadmap(engine, catalogue, budget, singles=singles)
    horizon = engine.horizon
    # feasible, and no affordable subset has a higher expected value (joint values within overlap groups)
    assert roadmap.selection.cost <= budget
    best = -np.inf
    for r in range(len(catalogue) + 1):
        for combo in itertools.combinations(catalogue.names, r):
            if sum(catalogue[n].cost.total(horizon) for n in combo) <= budget:
                best = max(best, engine.evaluate([catalogue[n] for n in combo]).net_value.mean())
    assert roadmap.value.net_value.mean() == pytest.approx(best, rel=1e-9)
    assert "payments" not in roadmap.plan  # 30k: over budget on its own
    # steps add up, draw by draw, to the value of the whole plan evaluated jointly
    total = sum(roadmap.step_draws[n] for n in roadmap.plan)
    assert np.allclose(total, roadmap.value.net_value)
    assert np.allclose(roadmap.value.net_value, engine.evaluate([catalogue[n] for n in roadmap.plan]).net_value)
    assert list(roadmap.steps["initiative"]) == roadmap.plan
    assert np.all(np.diff(roadmap.steps["step_value"]) <= 1e-9)  # greedy: the biggest increment first
    # breakdowns add up to the plan
    assert roadmap.by_channel["value"].sum() == pytest.approx(roadmap.value.net_value.mean())
    assert roadmap.by_need["value"].sum() == pytest.approx(roadmap.value.net_value.mean())
    assert roadmap.by_market["value"].sum() == pytest.approx(roadmap.value.net_value.mean())
    assert roadmap.by_market["customers"].sum() == roadmap.value.customers_in_scope


def test_ranking_and_headline(engine_and_catalogue):
    engine, catalogue, tps = engine_and_catalogue
    singles = engine.evaluate_each(catalogue)
    table = rank_initiatives(singles, catalogue, tps)
    assert list(table["rank_value"]) == list(range(1, len(catalogue) + 1))
    assert np.all(np.diff(table["net_value"]) <= 0)
    risk = table.sort_values("rank_risk")
    assert np.all(np.diff(risk["p_roi_positive"]) <= 1e-12)
    assert table.set_index("initiative").loc["app", "channel"] == "digital"
    roadmap = build_roadmap(engine, catalogue, 20_000, singles=singles)
    text = plan_headline_markdown(roadmap, singles, catalogue, 0.08)
    assert "Recommended plan" in text and "Expected net value" in text
    assert f"{100 * roadmap.value.p_payback:.0f}%" in text
    assert catalogue[roadmap.plan[0]].title in text
    out = record_initiative_results(singles, roadmap)
    recorded = recorded_results()
    assert recorded["plan"] == roadmap.plan
    for name in catalogue.names:
        entry = recorded["initiatives"][name]
        assert set(entry) >= {"net_value", "roi", "p_roi_positive", "payback_months"}
        assert entry["net_value"]["mean"] == pytest.approx(singles[name].net_value.mean())
        assert len(entry["net_value"]["interval"]) == 2
    assert recorded["plan_value"]["mean"] == pytest.approx(roadmap.value.net_value.mean())
    assert 0 <= recorded["plan_p_payback"] <= 1
    assert out["plan"] == roadmap.plan
    empty = build_roadmap(engine, catalogue, 0, singles=singles)
    assert empty.plan == [] and "No initiative is recommended" in plan_headline_markdown(
        empty, singles, catalogue, 0.08
    )


def test_format_money():
    assert format_money(12_345) == "€12k"
    assert format_money(-1_500_000) == "-€1.5M"
    assert format_money(950) == "€950"
    assert format_money(None) == "n/a"
    # exact amounts (the validation table): the sign before the currency, as above, not '€-4,684'
    assert format_money_exact(-4_683.7) == "-€4,684" and format_money_exact(12_736.2) == "€12,736"
    assert format_money_exact(-0.4) == "€0" and format_money_exact(float("nan")) == "n/a"


def test_validation_table_and_plan_sentence_put_the_sign_before_the_currency():
    from cxresearch.initiatives.study import plan_check_text, truth_comparison_display

    frame = pd.DataFrame(
        {
            "label": ["Call-centre first-contact resolution"],
            **{f"{side}_{k}": [v] for side in ("fitted", "truth") for k, v in (("mean", -4683.7), ("low", -12881.2))},
            "fitted_high": [4840.4],
            "truth_high": [-1000.0],
            "fitted_nps_shift": [0.4],
            "truth_nps_shift": [0.5],
            "covered": [True],
        }
    )
    shown = truth_comparison_display(frame).iloc[0]
    assert shown["Net value, fitted models"] == "-€4,684 (-€12,881 to €4,840)"
    assert shown["Net value, true models"] == "-€4,684 (-€12,881 to -€1,000)"
    plan = {"same_plan": False, "fitted_plan": ["a"], "true_best_plan": ["b"], "fitted_plan_true_value": -250.0}
    text = plan_check_text({**plan, "true_best_value": 12_736.0, "share_of_best": -0.02})
    assert "worth -€250 in the simulated world" in text and "(b: €12,736)" in text
