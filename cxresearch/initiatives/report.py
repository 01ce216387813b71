"""What the initiatives study shows: the business headline, tables, figures and results.json entries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.initiatives.catalogue import Catalogue
from cxresearch.initiatives.roadmap import Roadmap
from cxresearch.initiatives.value import INTERVAL, ValueResult, summarise_draws
from cxresearch.reports.display import error_bars


def format_money(value: float | None, currency: str = "€") -> str:
    """12345 -> '€12k', -1.5e6 -> '-€1.5M' (for business readers)."""
    if value is None or not np.isfinite(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    v = abs(float(value))
    if v >= 1e6:
        text = f"{v / 1e6:.1f}M"
    elif v >= 1e4:
        text = f"{v / 1e3:.0f}k"
    elif v >= 1e3:
        text = f"{v / 1e3:.1f}k"
    else:
        text = f"{v:.0f}"
    return f"{sign}{currency}{text}"


def plan_headline_markdown(
    roadmap: Roadmap,
    singles: Mapping[str, ValueResult],
    catalogue: Catalogue,
    discount_rate_annual: float,
    currency: str = "€",
) -> str:
    """The first screen: recommended plan, its expected value and the probability that it pays back."""
    horizon = roadmap.value.horizon_months
    budget = format_money(roadmap.selection.budget, currency)
    years = f"{horizon / 12:g} years" if horizon % 12 == 0 else f"{horizon} months"
    lines = []
    if not roadmap.plan:
        best = max(singles.values(), key=lambda r: r.net_value.mean()) if singles else None
        lines.append(f"### No initiative is recommended within a budget of {budget}")
        if best is not None:
            name = best.names[0]
            lines.append(
                f"None is expected to pay for itself over {years}. The closest is "
                f"**{catalogue[name].title}**: expected net value "
                f"{format_money(best.net_value.mean(), currency)}, probability it pays back "
                f"{100 * best.p_payback:.0f}%."
            )
        return "\n\n".join(lines)
    value = summarise_draws(roadmap.value.net_value)
    pb = roadmap.value.payback_summary()
    steps = " → ".join(f"**{i + 1}. {roadmap.labels.get(n, n)}**" for i, n in enumerate(roadmap.plan))
    lines.append("### Recommended plan")
    lines.append(steps)
    lines.append(
        f"**Expected net value: {format_money(value['mean'], currency)}** over {years} "
        f"(90% interval {format_money(value['interval'][0], currency)} to "
        f"{format_money(value['interval'][1], currency)}), after costs of "
        f"{format_money(roadmap.selection.cost, currency)} (budget {budget}); cash flows discounted at "
        f"{100 * discount_rate_annual:.0f}% a year."
    )
    nps = roadmap.value.nps_shift
    lines.append(
        f"It moves NPS among the {roadmap.value.customers_in_scope:,} customers it reaches by "
        f"**{nps.mean():+.1f} points** (90% interval {np.quantile(nps, INTERVAL[0]):+.1f} to "
        f"{np.quantile(nps, INTERVAL[1]):+.1f}) once fully in effect."
    )
    median = f"; median payback after {pb['median']:.0f} months" if pb["median"] is not None else ""
    lines.append(
        f"**Probability that the plan pays back within {horizon} months: {100 * pb['p_within_horizon']:.0f}%**{median}."
    )
    left_out = [n for n in catalogue.names if n not in roadmap.plan]
    if left_out:
        parts = []
        for n in left_out:
            r = singles[n]
            reason = "left out to stay within the budget" if r.net_value.mean() > 0 else "not expected to pay back"
            parts.append(
                f"{catalogue[n].title} ({reason}: expected net value "
                f"{format_money(r.net_value.mean(), currency)}, P(ROI > 0) {100 * r.p_roi_positive:.0f}%)"
            )
        lines.append("Not in the plan: " + "; ".join(parts) + ".")
    return "\n\n".join(lines)


def record_initiative_results(singles: Mapping[str, ValueResult], roadmap: Roadmap) -> dict[str, Any]:
    """Record the headline numbers in results.json (``cxresearch.record_result``) and return them.

    Keys: ``initiatives.<name>.{net_value, roi, p_roi_positive, payback_months, ...}``, ``plan``,
    ``plan_value``, ``plan_p_payback`` and ``plan_details``.
    """
    from cxresearch import record_result

    out: dict[str, Any] = {}
    for name, res in singles.items():
        s = res.summary()
        entry = {
            "net_value": {"mean": s["net_value"]["mean"], "interval": s["net_value"]["interval"]},
            "roi": {"mean": s["roi"]["mean"], "interval": s["roi"]["interval"]},
            "p_roi_positive": s["p_roi_positive"],
            "payback_months": s["payback_months"],
            "cost_total": s["cost_total"],
            "nps_shift_points": s["nps_shift_points"],
            "customers_in_scope": s["customers_in_scope"],
            "variance_shares": s["variance_shares"],
        }
        record_result(f"initiatives.{name}", entry)
        out[f"initiatives.{name}"] = entry
    summary = roadmap.summary()
    record_result("plan", summary["plan"])
    record_result("plan_value", {"mean": summary["plan_value"]["mean"], "interval": summary["plan_value"]["interval"]})
    record_result("plan_p_payback", summary["plan_p_payback"])
    details = {
        k: summary[k]
        for k in (
            "plan_cost",
            "budget",
            "plan_payback_months",
            "plan_p_roi_positive",
            "selection_method",
            "selection_exact",
        )
    }
    details["steps"] = roadmap.steps[["initiative", "step_value", "cumulative_value"]].to_dict("records")
    record_result("plan_details", details)
    out.update(
        {
            "plan": summary["plan"],
            "plan_value": summary["plan_value"],
            "plan_p_payback": summary["plan_p_payback"],
            "plan_details": details,
        }
    )
    return out


def record_evaluations(evaluations: Sequence[Any]) -> dict[str, Any]:
    """Record each difference-in-differences result as ``evaluation.<outcome>`` (with its ``diagnostics``)."""
    from cxresearch import record_result

    out = {}
    for ev in evaluations:
        key = f"evaluation.{ev.outcome.split(':')[0]}"
        block = ev.to_dict()
        record_result(key, block)
        out[key] = block
    return out


def ranking_display(table: pd.DataFrame, currency: str = "€") -> pd.DataFrame:
    """The ranking table with business column names and formatted money."""
    if table.empty:
        return table
    out = pd.DataFrame(
        {
            "Rank (value)": table["rank_value"],
            "Rank (risk)": table["rank_risk"],
            "Initiative": table["label"],
            "Channel": table["channel"],
            "Need": table["need"],
            "Markets": table["markets"],
            "Cost": table["cost"].map(lambda v: format_money(v, currency)),
            "Expected net value": table["net_value"].map(lambda v: format_money(v, currency)),
            "90% interval": [
                f"{format_money(a, currency)} to {format_money(b, currency)}"
                for a, b in zip(table["net_value_low"], table["net_value_high"])
            ],
            "P(ROI > 0)": table["p_roi_positive"].map(lambda v: f"{100 * v:.0f}%"),
            "Bad case (5%)": table["q05"].map(lambda v: format_money(v, currency)),
            "Payback (median months)": table["payback_median"].map(
                lambda v: "beyond horizon" if v is None or pd.isna(v) else f"{v:.0f}"
            ),
            "NPS change (points, in scope)": table["nps_shift"].map(lambda v: f"{v:+.1f}"),
            "Main source of uncertainty": table["main_uncertainty"],
        }
    )
    return out


def steps_display(roadmap: Roadmap, currency: str = "€") -> pd.DataFrame:
    """The plan's steps with the value each adds (incremental, in order)."""
    s = roadmap.steps
    if s.empty:
        return s
    return pd.DataFrame(
        {
            "Step": s["step"],
            "Initiative": s["label"],
            "Channel": s["channel"],
            "Need": s["need"],
            "Markets": s["markets"],
            "Cost": s["cost"].map(lambda v: format_money(v, currency)),
            "Value added": s["step_value"].map(lambda v: format_money(v, currency)),
            "90% interval": [
                f"{format_money(a, currency)} to {format_money(b, currency)}"
                for a, b in zip(s["step_value_low"], s["step_value_high"])
            ],
            "P(step adds value)": s["p_step_positive"].map(lambda v: f"{100 * v:.0f}%"),
            "Plan value so far": s["cumulative_value"].map(lambda v: format_money(v, currency)),
            "P(pays back so far)": s["p_payback_so_far"].map(lambda v: f"{100 * v:.0f}%"),
        }
    )


