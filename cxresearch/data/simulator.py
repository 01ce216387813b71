"""CX simulator: a known generative model of touchpoint experience -> emotion -> recommendation -> churn/value.

``simulate_dataset`` writes ``survey.parquet``, ``customers.parquet``, ``benchmark.parquet``, a valid
``dataset.yaml`` and ``truth.json`` (every true parameter plus Monte-Carlo population truths) so that every
estimator in cxresearch can be checked against the truth. Optionally (``comments="en" | "es"``) the survey gets a
free-text ``comment`` column with planted topics, hidden issues that shift emotion, and planted personal data.
The model and the truth keys are documented in ``docs/SIMULATOR.md``; keep the two in step.

Design for scale: customers are generated in fixed blocks of :data:`RNG_BLOCK` customers, block ``b`` drawing
from ``SeedSequence(seed, spawn_key=(1, b))``, so the output depends only on the seed and the model settings
(not on ``chunk_size``); blocks are gathered into chunks of ``chunk_size`` customers and appended to the
Parquet files with :class:`pyarrow.parquet.ParquetWriter`, so memory stays bounded at any size.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# ----------------------------------------------------------------------------------------------------------
# Fixed structure of the model (the seed draws only the small deviations and the unit effects)
# ----------------------------------------------------------------------------------------------------------

SEGMENTS: tuple[str, ...] = ("mass", "affluent", "private")
SEGMENT_PROBS: tuple[float, ...] = (0.6, 0.3, 0.1)
MARKETS: tuple[str, ...] = ("ES", "PT", "MX", "NO")
MARKET_PROBS: tuple[float, ...] = (0.4, 0.2, 0.3, 0.1)
WAVES: tuple[str, ...] = ("1", "2")

#: Customers per RNG block. Part of the model's random-number layout: changing it changes the data.
RNG_BLOCK = 50_000
#: Customers per unit (branch), on average.
CUSTOMERS_PER_UNIT = 250
MIN_UNITS = 8
DAYS_PER_MONTH = 30.4375

# key, label, channel, stage, need, kano, moment_of_truth, na_code, p_use (base), mu, beta, penalty, reward,
# nu, wave-2 shift of latent quality
_TP_ROWS: tuple[tuple, ...] = (
    (
        "onboarding",
        "Account opening",
        "branch",
        "onboarding",
        "get started",
        "performance",
        False,
        0,
        0.30,
        0.90,
        0.30,
        0.00,
        0.00,
        0.05,
        0.0,
    ),
    (
        "branch_visit",
        "Branch visit",
        "branch",
        "service",
        "get advice",
        "performance",
        False,
        0,
        0.55,
        0.80,
        0.35,
        0.00,
        0.00,
        0.00,
        0.0,
    ),
    (
        "call_centre",
        "Call centre",
        "phone",
        "service",
        "solve a problem",
        "must-be",
        False,
        99,
        0.45,
        0.60,
        0.05,
        -0.90,
        0.00,
        -0.05,
        0.0,
    ),
    (
        "website",
        "Website",
        "digital",
        "information",
        "find information",
        "indifferent",
        False,
        "blank",
        0.80,
        0.90,
        0.04,
        0.00,
        0.00,
        0.00,
        0.0,
    ),
    (
        "mobile_app",
        "Mobile app",
        "digital",
        "usage",
        "manage my money",
        "performance",
        False,
        0,
        0.70,
        0.60,
        0.35,
        0.00,
        0.00,
        0.05,
        0.4,
    ),
    (
        "online_payment",
        "Online payment",
        "digital",
        "payment",
        "pay",
        "delighter",
        True,
        0,
        0.60,
        0.90,
        0.05,
        0.00,
        0.85,
        0.00,
        0.0,
    ),
    (
        "statements",
        "Statements and fees",
        "billing",
        "billing",
        "understand my costs",
        "must-be",
        False,
        0,
        0.95,
        1.00,
        0.05,
        -0.75,
        0.00,
        0.00,
        -0.2,
    ),
    (
        "tech_support",
        "Technical support",
        "phone",
        "support",
        "solve a problem",
        "delighter",
        True,
        0,
        0.22,
        0.40,
        0.08,
        0.00,
        1.00,
        0.00,
        0.0,
    ),
    (
        "complaint_handling",
        "Complaint handling",
        "phone",
        "recovery",
        "solve a problem",
        "must-be",
        False,
        99,
        0.20,
        -0.10,
        0.10,
        -1.10,
        0.00,
        -0.10,
        0.0,
    ),
    (
        "communications",
        "Communications",
        "digital",
        "communication",
        "stay informed",
        "indifferent",
        False,
        0,
        0.75,
        0.70,
        0.03,
        0.00,
        0.00,
        0.00,
        0.0,
    ),
)
TOUCHPOINTS: tuple[str, ...] = tuple(row[0] for row in _TP_ROWS)
_N_TP = len(TOUCHPOINTS)
_TP_INDEX = {key: i for i, key in enumerate(TOUCHPOINTS)}

#: usage multiplier by segment and channel (then clipped to [0.2, 0.95])
_USAGE_MULT = {
    "mass": {"branch": 0.85, "phone": 1.00, "digital": 1.05, "billing": 1.00},
    "affluent": {"branch": 1.00, "phone": 1.00, "digital": 1.00, "billing": 1.00},
    "private": {"branch": 1.35, "phone": 1.15, "digital": 0.85, "billing": 1.00},
}
QUALITY_CUTPOINTS: tuple[float, ...] = (-1.5, -0.5, 0.5, 1.5)
QUALITY_SEG_SD = 0.10  # segment / market offsets of latent quality, per touchpoint
QUALITY_MKT_SD = 0.10
QUALITY_UNIT_SD = 0.30  # unit effect on the latent quality of branch-channel touchpoints
DEV_SD = 0.03  # segment / market deviations of the driver slopes
PLANTED_DIFFERENCES: tuple[dict, ...] = (
    {"dimension": "segment", "level": "private", "touchpoint": "branch_visit", "delta": 0.25},
    {"dimension": "market", "level": "MX", "touchpoint": "mobile_app", "delta": 0.20},
)
ALPHA_SEG = {"mass": 0.0, "affluent": 0.10, "private": 0.25}
ALPHA_MKT = {"ES": 0.0, "PT": -0.10, "MX": 0.30, "NO": -0.20}

# emotion items: loading on eta, 6 cutpoints of the (scored, un-reversed) 1-7 item, reverse-keyed in the export
EMOTION_ITEMS: dict[str, dict[str, Any]] = {
    "emo_happy": {
        "label": "I feel happy with the bank",
        "loading": 1.60,
        "reverse": False,
        "cutpoints": [-4.3, -2.91, -1.53, 0.14, 2.02, 4.07],
    },
    "emo_trust": {
        "label": "I trust the bank",
        "loading": 1.30,
        "reverse": False,
        "cutpoints": [-4.42, -3.07, -1.85, -0.34, 1.4, 3.32],
    },
    "emo_frustrated": {
        "label": "I feel frustrated with the bank",
        "loading": 1.40,
        "reverse": True,
        "cutpoints": [-3.69, -2.42, -1.28, 0.21, 1.82, 3.72],
    },
}
GAMMA = 1.40  # recommend = ordered logistic(GAMMA * eta + unit_rec[u])

#: how the experience (the sum of the touchpoint contributions) enters emotion; see :func:`_bend`
EMOTION_FORMS: tuple[str, ...] = ("linear", "saturating")
#: S of the saturating form ``S * (1 - exp(-lin / S))``: on the default population the mean gap between lin and
#: the bent experience is about 19% of sd(lin), and the marginal effect of experience runs from about 0.5 (best
#: served 5%) to 1.4 (worst served 5%) of the linear one
EMOTION_SATURATION = 2.5
RECOMMEND_CUTPOINTS: tuple[float, ...] = (-4.57, -4.07, -3.56, -3.06, -2.6, -1.79, -1.11, 0.01, 1.49, 2.99)
UNIT_REC_SD = 0.25

# churn (months) and value
WEIBULL_SHAPE = 1.15
WEIBULL_SCALE = {"mass": 70.0, "affluent": 100.0, "private": 140.0}
LOG_HR_CLASS = {"promoter": 0.0, "passive": 0.30, "detractor": 0.85}
LOG_HR_MARKET = {"ES": 0.0, "PT": 0.10, "MX": 0.20, "NO": -0.15}
WINDOW_MONTHS = 72
BASE_MARGIN = {"mass": (2.3, 0.5), "affluent": (3.0, 0.5), "private": (4.0, 0.6)}  # (meanlog, sdlog)
PRODUCT_MARGIN = 4.5
PRODUCT_RATE = {"mass": 0.5, "affluent": 0.9, "private": 1.4}
PRODUCT_MULT = {"detractor": 0.75, "passive": 1.0, "promoter": 1.25}

# survey waves: each wave's fieldwork window, in days before as_of (start, end inclusive)
WAVE_WINDOWS_DAYS = {"1": (240, 181), "2": (60, 1)}

# benchmark survey
OWN_BRAND = "OurBank"
BRANDS: tuple[str, ...] = (OWN_BRAND, "NovaBank", "SolCredit", "FjordBank")
BENCH_ATTRIBUTES: tuple[str, ...] = ("price", "service", "digital", "trust")
BENCH_REC_LOCATION = {"OurBank": 0.9, "NovaBank": 1.4, "SolCredit": 0.2, "FjordBank": 1.0}
BENCH_REC_HALO_SD = 0.8  # respondent effect shared by the brands a respondent rates
BENCH_ATTR_LOCATION = {
    "OurBank": {"price": 6.5, "service": 7.4, "digital": 7.0, "trust": 7.6},
    "NovaBank": {"price": 7.2, "service": 6.8, "digital": 7.8, "trust": 7.0},
    "SolCredit": {"price": 7.6, "service": 6.2, "digital": 6.0, "trust": 6.5},
    "FjordBank": {"price": 6.0, "service": 7.8, "digital": 7.2, "trust": 8.0},
}
BENCH_ATTR_HALO_SD = 0.7
BENCH_ATTR_NOISE_SD = 1.3

# RNG streams: SeedSequence(seed, spawn_key=(stream, ...))
_STREAM_PARAMS, _STREAM_DATA, _STREAM_POPULATION, _STREAM_INTERVENTION, _STREAM_BENCHMARK = 0, 1, 2, 3, 4
#: comments (optional): (5, b) per block of customers, (5,) for the population truth; the other streams never
#: see a comment draw, so data without comments are those of earlier versions
_STREAM_COMMENTS = 5
POPULATION_SAMPLES = 400_000


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(key))))


# ----------------------------------------------------------------------------------------------------------
# Intervention
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intervention:
    """A planted wave-2 improvement: latent quality of ``touchpoint`` rises by ``effect`` in a random
    ``treated_share`` of units (for difference-in-differences checks)."""

    touchpoint: str
    effect: float
    treated_share: float = 0.5

    def __post_init__(self) -> None:
        if self.touchpoint not in _TP_INDEX:
            raise ValueError(f"intervention touchpoint {self.touchpoint!r} is not one of {list(TOUCHPOINTS)}")
        if not math.isfinite(self.effect):
            raise ValueError(f"intervention effect must be a finite number, got {self.effect!r}")
        if not 0.0 < self.treated_share < 1.0:
            raise ValueError(
                f"intervention treated_share must lie strictly between 0 and 1 (a control group "
                f"is needed), got {self.treated_share!r}"
            )


def parse_intervention(text: str) -> Intervention:
    """Parse ``touchpoint=branch_visit,effect=0.5,treated_share=0.5`` (treated_share optional, default 0.5)."""
    fields: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"intervention {text!r}: item {part!r} is not key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if key not in ("touchpoint", "effect", "treated_share"):
            raise ValueError(f"intervention {text!r}: unknown key {key!r} (use touchpoint, effect, treated_share)")
        if key in fields:
            raise ValueError(f"intervention {text!r}: key {key!r} given twice")
        fields[key] = value
    missing = [k for k in ("touchpoint", "effect") if k not in fields]
    if missing:
        raise ValueError(f"intervention {text!r}: missing key(s) {missing}")
    numbers: dict[str, float] = {}
    for key in ("effect", "treated_share"):
        if key in fields:
            try:
                numbers[key] = float(fields[key])
            except ValueError:
                raise ValueError(f"intervention {text!r}: {key}={fields[key]!r} is not a number") from None
    return Intervention(touchpoint=fields["touchpoint"], **numbers)


def parse_scales(text: str) -> dict[str, tuple[int, int]]:
    """Parse ``mobile_app=0-10,online_payment=1-100`` into {touchpoint: (min, max)}."""
    out: dict[str, tuple[int, int]] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, _, value = part.partition("=")
        lo, _, hi = value.strip().partition("-")
        try:
            out[key.strip()] = (int(lo), int(hi))
        except ValueError:
            raise ValueError(f"scales {text!r}: {part!r} is not touchpoint=min-max (e.g. mobile_app=0-10)") from None
    TouchpointScales.build(out)  # names and ranges checked here
    return out


# ----------------------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------------------


#: the share of the range an impact is read for in ``truth.population.impact_nps_range`` (the drivers default)
IMPROVEMENT_SHARE = 0.1
#: default boxes as shares of a scale's points (the drivers default): 1-2 and 5 on 1-5
BOTTOM_BOX_SHARE, TOP_BOX_SHARE = 0.4, 0.2


def _box_points(points: int, share: float) -> int:
    return max(1, int(math.floor(share * points + 0.5)))


@dataclass(frozen=True)
class TouchpointScales:
    """Each touchpoint's answer scale and boxes (``scales`` / ``boxes`` of :func:`simulate_dataset`).

    A touchpoint on K points cuts the same latent quality at K - 1 cutpoints ``5 f - 2.5`` at the scale
    fractions f = k / K (on 1-5 exactly the classic (-1.5, -0.5, 0.5, 1.5)); its contribution to emotion is
    ``nu + 2 beta x + penalty [bottom box] + reward [top box]`` with x the rating's distance from the
    midpoint in half ranges (-1 .. 1): on 1-5, ``beta`` per step as before, and the same Kano class on any
    scale. Boxes default to the lowest 40% / highest 20% of the points.
    """

    minimum: tuple[int, ...]
    points: tuple[int, ...]
    bottom: tuple[int, ...]
    top: tuple[int, ...]

    @classmethod
    def build(
        cls, scales: dict[str, tuple[int, int]] | None = None, boxes: dict[str, tuple[int, int]] | None = None
    ) -> TouchpointScales:
        scales, boxes = dict(scales or {}), dict(boxes or {})
        for name, what in (("scales", scales), ("boxes", boxes)):
            unknown = sorted(set(what) - set(TOUCHPOINTS))
            if unknown:
                raise ValueError(f"{name}: {unknown} are not simulator touchpoints ({list(TOUCHPOINTS)})")
        minimum, points, bottom, top = [], [], [], []
        for key in TOUCHPOINTS:
            lo, hi = (int(v) for v in scales.get(key, (1, 5)))
            if hi - lo < 1 or hi - lo > 200:
                raise ValueError(f"scales.{key}: {lo}-{hi} is not a scale of 2 to 201 points")
            k = hi - lo + 1
            b, t = boxes.get(key, (_box_points(k, BOTTOM_BOX_SHARE), _box_points(k, TOP_BOX_SHARE)))
            if b < 1 or t < 1 or b + t > k:
                raise ValueError(f"boxes.{key}: bottom {b} and top {t} points do not fit a {k}-point scale")
            minimum.append(lo)
            points.append(k)
            bottom.append(int(b))
            top.append(int(t))
        return cls(tuple(minimum), tuple(points), tuple(bottom), tuple(top))

    @property
    def max_points(self) -> int:
        return max(self.points)

    def cutpoints(self, t: int) -> np.ndarray:
        k = self.points[t]
        return 5.0 * np.arange(1, k) / k - 2.5

    def scale(self, t: int) -> list[int]:
        return [self.minimum[t], self.minimum[t] + self.points[t] - 1]

    def is_default(self) -> bool:
        return (
            all(p == 5 for p in self.points)
            and all(m == 1 for m in self.minimum)
            and all((b, t) == (2, 1) for b, t in zip(self.bottom, self.top))
        )


DEFAULT_SCALES = TouchpointScales.build()


@dataclass
class _Params:
    """All true parameters as arrays indexed [segment, market, unit, touchpoint]."""

    customers: int
    n_units_by_market: np.ndarray  # (4,)
    unit_offset: np.ndarray  # (4,) first unit index of each market
    unit_ids: list[str]
    unit_quality: np.ndarray  # (U,)
    unit_rec: np.ndarray  # (U,)
    p_use: np.ndarray  # (3, 10)
    quality_seg: np.ndarray  # (3, 10)
    quality_mkt: np.ndarray  # (4, 10)
    dev_seg: np.ndarray  # (3, 10)
    dev_mkt: np.ndarray  # (4, 10)
    contrib: np.ndarray  # (12 groups * 10 tp * (K + 1) states,) flat: emotion contribution of state r (0 = unused)
    alpha: np.ndarray  # (12,) alpha_seg + alpha_mkt by group = seg * 4 + mkt
    treated_units: np.ndarray  # sorted unit indices (empty without intervention)
    treated_mask: np.ndarray  # (U,) bool
    intervention: Intervention | None
    mu: np.ndarray = field(default_factory=lambda: np.array([r[9] for r in _TP_ROWS]))
    beta: np.ndarray = field(default_factory=lambda: np.array([r[10] for r in _TP_ROWS]))
    penalty: np.ndarray = field(default_factory=lambda: np.array([r[11] for r in _TP_ROWS]))
    reward: np.ndarray = field(default_factory=lambda: np.array([r[12] for r in _TP_ROWS]))
    nu: np.ndarray = field(default_factory=lambda: np.array([r[13] for r in _TP_ROWS]))
    shift2: np.ndarray = field(default_factory=lambda: np.array([r[14] for r in _TP_ROWS]))
    scales: TouchpointScales = DEFAULT_SCALES
    emotion_form: str = "linear"

    @property
    def n_units(self) -> int:
        return int(self.n_units_by_market.sum())

    def beta_group(self) -> np.ndarray:
        """Driver slopes by group (12, 10): beta_t + dev_seg[s, t] + dev_mkt[m, t]."""
        return self.beta[None, None, :] + self.dev_seg[:, None, :] + self.dev_mkt[None, :, :]


def _units_by_market(customers: int) -> np.ndarray:
    """Units per market: about customers / 250 in all (at least 8), split by market share, >= 1 each."""
    total = max(MIN_UNITS, int(round(customers / CUSTOMERS_PER_UNIT)))
    probs = np.asarray(MARKET_PROBS)
    raw = probs * total
    counts = np.maximum(1, np.floor(raw).astype(np.int64))
    while counts.sum() < total:  # largest remainder
        counts[np.argmax(raw - counts)] += 1
    while counts.sum() > total:
        candidates = np.where(counts > 1)[0]
        counts[candidates[np.argmin((raw - counts)[candidates])]] -= 1
    return counts


def _make_params(
    customers: int,
    seed: int,
    intervention: Intervention | None,
    scales: TouchpointScales = DEFAULT_SCALES,
    emotion_form: str = "linear",
) -> _Params:
    rng = _rng(seed, _STREAM_PARAMS)
    n_by_mkt = _units_by_market(customers)
    offset = np.concatenate([[0], np.cumsum(n_by_mkt)[:-1]])
    width = max(3, len(str(int(n_by_mkt.max()))))
    unit_ids = [f"{mkt}-{k:0{width}d}" for mkt, n in zip(MARKETS, n_by_mkt) for k in range(1, n + 1)]
    n_units = len(unit_ids)

    quality_seg = rng.normal(0.0, QUALITY_SEG_SD, (len(SEGMENTS), _N_TP))
    quality_mkt = rng.normal(0.0, QUALITY_MKT_SD, (len(MARKETS), _N_TP))
    dev_seg = rng.normal(0.0, DEV_SD, (len(SEGMENTS), _N_TP))
    dev_mkt = rng.normal(0.0, DEV_SD, (len(MARKETS), _N_TP))
    for planted in PLANTED_DIFFERENCES:
        t = _TP_INDEX[planted["touchpoint"]]
        if planted["dimension"] == "segment":
            dev_seg[SEGMENTS.index(planted["level"]), t] = planted["delta"]
        else:
            dev_mkt[MARKETS.index(planted["level"]), t] = planted["delta"]
    unit_quality = rng.normal(0.0, QUALITY_UNIT_SD, n_units)
    unit_rec = rng.normal(0.0, UNIT_REC_SD, n_units)

    p_use = np.array([[min(0.95, max(0.2, row[8] * _USAGE_MULT[s][row[2]])) for row in _TP_ROWS] for s in SEGMENTS])

    treated = np.array([], dtype=np.int64)
    if intervention is not None:
        k = min(n_units - 1, max(1, int(round(intervention.treated_share * n_units))))
        treated = np.sort(_rng(seed, _STREAM_INTERVENTION).choice(n_units, size=k, replace=False))

    params = _Params(
        customers=customers,
        n_units_by_market=n_by_mkt,
        unit_offset=offset,
        unit_ids=unit_ids,
        unit_quality=unit_quality,
        unit_rec=unit_rec,
        p_use=p_use,
        quality_seg=quality_seg,
        quality_mkt=quality_mkt,
        dev_seg=dev_seg,
        dev_mkt=dev_mkt,
        contrib=np.empty(0),
        alpha=np.empty(0),
        treated_units=treated,
        treated_mask=np.isin(np.arange(n_units), treated),
        intervention=intervention,
        scales=scales,
        emotion_form=_check_emotion_form(emotion_form),
    )
    # contribution table C[g, t, r]: r = 0 unused, 1..K_t the rating's state (value = scale min + r - 1)
    beta_g = params.beta_group().reshape(len(SEGMENTS) * len(MARKETS), _N_TP)
    n_states = scales.max_points + 1
    r = np.arange(n_states)[None, :]
    pts = np.asarray(scales.points)[:, None]
    x = (r - (pts + 1) / 2) / ((pts - 1) / 2)  # (T, S) distance from the midpoint in half ranges
    bottom = (r >= 1) & (r <= np.asarray(scales.bottom)[:, None])
    top = (r > pts - np.asarray(scales.top)[:, None]) & (r <= pts)
    contrib = (
        params.nu[None, :, None]
        + 2.0 * beta_g[:, :, None] * x[None, :, :]
        + params.penalty[None, :, None] * bottom[None, :, :]
        + params.reward[None, :, None] * top[None, :, :]
    )
    contrib[:, :, 0] = 0.0
    contrib[:, r[0][None, :] > pts] = 0.0  # states beyond a touchpoint's scale never occur
    params.contrib = contrib.ravel()
    params.alpha = (
        np.array([ALPHA_SEG[s] for s in SEGMENTS])[:, None] + np.array([ALPHA_MKT[m] for m in MARKETS])[None, :]
    ).ravel()
    return params


# ----------------------------------------------------------------------------------------------------------
# The generative model, vectorised
# ----------------------------------------------------------------------------------------------------------

_BRANCH_TP = np.array([row[2] == "branch" for row in _TP_ROWS])


def _draw_population(rng: np.random.Generator, n: int, params: _Params) -> tuple[np.ndarray, ...]:
    """Segment, market and unit indices of ``n`` customers."""
    seg = np.searchsorted(np.cumsum(SEGMENT_PROBS)[:-1], rng.random(n), side="right").astype(np.int8)
    mkt = np.searchsorted(np.cumsum(MARKET_PROBS)[:-1], rng.random(n), side="right").astype(np.int8)
    within = np.floor(rng.random(n) * params.n_units_by_market[mkt]).astype(np.int64)
    unit = (params.unit_offset[mkt] + within).astype(np.int32)
    return seg, mkt, unit


def _quality_location(
    params: _Params,
    seg: np.ndarray,
    mkt: np.ndarray,
    unit: np.ndarray,
    wave: int,
    treated: np.ndarray | None,
    with_intervention: bool = True,
) -> np.ndarray:
    """Mean of the latent quality (n, 10) before the N(0, 1) noise."""
    loc = params.mu[None, :] + params.quality_seg[seg] + params.quality_mkt[mkt]
    loc += np.outer(params.unit_quality[unit], _BRANCH_TP)
    if wave == 2:
        loc += params.shift2[None, :]
        if with_intervention and params.intervention is not None and treated is not None:
            t = _TP_INDEX[params.intervention.touchpoint]
            loc[:, t] += params.intervention.effect * treated
    return loc


def _ratings(latent: np.ndarray, scales: TouchpointScales = DEFAULT_SCALES) -> np.ndarray:
    """Cut each touchpoint's latent quality at its scale's cutpoints into states 1..K (int16); on 1-5 the
    classic QUALITY_CUTPOINTS."""
    if scales.is_default():
        out = np.ones(latent.shape, dtype=np.int16)
        for c in QUALITY_CUTPOINTS:
            out += latent > c
        return out
    out = np.empty(latent.shape, dtype=np.int16)
    for t in range(latent.shape[1]):
        out[:, t] = 1 + np.searchsorted(scales.cutpoints(t), latent[:, t], side="left")
    return out


def _expected_state(location: np.ndarray, scales: TouchpointScales, t: int) -> np.ndarray:
    """E[state] (1..K) of touchpoint ``t`` given the latent quality's location (noise N(0, 1))."""
    from scipy.special import ndtr

    return 1.0 + sum(ndtr(location - c) for c in scales.cutpoints(t))


