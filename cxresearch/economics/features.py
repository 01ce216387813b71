"""Per-customer CX covariates for survival models: NPS class, emotion score, touchpoint experience.

Built from the canonical survey frame (one row per answer) and joined to the canonical customer frame.
Customers without an answer in the chosen wave keep missing CX values (they are left out of the models
that use them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.economics.exposure import join_nps_class


def touchpoint_scales(spec: Any) -> dict[str, tuple[float, float]]:
    """``{touchpoint key: (min, max)}`` from a DatasetSpec."""
    if spec.survey is None:
        return {}
    return {key: (float(tp.scale.min), float(tp.scale.max)) for key, tp in spec.survey.touchpoints.items()}


def emotion_items(spec: Any) -> list[str]:
    """Emotion item keys from a DatasetSpec (empty when the spec declares none)."""
    return list(spec.survey.emotion.items) if spec.survey is not None and spec.survey.emotion is not None else []


def customer_cx_features(
    customers: pd.DataFrame,
    survey: pd.DataFrame,
    *,
    touchpoints: Mapping[str, tuple[float, float]] | None = None,
    emotion: Sequence[str] = (),
    wave: str | None = "1",
    id_col: str = "customer_id",
    bottom_share: float = 0.25,
    carry: Sequence[str] = (),
) -> pd.DataFrame:
    """Customers with ``recommend``, ``nps_class`` and, from the same wave's answer:

    - ``emotion``: mean of the emotion items, standardised to mean 0 / sd 1 over the answers;
    - ``bad_experiences``: count of used touchpoints rated in the bottom ``bottom_share`` of their scale
      (1-2 on a 1-5 scale); not used (NaN) is not a bad experience;
    - ``touchpoints_used``: count of touchpoints rated;
    - ``experience``: mean rating of the used touchpoints rescaled to 0-1 (NaN when none used);
    - the ``carry`` columns of the answer as they are (e.g. ``outcome``, a survey group), for classes.

    A survey without a 0-10 ``recommend`` column (a binary or ordinal outcome) leaves ``nps_class`` missing.
    """
    if "recommend" in survey.columns:
        out = join_nps_class(customers, survey, wave=wave, id_col=id_col)
    else:
        out = customers.drop(columns=[c for c in ("nps_class",) if c in customers.columns]).copy()
        out["nps_class"] = pd.Series(pd.NA, index=out.index, dtype="string")
    answers = survey
    if wave is not None and "wave" in survey.columns:
        answers = survey[survey["wave"].astype(str) == str(wave)]
        if answers.empty:
            raise ValueError(
                f"survey: no answers in wave {wave!r}; waves present: "
                f"{sorted(survey['wave'].astype(str).unique().tolist())}"
            )
    if "survey_date" in answers.columns:
        answers = answers.sort_values("survey_date", kind="stable")
    answers = answers.drop_duplicates(id_col, keep="last").set_index(id_col)
    features = pd.DataFrame(index=answers.index)
    touchpoints = dict(touchpoints or {})
    missing = [c for c in [*touchpoints, *emotion, *carry] if c not in answers.columns]
    if missing:
        raise KeyError(f"survey: column(s) {missing} not found; available: {list(survey.columns)}")
    if emotion:
        raw = answers[list(emotion)].astype(float).mean(axis=1)
        sd = raw.std()
        features["emotion"] = (raw - raw.mean()) / (sd if sd > 0 else 1.0)
    if touchpoints:
        ratings = answers[list(touchpoints)].astype(float)
        lo = np.array([s[0] for s in touchpoints.values()])
        hi = np.array([s[1] for s in touchpoints.values()])
        scaled = (ratings - lo) / (hi - lo)
        features["bad_experiences"] = (scaled <= bottom_share).sum(axis=1).astype("int64")
        features["touchpoints_used"] = ratings.notna().sum(axis=1).astype("int64")
        features["experience"] = scaled.mean(axis=1)
    for c in carry:
        if c not in out.columns or c in ("outcome",):
            features[c] = answers[c]
    out = out.drop(columns=[c for c in features.columns if c in out.columns])
    return out.merge(features, left_on=id_col, right_index=True, how="left")
