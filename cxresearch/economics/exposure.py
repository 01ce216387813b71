"""Aggregated exposure tables and customer profiles, built with DuckDB SQL.

A piecewise-exponential model needs, per (period x covariate cell), the number of events and the time at
risk. Both are sums over customers, so they are computed in DuckDB straight from a Parquet file, a DuckDB
relation or a pandas frame: 10M customers never become a 10M-row pandas frame, and the model's cost grows
with the number of cells, not of customers. For categorical covariates the Poisson likelihood on the
aggregated table is exactly the piecewise-exponential likelihood of the individual data (up to a constant).

Period convention: period ``j`` covers tenure ``(a_j, a_{j+1}]`` (the last period is open to infinity).
A customer with tenure ``t`` contributes ``max(0, min(t, a_{j+1}) - a_j)`` months at risk to period ``j``
and an event to the period whose interval contains ``t`` when it churned.

Tenure 0 means "less than one unit of the recorded tenure" (``tenure_unit_months``: 12 for whole years, 1
for months). By default (``zero_duration="half_unit"``) such a customer is counted with half a unit at risk
(tenure ``0.5 * tenure_unit_months``; a churned one churned then), the rule of the lifelines fits in
:mod:`cxresearch.economics.survival`, so the total exposure equals the sum of the durations they see.
``zero_duration="drop"`` gives them no time at risk (they contribute nothing; a churn at 0 is not an
event, with a warning), ``"error"`` refuses them; all count them in :attr:`ExposureTable.n_zero_duration`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Tenure cut points in months used when none are given (trimmed to the observed range).
DEFAULT_BREAKS: tuple[float, ...] = (0, 1, 3, 6, 9, 12, 18, 24, 30, 36, 48, 60, 72, 96, 120, 180, 240)

Source = Any  # pandas DataFrame | str | Path | Sequence[str | Path] | duckdb.DuckDBPyRelation


# ---------------------------------------------------------------------------------------------------
# sources and SQL helpers
# ---------------------------------------------------------------------------------------------------
def quote_ident(name: str) -> str:
    """Quote a column name for DuckDB SQL."""
    return '"' + str(name).replace('"', '""') + '"'


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    value = float(value)
    if math.isinf(value):
        return "'inf'::DOUBLE" if value > 0 else "'-inf'::DOUBLE"
    return repr(value)


def as_relation(source: Source, connection: Any | None = None) -> Any:
    """A DuckDB relation for a pandas frame, a Parquet path (or glob / list of paths) or a relation.

    Raises FileNotFoundError naming the path when a Parquet file does not exist.
    """
    import duckdb

    if isinstance(source, duckdb.DuckDBPyRelation):
        return source
    con = connection if connection is not None else duckdb.connect()
    if isinstance(source, pd.DataFrame):
        return con.from_df(source)
    if isinstance(source, (str, Path)):
        paths = [source]
    elif isinstance(source, Sequence) and source and all(isinstance(p, (str, Path)) for p in source):
        paths = list(source)
    else:
        raise TypeError(
            f"source must be a pandas DataFrame, a Parquet path or a DuckDB relation, got {type(source).__name__}"
        )
    for path in paths:
        text = str(path)
        if not any(ch in text for ch in "*?[") and not Path(text).exists():
            raise FileNotFoundError(f"Parquet file not found: {text}")
    return con.read_parquet([str(p) for p in paths])


def _query(rel: Any, sql: str) -> pd.DataFrame:
    """Run ``sql`` against the relation, which the SQL names ``src``."""
    return rel.query("src", sql).df()


def _require_columns(rel: Any, columns: Sequence[str], what: str) -> None:
    available = list(rel.columns)
    missing = [c for c in columns if c not in available]
    if missing:
        raise KeyError(f"{what}: column(s) {missing} not found; available columns: {available}")


def _label_number(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels ``"[a, b)"`` of the bins that :func:`covariate_expression` makes from ``edges``."""
    return [f"[{_label_number(a)}, {_label_number(b)})" for a, b in zip(edges[:-1], edges[1:])]


