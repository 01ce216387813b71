"""Reference driver and value models built from the simulator's ``truth.json`` (docs/SIMULATOR.md).

They implement the :class:`~cxresearch.initiatives.value.DriverScenarioModel` and
:class:`~cxresearch.initiatives.value.ValueModel` protocols with the *true* generative parameters, so an
initiative's value can be checked against the truth and demos can run before any model is fitted. The
truth has no posterior uncertainty: every draw is the same.

Driver model (one respondent i of segment s, market m, unit u)::

    lin_i  = sum_t used_it * (nu_t + beta_t[s,m] * (r_it - 3) + penalty_t * [r_it <= 2] + reward_t * [r_it == 5])
             (on 1-5; on another scale nu_t + 2 beta_t[s,m] x_it + penalty_t [bottom box] + reward_t [top box],
             x_it the rating's distance from the scale's midpoint in half ranges, as the simulator's mixed scales)
    eta_i  = alpha_seg[s] + alpha_mkt[m] + f(lin_i) + N(0, 1)
    recommend ~ OrderedLogistic(gamma * eta_i + unit_rec[u], cutpoints c_0..c_9),  P(y <= k) = logistic(c_k - .)

with ``f(lin) = lin`` (``drivers.emotion_form`` "linear", or the key absent) or ``f(lin) = S * (1 - exp(-lin /
S))`` ("saturating", S = ``drivers.emotion_saturation``; any other form is an error), so P(detractor) =
P(y <= 6), P(passive) = P(y <= 8) - P(y <= 6). The N(0, 1) emotion noise (and the unit effect when the
respondent's unit is unknown, N(0, unit_sd)) is integrated with Gauss-Hermite quadrature.

Value model: Weibull proportional hazards by segment with class and market hazard ratios,
``S(t) = exp(-HR * (t / scale_seg) ** shape)``, conditioned on the customer's current tenure (active
customers have survived so far); monthly margin = E[base margin | segment] (lognormal mean) +
product_margin x E[extra products | segment, class] (Poisson mean rate_seg x multiplier_class), the latter
reported as the cross-sell part. The simulator plants no word-of-mouth value, so that part is zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.initiatives.value import ClvDraws


def load_truth(truth: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A truth dict from a path to ``truth.json`` or an already-loaded mapping."""
    if isinstance(truth, Mapping):
        return dict(truth)
    path = Path(truth)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: truth.json not found")
    return json.loads(path.read_text(encoding="utf-8"))


#: the simulator's emotion forms (``drivers.emotion_form``; absent = linear): docs/SIMULATOR.md
EMOTION_FORMS: tuple[str, ...] = ("linear", "saturating")


def read_emotion_form(drivers: Mapping[str, Any]) -> tuple[str, float | None]:
    """``(form, S)`` of ``truth.drivers``: ("linear", None) when ``emotion_form`` is absent or "linear",
    ("saturating", S) with S = ``emotion_saturation``; any other value is an error (never read as linear)."""
    form = drivers.get("emotion_form", "linear")
    if form == "linear":
        return "linear", None
    if form != "saturating":
        raise ValueError(
            f"truth.json: drivers.emotion_form = {form!r} is not a known emotion form (one of {list(EMOTION_FORMS)})"
        )
    if "emotion_saturation" not in drivers:
        raise KeyError("truth.json: drivers.emotion_form is 'saturating' but drivers.emotion_saturation is missing")
    scale = drivers["emotion_saturation"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"truth.json: drivers.emotion_saturation must be a positive number, got {scale!r}")
    return "saturating", float(scale)


def _get(truth: Mapping[str, Any], *keys: str) -> Any:
    node: Any = truth
    for i, key in enumerate(keys):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(f"truth.json: missing key {'.'.join(keys[: i + 1])}")
        node = node[key]
    return node


