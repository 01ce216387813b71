"""Prioritisation and roadmap: rank initiatives, choose the best set under a budget, order it in steps.

- :func:`rank_initiatives`: one row per initiative with expected net value, its 90% interval, P(ROI > 0),
  the 5% quantile (a bad case), payback, and two ranks: by expected value and by risk.
- :func:`select_under_budget`: the exact best set (maximum expected net value) whose cost fits the budget.
  Values of initiatives that overlap (same touchpoint, overlapping scope) are not additive, so a set's
  value is the sum over overlap groups of the *jointly simulated* value of the members chosen from that
  group. Small catalogues (up to :data:`ENUMERATE_MAX` initiatives) are solved by enumerating every subset;
  larger ones by an exact multiple-choice knapsack over integer costs (one choice per overlap group).
- :func:`build_roadmap`: runs the selection with an :class:`~cxresearch.initiatives.value.InitiativeEngine`,
  orders the chosen initiatives greedily by incremental expected value (each step evaluated jointly with
  the ones before it) and breaks the plan down by channel, customer need and market.

Budgets are checked against each initiative's undiscounted cost over the horizon (one-off plus recurring
x months), which is how a budget is usually stated; values are discounted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.initiatives.catalogue import (
    Catalogue,
    Initiative,
    TouchpointInfo,
    initiative_channels,
    initiative_needs,
)
from cxresearch.initiatives.value import (
    InitiativeEngine,
    ValueResult,
    overlap_groups,
    summarise_draws,
)

#: Catalogues up to this size are solved by enumerating all subsets (2^20 ~ 1M, vectorised).
ENUMERATE_MAX = 20
#: Largest budget grid of the knapsack (cells); finer costs are rounded up to stay feasible.
KNAPSACK_MAX_CELLS = 2_000_000


@dataclass(frozen=True)
class Selection:
    """The chosen set: names (catalogue order), expected value, cost, and how it was found."""

    names: tuple[str, ...]
    expected_value: float
    cost: float
    budget: float
    method: str
    exact: bool
    candidates: int


def _group_tables(
    names: Sequence[str], groups: Sequence[Sequence[str]], group_value: Callable[[frozenset[str]], float]
) -> list[tuple[list[int], np.ndarray]]:
    """Per group: member positions and the value of every subset of it (indexed by its bit mask)."""
    index = {n: i for i, n in enumerate(names)}
    tables = []
    seen: set[str] = set()
    for group in groups:
        members = [index[n] for n in group]
        if seen & set(group):
            raise ValueError(f"overlap groups must be disjoint; {sorted(seen & set(group))} appear twice")
        seen |= set(group)
        k = len(members)
        table = np.zeros(2**k)
        for mask in range(1, 2**k):
            subset = frozenset(group[j] for j in range(k) if mask >> j & 1)
            table[mask] = float(group_value(subset))
        tables.append((members, table))
    missing = set(names) - seen
    if missing:
        raise ValueError(f"initiatives {sorted(missing)} are in no overlap group")
    return tables


def select_under_budget(
    costs: Mapping[str, float],
    group_value: Callable[[frozenset[str]], float],
    groups: Sequence[Sequence[str]],
    budget: float,
    method: str = "auto",
) -> Selection:
    """Exact best set of initiatives under ``budget``.

    ``costs``: name -> cost counted against the budget (catalogue order = the order of the mapping).
    ``groups``: disjoint overlap groups covering all names (singletons for independent initiatives).
    ``group_value(subset)``: expected value of a non-empty subset of one group acting together.
    A set's value is the sum over groups of ``group_value(set & group)``. ``method``: ``enumerate``,
    ``knapsack`` or ``auto`` (enumerate up to :data:`ENUMERATE_MAX` initiatives).
    """
    names = list(costs)
    if budget < 0 or not math.isfinite(budget):
        raise ValueError(f"budget must be a finite number >= 0, got {budget!r}")
    bad = {n: c for n, c in costs.items() if not (math.isfinite(c) and c >= 0)}
    if bad:
        raise ValueError(f"costs must be finite and >= 0: {bad}")
    tables = _group_tables(names, groups, group_value)
    if method == "auto":
        method = "enumerate" if len(names) <= ENUMERATE_MAX else "knapsack"
    if method == "enumerate":
        return _enumerate(names, costs, tables, budget)
    if method == "knapsack":
        return _knapsack(names, costs, tables, budget)
    raise ValueError(f"method must be 'auto', 'enumerate' or 'knapsack', got {method!r}")


def _enumerate(
    names: list[str], costs: Mapping[str, float], tables: list[tuple[list[int], np.ndarray]], budget: float
) -> Selection:
    n = len(names)
    if n > 26:
        raise ValueError(f"enumerating {n} initiatives (2^{n} sets) is too much; use method='knapsack'")
    masks = np.arange(2**n, dtype=np.int64)
    bits = ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)  # [sets, n]
    cost_vec = np.array([costs[m] for m in names], dtype=float)
    total_cost = bits @ cost_vec
    value = np.zeros(2**n)
    for members, table in tables:
        sub = np.zeros(2**n, dtype=np.int64)
        for j, pos in enumerate(members):
            sub |= bits[:, pos].astype(np.int64) << j
        value += table[sub]
    tol_cost = 1e-9 * max(1.0, budget)
    feasible = total_cost <= budget + tol_cost
    tol = 1e-9 * max(1.0, float(np.abs(value).max()))
    # lexicographic choice: value (desc, with tolerance), cost (asc), size (asc), mask (asc)
    best_value = value[feasible].max()
    near = feasible & (value >= best_value - tol)
    size = bits.sum(axis=1)
    order = np.lexsort((masks[near], size[near], total_cost[near]))
    pick = masks[near][order[0]]
    chosen = tuple(names[i] for i in range(n) if pick >> i & 1)
    return Selection(chosen, float(value[pick]), float(total_cost[pick]), float(budget), "enumerate", True, 2**n)


def _cost_unit(values: Sequence[float], budget: float) -> tuple[float, bool]:
    """Largest unit dividing all costs (in cents) so that the budget grid is small; else a rounding unit."""
    cents = [Fraction(round(v * 100)) for v in values if v > 0]
    exact_input = all(abs(v * 100 - round(v * 100)) < 1e-6 for v in values)
    unit = 0
    for c in cents:
        unit = math.gcd(unit, int(c))
    if unit == 0:
        return 1.0, True
    unit_eur = unit / 100.0
    if exact_input and budget / unit_eur <= KNAPSACK_MAX_CELLS:
        return unit_eur, True
    return max(unit_eur, budget / KNAPSACK_MAX_CELLS), False


def _knapsack(
    names: list[str], costs: Mapping[str, float], tables: list[tuple[list[int], np.ndarray]], budget: float
) -> Selection:
    """Multiple-choice knapsack: one subset per overlap group; exact on integer cost units."""
    unit, exact = _cost_unit(list(costs.values()), budget)
    cap = int(math.floor(budget / unit + 1e-9))
    NEG = -np.inf
    best = np.full(cap + 1, NEG)
    best[0] = 0.0
    # keep the exact cost too, for tie-breaking by cost
    best_cost = np.zeros(cap + 1)
    choices: list[np.ndarray] = []
    options_per_group = []
    for members, table in tables:
        opts = []
        for mask in range(2 ** len(members)):
            cost = sum(costs[names[members[j]]] for j in range(len(members)) if mask >> j & 1)
            units = int(math.ceil(cost / unit - 1e-9))
            opts.append((mask, units, cost, float(table[mask])))
        options_per_group.append(opts)
        new = np.full(cap + 1, NEG)
        new_cost = np.full(cap + 1, np.inf)
        choice = np.zeros(cap + 1, dtype=np.int64)
        for mask, units, cost, val in opts:
            if units > cap:
                continue
            cand = np.full(cap + 1, NEG)
            cand_cost = np.full(cap + 1, np.inf)
            cand[units:] = best[: cap + 1 - units] + val
            cand_cost[units:] = best_cost[: cap + 1 - units] + cost
            tol = 1e-9 * max(1.0, abs(val))
            with np.errstate(invalid="ignore"):
                take = (cand > new + tol) | ((np.abs(cand - new) <= tol) & (cand_cost < new_cost))
            take &= np.isfinite(cand)
            new = np.where(take, cand, new)
            new_cost = np.where(take, cand_cost, new_cost)
            choice = np.where(take, mask, choice)
        best, best_cost = new, np.where(np.isfinite(new), new_cost, 0.0)
        choices.append(choice)
    # best over all capacities (the table is "exactly b units used")
    top = np.nanmax(best)
    tol = 1e-9 * max(1.0, abs(top))
    near = np.flatnonzero(best >= top - tol)
    b = int(near[np.argmin(best_cost[near])])
    picked: list[str] = []
    for (members, _), choice, opts in zip(reversed(tables), reversed(choices), reversed(options_per_group)):
        mask = int(choice[b])
        units = next(o[1] for o in opts if o[0] == mask)
        picked += [names[members[j]] for j in range(len(members)) if mask >> j & 1]
        b -= units
    chosen = tuple(n for n in names if n in picked)
    cost = float(sum(costs[n] for n in chosen))
    return Selection(chosen, float(top), cost, float(budget), "knapsack", exact, (cap + 1) * len(tables))


# --------------------------------------------------------------------------------------------- ranking
def rank_initiatives(
    results: Mapping[str, ValueResult], catalogue: Catalogue, touchpoints: Mapping[str, TouchpointInfo]
) -> pd.DataFrame:
    """One row per initiative: value, risk and payback figures, rank by value and rank by risk.

    Rank by risk orders by P(ROI > 0), then by the 5% quantile of net value (the bad case).
    """
    rows = []
    for ini in catalogue:
        r = results[ini.name]
        nv = summarise_draws(r.net_value)
        roi = summarise_draws(r.roi)
        pb = r.payback_summary()
        rows.append(
            {
                "initiative": ini.name,
                "label": ini.title,
                "channel": " + ".join(initiative_channels(ini, touchpoints)),
                "need": " + ".join(initiative_needs(ini, touchpoints)),
                "markets": "all" if ini.scope.markets is None else ", ".join(ini.scope.markets),
                "effect": ini.effect.describe(),
                "cost": r.cost_total,
                "net_value": nv["mean"],
                "net_value_low": nv["interval"][0],
                "net_value_high": nv["interval"][1],
                "q05": float(np.quantile(r.net_value, 0.05)),
                "roi": roi["mean"],
                "p_roi_positive": r.p_roi_positive,
                "payback_median": pb["median"],
                "p_payback": pb["p_within_horizon"],
                "nps_shift": float(r.nps_shift.mean()),
                "main_uncertainty": _main_uncertainty(r.variance_shares),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["rank_value"] = table["net_value"].rank(ascending=False, method="min").astype(int)
    risk_order = table.sort_values(["p_roi_positive", "q05"], ascending=[False, False]).index
    table.loc[risk_order, "rank_risk"] = np.arange(1, len(table) + 1)
    table["rank_risk"] = table["rank_risk"].astype(int)
    return table.sort_values("rank_value", kind="stable").reset_index(drop=True)


def _main_uncertainty(shares: Mapping[str, float] | None) -> str:
    if not shares:
        return "none"
    labels = {
        "effect_size": "effect size",
        "driver_model": "driver model",
        "value_model": "customer value",
        "interaction": "interaction",
    }
    key = max(shares, key=lambda name: shares[name])
    return f"{labels.get(key, key)} ({100 * shares[key]:.0f}%)"


# --------------------------------------------------------------------------------------------- roadmap
@dataclass
class Roadmap:
    """The recommended plan: chosen initiatives in order, the value of each step, and breakdowns."""

    plan: list[str]
    selection: Selection
    value: ValueResult  # the whole plan, evaluated jointly
    steps: pd.DataFrame
    by_channel: pd.DataFrame
    by_need: pd.DataFrame
    by_market: pd.DataFrame
    step_draws: dict[str, np.ndarray] = field(default_factory=dict)  # incremental net value per draw
    labels: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-native headline (what results.json records for the plan)."""
        return {
            "plan": list(self.plan),
            "plan_value": summarise_draws(self.value.net_value),
            "plan_p_payback": self.value.p_payback if self.plan else None,
            "plan_cost": self.selection.cost,
            "budget": self.selection.budget,
            "plan_payback_months": self.value.payback_summary() if self.plan else None,
            "plan_p_roi_positive": self.value.p_roi_positive if self.plan else None,
            "selection_method": self.selection.method,
            "selection_exact": self.selection.exact,
        }