def covariate_expression(column: str, edges: Sequence[float] | None = None) -> str:
    """SQL giving the categorical value of a covariate: the value as text, or its bin label."""
    col = quote_ident(column)
    if edges is None:
        return f"CAST({col} AS VARCHAR)"
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
        raise ValueError(f"bins for column {column!r} must be at least two increasing edges, got {edges}")
    labels = bin_labels(edges)
    whens = " ".join(
        f"WHEN {col} >= {_sql_literal(a)} AND {col} < {_sql_literal(b)} THEN {_sql_literal(lab)}"
        for a, b, lab in zip(edges[:-1], edges[1:], labels)
    )
    return f"(CASE WHEN {col} IS NULL THEN NULL {whens} ELSE '<out of bins>' END)"


def nps_class_sql(recommend_column: str) -> str:
    """SQL CASE mapping a 0-10 recommend column to detractor / passive / promoter (NULL stays NULL)."""
    col = quote_ident(recommend_column)
    return (
        f"(CASE WHEN {col} IS NULL THEN NULL WHEN {col} <= 6 THEN 'detractor' "
        f"WHEN {col} <= 8 THEN 'passive' ELSE 'promoter' END)"
    )


def default_period_breaks(
    max_duration: float,
    breaks: Sequence[float] = DEFAULT_BREAKS,
    min_last_width: float = 6.0,
    tenure_unit_months: float = 1.0,
) -> list[float]:
    """Cut points from :data:`DEFAULT_BREAKS` strictly below the largest observed duration.

    The last period is open; a cut closer than ``min_last_width`` months to ``max_duration`` is dropped so
    the last period keeps some time at risk. Tenure recorded in units longer than a month (whole years:
    ``tenure_unit_months`` 12) only changes at whole units, so cuts fall on whole units (0, 12, 24, ...).
    """
    if not max_duration > 0:
        raise ValueError(f"no positive durations (largest duration {max_duration})")
    if tenure_unit_months > 1:
        breaks = [b for b in breaks if abs(b / tenure_unit_months - round(b / tenure_unit_months)) < 1e-9]
        min_last_width = max(min_last_width, tenure_unit_months)
    cuts = [float(b) for b in breaks if b < max_duration - min_last_width or b == 0]
    return cuts or [0.0]


# ---------------------------------------------------------------------------------------------------
# exposure table
# ---------------------------------------------------------------------------------------------------
@dataclass
class ExposureTable:
    """Events and months at risk per (period x covariate cell), with what was dropped and why."""

    frame: pd.DataFrame  # period, period_start, period_end, <covariates>, events, exposure, at_risk
    breaks: list[float]
    covariates: list[str]
    levels: dict[str, list[str]]
    duration_col: str
    event_col: str
    n_customers: int  # rows used (after dropping missing covariates)
    n_events: int
    max_duration: float
    n_dropped_missing: int = 0
    n_zero_duration: int = 0  # customers with tenure 0, whatever the rule
    n_zero_duration_events: int = 0  # of which churned
    bins: dict[str, list[float]] = field(default_factory=dict)
    #: the tenure-0 rule used ("drop" for tables made before the rule existed: they dropped them)
    zero_duration: str = "drop"
    tenure_unit_months: float = 1.0
    n_zero_half_unit: int = 0  # customers with tenure 0 counted as at risk for half a unit

    @property
    def zero_duration_note(self) -> str | None:
        """What happened to the customers with tenure 0, in words (None when there were none)."""
        from cxresearch.economics.survival import zero_duration_note

        return zero_duration_note(self.n_zero_duration, self.zero_duration, self.tenure_unit_months)

    @property
    def n_cells(self) -> int:
        """Rows of the table (period x covariate cells with time at risk)."""
        return len(self.frame)

    @property
    def total_exposure(self) -> float:
        return float(self.frame["exposure"].sum())

    def summary(self) -> pd.DataFrame:
        """Events, exposure and crude rate per period (for a quick look)."""
        out = self.frame.groupby(["period", "period_start", "period_end"], as_index=False)[["events", "exposure"]].sum()
        out["rate_per_month"] = out["events"] / out["exposure"]
        out["at_risk"] = self.frame.groupby("period")["at_risk"].sum().to_numpy()
        return out