def _experience(params: _Params, group: np.ndarray, rated: np.ndarray) -> np.ndarray:
    """``lin``: the sum over used touchpoints of the emotion contribution; ``rated`` holds 0 for unused."""
    n_states = params.scales.max_points + 1
    index = (group.astype(np.int64)[:, None] * _N_TP + np.arange(_N_TP)[None, :]) * n_states + rated
    return params.contrib[index].sum(axis=1)


def _check_emotion_form(form: str) -> str:
    if form not in EMOTION_FORMS:
        raise ValueError(f"emotion_form must be one of {list(EMOTION_FORMS)}, got {form!r}")
    return form


def _bend(params: _Params, lin: np.ndarray) -> np.ndarray:
    """The experience part of emotion, ``f(lin)``: ``lin`` itself (linear) or ``S * (1 - exp(-lin / S))``
    (saturating, S = :data:`EMOTION_SATURATION`).

    The saturating form is concave with ``f(0) = 0`` and ``f'(0) = 1``, so a neutral experience (every rating
    at its midpoint, lin near 0) reads as in the linear form, while ``f'(lin) = exp(-lin / S)`` gives both
    bends CX research reports: diminishing returns above neutral (emotion levels off towards S however many
    touchpoints go well) and stronger negativity below it (each further bad experience hurts more: "bad is
    stronger than good", Baumeister et al. 2001). A symmetric ``S * tanh(lin / S)`` was rejected because it
    also flattens the bottom, i.e. makes the worst-served customers *less* sensitive to one more failure. The
    bend makes the touchpoints interact (a touchpoint's effect on emotion scales with ``exp(-lin / S)``, the
    rest of the customer's experience), which an additive driver model cannot represent exactly.
    """
    if params.emotion_form == "linear":
        return lin
    s = EMOTION_SATURATION
    return -s * np.expm1(-lin / s)