def breakdown_display(frame: pd.DataFrame, key: str, currency: str = "€") -> pd.DataFrame:
    """A by-channel / by-need / by-market breakdown with formatted money."""
    if frame.empty:
        return frame
    out = frame.copy()
    for col in ("cost", "value", "benefit"):
        if col in out:
            out[col] = out[col].map(lambda v: format_money(v, currency))
    if "value_low" in out:
        out["90% interval"] = [
            f"{format_money(a, currency)} to {format_money(b, currency)}"
            for a, b in zip(frame["value_low"], frame["value_high"])
        ]
        out = out.drop(columns=["value_low", "value_high"])
    if "p_positive" in out:
        out["p_positive"] = out["p_positive"].map(lambda v: f"{100 * v:.0f}%")
    return out.rename(
        columns={
            key: key.capitalize(),
            "cost": "Cost",
            "value": "Net value",
            "benefit": "Benefit",
            "initiatives": "Initiatives",
            "customers": "Customers",
            "p_positive": "P(positive)",
        }
    )


def plot_net_value(singles: Mapping[str, ValueResult], catalogue: Catalogue, currency: str = "€") -> Any:
    """Net value per initiative: 90% interval (line), 50% interval (bar) and mean (dot)."""
    import matplotlib.pyplot as plt

    names = sorted(singles, key=lambda n: singles[n].net_value.mean())
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.5))
    for i, n in enumerate(names):
        v = singles[n].net_value
        lo, q1, q3, hi = np.quantile(v, [INTERVAL[0], 0.25, 0.75, INTERVAL[1]])
        color = "#2c7c5b" if v.mean() > 0 else "#c0504d"
        ax.plot([lo, hi], [i, i], color=color, lw=1.5)
        ax.plot([q1, q3], [i, i], color=color, lw=6, alpha=0.6)
        ax.plot(v.mean(), i, "o", color="black", ms=5)
    ax.axvline(0, color="#7f7f7f", lw=1, ls="--")
    ax.set_yticks(range(len(names)), [catalogue[n].title for n in names])
    ax.set_xlabel(f"Net value ({currency}, discounted)")
    ax.set_title("Net value of each initiative alone (dot: mean; bars: 50% and 90% intervals)")
    ax.xaxis.set_major_formatter(lambda x, _: format_money(x, currency))
    return fig