def build_exposure_table(
    source: Source,
    *,
    duration_col: str = "tenure",
    event_col: str = "churn",
    covariates: Sequence[str] = (),
    period_breaks: Sequence[float] | None = None,
    bins: Mapping[str, Sequence[float]] | None = None,
    missing: str = "error",
    max_levels: int = 200,
    connection: Any | None = None,
    zero_duration: str = "half_unit",
    tenure_unit_months: float = 1.0,
) -> ExposureTable:
    """Aggregate customers into events and time at risk per (period x covariate cell) with DuckDB.

    ``source``: pandas frame, Parquet path(s) or DuckDB relation with one row per customer.
    ``covariates`` are used as categories (their text value); numeric ones need ``bins`` (edges, left-closed).
    ``missing``: "error" raises on NULL covariates naming the column and count; "drop" leaves those rows
    out (counted in ``n_dropped_missing``). Tenure 0 (``n_zero_duration``, churned ones in
    ``n_zero_duration_events``): with ``zero_duration="half_unit"`` (default) at risk for half a unit of
    ``tenure_unit_months`` (``n_zero_half_unit``), as the lifelines fits count them; with "drop" no time at
    risk, and a churn at 0 is not an event (a warning says so); "error" raises.
    """
    from cxresearch.economics.survival import check_tenure_unit, check_zero_duration

    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    check_zero_duration(zero_duration)
    unit = check_tenure_unit(tenure_unit_months)
    covariates = list(covariates)
    edges = {k: [float(e) for e in v] for k, v in (bins or {}).items()}
    unknown_bins = sorted(set(edges) - set(covariates))
    if unknown_bins:
        raise KeyError(f"bins given for column(s) {unknown_bins} that are not covariates {covariates}")
    rel = as_relation(source, connection)
    _require_columns(rel, [duration_col, event_col, *covariates], "exposure table")
    raw, e = quote_ident(duration_col), quote_ident(event_col)
    t = raw
    cov_exprs = {c: covariate_expression(c, edges.get(c)) for c in covariates}

    checks = [
        "COUNT(*) AS n",
        f"COUNT(*) FILTER (WHERE {t} IS NULL) AS null_duration",
        f"COUNT(*) FILTER (WHERE {t} < 0) AS negative_duration",
        f"COUNT(*) FILTER (WHERE {e} IS NULL OR {e} NOT IN (0, 1)) AS bad_event",
        f"MAX({t}) AS max_duration",
    ]
    for i, c in enumerate(covariates):
        checks.append(f"COUNT(*) FILTER (WHERE {quote_ident(c)} IS NULL) AS null_{i}")
        checks.append(f"COUNT(DISTINCT {cov_exprs[c]}) AS distinct_{i}")
        if c in edges:
            checks.append(f"COUNT(*) FILTER (WHERE {cov_exprs[c]} = '<out of bins>') AS outside_{i}")
    stats = _query(rel, f"SELECT {', '.join(checks)} FROM src").iloc[0]
    if int(stats["n"]) == 0:
        raise ValueError("exposure table: the source has no rows")
    for key, message in (("null_duration", "missing"), ("negative_duration", "negative")):
        if int(stats[key]):
            bad = _query(rel, f"SELECT DISTINCT {t} AS v FROM src WHERE {t} IS NULL OR {t} < 0 LIMIT 5")["v"]
            raise ValueError(f"column {duration_col!r}: {int(stats[key])} {message} durations (e.g. {bad.tolist()})")
    if int(stats["bad_event"]):
        bad = _query(rel, f"SELECT DISTINCT {e} AS v FROM src WHERE {e} IS NULL OR {e} NOT IN (0, 1) LIMIT 5")
        raise ValueError(f"column {event_col!r} must be 0/1: {int(stats['bad_event'])} rows with {bad['v'].tolist()}")
    for i, c in enumerate(covariates):
        if missing == "error" and int(stats[f"null_{i}"]):
            raise ValueError(
                f"covariate column {c!r} has {int(stats[f'null_{i}'])} missing values; "
                f"pass missing='drop' to leave those customers out"
            )
        if c in edges and int(stats[f"outside_{i}"]):
            raise ValueError(f"covariate column {c!r}: {int(stats[f'outside_{i}'])} values outside the bins {edges[c]}")
        if int(stats[f"distinct_{i}"]) > max_levels:
            raise ValueError(
                f"covariate column {c!r} has {int(stats[f'distinct_{i}'])} distinct values; "
                f"the exposure model needs categories: give bins for it (bins={{'{c}': [...]}})"
            )

    not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in covariates) or "TRUE"
    if zero_duration == "half_unit":
        # tenure 0 = less than one unit: at risk for half a unit, as the lifelines fits count it
        t = f"(CASE WHEN {raw} = 0 THEN {_sql_literal(0.5 * unit)} ELSE CAST({raw} AS DOUBLE) END)"
    kept = _query(
        rel,
        f"SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE {raw} = 0) AS z, "
        f"COUNT(*) FILTER (WHERE {raw} = 0 AND {e} = 1) AS ze, "
        f"COALESCE(SUM({e}), 0) AS d, MAX({t}) AS tmax FROM src WHERE {not_null}",
    ).iloc[0]
    n_kept = int(kept["n"])
    if n_kept == 0:
        raise ValueError(f"exposure table: no rows left after dropping missing covariates {covariates}")
    if zero_duration == "error" and int(kept["z"]):
        raise ValueError(
            f"column {duration_col!r}: {int(kept['z'])} rows with duration 0; pass zero_duration='half_unit' "
            f"to count them as at risk for half a unit of tenure, or 'drop' to leave them out"
        )
    max_duration = float(kept["tmax"])
    breaks = (
        [float(b) for b in period_breaks]
        if period_breaks is not None
        else default_period_breaks(max_duration, tenure_unit_months=unit)
    )
    if breaks[0] != 0 or any(b <= a for a, b in zip(breaks[:-1], breaks[1:])):
        raise ValueError(f"period_breaks must start at 0 and increase, got {breaks}")
    ends = breaks[1:] + [math.inf]

    aggs = []
    for j, (a, b) in enumerate(zip(breaks, ends)):
        lo, hi = _sql_literal(a), _sql_literal(b)
        aggs.append(f"SUM(GREATEST(LEAST({t}, {hi}) - {lo}, 0)) AS x{j}")
        aggs.append(f"COUNT(*) FILTER (WHERE {e} = 1 AND {t} > {lo} AND {t} <= {hi}) AS d{j}")
        aggs.append(f"COUNT(*) FILTER (WHERE {t} > {lo}) AS n{j}")
    select_cov = [f"{expr} AS {quote_ident(c)}" for c, expr in cov_exprs.items()]
    keys = ", ".join(str(i + 1) for i in range(len(covariates)))
    group = f" GROUP BY {keys} ORDER BY {keys}" if covariates else ""  # deterministic row order
    sql = f"SELECT {', '.join(select_cov + aggs)} FROM src WHERE {not_null}{group}"
    wide = _query(rel, sql)

    parts = []
    for j, (a, b) in enumerate(zip(breaks, ends)):
        part = wide[covariates].copy()
        part.insert(0, "period", j)
        part.insert(1, "period_start", a)
        part.insert(2, "period_end", b)
        part["events"] = wide[f"d{j}"].astype("int64").to_numpy()
        part["exposure"] = wide[f"x{j}"].astype("float64").to_numpy()
        part["at_risk"] = wide[f"n{j}"].astype("int64").to_numpy()
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    long = long[long["exposure"] > 0].reset_index(drop=True)
    empty = sorted(set(range(len(breaks))) - set(long["period"].unique().tolist()))
    if empty:
        raise ValueError(
            f"period(s) {[f'({breaks[j]:g}, {ends[j]:g}]' for j in empty]} have no time at risk "
            f"(largest duration {max_duration:g}); use fewer period_breaks"
        )
    for c in covariates:
        long[c] = long[c].astype(str)
    levels = {c: _sorted_levels(long[c].unique().tolist(), edges.get(c)) for c in covariates}
    dropped_events = int(kept["ze"]) if zero_duration == "drop" else 0
    if dropped_events:
        warnings.warn(
            f"{dropped_events} customers churned at {duration_col} = 0: they have no time at risk "
            f"and are not in the exposure table",
            UserWarning,
            stacklevel=2,
        )
    return ExposureTable(
        frame=long,
        breaks=breaks,
        covariates=covariates,
        levels=levels,
        duration_col=duration_col,
        event_col=event_col,
        n_customers=n_kept,
        n_events=int(kept["d"]) - dropped_events,
        max_duration=max_duration,
        n_dropped_missing=int(stats["n"]) - n_kept,
        n_zero_duration=int(kept["z"]),
        n_zero_duration_events=int(kept["ze"]),
        bins=edges,
        zero_duration=zero_duration,
        tenure_unit_months=unit,
        n_zero_half_unit=int(kept["z"]) if zero_duration == "half_unit" else 0,
    )


