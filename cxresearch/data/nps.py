"""NPS classes and score: detractor 0-6, passive 7-8, promoter 9-10."""

from __future__ import annotations

import numpy as np
import pandas as pd

NPS_CLASSES: tuple[str, str, str] = ("detractor", "passive", "promoter")


def nps_class(recommend: pd.Series | np.ndarray) -> pd.Categorical:
    """Classify 0-10 answers; missing stays missing. Raises on values outside 0-10."""
    values = pd.to_numeric(pd.Series(recommend), errors="raise").astype("float64")
    bad = values[(values < 0) | (values > 10)]
    if len(bad):
        raise ValueError(f"recommend values outside 0-10: {sorted(bad.unique().tolist())[:5]}")
    codes = np.select([values <= 6, values <= 8, values <= 10], [0, 1, 2], default=-1)
    codes[values.isna().to_numpy()] = -1
    return pd.Categorical.from_codes(codes, categories=list(NPS_CLASSES), ordered=True)


def nps_score(recommend: pd.Series | np.ndarray) -> float:
    """NPS in points (-100..100) of the non-missing answers."""
    classes = pd.Series(nps_class(recommend)).dropna()
    if classes.empty:
        return float("nan")
    shares = classes.value_counts(normalize=True)
    return float(100.0 * (shares.get("promoter", 0.0) - shares.get("detractor", 0.0)))
