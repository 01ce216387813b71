"""End-to-end value of initiatives, with uncertainty: ratings -> NPS-class mix -> retention and CLV -> value.

The chain, draw by draw (``d`` indexes posterior draws; effect sizes are drawn per draw, one from each of
``draws`` equal-probability slices of their distribution, in random order):

1. For the customers in scope, the initiative changes the ratings of its touchpoints (an uplift, or a
   share of bottom-box experiences removed; :mod:`cxresearch.initiatives.catalogue`).
2. A **driver scenario model** gives the expected detractor / passive / promoter shares of a set of
   respondents per posterior draw; the shift in the class mix is ``class_mix(modified) - class_mix(baseline)``
   for the same draws (common random numbers).
3. A **value model** gives, per draw, the expected monthly cash flow of a customer of each NPS class
   (margin x survival, plus cross-sell and word of mouth): summed with discounting it is the CLV by class.
4. Value per draw = sum over strata (segment x market) of customers in scope x sum over classes of
   (shift in class share x discounted cash flow of the class), with the benefit switched on by the
   initiative's time to effect and ramp; net value = value - one-off cost - discounted recurring cost.

Interfaces other modules plug into
----------------------------------
:class:`DriverScenarioModel` (Protocol)
    ``class_mix(survey, draws, rng) -> ndarray[draws, 3]``: expected shares (detractor, passive,
    promoter; rows sum to 1) of the respondents in ``survey`` under posterior draws ``0..draws-1``. It
    must use the *same* posterior draws on every call (that is what makes differences draw-by-draw
    meaningful); ``rng`` is a generator seeded identically for the baseline and the modified survey, for
    models that integrate the emotion noise by Monte Carlo. ``survey`` has the canonical columns
    (segment, market, unit if known, one float column per touchpoint key, NaN = not used). Optional:
    ``emotion_mean(survey, draws, rng) -> ndarray[draws]``, the mean latent emotion (reported as the
    shift in emotion when present).
:class:`ValueModel` (Protocol)
    ``cashflows(customers, draws, horizon_months, rng) -> ClvDraws``: for the active customers given (one
    segment x market stratum, canonical customer columns: segment, market, tenure, margin...), the
    expected *undiscounted* cash flow in months 1..horizon of a customer who is (from now on) in each NPS
    class, per posterior draw. :class:`ClvDraws` is the container the economics module fills.

Reference implementations from the simulator's ``truth.json`` live in :mod:`cxresearch.initiatives.truth`
(:class:`~cxresearch.initiatives.truth.TrueDriverModel`, :class:`~cxresearch.initiatives.truth.TrueValueModel`).

How uncertain effect sizes meet the driver model
------------------------------------------------
Calling the driver model once per draw with a differently modified survey would cost ``draws`` full
posterior evaluations. Instead each initiative's scenario is simulated at a grid of effect levels spanning
its effect draws (all posterior draws at each level), and each draw's class-mix shift is interpolated at
its own effect size, using that same draw's posterior. Fractional uplifts and shares are applied in
expectation (:meth:`InitiativeEngine.apply`: each respondent's possible ratings after the change, weighted
by their probabilities), not as one random draw of who changes, so the expected shift is exactly linear
between grid levels for one touchpoint and smooth for several, and it does not depend on the engine's
seed; the interpolation error is far below the Monte-Carlo error of the posterior draws. Only the rows
whose ratings change are evaluated (:meth:`InitiativeEngine.shift`). Initiatives that target the same
touchpoint in overlapping scopes are simulated *jointly* (a product grid): their effects on ratings
combine (uplifts add, capped; bad experiences removed by either are removed) and their values are not
additive. Initiatives on different touchpoints are added on the class-mix scale (their interaction through
the logistic link is second order).

Time to effect: month ``m`` of the horizon credits the share of the effect active in that month
(:meth:`Initiative.activation`: 0 until ``time_to_effect_months``, then a linear ramp). A customer who
moves class is credited the cash flow of the new class from then on; overlapping initiatives with
different timing are combined month by month over which of them are active.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from cxresearch.initiatives.catalogue import Initiative, TouchpointInfo
from cxresearch.initiatives.effects import effect_grid

#: (segment, market): the strata in which class shifts and customer values are combined.
Stratum = tuple[str, str]

INTERVAL = (0.05, 0.95)  # the 90% intervals reported everywhere in this module
#: most replacement ratings a removed bad experience can take (:meth:`InitiativeEngine._typical_ratings`)
REPLACEMENT_NODES = 10


@runtime_checkable
class DriverScenarioModel(Protocol):
    """Posterior class mix of a set of respondents (see the module docstring)."""

    def class_mix(self, survey: pd.DataFrame, draws: int, rng: np.random.Generator) -> np.ndarray:
        """Expected (detractor, passive, promoter) shares per posterior draw, shape [draws, 3]."""
        ...


@dataclass
class ClvDraws:
    """Expected monthly cash flow of a customer by NPS class, per posterior draw of the value model.

    ``cashflow[d, c, m]`` is the expected undiscounted cash flow in month ``m + 1`` (months 1..M) of a
    customer who is in class ``c`` (0 detractor, 1 passive, 2 promoter) from now on: margin x survival,
    plus cross-sell and word-of-mouth parts. ``components`` optionally splits it (same shape each, summing
    to ``cashflow``), e.g. {"margin", "cross_sell", "word_of_mouth"}.
    """

    cashflow: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cashflow = np.asarray(self.cashflow, dtype=float)
        if self.cashflow.ndim != 3 or self.cashflow.shape[1] != 3:
            raise ValueError(f"ClvDraws.cashflow must have shape [draw, 3, month], got {self.cashflow.shape}")
        if not np.all(np.isfinite(self.cashflow)):
            raise ValueError("ClvDraws.cashflow has non-finite values")
        for name, part in self.components.items():
            if np.shape(part) != self.cashflow.shape:
                raise ValueError(
                    f"ClvDraws.components[{name!r}] has shape {np.shape(part)}, expected {self.cashflow.shape}"
                )

    @property
    def draws(self) -> int:
        """Number of posterior draws."""
        return self.cashflow.shape[0]

    @property
    def months(self) -> int:
        """Months covered."""
        return self.cashflow.shape[2]

    @classmethod
    def from_parts(
        cls,
        survival: np.ndarray,
        margin: np.ndarray,
        cross_sell: np.ndarray | None = None,
        word_of_mouth: np.ndarray | None = None,
    ) -> ClvDraws:
        """Build from survival curves ``[draw, 3, month]`` (probability of still being a customer at the
        end of each month) and monthly values per class ``[draw, 3]``: margin, cross-sell margin and word
        of mouth (each earned while the customer stays)."""
        survival = np.asarray(survival, dtype=float)
        parts = {"margin": margin, "cross_sell": cross_sell, "word_of_mouth": word_of_mouth}
        components = {
            name: survival * np.asarray(v, dtype=float)[:, :, None] for name, v in parts.items() if v is not None
        }
        return cls(cashflow=sum(components.values()), components=components)

    def take(self, draws: int) -> ClvDraws:
        """The first ``draws`` draws (cycling when there are fewer)."""
        index = np.arange(draws) % self.draws
        return ClvDraws(self.cashflow[index], {k: v[index] for k, v in self.components.items()})

    def clv_by_class(self, discount_rate_annual: float, horizon_months: int | None = None) -> np.ndarray:
        """Discounted CLV by class over the horizon, shape [draw, 3]."""
        months = self.months if horizon_months is None else min(horizon_months, self.months)
        disc = discount_factors(discount_rate_annual, months)
        return np.einsum("dcm,m->dc", self.cashflow[:, :, :months], disc)


@runtime_checkable
class ValueModel(Protocol):
    """Per-class expected cash flows of customers, per posterior draw (see the module docstring)."""

    def cashflows(self, customers: pd.DataFrame, draws: int, horizon_months: int, rng: np.random.Generator) -> ClvDraws:
        """Expected monthly cash flow by class for these customers, shape [draws, 3, horizon_months]."""
        ...


class ClvDrawsValueModel:
    """A value model that returns fixed ClvDraws for every stratum (e.g. filled by the economics module).

    ``by_stratum`` maps (segment, market) to its ClvDraws; ``default`` is used for the others.
    """

    def __init__(self, default: ClvDraws | None = None, by_stratum: Mapping[Stratum, ClvDraws] | None = None) -> None:
        if default is None and not by_stratum:
            raise ValueError("ClvDrawsValueModel needs a default ClvDraws or one per stratum")
        self.default = default
        self.by_stratum = dict(by_stratum or {})

    def cashflows(self, customers: pd.DataFrame, draws: int, horizon_months: int, rng: np.random.Generator) -> ClvDraws:
        key = (str(customers["segment"].iloc[0]), str(customers["market"].iloc[0])) if len(customers) else None
        clv = self.by_stratum.get(key, self.default) if key else self.default
        if clv is None:
            raise KeyError(f"no ClvDraws for stratum {key} and no default")
        if clv.months < horizon_months:
            raise ValueError(f"ClvDraws cover {clv.months} months, the horizon is {horizon_months}")
        out = clv.take(draws)
        return ClvDraws(
            out.cashflow[:, :, :horizon_months], {k: v[:, :, :horizon_months] for k, v in out.components.items()}
        )


def discount_factors(discount_rate_annual: float, months: int) -> np.ndarray:
    """Discount factor of months 1..months (cash at the end of each month): (1 + r)^(-m/12)."""
    if discount_rate_annual <= -1:
        raise ValueError(f"discount_rate_annual must be above -1, got {discount_rate_annual}")
    return (1.0 + discount_rate_annual) ** (-np.arange(1, months + 1) / 12.0)


def _stable_seed(*parts: Any) -> list[int]:
    return [zlib.crc32(str(p).encode("utf-8")) for p in parts]


def overlapping(a: Initiative, b: Initiative) -> bool:
    """Two initiatives overlap when they target a common touchpoint for some common customers."""
    if not set(a.touchpoints) & set(b.touchpoints):
        return False

    def meet(x: tuple[str, ...] | None, y: tuple[str, ...] | None) -> bool:
        return x is None or y is None or bool(set(x) & set(y))

    return meet(a.scope.segments, b.scope.segments) and meet(a.scope.markets, b.scope.markets)


def overlap_groups(initiatives: Sequence[Initiative]) -> list[tuple[str, ...]]:
    """Connected groups of overlapping initiatives (singletons included), in catalogue order."""
    names = [i.name for i in initiatives]
    parent = {n: n for n in names}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in itertools.combinations(initiatives, 2):
        if overlapping(a, b):
            parent[find(a.name)] = find(b.name)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(find(n), []).append(n)
    return [tuple(g) for g in groups.values()]


def summarise_draws(values: np.ndarray) -> dict[str, Any]:
    """{mean, interval [5%, 95%], sd} of finite draws (None when there are none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": None, "interval": [None, None], "sd": None}
    low, high = np.quantile(v, INTERVAL)
    return {
        "mean": float(v.mean()),
        "interval": [float(low), float(high)],
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
    }


@dataclass
class ValueResult:
    """Value of one initiative or of a set of them evaluated jointly, per draw."""

    names: tuple[str, ...]
    net_value: np.ndarray  # [draw]
    benefit_pv: np.ndarray  # [draw] discounted benefit
    cost_pv: float  # discounted cost (one-off + recurring over the horizon)
    cost_total: float  # undiscounted cost over the horizon (what budgets are checked against)
    cumulative_net: np.ndarray  # [draw, month 0..M] discounted benefit - cost, cumulated
    payback_months: np.ndarray  # [draw]; inf when it does not pay back within the horizon
    benefit_by_market: dict[str, np.ndarray]  # [draw] discounted benefit by market
    customers_by_market: dict[str, int]
    class_shift: np.ndarray  # [draw, 3] customer-weighted change in class shares at full effect
    emotion_shift: np.ndarray | None  # [draw] customer-weighted change in mean emotion, if the model gives it
    horizon_months: int
    effect_draws: dict[str, np.ndarray] = field(default_factory=dict)
    variance_shares: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def roi(self) -> np.ndarray:
        """Net value / discounted cost per draw (NaN when the cost is zero)."""
        if self.cost_pv <= 0:
            return np.full_like(self.net_value, np.nan)
        return self.net_value / self.cost_pv

    @property
    def customers_in_scope(self) -> int:
        """Active customers reached."""
        return int(sum(self.customers_by_market.values()))

    @property
    def p_roi_positive(self) -> float:
        """P(ROI > 0) = P(net value > 0)."""
        return float(np.mean(self.net_value > 0))

    @property
    def p_payback(self) -> float:
        """Probability that cumulative discounted benefit covers the cost within the horizon."""
        return float(np.mean(np.isfinite(self.payback_months)))

    @property
    def nps_shift(self) -> np.ndarray:
        """Change in NPS points among the customers in scope, at full effect, per draw."""
        return 100.0 * (self.class_shift[:, 2] - self.class_shift[:, 0])

    def payback_summary(self) -> dict[str, Any]:
        """Median and 90% interval of the payback month (None / 'beyond horizon' when not reached)."""
        pb = self.payback_months
        q = np.quantile(pb, [0.5, *INTERVAL], method="inverted_cdf")  # no interpolation with inf
        as_num = [float(x) if np.isfinite(x) else None for x in q]
        return {
            "median": as_num[0],
            "interval": as_num[1:],
            "p_within_horizon": self.p_payback,
            "horizon_months": self.horizon_months,
        }

    def summary(self) -> dict[str, Any]:
        """JSON-native headline figures (what results.json records per initiative)."""
        return {
            "net_value": summarise_draws(self.net_value),
            "roi": summarise_draws(self.roi),
            "p_roi_positive": self.p_roi_positive,
            "payback_months": self.payback_summary(),
            "cost_total": self.cost_total,
            "cost_pv": self.cost_pv,
            "benefit_pv": summarise_draws(self.benefit_pv),
            "nps_shift_points": summarise_draws(self.nps_shift),
            "emotion_shift": None if self.emotion_shift is None else summarise_draws(self.emotion_shift),
            "customers_in_scope": self.customers_in_scope,
            "q05_net_value": float(np.quantile(self.net_value, 0.05)),
            "variance_shares": self.variance_shares,
        }


class InitiativeEngine:
    """Simulates initiatives (alone or jointly) through the driver and value models.

    Parameters
    ----------
    survey
        Canonical survey rows describing the current experience of the customers (usually the latest
        wave): segment, market, touchpoint columns (NaN = not used), unit if known.
    customers
        Canonical customer table; active customers (churn == 0) are the ones the value applies to. When
        absent, give ``customer_counts`` {(segment, market): active customers} instead and a value model
        that does not need customer rows.
    touchpoints
        {key: TouchpointInfo} (scales, channels, needs), e.g. from :func:`touchpoint_info_from_spec`.
    driver, value
        The models (see the Protocols above).
    draws
        Posterior draws to push through the chain.
    grid_levels, joint_grid_levels
        Effect levels simulated per uncertain effect alone / per dimension when simulated jointly.
    """

    def __init__(
        self,
        survey: pd.DataFrame,
        touchpoints: Mapping[str, TouchpointInfo],
        driver: DriverScenarioModel,
        value: ValueModel,
        customers: pd.DataFrame | None = None,
        customer_counts: Mapping[Stratum, int] | None = None,
        draws: int = 1000,
        horizon_months: int = 60,
        discount_rate_annual: float = 0.08,
        seed: int = 1,
        grid_levels: int = 9,
        joint_grid_levels: int = 5,
    ) -> None:
        for col in ("segment", "market"):
            if col not in survey.columns:
                raise ValueError(f"survey: missing column {col!r} (have {list(survey.columns)})")
        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        if horizon_months < 1:
            raise ValueError(f"horizon_months must be >= 1, got {horizon_months}")
        self.touchpoints = dict(touchpoints)
        self.driver, self.value = driver, value
        self.draws, self.horizon = int(draws), int(horizon_months)
        self.discount_rate_annual = float(discount_rate_annual)
        self.seed = int(seed)
        self.grid_levels, self.joint_grid_levels = int(grid_levels), int(joint_grid_levels)
        self.discount = discount_factors(self.discount_rate_annual, self.horizon)
        survey = survey.copy()
        survey["segment"] = survey["segment"].astype(str)
        survey["market"] = survey["market"].astype(str)
        self._respondents: dict[Stratum, pd.DataFrame] = {
            (str(s), str(m)): g.reset_index(drop=True) for (s, m), g in survey.groupby(["segment", "market"], sort=True)
        }
        self._customers: dict[Stratum, pd.DataFrame] = {}
        if customers is not None:
            missing = {"segment", "market", "churn"} - set(customers.columns)
            if missing:
                raise ValueError(f"customers: missing column(s) {sorted(missing)}")
            active = customers[customers["churn"].astype(int) == 0].copy()
            active["segment"] = active["segment"].astype(str)
            active["market"] = active["market"].astype(str)
            self._customers = {
                (str(s), str(m)): g.reset_index(drop=True)
                for (s, m), g in active.groupby(["segment", "market"], sort=True)
            }
            self.customer_counts = {k: len(v) for k, v in self._customers.items()}
        elif customer_counts is not None:
            self.customer_counts = {(str(k[0]), str(k[1])): int(v) for k, v in customer_counts.items()}
        else:
            raise ValueError("give the customers table or customer_counts {(segment, market): active customers}")
        self._baseline_cache: dict[Stratum, tuple[np.ndarray, np.ndarray | None]] = {}
        self._shift_point_cache: dict[Any, tuple[np.ndarray, np.ndarray | None]] = {}
        self._shift_cache: dict[Any, tuple[np.ndarray, list[np.ndarray], np.ndarray | None]] = {}
        self._value_cache: dict[Stratum, ClvDraws] = {}
        self._effects: dict[str, np.ndarray] = {}
        self._initiatives: dict[str, Initiative] = {}
        self._typical: dict[Any, tuple[np.ndarray, np.ndarray]] = {}

    # ----------------------------------------------------------------- building blocks
    @property
    def strata(self) -> list[Stratum]:
        """All (segment, market) strata with respondents or customers."""
        return sorted(set(self._respondents) | set(self.customer_counts))

    def _register(self, ini: Initiative) -> None:
        known = self._initiatives.get(ini.name)
        if known is not None and known != ini:
            raise ValueError(f"two different initiatives are named {ini.name!r}")
        unknown = [t for t in ini.touchpoints if t not in self.touchpoints]
        if unknown:
            raise ValueError(
                f"initiative {ini.name!r}: unknown touchpoint(s) {unknown}; known {sorted(self.touchpoints)}"
            )
        self._initiatives[ini.name] = ini

    def effect_draws(self, ini: Initiative) -> np.ndarray:
        """Effect size per posterior draw (seeded by the engine seed and the initiative name; stratified,
        :meth:`~cxresearch.initiatives.effects.EffectDistribution.stratified_sample`)."""
        self._register(ini)
        if ini.name not in self._effects:
            rng = np.random.default_rng(_stable_seed(self.seed, "effect", ini.name))
            self._effects[ini.name] = ini.effect.distribution.stratified_sample(self.draws, rng)
        return self._effects[ini.name]

    def _typical_ratings(self, ini: Initiative, tp: str, bottom: float) -> tuple[np.ndarray, np.ndarray]:
        """What a removed bad experience becomes: the ratings above the bottom box among users in the
        initiative's scope, as (levels, probabilities). A scale with more than ``REPLACEMENT_NODES`` such
        levels (1-100) is summarised by that many equal-probability quantiles (the rating at the middle of
        each tenth of the distribution), which keeps the number of weighted rows small."""
        key = (ini.name, tp)
        if key not in self._typical:
            values = [
                g[tp].to_numpy(dtype=float)
                for s, g in self._respondents.items()
                if ini.scope.includes(*s) and tp in g.columns
            ]
            v = np.concatenate(values) if values else np.array([])
            v = v[np.isfinite(v) & (v > bottom)]
            if not len(v):
                info = self.touchpoints[tp]
                v = np.array([info.scale_max])
            levels, counts = np.unique(v, return_counts=True)
            prob = counts / counts.sum()
            if len(levels) > REPLACEMENT_NODES:
                middles = (np.arange(REPLACEMENT_NODES) + 0.5) / REPLACEMENT_NODES
                cdf = np.cumsum(prob)
                nodes = levels[np.minimum(np.searchsorted(cdf, middles, side="left"), len(levels) - 1)]
                levels, counts = np.unique(nodes, return_counts=True)
                prob = counts / REPLACEMENT_NODES
            self._typical[key] = (levels, prob)
        return self._typical[key]

    def apply(
        self, frame: pd.DataFrame, changes: Sequence[tuple[Initiative, float]]
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The respondents' ratings after the given initiatives at the given effect levels, in expectation.

        Returns (rows, share, origin): each respondent's possible ratings after the change, one row per
        outcome, with ``share`` the probability of that outcome (a respondent's shares sum to 1) and
        ``origin`` the respondent's position in ``frame``. An uplift of ``2.3`` points is +2 with
        probability 0.7 and +3 with probability 0.3 (capped at the scale's top); removing a share ``L`` of
        bad experiences keeps a bottom-box rating with probability ``1 - L`` and otherwise replaces it by
        the typical rating (each level with its frequency among users above the bottom box) or by
        ``becomes``. Averaging the driver model over these weighted rows is the exact expectation over
        which respondents change and how. One random draw of them, as this engine took before, moved the
        demo's benefits from engine seed to seed by a standard deviation of 4-12% for the removals and the
        one-market uplift, enough to change the plan. Removals are applied before uplifts (the result does
        not depend on the order the initiatives are listed in); only users (non-missing ratings) change.
        """
        out = frame.reset_index(drop=True)
        share = np.ones(len(out))
        origin = np.arange(len(out))
        ordered = [c for c in changes if c[0].effect.kind == "remove_bad"] + [
            c for c in changes if c[0].effect.kind == "uplift"
        ]
        for ini, level in ordered:
            for tp in ini.touchpoints:
                if tp not in out.columns:
                    raise ValueError(f"survey: no column for touchpoint {tp!r} targeted by {ini.name!r}")
                info = self.touchpoints[tp]
                r = out[tp].to_numpy(dtype=float)
                used = np.isfinite(r)
                if ini.effect.kind == "uplift":
                    step = float(np.floor(level))
                    frac = float(level) - step
                    outcomes = [(np.clip(r + step, info.scale_min, info.scale_max), 1.0 - frac)]
                    if frac > 0:
                        outcomes.append((np.clip(r + step + 1.0, info.scale_min, info.scale_max), frac))
                    changing = used
                else:
                    bottom = ini.effect.bottom_box_max if ini.effect.bottom_box_max is not None else info.bottom_box_max
                    changing = used & (r <= bottom + 1e-9)
                    if ini.effect.becomes == "typical":
                        levels, prob = self._typical_ratings(ini, tp, bottom)
                    else:
                        levels, prob = np.array([float(ini.effect.becomes)]), np.array([1.0])
                    outcomes = [(r, 1.0 - float(level))] + [
                        (np.full(len(r), v), float(level) * p) for v, p in zip(levels, prob)
                    ]
                outcomes = [(values, p) for values, p in outcomes if p > 0]
                keep = ~changing
                rows, shares, origins = [out[keep]], [share[keep]], [origin[keep]]
                for values, p in outcomes:
                    part = out[changing].copy()
                    part[tp] = values[changing]
                    rows.append(part)
                    shares.append(share[changing] * p)
                    origins.append(origin[changing])
                out = pd.concat(rows, ignore_index=True)
                share, origin = np.concatenate(shares), np.concatenate(origins)
        return out, share, origin

    def _driver_rng(self, stratum: Stratum) -> np.random.Generator:
        return np.random.default_rng(_stable_seed(self.seed, "driver", *stratum))

    def _weighted_sum(self, stratum: Stratum, frame: pd.DataFrame, share: np.ndarray) -> tuple[np.ndarray, Any]:
        """(sum over rows of share x class probabilities [draws, 3], the same sum of emotion [draws] or None).

        The Protocol asks a driver model only for the mean over plain respondents, so it is asked for the
        mean of each group of rows with one share (shares rounded to 12 digits; few distinct values), and
        the groups are added up with their shares."""
        emotion_of = getattr(self.driver, "emotion_mean", None)
        values, inverse = np.unique(np.round(share, 12), return_inverse=True)
        mix = np.zeros((self.draws, 3))
        emotion = None if emotion_of is None else np.zeros(self.draws)
        for g, value in enumerate(values):
            rows = frame if len(values) == 1 else frame[inverse == g].reset_index(drop=True)
            weight = float(value) * len(rows)
            part = np.asarray(self.driver.class_mix(rows, self.draws, self._driver_rng(stratum)), dtype=float)
            if part.shape != (self.draws, 3):
                raise ValueError(f"driver model class_mix returned shape {part.shape}, expected ({self.draws}, 3)")
            mix += weight * part
            if emotion is not None and emotion_of is not None:
                emotion += weight * np.asarray(emotion_of(rows, self.draws, self._driver_rng(stratum)), dtype=float)
        return mix, emotion

    def _baseline(self, stratum: Stratum) -> tuple[np.ndarray, np.ndarray | None]:
        """(class mix [draws, 3], mean emotion [draws] or None) of a stratum's respondents as they are."""
        if stratum not in self._baseline_cache:
            frame = self._respondents[stratum]
            mix, emotion = self._weighted_sum(stratum, frame, np.ones(len(frame)))
            self._baseline_cache[stratum] = (mix / len(frame), None if emotion is None else emotion / len(frame))
        return self._baseline_cache[stratum]

    def shift(
        self, stratum: Stratum, changes: Sequence[tuple[Initiative, float]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(shift in the class mix [draws, 3], shift in mean emotion [draws] or None) of a stratum's
        respondents after ``changes`` (cached). Only the outcomes that change a rating are evaluated:
        the shift is the share-weighted sum over them of (probabilities after - before), over all
        respondents, so a removal of bad experiences costs the bottom box, not the whole stratum."""
        key = (stratum, tuple(sorted((i.name, round(float(lv), 12)) for i, lv in changes)))
        if key not in self._shift_point_cache:
            frame = self._respondents[stratum].reset_index(drop=True)
            n = len(frame)
            after, share, origin = self.apply(frame, changes)
            targeted = sorted({tp for ini, _ in changes for tp in ini.touchpoints})
            new = after[targeted].to_numpy(dtype=float)
            old = frame[targeted].to_numpy(dtype=float)[origin]
            changed = ~((new == old) | (np.isnan(new) & np.isnan(old))).all(axis=1)
            has_emotion = getattr(self.driver, "emotion_mean", None) is not None
            if not changed.any():
                zero = np.zeros((self.draws, 3)), (np.zeros(self.draws) if has_emotion else None)
                self._shift_point_cache[key] = zero
                return zero
            mix_after, emo_after = self._weighted_sum(stratum, after[changed].reset_index(drop=True), share[changed])
            moved = np.bincount(origin[changed], weights=share[changed], minlength=n)  # share of each that changes
            before = np.flatnonzero(moved > 0)
            mix_before, emo_before = self._weighted_sum(stratum, frame.iloc[before], moved[before])
            emotion = None if emo_after is None or emo_before is None else (emo_after - emo_before) / n
            self._shift_point_cache[key] = ((mix_after - mix_before) / n, emotion)
        return self._shift_point_cache[key]

    def class_mix(self, stratum: Stratum, changes: Sequence[tuple[Initiative, float]] = ()) -> np.ndarray:
        """Expected class mix [draws, 3] of a stratum's respondents after ``changes``."""
        base = self._baseline(stratum)[0]
        return base if not changes else base + self.shift(stratum, changes)[0]

    def cashflows(self, stratum: Stratum) -> ClvDraws:
        """Value-model cash flows [draws, 3, horizon] for a stratum's active customers (cached)."""
        if stratum not in self._value_cache:
            customers = self._customers.get(stratum)
            if customers is None:  # no customer table: the value model sees the stratum only
                customers = pd.DataFrame({"segment": [stratum[0]], "market": [stratum[1]]}, dtype=str)
            rng = np.random.default_rng(_stable_seed(self.seed, "value", *stratum))
            clv = self.value.cashflows(customers, self.draws, self.horizon, rng)
            if clv.cashflow.shape != (self.draws, 3, self.horizon):
                raise ValueError(
                    f"value model returned cash flows of shape {clv.cashflow.shape}, "
                    f"expected ({self.draws}, 3, {self.horizon})"
                )
            self._value_cache[stratum] = clv
        return self._value_cache[stratum]

    def _grid(self, ini: Initiative, joint: bool) -> np.ndarray:
        levels = self.joint_grid_levels if joint else self.grid_levels
        return effect_grid(
            ini.effect.distribution, levels, self.effect_draws(ini), integers=ini.effect.kind == "uplift"
        )

    def shift_grid(
        self, stratum: Stratum, subset: Sequence[Initiative]
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
        """Class-mix shift on the product grid of the subset's effect levels.

        Returns (F, grids, E): F has shape (*grid sizes, draws, 3), the :meth:`shift` at each grid point;
        E the matching shift in mean emotion (None when the driver model does not give it).
        """
        subset = sorted(subset, key=lambda i: i.name)
        key = (stratum, tuple(i.name for i in subset))
        if key not in self._shift_cache:
            joint = len(subset) > 1
            grids = [self._grid(i, joint) for i in subset]
            has_emotion = getattr(self.driver, "emotion_mean", None) is not None  # no baseline pass needed
            shape = tuple(len(g) for g in grids)
            F = np.empty(shape + (self.draws, 3))
            E = np.empty(shape + (self.draws,)) if has_emotion else None
            for idx in itertools.product(*(range(s) for s in shape)):
                changes = [(ini, grids[k][j]) for k, (ini, j) in enumerate(zip(subset, idx))]
                F[idx], emotion = self.shift(stratum, changes)
                if E is not None and emotion is not None:
                    E[idx] = emotion
            self._shift_cache[key] = (F, grids, E)
        return self._shift_cache[key]

    # ----------------------------------------------------------------- evaluation
    def _subset_shift(
        self, stratum: Stratum, subset: Sequence[Initiative], vary_effect: bool, vary_driver: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-draw shift [draws, 3] (and emotion shift) of a subset acting together in one stratum."""
        active = [i for i in subset if i.scope.includes(*stratum)]
        if not active or stratum not in self._respondents:
            return np.zeros((self.draws, 3)), None
        F, grids, E = self.shift_grid(stratum, active)
        active = sorted(active, key=lambda i: i.name)
        if vary_effect:
            points = np.stack([self.effect_draws(i) for i in active])
        else:
            points = np.stack([np.full(self.draws, self.effect_draws(i).mean()) for i in active])
        if not vary_driver:
            F = np.broadcast_to(F.mean(axis=-2, keepdims=True), F.shape)
            E = None if E is None else np.broadcast_to(E.mean(axis=-1, keepdims=True), E.shape)
        shift = _interp_multilinear(F, grids, points)
        emotion = None if E is None else _interp_multilinear(E[..., None], grids, points)[:, 0]
        return shift, emotion

    def evaluate(self, initiatives: Sequence[Initiative], decompose: bool = False) -> ValueResult:
        """Joint value of a set of initiatives (a single initiative is a set of one), per draw.

        ``decompose`` adds the variance decomposition: the share of the variance of net value explained by
        effect-size, driver-model and value-model uncertainty (each varied alone, the others held at
        their mean) and the remainder (interactions).
        """
        initiatives = list(initiatives)
        names = [i.name for i in initiatives]
        if len(set(names)) != len(names):
            raise ValueError(f"repeated initiatives in {names}")
        for ini in initiatives:
            self._register(ini)
        full = self._evaluate(initiatives, True, True, True)
        if decompose and initiatives:
            parts = {
                "effect_size": self._evaluate(initiatives, True, False, False, light=True).net_value,
                "driver_model": self._evaluate(initiatives, False, True, False, light=True).net_value,
                "value_model": self._evaluate(initiatives, False, False, True, light=True).net_value,
            }
            total = float(np.var(full.net_value))
            scale = max(1.0, float(np.abs(full.net_value).mean()), full.cost_pv)
            if total > (1e-9 * scale) ** 2:
                shares = {k: float(np.var(v)) / total for k, v in parts.items()}
                shares["interaction"] = max(0.0, 1.0 - sum(shares.values()))
                full.variance_shares = shares
            else:  # no uncertainty at all (e.g. zero effect): nothing to decompose
                full.variance_shares = None
        return full

    def _evaluate(
        self, initiatives: list[Initiative], vary_effect: bool, vary_driver: bool, vary_value: bool, light: bool = False
    ) -> ValueResult:
        D, M = self.draws, self.horizon
        months = np.arange(1, M + 1)
        by_name = {i.name: i for i in initiatives}
        groups = overlap_groups(initiatives)
        benefit = np.zeros((D, M))
        benefit_by_market: dict[str, np.ndarray] = {}
        customers_by_market: dict[str, int] = {}
        class_shift = np.zeros((D, 3))
        emotion_shift = np.zeros(D)
        have_emotion = True
        weight_total = 0
        notes: list[str] = []
        for stratum in self.strata:
            n_customers = self.customer_counts.get(stratum, 0)
            touching = [i for i in initiatives if i.scope.includes(*stratum)]
            if not touching or n_customers == 0:
                continue
            market = stratum[1]
            customers_by_market[market] = customers_by_market.get(market, 0) + n_customers
            if stratum not in self._respondents:
                notes.append(
                    f"no respondents in segment {stratum[0]!r} x market {stratum[1]!r}: "
                    f"its {n_customers} customers are given no benefit"
                )
                continue
            cf = self.cashflows(stratum).cashflow
            if not vary_value:
                cf = np.broadcast_to(cf.mean(axis=0, keepdims=True), cf.shape)
            stratum_benefit = np.zeros((D, M))
            full_shift = np.zeros((D, 3))
            full_emotion = np.zeros(D)
            for group in groups:
                members = [by_name[n] for n in group if by_name[n].scope.includes(*stratum)]
                if not members:
                    continue
                activation = np.stack([m.activation(months) for m in members])  # [k, M]
                for r in range(1, len(members) + 1):
                    for combo in itertools.combinations(range(len(members)), r):
                        subset = [members[j] for j in combo]
                        inside = np.isin(np.arange(len(members)), combo)
                        p_active = np.prod(np.where(inside[:, None], activation, 1.0 - activation), axis=0)  # [M]
                        if r < len(members) and not np.any(p_active > 0):
                            continue  # this combination is never the active one (same timing)
                        shift, emo = self._subset_shift(stratum, subset, vary_effect, vary_driver)
                        flow = np.einsum("dc,dcm->dm", shift, cf)
                        stratum_benefit += flow * p_active[None, :]
                        if r == len(members):
                            full_shift += shift
                            if emo is None:
                                have_emotion = False
                            else:
                                full_emotion += emo
            stratum_benefit *= n_customers
            benefit += stratum_benefit
            benefit_by_market[market] = benefit_by_market.get(market, 0) + stratum_benefit @ self.discount
            class_shift += n_customers * full_shift
            emotion_shift += n_customers * full_emotion
            weight_total += n_customers
        if weight_total:
            class_shift /= weight_total
            emotion_shift /= weight_total
        one_off = sum(i.cost.one_off for i in initiatives)
        recurring = sum(i.cost.recurring_monthly for i in initiatives)
        cost_flow = np.full(M, recurring)
        cost_pv = float(one_off + cost_flow @ self.discount)
        benefit_pv = benefit @ self.discount
        net = benefit_pv - cost_pv
        if light:
            cumulative = np.zeros((D, 1))
            payback = np.zeros(D)
        else:
            cum_benefit = np.concatenate([np.zeros((D, 1)), np.cumsum(benefit * self.discount, axis=1)], axis=1)
            cum_cost = np.concatenate([[one_off], one_off + np.cumsum(cost_flow * self.discount)])
            cumulative = cum_benefit - cum_cost[None, :]
            paid = cumulative >= -1e-9
            payback = np.where(paid.any(axis=1), np.argmax(paid, axis=1).astype(float), np.inf)
        return ValueResult(
            names=tuple(i.name for i in initiatives),
            net_value=net,
            benefit_pv=benefit_pv,
            cost_pv=cost_pv,
            cost_total=float(sum(i.cost.total(M) for i in initiatives)),
            cumulative_net=cumulative,
            payback_months=payback,
            benefit_by_market=benefit_by_market,
            customers_by_market=customers_by_market,
            class_shift=class_shift,
            emotion_shift=emotion_shift if have_emotion and initiatives else None,
            horizon_months=M,
            effect_draws={i.name: self.effect_draws(i) for i in initiatives},
            notes=notes,
        )

    def evaluate_each(self, initiatives: Iterable[Initiative], decompose: bool = True) -> dict[str, ValueResult]:
        """Each initiative alone, with its variance decomposition."""
        return {ini.name: self.evaluate([ini], decompose=decompose) for ini in initiatives}


def _interp_multilinear(F: np.ndarray, grids: list[np.ndarray], points: np.ndarray) -> np.ndarray:
    """Per-draw multilinear interpolation.

    F: (*grid sizes, draws, C); grids: one increasing 1-D array per dimension; points: (dims, draws).
    Returns (draws, C): for draw d, F[..., d, :] interpolated at points[:, d] (clamped to the grid).
    """
    D = F.shape[-2]
    lows: list[np.ndarray] = []
    weights: list[np.ndarray | None] = []
    for k, g in enumerate(grids):
        if len(g) == 1:
            lows.append(np.zeros(D, dtype=int))
            weights.append(None)
            continue
        j = np.clip(np.searchsorted(g, points[k], side="right") - 1, 0, len(g) - 2)
        t = np.clip((points[k] - g[j]) / (g[j + 1] - g[j]), 0.0, 1.0)
        lows.append(j)
        weights.append(t)
    out = np.zeros((D, F.shape[-1]))
    draw_index = np.arange(D)
    for corner in itertools.product((0, 1), repeat=len(grids)):
        w = np.ones(D)
        index = []
        skip = False
        for k, bit in enumerate(corner):
            weight = weights[k]
            if weight is None:
                if bit:
                    skip = True
                    break
                index.append(lows[k])
                continue
            w = w * (weight if bit else 1.0 - weight)
            index.append(lows[k] + bit)
        if skip:
            continue
        out += w[:, None] * F[tuple(index) + (draw_index,)]
    return out
