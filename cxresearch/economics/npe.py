"""Net Promoter Economics: what a promoter, a passive and a detractor are worth, and why.

Per NPS class (mean over the active customers of the class, conditional on their tenure), per draw:

- retention: core margin x expected discounted months as a customer, where core margin = margin minus
  the margin of the extra products (``margin_per_product x (products - base_products)``);
- cross-sell / upsell: margin of the extra products x expected discounted months;
- word of mouth: ``referrals_per_promoter`` (promoters) or ``-prospects_lost_per_detractor`` (detractors)
  per year as a customer x expected discounted years x ``value_per_referral``. These three numbers are
  assumptions given by the analyst (params), reported as such; they are not estimated from the data.

``clv`` = retention + cross-sell (what the customer's own margin is worth); ``total`` adds word of mouth.

Moving one detractor to another class (the value of fixing a detractor): for each current detractor, the
same margin over the longer expected lifetime of the target class (retention), the target class's extra
products within the customer's segment (cross-sell), and the change in word of mouth. This reads the class
differences as effects of the experience; the survival model adjusts for segment and market, the product
difference is taken within segment.

Value at risk per segment / market: the sum over its current detractors of the value of moving each to
promoter, i.e. the value the firm forgoes by having detractors rather than promoters (among customers
with a known NPS class).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.economics.clv import (
    SurvivalModel,
    _warn_extrapolation,
    discounted_lifetime_draws,
    extrapolation_check,
    resampling_weights,
    summarise_draws,
)
from cxresearch.protocol import DEFAULT_LEVEL, check_level


@dataclass(frozen=True)
class WordOfMouthAssumptions:
    """Analyst assumptions for word of mouth (not estimated from the data)."""

    referrals_per_promoter: float = 0.0  # new customers won per promoter per year as a customer
    prospects_lost_per_detractor: float = 0.0  # prospects lost per detractor per year as a customer
    value_per_referral: float = 0.0  # value of one customer won or lost (same currency as margin)

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"word-of-mouth assumption {key} must be a non-negative number, got {value}")

    def annual_rate(self, nps_class: str) -> float:
        """Referrals (+) or lost prospects (-) per year as a customer for one class."""
        return {
            "promoter": self.referrals_per_promoter,
            "passive": 0.0,
            "detractor": -self.prospects_lost_per_detractor,
        }[nps_class]

    def table(self) -> pd.DataFrame:
        """The assumptions as a table for the report."""
        return pd.DataFrame(
            [
                {
                    "assumption": "Referrals per promoter",
                    "value": self.referrals_per_promoter,
                    "unit": "new customers per year as a customer",
                    "source": "assumption (params)",
                },
                {
                    "assumption": "Prospects lost per detractor",
                    "value": self.prospects_lost_per_detractor,
                    "unit": "prospects per year as a customer",
                    "source": "assumption (params)",
                },
                {
                    "assumption": "Value per referral",
                    "value": self.value_per_referral,
                    "unit": "margin currency per customer won or lost",
                    "source": "assumption (params)",
                },
            ]
        )


@dataclass
class NpeResult:
    """Net Promoter Economics tables with intervals, the assumptions used and the raw draws."""

    clv_by_class: pd.DataFrame  # nps_class, component, mean, low, high
    value_of_moves: pd.DataFrame  # from_class, to_class, component, mean, low, high
    value_at_risk: pd.DataFrame  # dimension, level, n_customers, n_detractors, value_at_risk, low, high, ...
    assumptions: pd.DataFrame
    draws: dict[str, np.ndarray] = field(repr=False)
    extrapolation: dict[str, Any] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL  # of every interval in the tables and in to_results

    def clv_wide(self) -> pd.DataFrame:
        """One row per class, one column per component (means), plus the CLV interval."""
        wide = self.clv_by_class.pivot(index="nps_class", columns="component", values="mean")
        ci = self.clv_by_class[self.clv_by_class["component"] == "clv"].set_index("nps_class")[["low", "high"]]
        out = wide.join(ci.rename(columns={"low": "clv_low", "high": "clv_high"}))
        order = [c for c in NPS_CLASSES if c in out.index]
        cols = [
            c
            for c in ("retention", "cross_sell", "clv", "clv_low", "clv_high", "word_of_mouth", "total")
            if c in out.columns
        ]
        return out.loc[order, cols].reset_index()

    def move(self, from_class: str, to_class: str, component: str = "total") -> dict[str, Any]:
        """``{"mean", "interval"}`` of one move's value (for results.json)."""
        key = f"{from_class}->{to_class}:{component}"
        if key not in self.draws:
            raise KeyError(f"no move {from_class} -> {to_class} ({component}); have {sorted(self.draws)}")
        return summarise_draws(self.draws[key], self.level)

    def to_results(self) -> dict[str, Any]:
        """CLV per class and move values in the results.json shape ``{mean, interval}``."""
        clv = {c: summarise_draws(self.draws[f"{c}:clv"], self.level) for c in NPS_CLASSES if f"{c}:clv" in self.draws}
        moves = {f"value_{f}_to_{t}": self.move(f, t) for f, t in _MOVES if f"{f}->{t}:total" in self.draws}
        return {"clv": clv, **moves}