def group_value_function(
    engine: InitiativeEngine, catalogue: Catalogue, known: Mapping[str, ValueResult] | None = None
) -> Callable[[frozenset[str]], float]:
    """Expected net value of a subset of initiatives evaluated jointly (cached; ``known`` single results
    are reused)."""
    cache: dict[frozenset[str], float] = {frozenset([n]): float(r.net_value.mean()) for n, r in (known or {}).items()}

    def value(subset: frozenset[str]) -> float:
        if subset not in cache:
            members = [catalogue[n] for n in catalogue.names if n in subset]
            cache[subset] = float(engine.evaluate(members).net_value.mean())
        return cache[subset]

    return value


def build_roadmap(
    engine: InitiativeEngine,
    catalogue: Catalogue,
    budget: float,
    singles: Mapping[str, ValueResult] | None = None,
    method: str = "auto",
) -> Roadmap:
    """Choose the best set under ``budget``, order it in steps and break it down by channel, need, market.

    ``singles`` (each initiative alone, from :meth:`InitiativeEngine.evaluate_each`) are reused when given.
    """
    singles = dict(singles or {})
    for ini in catalogue:
        if ini.name not in singles:
            singles[ini.name] = engine.evaluate([ini])
    horizon = engine.horizon
    costs = {ini.name: ini.cost.total(horizon) for ini in catalogue}
    groups = overlap_groups(list(catalogue))
    group_value = group_value_function(engine, catalogue, singles)
    selection = select_under_budget(costs, group_value, groups, budget, method=method)

    # order greedily by incremental expected value, each prefix evaluated jointly
    remaining = [catalogue[n] for n in selection.names]
    prefix: list[Initiative] = []
    previous = np.zeros(engine.draws)
    rows, step_draws = [], {}
    prefix_result: ValueResult | None = None
    while remaining:
        trials = [(engine.evaluate(prefix + [c]), c) for c in remaining]
        best_res, best = max(trials, key=lambda t: t[0].net_value.mean())
        increment = best_res.net_value - previous
        step_draws[best.name] = increment
        inc = summarise_draws(increment)
        rows.append(
            {
                "step": len(prefix) + 1,
                "initiative": best.name,
                "label": best.title,
                "channel": " + ".join(initiative_channels(best, engine.touchpoints)),
                "need": " + ".join(initiative_needs(best, engine.touchpoints)),
                "markets": "all" if best.scope.markets is None else ", ".join(best.scope.markets),
                "cost": best.cost.total(horizon),
                "step_value": inc["mean"],
                "step_value_low": inc["interval"][0],
                "step_value_high": inc["interval"][1],
                "p_step_positive": float(np.mean(increment > 0)),
                "cumulative_value": float(best_res.net_value.mean()),
                "cumulative_cost": float(sum(i.cost.total(horizon) for i in prefix + [best])),
                "p_payback_so_far": best_res.p_payback,
            }
        )
        prefix.append(best)
        remaining.remove(best)
        previous = best_res.net_value
        prefix_result = best_res
    plan_value = prefix_result if prefix_result is not None else engine.evaluate([])
    steps = pd.DataFrame(
        rows,
        columns=[
            "step",
            "initiative",
            "label",
            "channel",
            "need",
            "markets",
            "cost",
            "step_value",
            "step_value_low",
            "step_value_high",
            "p_step_positive",
            "cumulative_value",
            "cumulative_cost",
            "p_payback_so_far",
        ],
    )
    by_channel = _breakdown(steps, step_draws, "channel")
    by_need = _breakdown(steps, step_draws, "need")
    by_market = market_breakdown(plan_value, [catalogue[n] for n in selection.names], singles, horizon)
    return Roadmap(
        plan=[p.name for p in prefix],
        selection=selection,
        value=plan_value,
        steps=steps,
        by_channel=by_channel,
        by_need=by_need,
        by_market=by_market,
        step_draws=step_draws,
        labels={i.name: i.title for i in catalogue},
    )