def _bend_change(params: _Params, lin: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``f(lin + delta) - f(lin)`` (exactly ``delta`` in the linear form)."""
    if params.emotion_form == "linear":
        return delta
    s = EMOTION_SATURATION
    return -s * np.exp(-lin / s) * np.expm1(-delta / s)


def _eta_mean(params: _Params, group: np.ndarray, rated: np.ndarray) -> np.ndarray:
    """alpha + f(lin): emotion without its N(0, 1) noise (the noise stays outside the bend)."""
    return params.alpha[group] + _bend(params, _experience(params, group, rated))


def _ordered_logistic(rng: np.random.Generator, location: np.ndarray, cutpoints: np.ndarray) -> np.ndarray:
    """Category 0..K of an ordered logistic with the given cutpoints (int8)."""
    return np.searchsorted(cutpoints, location + rng.logistic(size=location.shape[0]), side="left").astype(np.int8)


def _draw_wave(
    rng: np.random.Generator,
    params: _Params,
    seg: np.ndarray,
    mkt: np.ndarray,
    unit: np.ndarray,
    wave: int,
    emotions: bool,
    eta_shift: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One survey wave for the given customers: ratings (0 = unused), recommend 0-10, emotion items 1-7.

    ``eta_shift`` (comments on): each customer's shift of emotion from the hidden comment issues, added before
    recommend and the emotion items are drawn; the output then also holds ``eta_mean`` (alpha + f(lin)) and
    ``eta_shift`` for the exact truths, and ``recommend_unshifted``, the answer the same draws give without the
    shift. None draws exactly what the simulator drew before comments existed.
    """
    n = seg.shape[0]
    used = rng.random((n, _N_TP)) < params.p_use[seg]
    treated = params.treated_mask[unit] if (wave == 2 and params.intervention is not None) else None
    latent = _quality_location(params, seg, mkt, unit, wave, treated)
    latent += rng.standard_normal((n, _N_TP))
    rated = _ratings(latent, params.scales) * used
    group = seg.astype(np.int64) * len(MARKETS) + mkt
    out: dict[str, np.ndarray] = {"rated": rated}
    cutpoints = np.asarray(RECOMMEND_CUTPOINTS)
    if eta_shift is None:
        eta = _eta_mean(params, group, rated) + rng.standard_normal(n)
        out["recommend"] = _ordered_logistic(rng, GAMMA * eta + params.unit_rec[unit], cutpoints)
    else:
        out["eta_mean"] = _eta_mean(params, group, rated)
        out["eta_shift"] = eta_shift
        unshifted = out["eta_mean"] + rng.standard_normal(n)
        eta = unshifted + eta_shift
        # _ordered_logistic's draw and sums, shared by the answer without the shift (bit for bit the answer of the
        # data without comments, which keeps the data stream in step in _block_tables)
        logistic = rng.logistic(size=n)
        for key, value in (("recommend", eta), ("recommend_unshifted", unshifted)):
            location = GAMMA * value + params.unit_rec[unit]
            out[key] = np.searchsorted(cutpoints, location + logistic, side="left").astype(np.int8)
    if emotions:
        for item, spec in EMOTION_ITEMS.items():
            scored = 1 + _ordered_logistic(rng, spec["loading"] * eta, np.asarray(spec["cutpoints"]))
            out[item] = (8 - scored) if spec["reverse"] else scored
    return out


def _nps_class_index(recommend: np.ndarray) -> np.ndarray:
    """0 detractor (0-6), 1 passive (7-8), 2 promoter (9-10)."""
    return (recommend >= 7).astype(np.int8) + (recommend >= 9)


_CLASS_NAMES = ("detractor", "passive", "promoter")


# ----------------------------------------------------------------------------------------------------------
# Arrow helpers (fast string columns)
# ----------------------------------------------------------------------------------------------------------


def _fixed_width_ids(numbers: np.ndarray, prefix: str, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``numbers`` as an Arrow string array, built from bytes (no Python loop)."""
    n = numbers.shape[0]
    pre = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    total = len(pre) + width
    chars = np.empty((n, total), dtype=np.uint8)
    chars[:, : len(pre)] = pre
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    chars[:, len(pre) :] = (numbers.astype(np.int64)[:, None] // powers[None, :]) % 10 + 48
    offsets = np.arange(0, (n + 1) * total, total, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars.ravel())])


def _labels(dictionary: pa.Array, codes: np.ndarray) -> pa.Array:
    return dictionary.take(pa.array(codes.astype(np.int32)))


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype("datetime64[D]"), type=pa.date32(), mask=mask)


def _survey_schema(comments: bool = False) -> pa.Schema:
    fields = [
        pa.field("customer_id", pa.string()),
        pa.field("segment", pa.string()),
        pa.field("market", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("wave", pa.string()),
        pa.field("survey_date", pa.date32()),
    ]
    fields += [pa.field(f"tp_{key}", pa.int16()) for key in TOUCHPOINTS]
    fields += [pa.field(item, pa.int16()) for item in EMOTION_ITEMS]
    fields += [pa.field("nps_raw", pa.int16())]
    fields += [pa.field("comment", pa.string())] if comments else []
    return pa.schema(fields)


def _customers_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("customer_id", pa.string()),
            pa.field("segment", pa.string()),
            pa.field("market", pa.string()),
            pa.field("unit", pa.string()),
            pa.field("start_date", pa.date32()),
            pa.field("end_date", pa.date32()),
            pa.field("churned", pa.int8()),
            pa.field("monthly_margin", pa.float64()),
            pa.field("n_products", pa.int16()),
        ]
    )


# ----------------------------------------------------------------------------------------------------------
# Optional free-text comments (simulate_dataset(comments="en" | "es"))
# ----------------------------------------------------------------------------------------------------------

COMMENT_LANGUAGES: tuple[str, ...] = ("en", "es")
#: P(a complaint sentence) for a user who rated the topic's touchpoint in the bottom box
P_WRITE_COMPLAINT = 0.5
#: P(a praise sentence) for an answer with a top-box rating on any touchpoint
P_WRITE_PRAISE = 0.25
#: P(a sentence) for an answer that has a hidden issue or the neutral topic
P_WRITE_PLANTED = 0.8
#: share of the answers with something to say that write nothing all the same
P_COMMENT_SILENT = 0.25
#: share of the answers with nothing to say that write a short filler ("ok", "nothing to add")
P_COMMENT_FILLER = 0.10
#: share of the comments with content that add a filler sentence ("Thanks.")
P_COMMENT_EXTRA_FILLER = 0.30
#: share of the comments that carry planted personal data (an e-mail, a phone or an account / card number)
P_PERSONAL_DATA = 0.02
PERSONAL_DATA_KINDS: tuple[str, ...] = ("email", "phone", "number")
#: Gauss-Hermite nodes for the emotion noise in ``effect_detractor``
COMMENT_QUADRATURE_NODES = 40


@dataclass(frozen=True)
class CommentTopic:
    """A planted comment topic.

    ``complaint``: written by users of ``touchpoint`` who rated it in the bottom box; ``praise``: by answers
    with a top-box rating; both follow the ratings, so they say nothing beyond them. ``hidden``: an issue no
    touchpoint measures, present in an answer with probability ``prevalence`` and shifting its emotion by
    ``delta``; ``neutral``: the same with ``delta`` 0 (a planted null). ``p_write``: P(the comment mentions it).
    """

    name: str
    kind: str
    p_write: float
    touchpoint: str | None = None
    prevalence: float | None = None
    delta: float = 0.0


COMMENT_TOPICS: tuple[CommentTopic, ...] = (
    CommentTopic("call_centre_waits", "complaint", P_WRITE_COMPLAINT, touchpoint="call_centre"),
    CommentTopic("app_failures", "complaint", P_WRITE_COMPLAINT, touchpoint="mobile_app"),
    CommentTopic("statement_fees", "complaint", P_WRITE_COMPLAINT, touchpoint="statements"),
    CommentTopic("branch_queues", "complaint", P_WRITE_COMPLAINT, touchpoint="branch_visit"),
    CommentTopic("praise", "praise", P_WRITE_PRAISE),
    CommentTopic("fraud_security", "hidden", P_WRITE_PLANTED, prevalence=0.08, delta=-1.5),
    CommentTopic("loan_rates", "hidden", P_WRITE_PLANTED, prevalence=0.10, delta=-0.8),
    CommentTopic("life_events", "neutral", P_WRITE_PLANTED, prevalence=0.08, delta=0.0),
)
#: the topics an answer has or not by a draw of its own (hidden issues and the neutral topic), in order
_PLANTED_TOPICS: tuple[CommentTopic, ...] = tuple(t for t in COMMENT_TOPICS if t.prevalence is not None)


@dataclass(frozen=True)
class _TopicText:
    """A topic's vocabulary in one language: every clause holds one of the ``keywords`` (and no other
    topic's), so a keyword search finds exactly the comments that mention the topic."""

    keywords: tuple[str, ...]
    templates: tuple[str, ...]  # "{x}" = a clause
    clauses: tuple[str, ...]


_COMMENT_TEXT: dict[str, dict[str, _TopicText]] = {
    "en": {
        "call_centre_waits": _TopicText(
            ("hold", "agent", "transferred", "helpline", "operator", "callback"),
            ("{x}", "When I phoned, {x}", "{x}, which is unacceptable", "Last time I rang, {x}"),
            (
                "I was kept on hold for ages",
                "the agent transferred me three times",
                "nobody picks up the helpline",
                "the operator hung up on me",
                "I waited on hold forever and the line went dead",
                "the helpline menu is endless and no agent answers",
                "they promised a callback that never came",
                "I had to repeat my problem to every operator",
            ),
        ),
        "app_failures": _TopicText(
            ("app", "crashes", "freezes", "login", "update", "bugs"),
            ("{x}", "{x}, so annoying", "Since last month {x}", "Please fix it: {x}"),
            (
                "the app crashes at login",
                "the app freezes after every update",
                "the fingerprint login never works in the app",
                "the app keeps logging me out",
                "the app is slow and the screens take forever to load",
                "transfers fail in the app with an error",
                "the latest update of the app is full of bugs",
            ),
        ),
        "statement_fees": _TopicText(
            ("statement", "fees", "charges", "commission", "overdraft"),
            ("{x}", "{x} and nobody explains why", "Frankly, {x}", "Looking at my statement, {x}"),
            (
                "the statement fees are confusing",
                "I do not understand the charges on my statement",
                "there are hidden charges every month",
                "the maintenance commission appeared without warning",
                "my monthly statement is impossible to read",
                "they charged me an overdraft commission I never agreed to",
                "the fees on the statement keep going up",
            ),
        ),
        "branch_queues": _TopicText(
            ("branch", "queue", "queued", "counter", "cashier", "appointment", "clerk"),
            ("{x}", "Once again, {x}", "{x}, very frustrating", "Honestly, {x}"),
            (
                "the queue at the branch was huge",
                "there was only one cashier at the counter",
                "the branch closes too early",
                "I needed an appointment just to see an adviser",
                "the clerk at the branch was rude",
                "my local branch closed and the next one is far away",
                "I queued for an hour at the counter",
            ),
        ),
        "praise": _TopicText(
            ("friendly", "helpful", "great", "excellent", "kind", "polite", "quickly", "professional", "pleasant"),
            ("{x}", "{x}, thank you", "{x}, keep it up", "{x}!"),
            (
                "friendly and helpful staff",
                "great service",
                "the staff were very kind",
                "excellent attention, quick and polite",
                "they solved everything quickly",
                "very professional people",
                "a pleasant experience overall",
            ),
        ),
        "fraud_security": _TopicText(
            ("fraud", "stole", "stolen", "unauthorised", "phishing", "suspicious"),
            ("{x}", "Last month {x}", "{x} and I feel unsafe", "I am worried because {x}"),
            (
                "my card was blocked after a fraud alert",
                "someone stole money from my account",
                "there were unauthorised payments on my card",
                "I was the victim of a phishing scam",
                "the security team took weeks to refund the stolen money",
                "a suspicious transaction emptied my account",
                "they froze my card because of fraud",
            ),
        ),
        "loan_rates": _TopicText(
            ("mortgage", "interest", "loan", "repayments", "refinancing", "instalments"),
            ("{x}", "{x}, I may switch banks", "To be honest, {x}", "{x} and that hurts my budget"),
            (
                "the interest rate on my mortgage went up again",
                "my loan repayments are too high",
                "the mortgage rate is much higher than elsewhere",
                "they refused to lower the interest on my loan",
                "the loan arrangement costs were excessive",
                "refinancing the mortgage was impossible",
                "the variable rate makes my instalments unpredictable",
            ),
        ),
        "life_events": _TopicText(
            ("moving", "job", "abroad", "relocated", "married", "retiring"),
            ("{x}", "By the way, {x}", "Just so you know, {x}", "{x}, so things have been busy"),
            (
                "I am moving house next month",
                "I just started a new job",
                "I have been travelling abroad a lot",
                "we relocated to another city",
                "I got married this year",
                "I am retiring soon",
                "I spent the summer working abroad",
            ),
        ),
    },
    "es": {
        "call_centre_waits": _TopicText(
            ("espera", "agente", "operador", "operadora", "llamada", "colgó"),
            ("{x}", "Cuando llamé, {x}", "{x}, es inaceptable", "La última vez que llamé {x}"),
            (
                "me tuvieron en espera mucho tiempo",
                "el agente me pasó de un departamento a otro tres veces",
                "nadie contesta la llamada en atención al cliente",
                "la operadora me colgó el teléfono",
                "esperé al teléfono una eternidad y se cortó la llamada",
                "prometieron devolverme la llamada y nunca lo hicieron",
                "tuve que repetir mi problema a cada operador",
            ),
        ),
        "app_failures": _TopicText(
            ("app", "aplicación", "cuelga", "congelada", "actualización", "sesión"),
            ("{x}", "{x}, qué pesadez", "Desde el mes pasado {x}", "Arreglad esto: {x}"),
            (
                "la app se cuelga al entrar",
                "la aplicación se queda congelada después de cada actualización",
                "la huella para entrar en la app nunca funciona",
                "la app me cierra la sesión todo el rato",
                "la aplicación va lenta y las pantallas tardan en cargar",
                "las transferencias fallan en la app con un error",
                "la última actualización de la app está llena de fallos",
            ),
        ),
        "statement_fees": _TopicText(
            ("extracto", "comisiones", "comisión", "cargos", "descubierto"),
            ("{x}", "{x} y nadie lo explica", "Sinceramente, {x}", "Mirando el extracto, {x}"),
            (
                "las comisiones del extracto no se entienden",
                "no entiendo los cargos de mi extracto",
                "hay cargos ocultos todos los meses",
                "apareció una comisión de mantenimiento sin avisar",
                "el extracto mensual es imposible de leer",
                "me cobraron una comisión por descubierto que nunca acepté",
                "las comisiones del extracto no paran de subir",
            ),
        ),
        "branch_queues": _TopicText(
            ("oficina", "sucursal", "cola", "ventanilla", "cajero", "cita"),
            ("{x}", "Otra vez, {x}", "{x}, muy frustrante", "La verdad, {x}"),
            (
                "la cola en la oficina era enorme",
                "solo había un cajero en la ventanilla",
                "la oficina cierra demasiado pronto",
                "necesité cita previa solo para ver al gestor",
                "el empleado de la sucursal fue muy borde",
                "cerraron mi sucursal y la siguiente está lejos",
                "esperé una hora de cola en la ventanilla",
            ),
        ),
        "praise": _TopicText(
            ("amable", "atento", "estupendo", "excelente", "rápidos", "enseguida", "profesional", "agradable"),
            ("{x}", "{x}, gracias", "{x}, seguid así", "{x}, de verdad"),
            (
                "personal amable y atento",
                "un servicio estupendo",
                "el trato fue excelente",
                "muy rápidos y educados",
                "me lo resolvieron todo enseguida",
                "gente muy profesional",
                "una experiencia muy agradable",
            ),
        ),
        "fraud_security": _TopicText(
            ("fraude", "robaron", "robado", "estafa", "sospechosa", "autorizados"),
            ("{x}", "El mes pasado {x}", "{x} y no me siento seguro", "Estoy preocupado porque {x}"),
            (
                "me bloquearon la tarjeta por fraude",
                "me robaron dinero de la cuenta",
                "hubo pagos no autorizados con mi tarjeta",
                "fui víctima de una estafa por phishing",
                "el equipo de seguridad tardó semanas en devolver el dinero robado",
                "una operación sospechosa vació mi cuenta",
                "congelaron la tarjeta por un aviso de fraude",
            ),
        ),
        "loan_rates": _TopicText(
            ("hipoteca", "interés", "préstamo", "cuotas", "cuota", "renegociar"),
            ("{x}", "{x}, igual me cambio de banco", "Sinceramente, {x}", "{x} y eso afecta a mi economía"),
            (
                "el tipo de interés de la hipoteca volvió a subir",
                "las cuotas del préstamo son demasiado altas",
                "el interés de la hipoteca es mucho más alto que en otros bancos",
                "no quisieron bajar el interés de mi préstamo",
                "los gastos de apertura del préstamo fueron excesivos",
                "fue imposible renegociar la hipoteca",
                "el tipo variable hace que la cuota sea impredecible",
            ),
        ),
        "life_events": _TopicText(
            ("mudo", "mudado", "trabajo", "extranjero", "casado", "jubilo"),
            ("{x}", "Por cierto, {x}", "Para que lo sepáis, {x}", "{x}, así que ando liado"),
            (
                "me mudo de casa el mes que viene",
                "acabo de empezar en un trabajo nuevo",
                "he estado viajando mucho al extranjero",
                "nos hemos mudado a otra ciudad",
                "me he casado este año",
                "me jubilo pronto",
                "pasé el verano trabajando en el extranjero",
            ),
        ),
    },
}
#: a whole comment from an answer with nothing to say
_COMMENT_FILLERS = {
    "en": ("ok", "nothing to add", "all fine", "no comment", "nothing else", "that is all"),
    "es": ("ok", "nada que añadir", "todo bien", "sin comentarios", "nada más", "eso es todo"),
}
#: a sentence added to a comment with content
_COMMENT_EXTRA_FILLERS = {
    "en": ("That is all.", "Thanks.", "Nothing else to add.", "Regards."),
    "es": ("Eso es todo.", "Gracias.", "Nada más que añadir.", "Saludos."),
}
#: sentences that carry personal data, by kind ("{x}" = the e-mail, phone or number)
_PERSONAL_DATA_TEMPLATES = {
    "en": {
        "email": ("My e-mail is {x}.", "Write to me at {x}."),
        "phone": ("Call me on {x}.", "My phone number is {x}."),
        "number": ("My card number is {x}.", "Please check account {x}."),
    },
    "es": {
        "email": ("Mi correo es {x}.", "Escribidme a {x}."),
        "phone": ("Llamadme al {x}.", "Mi móvil es el {x}."),
        "number": ("Mi número de tarjeta es {x}.", "Revisad la cuenta {x}."),
    },
}
_FAKE_FIRST_NAMES = ("ana", "john", "maria", "peter", "lucia", "david", "carmen", "james", "sofia", "pablo")
_FAKE_LAST_NAMES = ("garcia", "smith", "lopez", "jones", "martin", "brown", "sanchez", "taylor", "perez", "wilson")


def _check_comments(comments: str | None) -> str | None:
    if comments is not None and comments not in COMMENT_LANGUAGES:
        raise ValueError(f"comments must be None, 'en' or 'es', got {comments!r}")
    return comments


def _sentence(template: str, clause: str) -> str:
    """``template`` filled with ``clause``, capitalised and closed with a full stop if it has no end mark."""
    text = template.format(x=clause)
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


@dataclass
class _CommentState:
    """The comments' language, the rendered sentences, and the truths counted block by block."""

    language: str
    sentences: list[tuple[str, ...]] = field(default_factory=list)  # per topic: every template x clause
    clauses: list[tuple[str, ...]] = field(default_factory=list)  # per topic: every clause as a bare sentence
    answers: int = 0
    with_comment: int = 0
    present: np.ndarray = field(default_factory=lambda: np.zeros(len(COMMENT_TOPICS), np.int64))
    mentions: np.ndarray = field(default_factory=lambda: np.zeros(len(COMMENT_TOPICS), np.int64))
    effect_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(COMMENT_TOPICS)))
    personal_data: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PERSONAL_DATA_KINDS, 0))

    def __post_init__(self) -> None:
        texts = _COMMENT_TEXT[self.language]
        self.sentences = [
            tuple(_sentence(tpl, clause) for tpl in texts[t.name].templates for clause in texts[t.name].clauses)
            for t in COMMENT_TOPICS
        ]
        self.clauses = [tuple(_sentence("{x}", clause) for clause in texts[t.name].clauses) for t in COMMENT_TOPICS]