_MOVES = (("detractor", "passive"), ("detractor", "promoter"), ("passive", "promoter"))
_COMPONENTS = ("retention", "cross_sell", "clv", "word_of_mouth", "total")


def _summary_rows(prefix: dict[str, Any], draws: np.ndarray, level: float) -> dict[str, Any]:
    s = summarise_draws(draws, level)
    return {**prefix, "mean": s["mean"], "low": s["interval"][0], "high": s["interval"][1]}


def _product_mean_draws(
    products: pd.DataFrame, keys: list[str], n_draws: int, rng: np.random.Generator
) -> dict[tuple[str, ...], np.ndarray]:
    out = {}
    for _, row in products.iterrows():
        se = float(row["sd"]) / np.sqrt(max(float(row["n"]), 1.0))
        out[tuple(str(row[k]) for k in keys)] = float(row["mean"]) + se * rng.standard_normal(n_draws)
    return out


def net_promoter_economics(
    model: SurvivalModel,
    profile: pd.DataFrame,
    *,
    products: pd.DataFrame,
    margin_per_product: Mapping[str, float],
    word_of_mouth: WordOfMouthAssumptions,
    horizon_months: int,
    discount_rate_annual: float,
    class_col: str = "nps_class",
    segment_col: str | None = "segment",
    market_col: str | None = "market",
    tenure_col: str = "tenure",
    margin_col: str = "margin_mean",
    margin_sd_col: str = "margin_sd",
    count_col: str = "n",
    products_col: str = "products_mean",
    base_products: float = 1.0,
    level: float = DEFAULT_LEVEL,
    seed: int = 1,
    sampling_uncertainty: bool = True,
    extrapolation_tolerance: float = 0.25,
) -> NpeResult:
    """CLV of promoters / passives / detractors split into retention, cross-sell and word of mouth, the value
    of moving a detractor, and value at risk by segment and market, all with ``level`` intervals (columns
    ``low``, ``high``).

    ``profile``: active customers by covariates and tenure (``customer_profile(..., products_col=...)``).
    ``products``: mean / sd / n of the product count per (segment, class) (``group_summary``), or per class
    when ``segment_col`` is None. ``margin_per_product``: ``{"estimate", "se"}`` (``margin_per_product``).
    """
    level = check_level(level)
    needed = [class_col, tenure_col, margin_col, margin_sd_col, count_col, products_col]
    needed += [c for c in (segment_col, market_col) if c]
    missing = [c for c in needed if c not in profile.columns]
    if missing:
        raise KeyError(f"profile lacks column(s) {missing}; it has {list(profile.columns)}")
    if class_col not in model.covariates:
        raise KeyError(f"the survival model has no {class_col!r} covariate ({model.covariates})")
    prod_keys = ([segment_col] if segment_col else []) + [class_col]
    missing = [c for c in [*prod_keys, "n", "mean", "sd"] if c not in products.columns]
    if missing:
        raise KeyError(f"products table lacks column(s) {missing}; it has {list(products.columns)}")
    for key in ("estimate", "se"):
        if key not in margin_per_product:
            raise KeyError(f"margin_per_product needs {key!r}; got {sorted(margin_per_product)}")
    profile = profile.reset_index(drop=True)
    classes = profile[class_col].astype(str).to_numpy()
    unknown = sorted(set(classes) - set(NPS_CLASSES))
    if unknown:
        raise ValueError(f"profile column {class_col!r} has values {unknown} outside {list(NPS_CLASSES)}")

    lifetime = discounted_lifetime_draws(
        model, profile, horizon_months=horizon_months, discount_rate_annual=discount_rate_annual, tenure_col=tenure_col
    )
    n_draws = int(lifetime.shape[0])
    n = profile[count_col].to_numpy(dtype=float)
    w, m = resampling_weights(
        n,
        profile[margin_col].to_numpy(dtype=float),
        profile[margin_sd_col].fillna(0).to_numpy(dtype=float),
        n_draws,
        seed,
        sampling_uncertainty,
    )
    rng = np.random.default_rng(seed + 1)
    b = margin_per_product["estimate"] + margin_per_product["se"] * rng.standard_normal(n_draws)
    extra = profile[products_col].to_numpy(dtype=float) - base_products
    cross = b[:, None] * extra[None, :]
    value = word_of_mouth.value_per_referral
    wom_rate = np.array([word_of_mouth.annual_rate(c) for c in classes])

    draws: dict[str, np.ndarray] = {}

    def wmean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (values[:, mask] * w[:, mask]).sum(axis=1) / w[:, mask].sum(axis=1)

    rows = []
    for c in NPS_CLASSES:
        mask = classes == c
        if not mask.any():
            continue
        parts = {
            "retention": wmean((m - cross) * lifetime, mask),
            "cross_sell": wmean(cross * lifetime, mask),
            "word_of_mouth": wmean(wom_rate[None, :] / 12 * lifetime * value, mask),
        }
        parts["clv"] = parts["retention"] + parts["cross_sell"]
        parts["total"] = parts["clv"] + parts["word_of_mouth"]
        for comp in _COMPONENTS:
            draws[f"{c}:{comp}"] = parts[comp]
            rows.append(
                _summary_rows(
                    {"nps_class": c, "component": comp, "n_customers": int(n[mask].sum())}, parts[comp], level
                )
            )
    clv_table = pd.DataFrame(rows)

    prod_draws = _product_mean_draws(products.astype({k: str for k in prod_keys}), prod_keys, n_draws, rng)
    seg = profile[segment_col].astype(str).to_numpy() if segment_col else None

    def product_mean(cls: str, idx: np.ndarray) -> np.ndarray:
        cols = []
        for i in idx:
            key = ((seg[i],) if seg is not None else ()) + (cls,)
            if key not in prod_draws:
                raise KeyError(f"products table has no row for {dict(zip(prod_keys, key))}")
            cols.append(prod_draws[key])
        return np.stack(cols, axis=1) if cols else np.zeros((n_draws, 0))

    move_rows, per_row_value = [], {}
    for from_c, to_c in _MOVES:
        idx = np.flatnonzero(classes == from_c)
        if idx.size == 0 or not (classes == to_c).any():
            continue
        sub = profile.iloc[idx]
        new_life = discounted_lifetime_draws(
            model,
            sub,
            horizon_months=horizon_months,
            discount_rate_annual=discount_rate_annual,
            tenure_col=tenure_col,
            override={class_col: to_c},
        )
        old_life = lifetime[:, idx]
        delta_products = product_mean(to_c, idx) - product_mean(from_c, idx)
        parts_row = {
            "retention": m[:, idx] * (new_life - old_life),
            "cross_sell": b[:, None] * delta_products * new_life,
            "word_of_mouth": value
            / 12
            * (word_of_mouth.annual_rate(to_c) * new_life - word_of_mouth.annual_rate(from_c) * old_life),
        }
        parts_row["clv"] = parts_row["retention"] + parts_row["cross_sell"]
        parts_row["total"] = parts_row["clv"] + parts_row["word_of_mouth"]
        ww = w[:, idx]
        for comp in _COMPONENTS:
            mean_draws = (parts_row[comp] * ww).sum(axis=1) / ww.sum(axis=1)
            draws[f"{from_c}->{to_c}:{comp}"] = mean_draws
            move_rows.append(
                _summary_rows({"from_class": from_c, "to_class": to_c, "component": comp}, mean_draws, level)
            )
        per_row_value[(from_c, to_c)] = (idx, parts_row["total"])
    moves_table = pd.DataFrame(move_rows)

    risk_rows = []
    if ("detractor", "promoter") in per_row_value:
        idx, total = per_row_value[("detractor", "promoter")]
        for dim in [c for c in (segment_col, market_col) if c]:
            levels = profile[dim].astype(str).to_numpy()
            for group in sorted(set(levels)):
                in_group = levels == group
                det = in_group[idx]
                at_risk = (total[:, det] * w[:, idx][:, det]).sum(axis=1)
                draws[f"value_at_risk:{dim}={group}"] = at_risk
                n_det = float(n[idx][det].sum())
                s = summarise_draws(at_risk, level)
                risk_rows.append(
                    {
                        "dimension": dim,
                        "level": group,
                        "n_customers": int(n[in_group].sum()),
                        "n_detractors": int(n_det),
                        "value_at_risk": s["mean"],
                        "low": s["interval"][0],
                        "high": s["interval"][1],
                        "per_detractor": s["mean"] / n_det if n_det else float("nan"),
                        "per_customer": s["mean"] / float(n[in_group].sum()),
                    }
                )
    risk_table = pd.DataFrame(risk_rows)

    info = extrapolation_check(
        model, profile[tenure_col].to_numpy(dtype=float), n, horizon_months, extrapolation_tolerance
    )
    _warn_extrapolation(info)
    assumptions = pd.concat(
        [
            word_of_mouth.table(),
            pd.DataFrame(
                [
                    {
                        "assumption": "Margin per extra product",
                        "value": float(margin_per_product["estimate"]),
                        "unit": "per month",
                        "source": f"estimated (se {float(margin_per_product['se']):.3g})",
                    },
                    {
                        "assumption": "Products included in core margin",
                        "value": base_products,
                        "unit": "products",
                        "source": "assumption (params)",
                    },
                    {"assumption": "Horizon", "value": horizon_months, "unit": "months", "source": "params"},
                    {
                        "assumption": "Discount rate",
                        "value": discount_rate_annual,
                        "unit": "per year",
                        "source": "params",
                    },
                ]
            ),
        ],
        ignore_index=True,
    )
    return NpeResult(
        clv_by_class=clv_table,
        value_of_moves=moves_table,
        value_at_risk=risk_table,
        assumptions=assumptions,
        draws=draws,
        extrapolation=info,
        level=level,
    )