def plot_payback(
    result: ValueResult, title: str = "Cumulative discounted net value of the plan", currency: str = "€"
) -> Any:
    """Cumulative discounted benefit minus cost by month: median and 90% band; payback where it crosses 0."""
    import matplotlib.pyplot as plt

    cum = result.cumulative_net
    months = np.arange(cum.shape[1])
    lo, med, hi = np.quantile(cum, [INTERVAL[0], 0.5, INTERVAL[1]], axis=0)
    fig, ax = plt.subplots()
    ax.fill_between(months, lo, hi, color="#1f4e79", alpha=0.2, label="90% interval")
    ax.plot(months, med, color="#1f4e79", lw=2, label="median")
    ax.axhline(0, color="#7f7f7f", lw=1, ls="--")
    ax.set_xlabel("Months from the start")
    ax.set_ylabel(f"{currency} (discounted)")
    ax.yaxis.set_major_formatter(lambda y, _: format_money(y, currency))
    ax.set_title(title)
    ax.legend(loc="upper left")
    return fig


def plot_steps(roadmap: Roadmap, currency: str = "€") -> Any:
    """Waterfall of the plan: the value each step adds, with its 90% interval."""
    import matplotlib.pyplot as plt

    s = roadmap.steps
    fig, ax = plt.subplots(figsize=(8, 4))
    start = 0.0
    for i, row in s.iterrows():
        color = "#2c7c5b" if row["step_value"] >= 0 else "#c0504d"
        ax.bar(i, row["step_value"], bottom=start, color=color, width=0.6)
        ax.errorbar(
            i,
            start + row["step_value"],
            yerr=error_bars(row["step_value"], row["step_value_low"], row["step_value_high"]),
            color="black",
            capsize=4,
            lw=1,
        )
        start += row["step_value"]
    ax.axhline(0, color="#7f7f7f", lw=1)
    ax.set_xticks(range(len(s)), [f"{r.step}. {r.label}" for r in s.itertuples()], rotation=20, ha="right")
    ax.set_ylabel(f"Net value added ({currency})")
    ax.yaxis.set_major_formatter(lambda y, _: format_money(y, currency))
    ax.set_title("Value of each step of the plan (in order; bars: 90% interval of the step)")
    return fig


def plot_uncertainty(singles: Mapping[str, ValueResult], catalogue: Catalogue) -> Any:
    """Stacked shares of the variance of net value by source, per initiative."""
    import matplotlib.pyplot as plt

    keys = ["effect_size", "driver_model", "value_model", "interaction"]
    labels = {
        "effect_size": "effect size",
        "driver_model": "driver model",
        "value_model": "customer value",
        "interaction": "interaction",
    }
    colors = {"effect_size": "#1f4e79", "driver_model": "#c0504d", "value_model": "#9bbb59", "interaction": "#bfbfbf"}
    names = [n for n in catalogue.names if singles[n].variance_shares]
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(1, len(names)) + 1.5))
    left = np.zeros(len(names))
    for k in keys:
        vals = np.array([(singles[n].variance_shares or {}).get(k, 0.0) for n in names])
        ax.barh(range(len(names)), vals, left=left, color=colors[k], label=labels[k])
        left += vals
    ax.set_yticks(range(len(names)), [catalogue[n].title for n in names])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda x, _: f"{100 * x:.0f}%")
    ax.set_xlabel("Share of the variance of net value")
    ax.set_title("What drives the uncertainty")
    ax.legend(loc="lower right", fontsize=9)
    return fig