class TrueDriverModel:
    """The simulator's true experience -> emotion -> recommendation model (a DriverScenarioModel)."""

    #: rating-scale anchors of the simulator's default 1-5 touchpoint scale (a touchpoint's own ``scale`` and
    #: ``boxes`` in truth.json take precedence; truth files without them are on 1-5 with boxes 1-2 and 5)
    centre, bad_max, top = 3.0, 2.0, 5.0

    def __init__(self, truth: str | Path | Mapping[str, Any], quadrature_nodes: int = 40) -> None:
        self.truth = load_truth(truth)
        drivers = _get(self.truth, "drivers")
        self.touchpoints: dict[str, dict[str, float]] = _get(self.truth, "touchpoints")
        self.alpha_seg = {str(k): float(v) for k, v in _get(drivers, "alpha_seg").items()}
        self.alpha_mkt = {str(k): float(v) for k, v in _get(drivers, "alpha_mkt").items()}
        self.beta_by_group = {
            str(k): {t: float(b) for t, b in v.items()} for k, v in drivers.get("beta_by_group", {}).items()
        }
        self.dev_seg = drivers.get("dev_seg", {})
        self.dev_mkt = drivers.get("dev_mkt", {})
        self.emotion_form, self.emotion_saturation = read_emotion_form(drivers)
        rec = _get(drivers, "recommend")
        self.gamma = float(rec["gamma"])
        self.cutpoints = np.asarray(rec["cutpoints"], dtype=float)
        if self.cutpoints.shape != (10,):
            raise ValueError(f"truth.json: drivers.recommend.cutpoints must have 10 values, got {self.cutpoints.shape}")
        self.unit_sd = float(rec.get("unit_sd", 0.0))
        self.unit_effects = {str(k): float(v) for k, v in drivers.get("unit_effects_recommend", {}).items()}
        nodes, weights = np.polynomial.hermite_e.hermegauss(quadrature_nodes)
        self._nodes, self._weights = nodes, weights / weights.sum()

    def beta(self, segment: str, market: str, tp: str) -> float:
        """beta_t[s, m]: from beta_by_group, else beta_t + dev_seg + dev_mkt."""
        group = self.beta_by_group.get(f"{segment}|{market}")
        if group is not None and tp in group:
            return group[tp]
        return (
            float(self.touchpoints[tp]["beta"])
            + float(self.dev_seg.get(segment, {}).get(tp, 0.0))
            + float(self.dev_mkt.get(market, {}).get(tp, 0.0))
        )

    def bend(self, lin: np.ndarray) -> np.ndarray:
        """f(lin): the experience part of emotion under the truth's emotion form."""
        if self.emotion_saturation is None:
            return lin
        s = self.emotion_saturation
        return -s * np.expm1(-np.asarray(lin, dtype=float) / s)

    def experience(self, survey: pd.DataFrame) -> np.ndarray:
        """lin_i: the sum of the used touchpoints' emotion contributions per respondent (before the bend)."""
        seg = survey["segment"].astype(str).to_numpy()
        mkt = survey["market"].astype(str).to_numpy()
        lin = np.zeros(len(survey))
        groups = pd.Series(list(zip(seg, mkt)))
        codes, uniques = pd.factorize(groups)
        for tp, par in self.touchpoints.items():
            if tp not in survey.columns:
                continue
            r = survey[tp].to_numpy(dtype=float)
            used = np.isfinite(r)
            if not used.any():
                continue
            betas = np.array([self.beta(s, m, tp) for s, m in uniques])[codes]
            lo, k, bottom, top = self._scale(tp, par)
            state = np.where(used, r, lo) - lo + 1  # 1..k
            x = (state - (k + 1) / 2) / ((k - 1) / 2)  # distance from the midpoint in half ranges, -1..1
            contrib = (
                float(par["nu"])
                + 2.0 * betas * x
                + float(par["penalty"]) * (state <= bottom)
                + float(par["reward"]) * (state >= k - top + 1)  # boxes in whole points (ratings may be fractional)
            )
            lin += np.where(used, contrib, 0.0)
        return lin

    @staticmethod
    def _scale(tp: str, par: Mapping[str, Any]) -> tuple[float, int, int, int]:
        """(scale minimum, points k, bottom-box points, top-box points) of a touchpoint (docs/SIMULATOR.md:
        on 1-5, ``2 beta x`` is ``beta (r - 3)``, the bottom box 1-2 and the top box 5)."""
        lo, hi = (int(v) for v in par.get("scale", (1, 5)))
        k = hi - lo + 1
        if k < 2:
            raise ValueError(f"truth.json: touchpoints.{tp}.scale {[lo, hi]} has fewer than 2 points")
        boxes = par.get("boxes", {})
        bottom = int(boxes.get("bottom", max(1, int(np.floor(0.4 * k + 0.5)))))
        top = int(boxes.get("top", max(1, int(np.floor(0.2 * k + 0.5)))))
        return float(lo), k, bottom, top

    def expected_emotion(self, survey: pd.DataFrame) -> np.ndarray:
        """E[eta_i | ratings, segment, market] = alpha_seg + alpha_mkt + f(lin_i) per respondent (the emotion
        without its noise; f follows ``drivers.emotion_form``)."""
        seg = survey["segment"].astype(str).to_numpy()
        mkt = survey["market"].astype(str).to_numpy()
        unknown = sorted(set(seg) - set(self.alpha_seg)) + sorted(set(mkt) - set(self.alpha_mkt))
        if unknown:
            raise ValueError(f"survey: segment/market codes {unknown} are not in truth.json")
        alpha = np.array([self.alpha_seg[s] for s in seg]) + np.array([self.alpha_mkt[m] for m in mkt])
        return alpha + self.bend(self.experience(survey))

    def class_probabilities(self, survey: pd.DataFrame) -> np.ndarray:
        """P(detractor, passive, promoter) per respondent, shape [n, 3] (noise integrated out)."""
        eta = self.expected_emotion(survey)
        unit_effect = np.zeros(len(survey))
        noise_sd = np.full(len(survey), self.gamma)
        if "unit" in survey.columns:
            units = survey["unit"].astype("string").to_numpy()
            known = np.array([u is not pd.NA and u in self.unit_effects for u in units], dtype=bool)
            unit_effect[known] = [self.unit_effects[u] for u in units[known]]
            noise_sd[~known] = np.hypot(self.gamma, self.unit_sd)
        else:
            noise_sd[:] = np.hypot(self.gamma, self.unit_sd)
        lin = self.gamma * eta + unit_effect  # [n]
        z = lin[:, None] + noise_sd[:, None] * self._nodes[None, :]  # [n, nodes]
        p_le6 = expit(self.cutpoints[6] - z) @ self._weights
        p_le8 = expit(self.cutpoints[8] - z) @ self._weights
        return np.column_stack([p_le6, p_le8 - p_le6, 1.0 - p_le8])

    def class_mix(self, survey: pd.DataFrame, draws: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Expected class shares of these respondents, repeated for each draw: [draws, 3]."""
        if len(survey) == 0:
            raise ValueError("class_mix: no respondents")
        mix = self.class_probabilities(survey).mean(axis=0)
        return np.tile(mix, (draws, 1))

    def emotion_mean(self, survey: pd.DataFrame, draws: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Mean expected emotion of these respondents, repeated for each draw: [draws]."""
        return np.full(draws, float(self.expected_emotion(survey).mean()))


class TrueValueModel:
    """True expected cash flows by NPS class from the simulator's churn and margin parameters (a ValueModel)."""

    def __init__(
        self, truth: str | Path | Mapping[str, Any], word_of_mouth_by_class: Mapping[str, float] | None = None
    ) -> None:
        self.truth = load_truth(truth)
        churn = _get(self.truth, "churn")
        value = _get(self.truth, "value")
        self.shape = float(_get(churn, "shape"))
        self.scale_by_segment = {str(k): float(v) for k, v in _get(churn, "scale_by_segment").items()}
        self.log_hr_class = np.array([float(_get(churn, "log_hr_class")[c]) for c in NPS_CLASSES])
        self.log_hr_market = {str(k): float(v) for k, v in churn.get("log_hr_market", {}).items()}
        self.base_margin = {
            str(k): float(np.exp(v["meanlog"] + v["sdlog"] ** 2 / 2))
            for k, v in _get(value, "base_margin_by_segment").items()
        }
        self.product_margin = float(_get(value, "product_margin"))
        self.product_rate = {str(k): float(v) for k, v in _get(value, "product_rate_by_segment").items()}
        mult = _get(value, "product_multiplier_by_class")
        self.product_multiplier = np.array([float(mult[c]) for c in NPS_CLASSES])
        wom = word_of_mouth_by_class or {}
        self.word_of_mouth = np.array([float(wom.get(c, 0.0)) for c in NPS_CLASSES])

    def survival(self, segment: np.ndarray, market: np.ndarray, tenure: np.ndarray, months: int) -> np.ndarray:
        """P(still a customer at the end of month k | alive now at this tenure), shape [n, 3, months]."""
        scale = np.array([self.scale_by_segment[s] for s in segment])
        log_hr_m = np.array([self.log_hr_market.get(m, 0.0) for m in market])
        k = np.arange(1, months + 1)
        h_now = (tenure / scale) ** self.shape
        h_later = ((tenure[:, None] + k[None, :]) / scale[:, None]) ** self.shape
        cum = h_later - h_now[:, None]  # [n, months]
        hr = np.exp(self.log_hr_class[None, :] + log_hr_m[:, None])  # [n, 3]
        return np.exp(-hr[:, :, None] * cum[:, None, :])

    def cashflows(
        self, customers: pd.DataFrame, draws: int, horizon_months: int, rng: np.random.Generator | None = None
    ) -> ClvDraws:
        """Mean over these customers of margin x conditional survival by class, repeated per draw."""
        if len(customers) == 0:
            zeros = np.zeros((draws, 3, horizon_months))
            return ClvDraws(zeros, {"margin": zeros, "cross_sell": zeros, "word_of_mouth": zeros})
        seg = customers["segment"].astype(str).to_numpy()
        mkt = customers["market"].astype(str).to_numpy()
        unknown = sorted(set(seg) - set(self.scale_by_segment) - set(self.base_margin))
        if unknown:
            raise ValueError(f"customers: segments {unknown} are not in truth.json")
        tenure = customers["tenure"].to_numpy(dtype=float) if "tenure" in customers else np.zeros(len(customers))
        tenure = np.nan_to_num(tenure, nan=0.0)
        surv = self.survival(seg, mkt, tenure, horizon_months)  # [n, 3, M]
        base = np.array([self.base_margin[s] for s in seg])
        cross = (
            self.product_margin
            * np.array([self.product_rate[s] for s in seg])[:, None]
            * self.product_multiplier[None, :]
        )  # [n, 3]
        parts = {
            "margin": (base[:, None, None] * surv).mean(axis=0),
            "cross_sell": (cross[:, :, None] * surv).mean(axis=0),
            "word_of_mouth": (self.word_of_mouth[None, :, None] * surv).mean(axis=0),
        }
        tile = {k: np.broadcast_to(v, (draws, *v.shape)).copy() for k, v in parts.items()}
        return ClvDraws(np.sum(list(tile.values()), axis=0), tile)