def class_cashflows(
    model: SurvivalModel,
    profile: pd.DataFrame,
    *,
    horizon_months: int,
    margin_per_product: float,
    class_col: str = "nps_class",
    tenure_col: str = "tenure",
    margin_col: str = "margin_mean",
    count_col: str = "n",
    products_col: str = "products_mean",
    base_products: float = 1.0,
    max_chunk_values: int = 8_000_000,
) -> dict[str, np.ndarray]:
    """Expected monthly cash flow of an active customer of each NPS class, months 1..H, per draw.

    Returns ``{"margin": core margin, "cross_sell": extra-product margin}``, each [draw, 3 classes
    (detractor, passive, promoter), month]: the customer-weighted mean over the class of
    ``margin x S(t + k) / S(t)``. Discounting and summing gives the class CLV of
    :func:`net_promoter_economics` (without its sampling uncertainty). This is the shape the initiatives
    study's value model takes (``cxresearch.initiatives.value.ClvDraws(cashflow=margin + cross_sell,
    components=...)``).
    """
    needed = [class_col, tenure_col, margin_col, count_col, products_col]
    missing = [c for c in needed if c not in profile.columns]
    if missing:
        raise KeyError(f"profile lacks column(s) {missing}; it has {list(profile.columns)}")
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise ValueError(f"horizon_months must be a positive whole number, got {horizon_months}")
    horizon = int(horizon_months)
    profile = profile.reset_index(drop=True)
    classes = profile[class_col].astype(str).to_numpy()
    tenure = profile[tenure_col].to_numpy(dtype=float)
    n = profile[count_col].to_numpy(dtype=float)
    cross = margin_per_product * (profile[products_col].to_numpy(dtype=float) - base_products)
    core = profile[margin_col].to_numpy(dtype=float) - cross
    k = np.arange(horizon + 1, dtype=float)
    out: dict[str, np.ndarray] = {}
    for ci, cls in enumerate(NPS_CLASSES):
        idx = np.flatnonzero(classes == cls)
        if idx.size == 0:
            continue
        probe = model.cumulative_hazard_draws(profile.iloc[idx[:1]], tenure[idx[:1], None] + k[None, :])
        n_draws = probe.shape[0]
        if not out:
            out = {
                "margin": np.full((n_draws, len(NPS_CLASSES), horizon), np.nan),
                "cross_sell": np.full((n_draws, len(NPS_CLASSES), horizon), np.nan),
            }
        sums = {"margin": np.zeros((n_draws, horizon)), "cross_sell": np.zeros((n_draws, horizon))}
        chunk = max(1, int(max_chunk_values // (n_draws * (horizon + 1))))
        for lo in range(0, idx.size, chunk):
            rows = idx[lo : lo + chunk]
            cum = model.cumulative_hazard_draws(profile.iloc[rows], tenure[rows, None] + k[None, :])
            cond = np.exp(-(cum[:, :, 1:] - cum[:, :, :1]))  # (S, c, H)
            sums["margin"] += np.einsum("sch,c->sh", cond, n[rows] * core[rows])
            sums["cross_sell"] += np.einsum("sch,c->sh", cond, n[rows] * cross[rows])
        for key in sums:
            out[key][:, ci, :] = sums[key] / n[idx].sum()
    if not out:
        raise ValueError(f"profile column {class_col!r} has none of the classes {list(NPS_CLASSES)}")
    return out
