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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

_WOM_FIELDS = ("referrals_per_promoter", "prospects_lost_per_detractor", "value_per_referral")


@dataclass(frozen=True)
class WordOfMouthAssumptions:
    """Analyst assumptions for word of mouth (not estimated from the data).

    Each is a number or a range ``(low, high)``: a range is the declared uncertainty of the assumption,
    drawn uniformly per posterior draw, so the word-of-mouth component's interval shows it. The fields hold
    the point value (a range's midpoint); :attr:`ranges` keeps the declared ranges.
    """

    referrals_per_promoter: Any = 0.0  # new customers won per promoter per year as a customer
    prospects_lost_per_detractor: Any = 0.0  # prospects lost per detractor per year as a customer
    value_per_referral: Any = 0.0  # value of one customer won or lost (same currency as margin)
    ranges: dict[str, tuple[float, float]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        ranges: dict[str, tuple[float, float]] = {}
        for key in _WOM_FIELDS:
            value = getattr(self, key)
            low, high = (value, value) if np.isscalar(value) else tuple(value)
            if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high < low:
                raise ValueError(
                    f"word-of-mouth assumption {key} must be a non-negative number or a range [low, high] "
                    f"with 0 <= low <= high, got {value}"
                )
            ranges[key] = (float(low), float(high))
            object.__setattr__(self, key, (float(low) + float(high)) / 2)
        object.__setattr__(self, "ranges", ranges)

    @property
    def any(self) -> bool:
        """True when word of mouth adds anything (a rate and the value per referral above zero)."""
        rates = self.ranges["referrals_per_promoter"][1] + self.ranges["prospects_lost_per_detractor"][1]
        return rates > 0 and self.ranges["value_per_referral"][1] > 0

    def annual_rate(self, nps_class: str) -> float:
        """Referrals (+) or lost prospects (-) per year as a customer for one class (point values)."""
        return {
            "promoter": self.referrals_per_promoter,
            "passive": 0.0,
            "detractor": -self.prospects_lost_per_detractor,
        }[nps_class]

    def draws(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per-draw values of the three assumptions (uniform over a declared range, constant otherwise)."""
        return {
            key: rng.uniform(low, high, n_draws) if high > low else np.full(n_draws, low)
            for key, (low, high) in self.ranges.items()
        }

    def table(self) -> pd.DataFrame:
        """The assumptions as a table for the report (value: point value; range: the declared range)."""

        def rng_text(key: str) -> str:
            low, high = self.ranges[key]
            return f"{low:g} to {high:g}" if high > low else "fixed (no range declared)"

        return pd.DataFrame(
            [
                {
                    "assumption": "Referrals per promoter",
                    "value": self.referrals_per_promoter,
                    "range": rng_text("referrals_per_promoter"),
                    "unit": "new customers per year as a customer",
                    "source": "assumption (params)",
                },
                {
                    "assumption": "Prospects lost per detractor",
                    "value": self.prospects_lost_per_detractor,
                    "range": rng_text("prospects_lost_per_detractor"),
                    "unit": "prospects per year as a customer",
                    "source": "assumption (params)",
                },
                {
                    "assumption": "Value per referral",
                    "value": self.value_per_referral,
                    "range": rng_text("value_per_referral"),
                    "unit": "margin currency per customer won or lost",
                    "source": "assumption (params)",
                },
            ]
        )


@dataclass
class NpeResult:
    """Net Promoter Economics tables with intervals, the assumptions used and the raw draws.

    ``classes`` are ordered worst to best (detractor, passive, promoter for NPS). ``not_estimable`` maps a
    class (``"class:<name>"``) or a move (``"<from>-><to>"``) the data cannot support to the reason, with
    counts; those have no draws and no rows in the tables.
    """

    clv_by_class: pd.DataFrame  # nps_class, component, mean, low, high
    value_of_moves: pd.DataFrame  # from_class, to_class, component, mean, low, high
    value_at_risk: pd.DataFrame  # dimension, level, n_customers, n_detractors, value_at_risk, low, high, ...
    assumptions: pd.DataFrame
    draws: dict[str, np.ndarray] = field(repr=False)
    extrapolation: dict[str, Any] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL  # of every interval in the tables and in to_results
    classes: list[str] = field(default_factory=lambda: list(NPS_CLASSES))
    not_estimable: dict[str, str] = field(default_factory=dict)

    def clv_wide(self) -> pd.DataFrame:
        """One row per class, one column per component (means), plus the CLV interval."""
        if self.clv_by_class.empty:
            return pd.DataFrame(columns=["nps_class", "retention", "cross_sell", "clv", "clv_low", "clv_high"])
        wide = self.clv_by_class.pivot(index="nps_class", columns="component", values="mean")
        ci = self.clv_by_class[self.clv_by_class["component"] == "clv"].set_index("nps_class")[["low", "high"]]
        out = wide.join(ci.rename(columns={"low": "clv_low", "high": "clv_high"}))
        order = [c for c in self.classes if c in out.index]
        cols = [
            c
            for c in ("retention", "cross_sell", "clv", "clv_low", "clv_high", "word_of_mouth", "total")
            if c in out.columns
        ]
        return out.loc[order, cols].reset_index()

    def move(self, from_class: str, to_class: str, component: str = "total") -> dict[str, Any]:
        """``{"mean", "interval", "estimable", "reason"}`` of one move's value (for results.json); a move the
        data cannot support has NaN figures, ``estimable`` False and the reason."""
        key = f"{from_class}->{to_class}"
        if key in self.not_estimable:
            nan = float("nan")
            return {"mean": nan, "interval": [nan, nan], "estimable": False, "reason": self.not_estimable[key]}
        if f"{key}:{component}" not in self.draws:
            raise KeyError(f"no move {from_class} -> {to_class} ({component}); have {sorted(self.draws)}")
        return {**summarise_draws(self.draws[f"{key}:{component}"], self.level), "estimable": True, "reason": ""}

    def to_results(self) -> dict[str, Any]:
        """CLV per class and move values in the results.json shape ``{mean, interval}``."""
        clv = {c: summarise_draws(self.draws[f"{c}:clv"], self.level) for c in self.classes if f"{c}:clv" in self.draws}
        moves = {f"value_{f}_to_{t}": self.move(f, t) for f, t in class_moves(self.classes)}
        return {"clv": clv, **moves}


_COMPONENTS = ("retention", "cross_sell", "clv", "word_of_mouth", "total")


def class_moves(classes: Sequence[str]) -> list[tuple[str, str]]:
    """Every move from a class to a better one (``classes`` ordered worst to best)."""
    return [(a, b) for i, a in enumerate(classes) for b in classes[i + 1 :]]


def _summary_rows(prefix: dict[str, Any], draws: np.ndarray, level: float) -> dict[str, Any]:
    s = summarise_draws(draws, level)
    return {**prefix, "mean": s["mean"], "low": s["interval"][0], "high": s["interval"][1]}


def _product_mean_draws(
    products: pd.DataFrame, keys: list[str], n_draws: int, rng: np.random.Generator
) -> dict[tuple[str, ...], np.ndarray]:
    out = {}
    for _, row in products.iterrows():
        se = float(row["sd"]) / np.sqrt(max(float(row["n"]), 1.0)) if np.isfinite(row["sd"]) else 0.0
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
    classes: Sequence[str] = NPS_CLASSES,
    word_of_mouth_roles: Mapping[str, str] | None = None,
    not_estimable: Mapping[str, str] | None = None,
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
    """CLV of each class (promoters / passives / detractors by default) split into retention, cross-sell and
    word of mouth, the value of moving a customer to a better class, and value at risk by segment and market
    (what the worst class would add in the best), all with ``level`` intervals (columns ``low``, ``high``).

    ``classes``: the levels of ``class_col``, worst to best. ``word_of_mouth_roles``: which class speaks
    as a promoter / detractor (default: the NPS classes themselves; ``{}``: no word of mouth).
    ``not_estimable``: ``{class: reason}`` for classes whose survival the data cannot support (e.g. zero
    churn events, so it is set by the prior): their CLV and every move to or from them are reported as not
    estimable with the reason, not computed. A class with no active customer in ``profile`` is not
    estimable either (no customer to value): moves from it are left out, moves to it are computed.
    ``profile``: active customers by covariates and tenure (``customer_profile(..., products_col=...)``).
    ``products``: mean / sd / n of the product count per (segment, class) (``group_summary``), or per class
    when ``segment_col`` is None. ``margin_per_product``: ``{"estimate", "se"}`` (``margin_per_product``).
    """
    level = check_level(level)
    classes = [str(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must name at least two distinct classes, worst to best; got {classes}")
    roles = (
        {c: c for c in classes if c in ("promoter", "detractor")}
        if word_of_mouth_roles is None
        else {str(k): str(v) for k, v in word_of_mouth_roles.items()}
    )
    bad_roles = {k: v for k, v in roles.items() if k not in classes or v not in ("promoter", "detractor")}
    if bad_roles:
        raise ValueError(f"word_of_mouth_roles {bad_roles}: keys must be classes {classes}, values promoter/detractor")
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
    row_classes = profile[class_col].astype(str).to_numpy()
    unknown = sorted(set(row_classes) - set(classes))
    if unknown:
        raise ValueError(f"profile column {class_col!r} has values {unknown} outside {classes}")
    flagged = {f"class:{c}": str(r) for c, r in (not_estimable or {}).items()}
    nobody_active = set()  # a class with nobody left to value: moves *to* it are still computed
    for c in classes:
        if not (row_classes == c).any() and f"class:{c}" not in flagged:
            flagged[f"class:{c}"] = "no customer of this class is still active: there is no customer to value"
            nobody_active.add(c)

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
    wom = word_of_mouth.draws(n_draws, np.random.default_rng(seed + 2))
    role_rate = {
        "promoter": wom["referrals_per_promoter"],
        "detractor": -wom["prospects_lost_per_detractor"],
    }
    zero = np.zeros(n_draws)

    def wom_rate(cls: str) -> np.ndarray:
        """Per-draw referrals (+) or lost prospects (-) per year x value per referral, per month."""
        return role_rate.get(roles.get(cls, ""), zero) * wom["value_per_referral"] / 12

    draws: dict[str, np.ndarray] = {}

    def wmean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (values[:, mask] * w[:, mask]).sum(axis=1) / w[:, mask].sum(axis=1)

    rows = []
    for c in classes:
        mask = row_classes == c
        if not mask.any() or f"class:{c}" in flagged:
            continue
        parts = {
            "retention": wmean((m - cross) * lifetime, mask),
            "cross_sell": wmean(cross * lifetime, mask),
            "word_of_mouth": wmean(wom_rate(c)[:, None] * lifetime, mask),
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

    def product_mean(cls: str, idx: np.ndarray) -> np.ndarray | None:
        cols = []
        for i in idx:
            key = ((seg[i],) if seg is not None else ()) + (cls,)
            if key not in prod_draws:
                return None
            cols.append(prod_draws[key])
        return np.stack(cols, axis=1) if cols else np.zeros((n_draws, 0))

    move_rows, per_row_value = [], {}
    for from_c, to_c in class_moves(classes):
        key = f"{from_c}->{to_c}"
        reasons = [
            f"{c}: {flagged[f'class:{c}']}"
            for c in (from_c, to_c)
            if f"class:{c}" in flagged and not (c == to_c and c in nobody_active)  # a target needs nobody active
        ]
        idx = np.flatnonzero(row_classes == from_c)
        if reasons or idx.size == 0:
            flagged[key] = "; ".join(reasons) or f"{from_c}: no customer of this class is still active"
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
        to_products, from_products = product_mean(to_c, idx), product_mean(from_c, idx)
        if to_products is None or from_products is None:
            flagged[key] = f"no product counts for {to_c} or {from_c} customers in some segment"
            continue
        delta_products = to_products - from_products
        parts_row = {
            "retention": m[:, idx] * (new_life - old_life),
            "cross_sell": b[:, None] * delta_products * new_life,
            "word_of_mouth": wom_rate(to_c)[:, None] * new_life - wom_rate(from_c)[:, None] * old_life,
        }
        parts_row["clv"] = parts_row["retention"] + parts_row["cross_sell"]
        parts_row["total"] = parts_row["clv"] + parts_row["word_of_mouth"]
        ww = w[:, idx]
        for comp in _COMPONENTS:
            mean_draws = (parts_row[comp] * ww).sum(axis=1) / ww.sum(axis=1)
            draws[f"{key}:{comp}"] = mean_draws
            move_rows.append(
                _summary_rows({"from_class": from_c, "to_class": to_c, "component": comp}, mean_draws, level)
            )
        per_row_value[(from_c, to_c)] = (idx, parts_row["total"], parts_row["clv"])
    moves_table = pd.DataFrame(
        move_rows, columns=["from_class", "to_class", "component", "mean", "low", "high"] if not move_rows else None
    )

    risk_rows = []
    worst_best = (classes[0], classes[-1])
    if worst_best in per_row_value:
        idx, total, data_only = per_row_value[worst_best]
        for dim in [c for c in (segment_col, market_col) if c]:
            levels = profile[dim].astype(str).to_numpy()
            for group in sorted(set(levels)):
                in_group = levels == group
                det = in_group[idx]
                at_risk = (total[:, det] * w[:, idx][:, det]).sum(axis=1)
                from_data = (data_only[:, det] * w[:, idx][:, det]).sum(axis=1)
                draws[f"value_at_risk:{dim}={group}"] = at_risk
                draws[f"value_at_risk_data:{dim}={group}"] = from_data
                n_det = float(n[idx][det].sum())
                s, d = summarise_draws(at_risk, level), summarise_draws(from_data, level)
                risk_rows.append(
                    {
                        "dimension": dim,
                        "level": group,
                        "n_customers": int(n[in_group].sum()),
                        "n_detractors": int(n_det),
                        "data_only": d["mean"],
                        "data_low": d["interval"][0],
                        "data_high": d["interval"][1],
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
                        "range": f"se {float(margin_per_product['se']):.3g}",
                        "unit": "per month",
                        "source": "estimated from the customer table",
                    },
                    {
                        "assumption": "Products included in core margin",
                        "value": base_products,
                        "range": "",
                        "unit": "products",
                        "source": "assumption (params)",
                    },
                    {
                        "assumption": "Horizon",
                        "value": horizon_months,
                        "range": "",
                        "unit": "months",
                        "source": "params",
                    },
                    {
                        "assumption": "Discount rate",
                        "value": discount_rate_annual,
                        "range": "",
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
        classes=classes,
        not_estimable=flagged,
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