def _breakdown(steps: pd.DataFrame, step_draws: Mapping[str, np.ndarray], column: str) -> pd.DataFrame:
    """Sum of step values (per draw, so intervals are right) by a label column."""
    rows = []
    for key, part in steps.groupby(column, sort=False):
        draws = np.sum([step_draws[n] for n in part["initiative"]], axis=0)
        s = summarise_draws(draws)
        rows.append(
            {
                column: key,
                "initiatives": ", ".join(part["label"]),
                "cost": float(part["cost"].sum()),
                "value": s["mean"],
                "value_low": s["interval"][0],
                "value_high": s["interval"][1],
                "p_positive": float(np.mean(draws > 0)),
            }
        )
    return pd.DataFrame(rows, columns=[column, "initiatives", "cost", "value", "value_low", "value_high", "p_positive"])


def market_breakdown(
    plan_value: ValueResult, chosen: Sequence[Initiative], singles: Mapping[str, ValueResult], horizon: int
) -> pd.DataFrame:
    """Plan value by market: discounted benefit in the market minus the costs allocated to it.

    Each initiative's cost is allocated to the markets it reaches in proportion to its customers there.
    """
    if not chosen:
        return pd.DataFrame(columns=["market", "customers", "benefit", "cost", "value", "value_low", "value_high"])
    draws = len(plan_value.net_value)
    alloc: dict[str, float] = {}
    for ini in chosen:
        reach = singles[ini.name].customers_by_market
        total = sum(reach.values())
        cost_pv = singles[ini.name].cost_pv
        for market, n in reach.items():
            alloc[market] = alloc.get(market, 0.0) + (cost_pv * n / total if total else 0.0)
    rows = []
    for market in sorted(set(plan_value.benefit_by_market) | set(alloc)):
        benefit = plan_value.benefit_by_market.get(market, np.zeros(draws))
        value = benefit - alloc.get(market, 0.0)
        s = summarise_draws(value)
        rows.append(
            {
                "market": market,
                "customers": plan_value.customers_by_market.get(market, 0),
                "benefit": float(np.mean(benefit)),
                "cost": alloc.get(market, 0.0),
                "value": s["mean"],
                "value_low": s["interval"][0],
                "value_high": s["interval"][1],
            }
        )
    return pd.DataFrame(rows)