def _natural_key(text: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def _sorted_levels(values: list[str], edges: Sequence[float] | None) -> list[str]:
    if edges is not None:
        order = bin_labels(edges)
        return [lab for lab in order if lab in values]
    return sorted(values, key=_natural_key)


# ---------------------------------------------------------------------------------------------------
# customer profiles (for CLV) and product / margin summaries (for Net Promoter Economics)
# ---------------------------------------------------------------------------------------------------
def customer_profile(
    source: Source,
    *,
    covariates: Sequence[str],
    duration_col: str = "tenure",
    event_col: str = "churn",
    margin_col: str = "margin",
    products_col: str | None = None,
    active_only: bool = True,
    tenure_step: float | None = 1.0,
    bins: Mapping[str, Sequence[float]] | None = None,
    missing: str = "drop",
    connection: Any | None = None,
    zero_duration: str = "keep",
    tenure_unit_months: float = 1.0,
) -> pd.DataFrame:
    """Customers grouped by covariates and tenure (bins of ``tenure_step`` months), for CLV at scale.

    Columns: covariates, ``tenure`` (mean tenure in the group), ``n``, ``margin_mean``, ``margin_sd``
    and, with ``products_col``, ``products_mean``. ``active_only`` keeps customers not churned (event 0),
    whose CLV is conditional on their current tenure. ``tenure_step=None`` keeps exact tenures.
    ``zero_duration``: "keep" (default) conditions a customer with tenure 0 on tenure 0; "half_unit" on
    half a unit of ``tenure_unit_months``, the tenure the survival models were fitted with (matters for
    coarse units: half a year when tenure is recorded in whole years).
    """
    from cxresearch.economics.survival import check_tenure_unit

    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    if zero_duration not in ("keep", "half_unit"):
        raise ValueError(f"zero_duration must be 'keep' or 'half_unit', got {zero_duration!r}")
    unit = check_tenure_unit(tenure_unit_months)
    covariates = list(covariates)
    rel = as_relation(source, connection)
    needed = [duration_col, event_col, margin_col, *covariates] + ([products_col] if products_col else [])
    _require_columns(rel, needed, "customer profile")
    bins = dict(bins or {})
    t, e, m = quote_ident(duration_col), quote_ident(event_col), quote_ident(margin_col)
    if zero_duration == "half_unit":
        t = f"(CASE WHEN {t} = 0 THEN {_sql_literal(0.5 * unit)} ELSE CAST({t} AS DOUBLE) END)"
    where = [f"{quote_ident(c)} IS NOT NULL" for c in covariates]
    if missing == "error":
        nulls = (
            _query(
                rel,
                "SELECT "
                + ", ".join(f"COUNT(*) FILTER (WHERE {quote_ident(c)} IS NULL) AS {quote_ident(c)}" for c in covariates)
                + " FROM src",
            )
            if covariates
            else pd.DataFrame()
        )
        bad = {c: int(nulls[c].iloc[0]) for c in covariates if int(nulls[c].iloc[0])}
        if bad:
            raise ValueError(f"customer profile: missing values in covariate column(s) {bad}")
    null_margin = int(_query(rel, f"SELECT COUNT(*) AS n FROM src WHERE {m} IS NULL")["n"].iloc[0])
    if null_margin:
        raise ValueError(f"column {margin_col!r} has {null_margin} missing margins")
    if active_only:
        where.append(f"{e} = 0")
    cov_sel = [f"{covariate_expression(c, bins.get(c))} AS {quote_ident(c)}" for c in covariates]
    tenure_key = f"FLOOR({t} / {_sql_literal(tenure_step)})" if tenure_step else t
    aggs = [
        f"AVG({t}) AS tenure",
        "COUNT(*) AS n",
        f"AVG({m}) AS margin_mean",
        f"COALESCE(STDDEV_SAMP({m}), 0) AS margin_sd",
    ]
    if products_col:
        aggs.append(f"AVG({quote_ident(products_col)}) AS products_mean")
    group = ", ".join(str(i + 1) for i in range(len(covariates) + 1))
    sql = (
        f"SELECT {', '.join(cov_sel + [tenure_key + ' AS tenure_key'] + aggs)} FROM src "
        f"WHERE {' AND '.join(where) or 'TRUE'} GROUP BY {group} ORDER BY {group}"
    )
    out = _query(rel, sql).drop(columns="tenure_key")
    for c in covariates:
        out[c] = out[c].astype(str)
    out["n"] = out["n"].astype("int64")
    return out.reset_index(drop=True)


def group_summary(
    source: Source, *, by: Sequence[str], value_col: str, where: str | None = None, connection: Any | None = None
) -> pd.DataFrame:
    """n, mean and standard deviation of ``value_col`` per group (DuckDB); rows with NULL keys dropped."""
    rel = as_relation(source, connection)
    _require_columns(rel, [*by, value_col], "group summary")
    v = quote_ident(value_col)
    keys = [f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in by]
    cond = " AND ".join(
        [f"{quote_ident(c)} IS NOT NULL" for c in by] + [f"{v} IS NOT NULL"] + ([f"({where})"] if where else [])
    )
    group = ", ".join(str(i + 1) for i in range(len(by)))
    sql = (
        f"SELECT {', '.join(keys)}, COUNT(*) AS n, AVG({v}) AS mean, COALESCE(STDDEV_SAMP({v}), 0) AS sd "
        f"FROM src WHERE {cond}" + (f" GROUP BY {group} ORDER BY {group}" if by else "")
    )
    out = _query(rel, sql)
    out["n"] = out["n"].astype("int64")
    return out


def margin_per_product(
    source: Source,
    *,
    margin_col: str = "margin",
    products_col: str = "n_products",
    within: Sequence[str] = ("segment",),
    connection: Any | None = None,
) -> dict[str, float]:
    """Monthly margin of one extra product: pooled within-group least-squares slope of margin on products.

    Within ``within`` groups (segment by default) so that segment differences in base margin are not read
    as product margin. Returns estimate, standard error and n (sufficient statistics summed in DuckDB).
    """
    rel = as_relation(source, connection)
    _require_columns(rel, [margin_col, products_col, *within], "margin per product")
    m, x = quote_ident(margin_col), quote_ident(products_col)
    keys = ", ".join(quote_ident(c) for c in within)
    sql = (
        f"SELECT regr_count({m}, {x}) AS n, regr_sxx({m}, {x}) AS sxx, regr_sxy({m}, {x}) AS sxy, "
        f"regr_syy({m}, {x}) AS syy FROM src WHERE {m} IS NOT NULL AND {x} IS NOT NULL"
        + (f" GROUP BY {keys}" if within else "")
    )
    stats = _query(rel, sql).fillna(0.0)
    n, sxx, sxy, syy = (float(stats[c].sum()) for c in ("n", "sxx", "sxy", "syy"))
    if sxx <= 0:
        raise ValueError(
            f"column {products_col!r} does not vary within {list(within)}: "
            f"cannot estimate the margin of an extra product"
        )
    slope = sxy / sxx
    dof = n - len(stats) - 1
    resid_var = max(syy - slope * sxy, 0.0) / max(dof, 1.0)
    return {"estimate": slope, "se": float(np.sqrt(resid_var / sxx)), "n": int(n)}


def join_nps_class(
    customers: pd.DataFrame,
    survey: pd.DataFrame,
    *,
    wave: str | None = "1",
    id_col: str = "customer_id",
    recommend_col: str = "recommend",
    wave_col: str = "wave",
    date_col: str = "survey_date",
) -> pd.DataFrame:
    """Customers with ``recommend`` and ``nps_class`` from their survey answer (NaN when none).

    With ``wave`` the answer of that wave is used; a customer with several answers keeps the latest
    (by ``survey_date`` when present, else the last row).
    """
    from cxresearch.data.nps import nps_class

    for frame, name, cols in ((customers, "customers", [id_col]), (survey, "survey", [id_col, recommend_col])):
        missing_cols = [c for c in cols if c not in frame.columns]
        if missing_cols:
            raise KeyError(f"{name}: column(s) {missing_cols} not found; available: {list(frame.columns)}")
    answers = survey
    if wave is not None:
        if wave_col not in survey.columns:
            raise KeyError(f"survey: column {wave_col!r} not found (needed for wave={wave!r})")
        answers = survey[survey[wave_col].astype(str) == str(wave)]
        if answers.empty:
            raise ValueError(
                f"survey: no answers in wave {wave!r}; waves present: "
                f"{sorted(survey[wave_col].astype(str).unique().tolist())}"
            )
    answers = answers[answers[recommend_col].notna()]
    if date_col in answers.columns:
        answers = answers.sort_values(date_col, kind="stable")
    answers = answers.drop_duplicates(id_col, keep="last")[[id_col, recommend_col]]
    out = customers.drop(columns=[c for c in (recommend_col, "nps_class") if c in customers.columns])
    out = out.merge(answers, on=id_col, how="left")
    out["nps_class"] = pd.Series(nps_class(out[recommend_col]), index=out.index).astype("string")
    return out
