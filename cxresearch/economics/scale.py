"""The economics study at scale: the per-customer analysis relation built inside DuckDB from a dataset spec.

:func:`cxresearch.data.load_dataset` returns pandas frames, so a 10M-customer table would become a
10M-row frame. Here the data layer's own table readers (:mod:`cxresearch.data.sources`: Parquet, CSV, a
folder of files, a DuckDB table or query) and its one recoding engine (:mod:`cxresearch.data.recode`, the
SQL that ``load_dataset`` runs too) build a lazy :class:`duckdb.DuckDBPyRelation` with one row per
customer (:func:`customer_relation_from_spec`), and :func:`exposure_from_spec` aggregates it straight
into an :class:`ExposureTable` whose size grows with cells, not customers. The engine's rules: text is
stripped and blanks are missing, not-applicable codes become NULL, recommend answers are recoded onto
0-10 (rounded half to even), churn labels are matched ignoring case, tenure comes from a duration column
in its unit or from start/end dates censored at ``as_of`` (days / 30.4375). Segment and market filters
are pushed into the scans. The full pandera validation is not run (use ``cxresearch validate`` for
that); :func:`customer_relation_from_spec` with ``check=True`` runs one aggregate query that rejects
unparseable values, missing required values and missing cross-sell counts, naming the file, column,
count and offending values.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from cxresearch.data.recode import churn_sql, date_sql, number_sql, recommend_sql, tenure_from_dates_sql, text_sql
from cxresearch.data.rules import MONTHS_PER_UNIT, DataValidationError, FieldRule, Problem, natural_key, rules_for
from cxresearch.data.sources import (
    SourceProblem,
    SourceReader,
    SourceTable,
    connect,
    filter_values,
    filtered_source_sql,
    quote,
    sql_literal,
)
from cxresearch.data.spec import DatasetSpec, load_spec
from cxresearch.economics.exposure import ExposureTable, build_exposure_table, nps_class_sql

#: Columns of the relation :func:`customer_relation_from_spec` returns, in order.
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "segment",
    "market",
    "tenure",
    "churn",
    "margin",
    "products",
    "recommend",
    "nps_class",
)


# ------------------------------------------------------------------------------------- the relation
def _open(reader: SourceReader, role: str) -> SourceTable:
    try:
        table = reader.open(role)
    except SourceProblem as exc:
        raise DataValidationError([exc.problem]) from None
    return table


def _check_columns(table: SourceTable, rules: Sequence[FieldRule]) -> None:
    missing = [r for r in rules if r.column not in table.columns]
    if missing:
        problems = []
        for r in missing:
            close = difflib.get_close_matches(r.column, list(table.columns), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            problems.append(Problem(table.label, r.column, f"column for the {r.what} not found{hint}"))
        raise DataValidationError(problems)


def _sql_parts(
    spec: DatasetSpec, reader: SourceReader, segments: list[str] | None, markets: list[str] | None, nps_wave: str | None
) -> tuple[str, dict[str, tuple[str, str]], SourceTable, str]:
    """The relation's SQL; per checked customer column (SQL true for a bad value, raw column); the customer
    table and its filtered FROM clause."""
    c, s = spec.customers, spec.require_survey("the DuckDB exposure table (NPS class per customer)")
    if c is None:
        raise ValueError(
            f"dataset {spec.name!r}: the spec has no customer table ('customers:'); tenure, churn "
            f"and margin are needed for the economics study"
        )
    if s.outcome.kind != "recommend":
        raise ValueError(
            f"dataset {spec.name!r}: survey outcome column {s.outcome.column!r} is "
            f"{s.outcome.kind!r}; the NPS class needs a 'recommend' (0-10) outcome"
        )
    crules = {r.name: r for r in rules_for(spec, "customers")}
    srules = {r.name: r for r in rules_for(spec, "survey")}
    ctable, stable = _open(reader, "customers"), _open(reader, "survey")
    _check_columns(ctable, list(crules.values()))
    survey_needed = [
        srules[k] for k in ("customer_id", "segment", "market", "wave", "survey_date", "recommend") if k in srules
    ]
    _check_columns(stable, survey_needed)
    ct, st = ctable.columns, stable.columns

    checks: dict[str, tuple[str, str]] = {}
    sel = [f"{text_sql(c.id, ct[c.id])} AS customer_id"]
    checks["customer_id"] = (f"{text_sql(c.id, ct[c.id])} IS NULL", c.id)
    for dim in ("segment", "market"):
        col = getattr(c, dim)
        if col:
            sel.append(f"{text_sql(col, ct[col])} AS {dim}")
            checks[dim] = (f"{text_sql(col, ct[col])} IS NULL", col)
    if c.tenure:
        value, bad = number_sql(c.tenure, ct[c.tenure])
        sel.append(f"{value} * {MONTHS_PER_UNIT[c.tenure_unit]!r} AS tenure")
        checks["tenure"] = (f"({bad} OR {value} IS NULL)", c.tenure)
    else:
        # guaranteed by the spec's validators: Customers needs 'start' without 'tenure', DatasetSpec 'as_of' with it
        assert c.start is not None and spec.as_of is not None
        start, bad_start = date_sql(c.start, ct[c.start], spec.table_date_format("customers"))
        end: str | None = None
        bad_end = "FALSE"
        if c.end:
            end, bad_end = date_sql(c.end, ct[c.end], spec.table_date_format("customers"))
        sel.append(f"{tenure_from_dates_sql(start, end, spec.as_of)} AS tenure")
        checks["start_date"] = (f"({bad_start} OR {start} IS NULL)", c.start)
        if c.end:
            checks["end_date"] = (bad_end, c.end)
    churn, bad_churn = churn_sql(c.churn, ct[c.churn], c.churn_labels)
    sel.append(f"{churn} AS churn")
    checks["churn"] = (f"({bad_churn} OR {churn} IS NULL)", c.churn)
    money = c.margin or c.revenue
    if money:
        value, bad = number_sql(money, ct[money])
        sel.append(f"{value} AS margin")
        checks["margin"] = (bad, money)
    else:
        sel.append("NULL::DOUBLE AS margin")
    if c.cross_sell:
        parts = []
        for col in c.cross_sell:
            value, bad = number_sql(col, ct[col])
            parts.append(value)
            checks[f"cross-sell {col}"] = (f"({bad} OR {value} IS NULL)", col)
        sel.append(f"({' + '.join(parts)}) AS products")
    else:
        sel.append("1.0::DOUBLE AS products")
    cust_filters: dict[str, list[str] | None] = {}
    if c.segment:
        cust_filters[c.segment] = segments
    if c.market:
        cust_filters[c.market] = markets
    customers_from = f"{filtered_source_sql(ctable, cust_filters)} AS t"
    customers_sql = f"SELECT {', '.join(sel)} FROM {customers_from}"

    assert s.id is not None  # the spec requires survey.id when customers are declared
    sid = text_sql(s.id, st[s.id])
    wave = text_sql(s.wave, st[s.wave]) if s.wave else "'1'"
    rec, _ = recommend_sql(srules["recommend"], st[s.outcome.column])
    order = date_sql(s.date, st[s.date], spec.table_date_format("survey"))[0] if s.date else "NULL::TIMESTAMP"
    survey_from = filtered_source_sql(stable, {s.segment: segments, s.market: markets})
    answers_sql = (
        f"SELECT {sid} AS customer_id, {wave} AS wave, {rec} AS recommend, {order} AS answered, "
        f"{text_sql(s.segment, st[s.segment])} AS segment, {text_sql(s.market, st[s.market])} AS market "
        f"FROM {survey_from} AS t"
    )
    # the latest answer of the wave (by date; undated answers sort last, as pandas puts NaT last)
    nps_sql = (
        "SELECT customer_id, arg_max(recommend, COALESCE(epoch(answered), 'inf'::DOUBLE)) AS recommend "
        f"FROM answers WHERE wave = {sql_literal(str(nps_wave))} AND recommend IS NOT NULL GROUP BY customer_id"
        if nps_wave is not None
        else "SELECT customer_id, arg_max(recommend, COALESCE(epoch(answered), 'inf'::DOUBLE)) AS recommend "
        "FROM answers WHERE recommend IS NOT NULL GROUP BY customer_id"
    )
    ctes = [f"cust AS ({customers_sql})", f"answers AS ({answers_sql})", f"nps AS ({nps_sql})"]
    missing_dims = [d for d in ("segment", "market") if not getattr(c, d)]
    if missing_dims:
        # segment / market from the survey: the latest wave each customer answered (waves in natural order)
        with reader.using(stable):
            waves = [
                r[0]
                for r in reader.conn.execute(
                    f"SELECT DISTINCT {wave} FROM {survey_from} AS t WHERE {wave} IS NOT NULL"
                ).fetchall()
            ]
        ordered = sorted(waves, key=natural_key)
        ranks = " ".join(f"WHEN {sql_literal(w)} THEN {i}" for i, w in enumerate(ordered))
        rank = f"(CASE wave {ranks} END)" if waves else "0"
        ctes.append(
            "members AS (SELECT customer_id, "
            + ", ".join(f"arg_max({d}, {rank}) AS {d}" for d in missing_dims)
            + " FROM answers GROUP BY customer_id)"
        )
        source = "cust JOIN members USING (customer_id)"
    else:
        source = "cust"
    out = ", ".join(CUSTOMER_COLUMNS[:-2])
    sql = (
        f"WITH {', '.join(ctes)} SELECT {out}, nps.recommend AS recommend, "
        f"{nps_class_sql('recommend')} AS nps_class FROM (SELECT * FROM {source}) LEFT JOIN nps USING (customer_id)"
    )
    return sql, checks, ctable, customers_from


def customer_relation_from_spec(
    spec_or_path: DatasetSpec | str | Path,
    *,
    segment: Any = None,
    market: Any = None,
    nps_wave: str | None = "1",
    connection: duckdb.DuckDBPyConnection | None = None,
    check: bool = True,
) -> duckdb.DuckDBPyRelation:
    """One row per customer, built lazily inside DuckDB from a dataset spec (no pandas frame of customers).

    Columns: customer_id, segment, market (text), tenure (months), churn (0/1), margin (monthly; revenue when
    the spec gives no margin; NULL when it gives neither), products (sum of the cross-sell columns, 1 when
    none), recommend (0-10 from wave ``nps_wave``, latest answer) and nps_class (NULL without an answer).
    Values equal :func:`cxresearch.economics.study.analysis_frame` of :func:`cxresearch.data.load_dataset`.
    ``segment`` / ``market``: a value, a list or None / "all", pushed into the scans. ``connection``: the
    DuckDB connection to build on (thread / memory settings); a fresh one by default. ``check``: one
    aggregate query that raises :class:`DataValidationError` for unparseable or missing required values and
    ValueError when the filters leave no customer.
    """
    spec = spec_or_path if isinstance(spec_or_path, DatasetSpec) else load_spec(spec_or_path)
    segments, markets = filter_values(segment, "segment"), filter_values(market, "market")
    conn = connection if connection is not None else connect()
    reader = SourceReader(spec, conn)
    sql, checks, ctable, customers_from = _sql_parts(spec, reader, segments, markets, nps_wave)
    if any(t.alias for t in reader.tables.values()):
        # a DuckDB 'query' source names its tables without the attached database: resolve it there
        conn.execute(f"USE {next(t.alias for t in reader.tables.values() if t.alias)}")
    if check:
        _run_checks(conn, ctable, customers_from, checks, segments, markets)
    rel = conn.sql(sql)
    return rel


def _run_checks(
    conn: duckdb.DuckDBPyConnection,
    table: SourceTable,
    base: str,
    checks: dict[str, tuple[str, str]],
    segments: list[str] | None,
    markets: list[str] | None,
) -> None:
    """One scan of the customer table counting bad values per column; raise naming column, count, values."""
    aggs = [f"COUNT(*) FILTER (WHERE {cond}) AS {quote(name)}" for name, (cond, _) in checks.items()]
    aggs.append("COUNT(*) AS __rows")
    counts = conn.execute(f"SELECT {', '.join(aggs)} FROM {base}").fetchall()[0]
    problems = []
    for (name, (cond, column)), n in zip(checks.items(), counts[:-1]):
        if n:
            shown = [
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT CAST({quote(column)} AS VARCHAR) FROM {base} WHERE {cond} LIMIT 5"
                ).fetchall()
            ]
            problems.append(
                Problem(
                    table.label,
                    column,
                    f"{n:,} rows with a missing or unreadable {name} "
                    f"(e.g. {', '.join('(blank)' if v is None else repr(v) for v in shown)})",
                )
            )
    if problems:
        raise DataValidationError(problems)
    if counts[-1] == 0 and (segments or markets):
        raise ValueError(f"{table.label}: no customers for segment {segments} and market {markets}")


def exposure_from_spec(
    spec_or_path: DatasetSpec | str | Path,
    *,
    segment: Any = None,
    market: Any = None,
    nps_wave: str | None = "1",
    covariates: Sequence[str] = ("nps_class", "segment", "market"),
    period_breaks: Sequence[float] | None = None,
    bins: dict[str, Sequence[float]] | None = None,
    known_nps_only: bool = True,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> ExposureTable:
    """Exposure table (events and months at risk per period x cell) straight from a dataset spec, in DuckDB.

    The customers of :func:`customer_relation_from_spec` (those with an NPS class when ``known_nps_only``,
    as the notebook's models use) are aggregated by :func:`build_exposure_table`; memory and time grow with
    the cells, and only one scan of each source table is needed per aggregate.
    """
    spec = spec_or_path if isinstance(spec_or_path, DatasetSpec) else load_spec(spec_or_path)
    rel = customer_relation_from_spec(spec, segment=segment, market=market, nps_wave=nps_wave, connection=connection)
    if known_nps_only:
        rel = rel.filter("nps_class IS NOT NULL")
    return build_exposure_table(
        rel,
        covariates=list(covariates),
        period_breaks=period_breaks,
        bins=bins,
        tenure_unit_months=tenure_unit_months(spec),
    )


def tenure_unit_months(spec: DatasetSpec) -> float:
    """Months in one unit of the recorded tenure: the spec's ``tenure_unit`` (12 for whole years), or a day
    when tenure comes from start / end dates. A tenure of 0 means less than one such unit."""
    c = spec.customers
    if c is None:
        return 1.0
    return float(MONTHS_PER_UNIT[c.tenure_unit]) if c.tenure else float(MONTHS_PER_UNIT["days"])