def _draw_planted_topics(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of the hidden / neutral topics each of ``n`` answers has (n, P) and their emotion shift (n,)."""
    prevalence = np.array([t.prevalence for t in _PLANTED_TOPICS], dtype=np.float64)
    delta = np.array([t.delta for t in _PLANTED_TOPICS])
    has = rng.random((n, len(_PLANTED_TOPICS))) < prevalence[None, :]
    return has, has @ delta


def _detractor_probability(location: np.ndarray) -> np.ndarray:
    """P(recommend <= 6) given ``GAMMA * (alpha + f(lin) + shifts) + unit_rec``, the N(0, 1) emotion noise
    integrated out by Gauss-Hermite quadrature (the recommend draw's logistic noise exactly)."""
    from scipy.special import expit

    nodes, weights = np.polynomial.hermite_e.hermegauss(COMMENT_QUADRATURE_NODES)
    weights = weights / weights.sum()
    return expit(RECOMMEND_CUTPOINTS[6] - location[:, None] - GAMMA * nodes[None, :]) @ weights


def _add_detractor_effects(
    state: _CommentState, planted: np.ndarray, eta_mean: np.ndarray, eta_shift: np.ndarray, unit_rec: np.ndarray
) -> None:
    """Add each hidden issue's exact change in P(detractor) (present vs absent, the answer's other issues kept)
    over the answers that have it: ``effect_detractor`` is its average."""
    location = GAMMA * (eta_mean + eta_shift) + unit_rec
    for j, topic in enumerate(_PLANTED_TOPICS):
        if topic.delta == 0.0:
            continue
        has = planted[:, j]
        if has.any():
            with_issue = _detractor_probability(location[has])
            without = _detractor_probability(location[has] - GAMMA * topic.delta)
            state.effect_sum[COMMENT_TOPICS.index(topic)] += float((with_issue - without).sum())


def _personal_data_text(rng: np.random.Generator, kind: str) -> str:
    """A fake e-mail, phone number (three formats) or 12-16 digit account / card number (grouped or not)."""
    if kind == "email":
        first, last = rng.choice(_FAKE_FIRST_NAMES), rng.choice(_FAKE_LAST_NAMES)
        return f"{first}.{last}@example.com"
    digits = "".join(str(d) for d in rng.integers(0, 10, 16))
    if kind == "phone":
        form = int(rng.integers(0, 3))
        if form == 0:
            return f"+34 6{digits[:2]} {digits[2:5]} {digits[5:8]}"
        if form == 1:
            return f"(555) {digits[:3]}-{digits[3:7]}"
        return f"6{digits[:8]}"
    if rng.random() < 0.5:  # grouped in fours, as printed on a card
        length = 16 if rng.random() < 0.5 else 12
        return " ".join(digits[i : i + 4] for i in range(0, length, 4))
    return digits[: int(rng.integers(12, 17))]


def _block_comments(
    rng: np.random.Generator, state: _CommentState, scales: TouchpointScales, rated: np.ndarray, planted: np.ndarray
) -> pa.Array:
    """The comment of each survey row (null where none), given its ratings (states, 0 = unused) and planted
    topics; the block's counts are added to ``state``."""
    n, k = int(rated.shape[0]), len(COMMENT_TOPICS)
    bottom = (rated >= 1) & (rated <= np.asarray(scales.bottom)[None, :])
    top = rated > (np.asarray(scales.points) - np.asarray(scales.top))[None, :]
    trigger = np.zeros((n, k), dtype=bool)
    for i, topic in enumerate(COMMENT_TOPICS):
        if topic.kind == "complaint":
            trigger[:, i] = bottom[:, _TP_INDEX[str(topic.touchpoint)]]
        elif topic.kind == "praise":
            trigger[:, i] = top.any(axis=1)
        else:
            trigger[:, i] = planted[:, _PLANTED_TOPICS.index(topic)]
    p_write = np.array([t.p_write for t in COMMENT_TOPICS])
    mention: np.ndarray = trigger & (rng.random((n, k)) < p_write[None, :])
    has_content: np.ndarray = np.any(mention, axis=1)
    silent: np.ndarray = rng.random(n) < P_COMMENT_SILENT
    filler_only: np.ndarray = ~has_content & (rng.random(n) < P_COMMENT_FILLER)
    mention &= ~silent[:, None]
    written: np.ndarray = (has_content & ~silent) | filler_only
    extra_filler: np.ndarray = rng.random(n) < P_COMMENT_EXTRA_FILLER
    personal: np.ndarray = written & (rng.random(n) < P_PERSONAL_DATA)
    sizes = np.array([len(s) for s in state.sentences])
    pick: np.ndarray = rng.integers(0, sizes[None, :], (n, k))
    # a mention is two sentences of the topic (customers say a little more about what they write about): the
    # second a different clause, so the clauses of a topic co-occur as the words of a real topic do
    n_clauses = np.array([len(c) for c in state.clauses])
    second: np.ndarray = (pick % n_clauses[None, :] + rng.integers(1, n_clauses[None, :], (n, k))) % n_clauses
    order_keys: np.ndarray = rng.random((n, k + 2))  # topics, a filler-only comment, personal data: shuffled
    fillers, extras = _COMMENT_FILLERS[state.language], _COMMENT_EXTRA_FILLERS[state.language]
    filler_pick: np.ndarray = rng.integers(0, len(fillers), n)
    extra_pick: np.ndarray = rng.integers(0, len(extras), n)

    texts: list[str | None] = [None] * n
    rows = np.flatnonzero(written)
    for row, topics, keys, picks, seconds, content, extra, with_personal, filler, extra_text in zip(
        rows.tolist(),
        mention[rows].tolist(),
        order_keys[rows].tolist(),
        pick[rows].tolist(),
        second[rows].tolist(),
        has_content[rows].tolist(),
        extra_filler[rows].tolist(),
        personal[rows].tolist(),
        filler_pick[rows].tolist(),
        extra_pick[rows].tolist(),
    ):
        parts = [
            (keys[i], f"{state.sentences[i][picks[i]]} {state.clauses[i][seconds[i]]}") for i in range(k) if topics[i]
        ]
        if not content:
            parts.append((keys[k], fillers[filler]))
        elif extra:
            parts.append((2.0, extras[extra_text]))  # after the content
        if with_personal:
            kind = PERSONAL_DATA_KINDS[int(rng.integers(0, len(PERSONAL_DATA_KINDS)))]
            templates = _PERSONAL_DATA_TEMPLATES[state.language][kind]
            text = templates[int(rng.integers(0, len(templates)))].format(x=_personal_data_text(rng, kind))
            state.personal_data[kind] += 1
            if not content:  # "nothing to add" -> "Nothing to add." beside a sentence
                parts[0] = (parts[0][0], _sentence("{x}", parts[0][1]))
            parts.append((keys[k + 1], text))
        texts[row] = " ".join(sentence for _, sentence in sorted(parts))
    state.answers += n
    state.with_comment += int(written.sum())
    state.present += trigger.sum(axis=0)
    state.mentions += mention.sum(axis=0)
    return pa.array(texts, type=pa.string())


def _comments_truth(state: _CommentState) -> dict:
    """truth.json's ``comments`` section (docs/SIMULATOR.md, *Comments*)."""
    answers = max(state.answers, 1)
    topics = {}
    for i, topic in enumerate(COMMENT_TOPICS):
        present = int(state.present[i])
        if topic.kind != "hidden" or topic.delta == 0.0:
            effect: float | None = 0.0
        else:
            effect = float(state.effect_sum[i] / present) if present else None
        topics[topic.name] = {
            "kind": topic.kind,
            "touchpoint": topic.touchpoint,
            "keywords": list(_COMMENT_TEXT[state.language][topic.name].keywords),
            "prevalence": int(state.mentions[i]) / answers,
            "delta": topic.delta,
            "effect_detractor": effect,
            "planted_prevalence": topic.prevalence,
            "p_write": topic.p_write,
            "present": present / answers,
            "mentions": int(state.mentions[i]),
        }
    return {
        "language": state.language,
        "column": "comment",
        "answers": state.answers,
        "with_comment": state.with_comment,
        "share_with_comment": state.with_comment / answers,
        "p_silent": P_COMMENT_SILENT,
        "p_filler": P_COMMENT_FILLER,
        "p_personal_data": P_PERSONAL_DATA,
        "personal_data": dict(state.personal_data),
        "quadrature_nodes": COMMENT_QUADRATURE_NODES,
        "topics": topics,
    }


# ----------------------------------------------------------------------------------------------------------
# One block of customers
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Context:
    params: _Params
    seed: int
    response_rate: float
    as_of_day: int  # days since 1970-01-01
    id_width: int
    seg_dict: pa.Array
    mkt_dict: pa.Array
    unit_dict: pa.Array
    wave_dict: pa.Array
    comments: _CommentState | None = None  # None: no comments


def _block_tables(ctx: _Context, block: int, first: int, n: int) -> tuple[pa.Table, pa.Table]:
    """Survey and customer rows of customers ``first .. first + n - 1`` (RNG block ``block``)."""
    params = ctx.params
    rng = _rng(ctx.seed, _STREAM_DATA, block)
    seg, mkt, unit = _draw_population(rng, n, params)
    respond = rng.random((n, 2)) < ctx.response_rate
    idx2 = np.flatnonzero(respond[:, 1])
    state = ctx.comments
    shift1 = shift2 = None
    if state is not None:
        # hidden / neutral comment topics of each customer's wave-1 and wave-2 answer, from the comments stream
        comment_rng = _rng(ctx.seed, _STREAM_COMMENTS, block)
        planted1, shift1 = _draw_planted_topics(comment_rng, n)
        planted2, shift2 = _draw_planted_topics(comment_rng, n)
        planted2, shift2 = planted2[idx2], shift2[idx2]
    wave1 = _draw_wave(rng, params, seg, mkt, unit, wave=1, emotions=True, eta_shift=shift1)
    wave2 = _draw_wave(rng, params, seg[idx2], mkt[idx2], unit[idx2], wave=2, emotions=True, eta_shift=shift2)

    # --- churn and value (every customer), driven by the wave-1 recommend draw
    cls = _nps_class_index(wave1["recommend"])
    log_hr = np.array([LOG_HR_CLASS[c] for c in _CLASS_NAMES])[cls] + np.array([LOG_HR_MARKET[m] for m in MARKETS])[mkt]
    scale = np.array([WEIBULL_SCALE[s] for s in SEGMENTS])[seg]
    t_months = scale * (rng.standard_exponential(n) * np.exp(-log_hr)) ** (1.0 / WEIBULL_SHAPE)
    window_days = int(round(WINDOW_MONTHS * DAYS_PER_MONTH))
    age_days = rng.integers(1, window_days + 1, n)
    life_days = np.maximum(1, np.ceil(np.minimum(t_months * DAYS_PER_MONTH, 1e7))).astype(np.int64)
    churned = life_days <= age_days
    start_day = ctx.as_of_day - age_days
    end_day = start_day + life_days
    meanlog = np.array([BASE_MARGIN[s][0] for s in SEGMENTS])[seg]
    sdlog = np.array([BASE_MARGIN[s][1] for s in SEGMENTS])[seg]
    base = np.exp(meanlog + sdlog * rng.standard_normal(n))
    segment_rate = np.array([PRODUCT_RATE[s] for s in SEGMENTS])[seg]
    class_mult = np.array([PRODUCT_MULT[c] for c in _CLASS_NAMES])
    rate = segment_rate * class_mult[cls]
    if state is None:
        extra = rng.poisson(rate)
    else:
        # products from the comments stream; the data stream then draws (and drops) the products of the class
        # without the hidden issues, because Poisson draws use the stream by rate: the survey dates drawn next are
        # then exactly those of the data without comments
        extra = comment_rng.poisson(rate)
        rng.poisson(segment_rate * class_mult[_nps_class_index(wave1["recommend_unshifted"])])
    margin = np.round(base + PRODUCT_MARGIN * extra, 2)

    # --- survey dates
    dates = {}
    for w, count in (("1", n), ("2", idx2.shape[0])):
        start_off, end_off = WAVE_WINDOWS_DAYS[w]
        dates[w] = ctx.as_of_day - rng.integers(end_off, start_off + 1, count)

    customer_numbers = np.arange(first + 1, first + n + 1, dtype=np.int64)
    customers = pa.table(
        {
            "customer_id": _fixed_width_ids(customer_numbers, "C", ctx.id_width),
            "segment": _labels(ctx.seg_dict, seg),
            "market": _labels(ctx.mkt_dict, mkt),
            "unit": _labels(ctx.unit_dict, unit),
            "start_date": _dates(start_day),
            "end_date": _dates(end_day, mask=~churned),
            "churned": pa.array(churned.astype(np.int8)),
            "monthly_margin": pa.array(margin),
            "n_products": pa.array((1 + extra).astype(np.int16)),
        },
        schema=_customers_schema(),
    )

    # --- survey rows: wave-1 respondents and wave-2 respondents, ordered by customer then wave
    idx1 = np.flatnonzero(respond[:, 0])
    rows_cust = np.concatenate([idx1, idx2])
    rows_wave = np.concatenate([np.zeros(idx1.shape[0], np.int8), np.ones(idx2.shape[0], np.int8)])
    order = np.argsort(rows_cust * 2 + rows_wave, kind="stable")
    rows_cust, rows_wave = rows_cust[order], rows_wave[order]

    def stacked(key: str) -> np.ndarray:
        return np.concatenate([wave1[key][idx1], wave2[key]])[order]

    rated = stacked("rated")
    columns: dict[str, Any] = {
        "customer_id": _fixed_width_ids(customer_numbers[rows_cust], "C", ctx.id_width),
        "segment": _labels(ctx.seg_dict, seg[rows_cust]),
        "market": _labels(ctx.mkt_dict, mkt[rows_cust]),
        "unit": _labels(ctx.unit_dict, unit[rows_cust]),
        "wave": _labels(ctx.wave_dict, rows_wave),
        "survey_date": _dates(np.concatenate([dates["1"][idx1], dates["2"]])[order]),
    }
    scales = params.scales
    for t, row in enumerate(_TP_ROWS):
        values = rated[:, t].astype(np.int16)
        unused = values == 0
        values = np.where(unused, 0, values + (scales.minimum[t] - 1)).astype(np.int16)  # state -> answer value
        na_code = _na_code(row[7], scales, t)
        if na_code == "blank":
            columns[f"tp_{row[0]}"] = pa.array(values, mask=unused)
        else:
            values[unused] = na_code
            columns[f"tp_{row[0]}"] = pa.array(values)
    for item in EMOTION_ITEMS:
        columns[item] = pa.array(stacked(item).astype(np.int16))
    columns["nps_raw"] = pa.array(stacked("recommend").astype(np.int16) + 1)
    if state is not None:
        planted = np.concatenate([planted1[idx1], planted2])[order]
        _add_detractor_effects(
            state, planted, stacked("eta_mean"), stacked("eta_shift"), params.unit_rec[unit[rows_cust]]
        )
        columns["comment"] = _block_comments(comment_rng, state, scales, rated, planted)
    survey = pa.table(columns, schema=_survey_schema(state is not None))
    return survey, customers


# ----------------------------------------------------------------------------------------------------------
# Monte-Carlo population truth
# ----------------------------------------------------------------------------------------------------------


class _Moments:
    """Running n / sum / sum of squares per key, for means with Monte-Carlo standard errors."""

    def __init__(self) -> None:
        self.acc: dict[tuple, list[float]] = {}

    def add(self, key: tuple, values: np.ndarray) -> None:
        a = self.acc.setdefault(key, [0.0, 0.0, 0.0])
        v = np.asarray(values, dtype=np.float64)
        a[0] += v.shape[0]
        a[1] += float(v.sum())
        a[2] += float(np.square(v).sum())

    def mean(self, key: tuple) -> float:
        n, s, _ = self.acc[key]
        return s / n if n else float("nan")

    def se(self, key: tuple) -> float:
        n, s, ss = self.acc[key]
        if n < 2:
            return float("nan")
        var = max(ss / n - (s / n) ** 2, 0.0) * n / (n - 1)
        return math.sqrt(var / n)


def _class_probs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(detractor), P(promoter) of an ordered logistic recommend with location ``x`` (Rao-Blackwellised)."""
    from scipy.special import expit

    cuts = RECOMMEND_CUTPOINTS
    return expit(cuts[6] - x), expit(x - cuts[8])


def _expected_recommend(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return sum(expit(x - c) for c in RECOMMEND_CUTPOINTS)


def _population_truth(params: _Params, seed: int, samples: int, comments: bool = False) -> tuple[dict, dict | None]:
    """Monte-Carlo truths of the generative model on its own RNG stream (Rao-Blackwellised where closed).

    ``comments``: the data's emotion carries the hidden comment issues' shifts, so the population's does too:
    each draw's issues come with their prevalences from the comments stream ``(5,)`` (the population stream's
    draws stay those of the data without comments).
    """
    from scipy.special import ndtr

    rng = _rng(seed, _STREAM_POPULATION)
    comment_rng = _rng(seed, _STREAM_COMMENTS) if comments else None
    mom = _Moments()
    iv = params.intervention
    scales = params.scales
    n_states = scales.max_points + 1
    block = 100_000
    done = 0
    while done < samples:
        n = min(block, samples - done)
        done += n
        seg, mkt, unit = _draw_population(rng, n, params)
        group = seg.astype(np.int64) * len(MARKETS) + mkt
        treated = params.treated_mask[unit]
        for wave in (1, 2):
            w = str(wave)
            used = rng.random((n, _N_TP)) < params.p_use[seg]
            loc = _quality_location(params, seg, mkt, unit, wave, treated)
            noise = rng.standard_normal((n, _N_TP))
            rated = _ratings(loc + noise, scales) * used
            lin = _experience(params, group, rated)
            eta = params.alpha[group] + _bend(params, lin) + rng.standard_normal(n)
            if comment_rng is not None:
                eta += _draw_planted_topics(comment_rng, n)[1]
            x = GAMMA * eta + params.unit_rec[unit]
            p_det, p_prom = _class_probs(x)
            nps_i = 100.0 * (p_prom - p_det)
            for name, values in (
                ("detractor", p_det),
                ("promoter", p_prom),
                ("passive", 1.0 - p_det - p_prom),
                ("nps", nps_i),
            ):
                mom.add(("wave", w, name), values)
                for s, seg_name in enumerate(SEGMENTS):
                    sel = seg == s
                    mom.add(("segment", seg_name, w, name), values[sel])
                for m, mkt_name in enumerate(MARKETS):
                    sel = mkt == m
                    mom.add(("market", mkt_name, w, name), values[sel])
            mom.add(("mean_recommend", w), _expected_recommend(x))
            for t, key in enumerate(TOUCHPOINTS):
                u = used[:, t]
                lt = loc[u, t]
                # mean rating on the touchpoint's own scale; top box = the top answer
                mom.add(("mean_rating", w, key), scales.minimum[t] - 1.0 + _expected_state(lt, scales, t))
                mom.add(("top_box", w, key), ndtr(lt - scales.cutpoints(t)[-1]))
            if wave == 1:
                for t, key in enumerate(TOUCHPOINTS):
                    r_old = rated[:, t].astype(np.int64)
                    base_index = (group * _N_TP + t) * n_states

                    def nps_change(
                        steps: int,
                        t: int = t,
                        r_old: np.ndarray = r_old,
                        base: np.ndarray = base_index,
                        used: np.ndarray = used,
                        x: np.ndarray = x,
                        lin: np.ndarray = lin,
                        before: np.ndarray = p_prom - p_det,
                    ) -> np.ndarray:
                        r_new = np.where(used[:, t], np.minimum(r_old + steps, scales.points[t]), r_old)
                        delta = params.contrib[base + r_new] - params.contrib[base + r_old]
                        d_det, d_prom = _class_probs(x + GAMMA * _bend_change(params, lin, delta))
                        return 100.0 * ((d_prom - d_det) - before)

                    diff = nps_change(1)  # one step (capped at the top)
                    mom.add(("impact", key), diff)
                    mom.add(("impact_users", key), diff[used[:, t]])
                    changes: dict[int, np.ndarray] = {0: np.zeros_like(diff), 1: diff}
                    # a rise of IMPROVEMENT_SHARE of the range: k points, one more for a share f of the users
                    # (the expectation over that draw, exactly as the drivers study defines its impact)
                    d = IMPROVEMENT_SHARE * (scales.points[t] - 1)
                    k = int(math.floor(d + 1e-9))
                    f = max(d - k, 0.0)
                    for steps in (k, k + 1) if f > 0 else (k,):
                        if steps not in changes:
                            changes[steps] = nps_change(steps)
                    ranged = (1.0 - f) * changes[k] + (f * changes[k + 1] if f > 0 else 0.0 * diff)
                    mom.add(("impact_range", key), ranged)
            if wave == 2 and iv is not None and treated.any():
                # same draws without the planted effect: the difference is the effect on the treated units
                t = _TP_INDEX[iv.touchpoint]
                loc0 = _quality_location(params, seg, mkt, unit, wave, treated, with_intervention=False)
                rated0 = _ratings(loc0 + noise, scales) * used
                eta0 = eta - _eta_mean(params, group, rated) + _eta_mean(params, group, rated0)
                p_det0, p_prom0 = _class_probs(GAMMA * eta0 + params.unit_rec[unit])
                sel = treated
                mom.add(("iv_nps",), (nps_i - 100.0 * (p_prom0 - p_det0))[sel])
                ut = sel & used[:, t]
                er1 = _expected_state(loc[ut, t], scales, t)
                er0 = _expected_state(loc0[ut, t], scales, t)
                mom.add(("iv_rating",), er1 - er0)

    def shares(prefix: tuple) -> dict[str, float]:
        return {name: mom.mean(prefix + (name,)) for name in ("detractor", "passive", "promoter", "nps")}

    def shares_se(prefix: tuple) -> dict[str, float]:
        return {name: mom.se(prefix + (name,)) for name in ("detractor", "passive", "promoter", "nps")}

    def pooled(dim: str, level: str, se: bool) -> dict[str, float]:
        # both waves have the same response rate, so pooled answers weigh the waves equally
        f = mom.se if se else mom.mean
        out = {}
        for name in ("detractor", "passive", "promoter", "nps"):
            a, b = f((dim, level, "1", name)), f((dim, level, "2", name))
            out[name] = math.sqrt(a * a + b * b) / 2 if se else (a + b) / 2
        return out

    population: dict[str, Any] = {
        "samples": samples,
        "shares_by_wave": {w: shares(("wave", w)) for w in WAVES},
        "shares_by_segment": {s: pooled("segment", s, False) for s in SEGMENTS},
        "shares_by_market": {m: pooled("market", m, False) for m in MARKETS},
        "shares_by_segment_wave": {s: {w: shares(("segment", s, w)) for w in WAVES} for s in SEGMENTS},
        "shares_by_market_wave": {m: {w: shares(("market", m, w)) for w in WAVES} for m in MARKETS},
        "mean_recommend_by_wave": {w: mom.mean(("mean_recommend", w)) for w in WAVES},
        "impact_nps": {k: mom.mean(("impact", k)) for k in TOUCHPOINTS},
        "impact_nps_users": {k: mom.mean(("impact_users", k)) for k in TOUCHPOINTS},
        "impact_nps_range": {k: mom.mean(("impact_range", k)) for k in TOUCHPOINTS},
        "improvement_share": IMPROVEMENT_SHARE,
        "mean_rating": {k: mom.mean(("mean_rating", "1", k)) for k in TOUCHPOINTS},
        "top_box": {k: mom.mean(("top_box", "1", k)) for k in TOUCHPOINTS},
        "mean_rating_by_wave": {w: {k: mom.mean(("mean_rating", w, k)) for k in TOUCHPOINTS} for w in WAVES},
        "top_box_by_wave": {w: {k: mom.mean(("top_box", w, k)) for k in TOUCHPOINTS} for w in WAVES},
        "se": {
            "shares_by_wave": {w: shares_se(("wave", w)) for w in WAVES},
            "shares_by_segment": {s: pooled("segment", s, True) for s in SEGMENTS},
            "shares_by_market": {m: pooled("market", m, True) for m in MARKETS},
            "shares_by_segment_wave": {s: {w: shares_se(("segment", s, w)) for w in WAVES} for s in SEGMENTS},
            "shares_by_market_wave": {m: {w: shares_se(("market", m, w)) for w in WAVES} for m in MARKETS},
            "mean_recommend_by_wave": {w: mom.se(("mean_recommend", w)) for w in WAVES},
            "impact_nps": {k: mom.se(("impact", k)) for k in TOUCHPOINTS},
            "impact_nps_users": {k: mom.se(("impact_users", k)) for k in TOUCHPOINTS},
            "impact_nps_range": {k: mom.se(("impact_range", k)) for k in TOUCHPOINTS},
            "mean_rating": {k: mom.se(("mean_rating", "1", k)) for k in TOUCHPOINTS},
            "top_box": {k: mom.se(("top_box", "1", k)) for k in TOUCHPOINTS},
            "mean_rating_by_wave": {w: {k: mom.se(("mean_rating", w, k)) for k in TOUCHPOINTS} for w in WAVES},
            "top_box_by_wave": {w: {k: mom.se(("top_box", w, k)) for k in TOUCHPOINTS} for w in WAVES},
        },
    }
    intervention_truth = None
    if iv is not None:
        intervention_truth = {
            "touchpoint": iv.touchpoint,
            "effect": iv.effect,
            "treated_share": iv.treated_share,
            "wave": "2",
            "treated_units": [params.unit_ids[i] for i in params.treated_units],
            "true_effect_rating": mom.mean(("iv_rating",)),
            "true_effect_rating_se": mom.se(("iv_rating",)),
            "true_effect_nps": mom.mean(("iv_nps",)),
            "true_effect_nps_se": mom.se(("iv_nps",)),
            "true_effect_untreated": 0.0,
            "true_effect_wave1": 0.0,
        }
    return population, intervention_truth


# ----------------------------------------------------------------------------------------------------------
# Benchmark survey
# ----------------------------------------------------------------------------------------------------------


def _benchmark_respondents(customers: int) -> int:
    return int(min(20_000, max(200, customers // 20)))


def _benchmark_table(seed: int, customers: int) -> pa.Table:
    rng = _rng(seed, _STREAM_BENCHMARK)
    n = _benchmark_respondents(customers)
    k = len(BRANDS)
    mkt = np.searchsorted(np.cumsum(MARKET_PROBS)[:-1], rng.random(n), side="right")
    wave = (rng.random(n) < 0.5).astype(np.int8)
    halo_rec = rng.normal(0.0, BENCH_REC_HALO_SD, n)
    halo_attr = rng.normal(0.0, BENCH_ATTR_HALO_SD, n)
    loc = np.array([BENCH_REC_LOCATION[b] for b in BRANDS])[None, :] + halo_rec[:, None]  # (n, k)
    rec = np.searchsorted(np.asarray(RECOMMEND_CUTPOINTS), (loc + rng.logistic(size=(n, k))).ravel(), side="left")
    resp = np.repeat(np.arange(n), k)
    brand = np.tile(np.arange(k), n)
    columns: dict[str, Any] = {
        "respondent_id": _fixed_width_ids(resp + 1, "B", max(6, len(str(n)))),
        "brand": _labels(pa.array(list(BRANDS)), brand),
        "market": _labels(pa.array(list(MARKETS)), mkt[resp]),
        "wave": _labels(pa.array(list(WAVES)), wave[resp]),
        "recommend": pa.array(rec.astype(np.int16)),
    }
    for attr in BENCH_ATTRIBUTES:
        m = np.array([BENCH_ATTR_LOCATION[b][attr] for b in BRANDS])[None, :] + halo_attr[:, None]
        x = m + rng.normal(0.0, BENCH_ATTR_NOISE_SD, (n, k))
        columns[f"attr_{attr}"] = pa.array(np.clip(np.floor(x + 0.5), 1, 10).astype(np.int16).ravel())
    return pa.table(columns)


def _benchmark_truth() -> dict:
    """Exact benchmark truths: ordered-logistic shares integrated over the halo by Gauss-Hermite quadrature,
    and expected observed attribute ratings (latent normal rounded and clipped to 1-10)."""
    from scipy.special import expit, ndtr

    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    shares = {}
    for b in BRANDS:
        x = BENCH_REC_LOCATION[b] + BENCH_REC_HALO_SD * nodes
        det = float(np.dot(weights, expit(RECOMMEND_CUTPOINTS[6] - x)))
        prom = float(np.dot(weights, expit(x - RECOMMEND_CUTPOINTS[8])))
        shares[b] = {"detractor": det, "passive": 1 - det - prom, "promoter": prom, "nps": 100 * (prom - det)}
    sd = math.hypot(BENCH_ATTR_HALO_SD, BENCH_ATTR_NOISE_SD)
    means: dict[str, dict[str, float]] = {}
    for b in BRANDS:
        means[b] = {}
        for attr in BENCH_ATTRIBUTES:
            m = BENCH_ATTR_LOCATION[b][attr]
            # E[clip(round(X), 1, 10)] = 1 + sum_{k=1..9} P(X >= k + 0.5)
            means[b][attr] = float(1 + sum(ndtr((m - (k + 0.5)) / sd) for k in range(1, 10)))
    return {
        "brands": list(BRANDS),
        "own_brand": OWN_BRAND,
        "attributes": list(BENCH_ATTRIBUTES),
        "scale": [1, 10],
        "attribute_means": means,
        "attribute_locations": BENCH_ATTR_LOCATION,
        "attribute_halo_sd": BENCH_ATTR_HALO_SD,
        "attribute_noise_sd": BENCH_ATTR_NOISE_SD,
        "recommend_locations": BENCH_REC_LOCATION,
        "recommend_halo_sd": BENCH_REC_HALO_SD,
        "recommend_cutpoints": list(RECOMMEND_CUTPOINTS),
        "shares": shares,
    }


# ----------------------------------------------------------------------------------------------------------
# Spec and truth documents
# ----------------------------------------------------------------------------------------------------------


def _na_code(code: Any, scales: TouchpointScales, t: int) -> Any:
    """The touchpoint's not-applicable code, or blank when that code is an answer on its scale (0 on 0-10)."""
    lo, hi = scales.scale(t)
    return "blank" if code != "blank" and lo <= int(code) <= hi else code


def _dataset_spec(
    customers: int,
    seed: int,
    as_of: date,
    scales: TouchpointScales = DEFAULT_SCALES,
    emotion_form: str = "linear",
    comments: str | None = None,
) -> dict:
    touchpoints = {}
    for t, row in enumerate(_TP_ROWS):
        key, label, channel, stage, need, _kano, _mot, na_code = row[:8]
        touchpoints[key] = {
            "column": f"tp_{key}",
            "label": label,
            "channel": channel,
            "stage": stage,
            "need": need,
            "scale": scales.scale(t),
            "not_applicable": [_na_code(na_code, scales, t)],
        }
    return {
        "version": 1,
        "name": f"cxsim-seed{seed}-n{customers}",
        "description": (
            f"Simulated CX data (cxresearch simulator): {customers} customers, seed {seed}"
            + ("" if emotion_form == "linear" else f", {emotion_form} emotion")
            + ("" if comments is None else f", comments ({comments})")
            + ". True parameters in truth.json; model in docs/SIMULATOR.md."
        ),
        "as_of": as_of.isoformat(),
        "tables": {
            "survey": {"path": "survey.parquet"},
            "customers": {"path": "customers.parquet"},
            "benchmark": {"path": "benchmark.parquet"},
        },
        "survey": {
            "table": "survey",
            "id": "customer_id",
            "segment": "segment",
            "market": "market",
            "wave": "wave",
            "date": "survey_date",
            "unit": "unit",
            "touchpoints": touchpoints,
            "emotion": {
                "items": {
                    item: {"column": item, "label": spec["label"], "reverse": spec["reverse"]}
                    for item, spec in EMOTION_ITEMS.items()
                },
                "scale": [1, 7],
            },
            "outcome": {
                "kind": "recommend",
                "column": "nps_raw",
                "label": "Likelihood to recommend (coded 1-11)",
                "recode": {"from": [1, 11], "to": [0, 10]},
            },
            **({"comments": {"column": "comment", "language": comments}} if comments is not None else {}),
        },
        "customers": {
            "table": "customers",
            "id": "customer_id",
            "segment": "segment",
            "market": "market",
            "unit": "unit",
            "start": "start_date",
            "end": "end_date",
            "churn": "churned",
            "margin": "monthly_margin",
            "cross_sell": ["n_products"],
        },
        "benchmark": {
            "table": "benchmark",
            "brand": "brand",
            "own_brand": OWN_BRAND,
            "market": "market",
            "wave": "wave",
            "recommend": "recommend",
            "attributes": {a: f"attr_{a}" for a in BENCH_ATTRIBUTES},
            "scale": [1, 10],
        },
    }


def _truth(
    params: _Params,
    seed: int,
    customers: int,
    as_of: date,
    response_rate: float,
    population: dict,
    intervention_truth: dict | None,
    comments_truth: dict | None = None,
) -> dict:
    def by_tp(values: np.ndarray) -> dict[str, float]:
        return {k: float(v) for k, v in zip(TOUCHPOINTS, values)}

    touchpoints = {}
    for t, row in enumerate(_TP_ROWS):
        key, label, channel, stage, need, kano, mot, na_code = row[:8]
        touchpoints[key] = {
            "label": label,
            "channel": channel,
            "stage": stage,
            "need": need,
            "kano": kano,
            "moment_of_truth": mot,
            "na_code": _na_code(na_code, params.scales, t),
            "column": f"tp_{key}",
            "scale": params.scales.scale(t),
            "boxes": {"bottom": params.scales.bottom[t], "top": params.scales.top[t]},
            "p_use": {s: float(params.p_use[i, t]) for i, s in enumerate(SEGMENTS)},
            "mu": float(params.mu[t]),
            "beta": float(params.beta[t]),
            "penalty": float(params.penalty[t]),
            "reward": float(params.reward[t]),
            "nu": float(params.nu[t]),
            "wave_shift": {"1": 0.0, "2": float(params.shift2[t])},
            "quality_seg": {s: float(params.quality_seg[i, t]) for i, s in enumerate(SEGMENTS)},
            "quality_mkt": {m: float(params.quality_mkt[i, t]) for i, m in enumerate(MARKETS)},
            "unit_effect": bool(_BRANCH_TP[t]),
        }
    beta_g = params.beta_group()
    as_of_day = (as_of - date(1970, 1, 1)).days
    return {
        "seed": seed,
        "customers": customers,
        "as_of": as_of.isoformat(),
        "response_rate": response_rate,
        "segments": dict(zip(SEGMENTS, SEGMENT_PROBS)),
        "markets": dict(zip(MARKETS, MARKET_PROBS)),
        "units": list(params.unit_ids),
        "units_by_market": {m: int(c) for m, c in zip(MARKETS, params.n_units_by_market)},
        "waves": {
            w: {
                "start": (date(1970, 1, 1) + timedelta(days=as_of_day - a)).isoformat(),
                "end": (date(1970, 1, 1) + timedelta(days=as_of_day - b)).isoformat(),
            }
            for w, (a, b) in WAVE_WINDOWS_DAYS.items()
        },
        "rating": {
            "scale": [1, 5],  # the default; each touchpoint's own scale and boxes are under touchpoints
            "cutpoints": list(QUALITY_CUTPOINTS),
            "noise_sd": 1.0,
            "quality_unit_sd": QUALITY_UNIT_SD,
        },
        "touchpoints": touchpoints,
        "drivers": {
            "eta_noise_sd": 1.0,
            # absent = linear (so the linear form's truth.json is that of earlier versions, byte for byte)
            **(
                {"emotion_form": params.emotion_form, "emotion_saturation": EMOTION_SATURATION}
                if params.emotion_form != "linear"
                else {}
            ),
            "alpha_seg": dict(ALPHA_SEG),
            "alpha_mkt": dict(ALPHA_MKT),
            "beta_by_group": {
                f"{s}|{m}": by_tp(beta_g[i, j]) for i, s in enumerate(SEGMENTS) for j, m in enumerate(MARKETS)
            },
            "dev_seg": {s: by_tp(params.dev_seg[i]) for i, s in enumerate(SEGMENTS)},
            "dev_mkt": {m: by_tp(params.dev_mkt[i]) for i, m in enumerate(MARKETS)},
            "dev_sd": DEV_SD,
            "planted_differences": [dict(p) for p in PLANTED_DIFFERENCES],
            "emotion_items": {
                item: {
                    "loading": spec["loading"],
                    "cutpoints": list(spec["cutpoints"]),
                    "reverse": spec["reverse"],
                    "scale": [1, 7],
                }
                for item, spec in EMOTION_ITEMS.items()
            },
            "recommend": {"gamma": GAMMA, "cutpoints": list(RECOMMEND_CUTPOINTS), "unit_sd": UNIT_REC_SD},
            "unit_effects_recommend": {u: float(v) for u, v in zip(params.unit_ids, params.unit_rec)},
            "unit_effects_quality": {u: float(v) for u, v in zip(params.unit_ids, params.unit_quality)},
        },
        "population": population,
        "churn": {
            "time_unit": "months",
            "days_per_month": DAYS_PER_MONTH,
            "shape": WEIBULL_SHAPE,
            "scale_by_segment": dict(WEIBULL_SCALE),
            "log_hr_class": dict(LOG_HR_CLASS),
            "hazard_ratio": {c: math.exp(v) for c, v in LOG_HR_CLASS.items()},
            "log_hr_market": dict(LOG_HR_MARKET),
            "hazard_ratio_market": {m: math.exp(v) for m, v in LOG_HR_MARKET.items()},
            "window_months": WINDOW_MONTHS,
            "class_from": "wave-1 recommend draw (every customer)",
        },
        "value": {
            "base_margin_by_segment": {s: {"meanlog": a, "sdlog": b} for s, (a, b) in BASE_MARGIN.items()},
            "product_margin": PRODUCT_MARGIN,
            "product_rate_by_segment": dict(PRODUCT_RATE),
            "product_multiplier_by_class": dict(PRODUCT_MULT),
            "margin_rounding": 0.01,
        },
        "benchmark": {**_benchmark_truth(), "respondents": _benchmark_respondents(customers)},
        "intervention": intervention_truth,
        # absent without comments (so that truth.json is that of earlier versions, byte for byte)
        **({"comments": comments_truth} if comments_truth is not None else {}),
    }


# ----------------------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------------------


_LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate_dataset` wrote."""

    out: Path
    customers: int
    seed: int
    survey_rows: int
    customer_rows: int
    benchmark_rows: int
    units: int
    seconds: float
    files: dict[str, Path]
    emotion_form: str = "linear"
    comments: str | None = None  # the comments' language; None: no comments
    comment_rows: int = 0  # survey rows with a comment

    def describe(self) -> str:
        """One paragraph for the command line."""
        names = ", ".join(p.name for p in self.files.values())
        form = "" if self.emotion_form == "linear" else f", {self.emotion_form} emotion"
        form += "" if self.comments is None else f", comments in {_LANGUAGE_NAMES[self.comments]}"
        with_comment = "" if self.comments is None else f", {self.comment_rows:,} with a comment"
        return (
            f"Simulated {self.customers:,} customers (seed {self.seed}{form}) in {self.seconds:.1f} s into "
            f"{self.out}: {names}. Survey {self.survey_rows:,} rows (waves 1 and 2{with_comment}), customers "
            f"{self.customer_rows:,} rows, benchmark {self.benchmark_rows:,} rows, {self.units:,} units. "
            f"True parameters in truth.json; load with dataset.yaml."
        )


def simulate_dataset(
    out: str | Path,
    customers: int,
    seed: int,
    response_rate: float = 0.5,
    intervention: Intervention | None = None,
    chunk_size: int = 500_000,
    as_of: date = date(2026, 6, 30),
    *,
    population_samples: int = POPULATION_SAMPLES,
    scales: dict[str, tuple[int, int]] | None = None,
    boxes: dict[str, tuple[int, int]] | None = None,
    emotion_form: str = "linear",
    comments: str | None = None,
) -> SimulationSummary:
    """Simulate a CX dataset with known truth into folder ``out`` (see docs/SIMULATOR.md).

    Deterministic per (seed, customers, response_rate, intervention, as_of, scales, boxes, emotion_form,
    comments);
    ``chunk_size`` (customers per Parquet write, rounded up to whole RNG blocks of 50,000) bounds memory and
    does not change the data.
    ``population_samples`` sizes the Monte-Carlo population truth (its standard errors are in truth.json).
    ``scales``: touchpoint -> (min, max) to record some touchpoints on other scales (e.g. ``{"mobile_app":
    (0, 10), "online_payment": (1, 100)}``; default 1-5), ``boxes``: touchpoint -> (bottom, top) box in points
    (default the lowest 40% / highest 20%); see :class:`TouchpointScales`. ``emotion_form``: ``"linear"``
    (default) or ``"saturating"``, how the touchpoint experience enters emotion (see :func:`_bend`; the
    saturating data share the linear data's respondents, units and ratings; emotion, recommendation and
    what follows from them differ). ``comments``: None (default, no comments: the data of earlier versions) or
    ``"en"`` / ``"es"``: a free-text ``comment`` column in that language with planted topics (touchpoint
    complaints and praise that follow the ratings, hidden issues that lower emotion, a neutral topic) and
    planted personal data; the hidden issues enter emotion, so recommendation and what follows differ while the
    respondents, units and ratings stay those of the data without comments, and the population truth includes
    the issues. Truths in ``truth.json["comments"]`` (docs/SIMULATOR.md, *Comments*).
    """
    started = time.perf_counter()
    if isinstance(customers, bool) or not isinstance(customers, (int, np.integer)) or customers < 1:
        raise ValueError(f"customers must be a positive integer, got {customers!r}")
    if not 0.0 < float(response_rate) <= 1.0:
        raise ValueError(f"response_rate must lie in (0, 1], got {response_rate!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size!r}")
    if population_samples < 1000:
        raise ValueError(f"population_samples must be at least 1000, got {population_samples!r}")
    if isinstance(intervention, str):
        intervention = parse_intervention(intervention)
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    if not isinstance(as_of, date):
        raise ValueError(f"as_of must be a date, got {as_of!r}")
    customers, seed = int(customers), int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _check_emotion_form(emotion_form)
    _check_comments(comments)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    params = _make_params(customers, seed, intervention, TouchpointScales.build(scales, boxes), emotion_form)
    ctx = _Context(
        params=params,
        seed=seed,
        response_rate=float(response_rate),
        as_of_day=(as_of - date(1970, 1, 1)).days,
        id_width=max(7, len(str(customers))),
        seg_dict=pa.array(list(SEGMENTS)),
        mkt_dict=pa.array(list(MARKETS)),
        unit_dict=pa.array(params.unit_ids),
        wave_dict=pa.array(list(WAVES)),
        comments=_CommentState(comments) if comments is not None else None,
    )
    files = {name: out / f"{name}.parquet" for name in ("survey", "customers", "benchmark")}
    blocks_per_chunk = max(1, -(-chunk_size // RNG_BLOCK))
    survey_rows = 0
    with (
        pq.ParquetWriter(files["survey"], _survey_schema(comments is not None)) as survey_writer,
        pq.ParquetWriter(files["customers"], _customers_schema()) as customer_writer,
    ):
        pending_s: list[pa.Table] = []
        pending_c: list[pa.Table] = []

        def flush() -> None:
            if pending_c:
                survey_writer.write_table(pa.concat_tables(pending_s))
                customer_writer.write_table(pa.concat_tables(pending_c))
                pending_s.clear()
                pending_c.clear()

        for block, first in enumerate(range(0, customers, RNG_BLOCK)):
            survey, cust = _block_tables(ctx, block, first, min(RNG_BLOCK, customers - first))
            survey_rows += survey.num_rows
            pending_s.append(survey)
            pending_c.append(cust)
            if len(pending_c) >= blocks_per_chunk:
                flush()
        flush()

    bench = _benchmark_table(seed, customers)
    pq.write_table(bench, files["benchmark"])

    import yaml

    spec_path = out / "dataset.yaml"
    # safe_dump quotes strings a YAML 1.1 reader would misread (NO, 007); leaf lists in flow style: [1, 5]
    spec_text = yaml.safe_dump(
        _dataset_spec(customers, seed, as_of, params.scales, emotion_form, comments),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=110,
    )
    spec_path.write_text(
        "# Written by `cxresearch simulate`; true parameters in truth.json.\n" + spec_text, encoding="utf-8"
    )
    population, intervention_truth = _population_truth(params, seed, population_samples, comments is not None)
    comments_truth = _comments_truth(ctx.comments) if ctx.comments is not None else None
    truth = _truth(params, seed, customers, as_of, float(response_rate), population, intervention_truth, comments_truth)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return SimulationSummary(
        out=out,
        customers=customers,
        seed=seed,
        survey_rows=survey_rows,
        customer_rows=customers,
        benchmark_rows=bench.num_rows,
        units=params.n_units,
        seconds=time.perf_counter() - started,
        files={**files, "dataset": spec_path, "truth": truth_path},
        emotion_form=emotion_form,
        comments=comments,
        comment_rows=ctx.comments.with_comment if ctx.comments is not None else 0,
    )


class _InterventionParam(click.ParamType):
    name = "intervention"

    def get_metavar(self, *args: Any, **kwargs: Any) -> str:
        return "touchpoint=KEY,effect=X[,treated_share=P]"

    def convert(self, value: Any, param: Any, ctx: Any) -> Intervention:
        if isinstance(value, Intervention):
            return value
        try:
            return parse_intervention(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command("simulate")
@click.option("--customers", "-n", type=click.IntRange(min=1), required=True, help="Number of customers.")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True, help="Random seed.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder (created if needed).",
)
@click.option(
    "--response-rate",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.5,
    show_default=True,
    help="Probability that a customer answers each survey wave.",
)
@click.option(
    "--intervention",
    type=_InterventionParam(),
    default=None,
    help="Plant a wave-2 effect, e.g. touchpoint=branch_visit,effect=0.5,treated_share=0.5.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=500_000,
    show_default=True,
    help="Customers per Parquet write (bounds memory; the data do not depend on it).",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-06-30",
    show_default=True,
    help="Data as-of date (end of the observation window).",
)
@click.option(
    "--scales",
    default="",
    help="Record touchpoints on other scales, e.g. mobile_app=0-10,online_payment=1-100 (default 1-5).",
)
@click.option(
    "--emotion-form",
    type=click.Choice(EMOTION_FORMS),
    default="linear",
    show_default=True,
    help="How the touchpoint experience enters emotion: linear, or saturating (diminishing returns above a "
    "neutral experience, stronger negativity below it; docs/SIMULATOR.md).",
)
@click.option(
    "--comments",
    type=click.Choice(COMMENT_LANGUAGES),
    default=None,
    help="Add a free-text comment column in this language, with planted topics (complaints, praise, hidden "
    "issues that lower emotion, a neutral topic) and planted personal data (docs/SIMULATOR.md). Default: none.",
)
def simulate_command(
    customers: int,
    seed: int,
    out: Path,
    response_rate: float,
    intervention: Intervention | None,
    chunk_size: int,
    as_of: Any,
    scales: str,
    emotion_form: str,
    comments: str | None,
) -> None:
    """Simulate survey, CRM and benchmark data with known truth (truth.json) into OUT."""
    try:
        parsed = parse_scales(scales)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scales") from None
    summary = simulate_dataset(
        out,
        customers=customers,
        seed=seed,
        response_rate=response_rate,
        intervention=intervention,
        chunk_size=chunk_size,
        as_of=as_of,
        scales=parsed,
        emotion_form=emotion_form,
        comments=comments,
    )
    click.echo(summary.describe())
