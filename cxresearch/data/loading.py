"""Load a dataset described by a spec into the canonical frames of ``docs/ARCHITECTURE.md``.

Tables are opened through DuckDB by :mod:`cxresearch.data.sources` (Parquet, CSV, folders of files,
DuckDB tables or queries; source files are never written to). Only the columns the spec names are
selected, and the segment / market filters are pushed down as SQL ``WHERE`` clauses with bound
parameters, so a filtered load of a 10M-row Parquet file reads only the matching rows into pandas.

The recoding happens in the same select, in DuckDB, by the one recoding engine
(:mod:`cxresearch.data.recode`): for each rule the value as read, a *bad* flag, a *blank* flag and the
canonical value (not-applicable codes -> missing, 1-11 -> 0-10, labels -> codes, reverse-keyed items
reversed, tenure in months, margin from revenue when no margin is given). The raw rows are validated
(:mod:`cxresearch.data.validation`) against those flags before the canonical columns are kept.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from cxresearch.data.recode import blank_sql, canonical_sql, date_sql, parsed_sql, tenure_from_dates_sql
from cxresearch.data.rules import TEXT, DataValidationError, FieldRule, Problem, natural_key, rules_for
from cxresearch.data.sources import (
    SourceProblem,
    SourceReader,
    SourceTable,
    connect,
    filter_clauses,
    filter_values,
    first_line,
    inline_params,
    quote,
    source_hash,
)
from cxresearch.data.spec import DatasetSpec, load_spec
from cxresearch.data.validation import ParsedValues, build_schema, run_schema
from cxresearch.runtime import sha256_text

__all__ = ["ROLES", "CXData", "distinct_values", "explain_load", "load_dataset", "source_hash"]

ROLES: tuple[str, ...] = ("survey", "customers", "benchmark")
_LOG = logging.getLogger(__name__)


#: the reasons a survey row has no outcome answer (``CXData.left_out`` keys), as words for a sentence
LEFT_OUT_WORDS = {"blank outcome": "blank outcome answer", "not-applicable code": "not-applicable outcome code"}


def left_out_text(rows: int, counts: Mapping[str, int]) -> str:
    """'17,859 answers from 17,942 rows: 83 blank outcome answers left out' (``counts``: reason -> rows, as in
    ``CXData.left_out``), or '... : none left out'; the one wording of the loader's note and the reports."""
    counts = {k: int(n) for k, n in counts.items() if n}
    answers = int(rows) - sum(counts.values())
    text = f"{answers:,} answer{'' if answers == 1 else 's'} from {int(rows):,} row{'' if rows == 1 else 's'}"
    if not counts:
        return f"{text}: none left out"
    reasons = " and ".join(f"{n:,} {LEFT_OUT_WORDS.get(k, k)}{'' if n == 1 else 's'}" for k, n in counts.items())
    return f"{text}: {reasons} left out"


@dataclass
class CXData:
    """Canonical frames of one dataset (see docs/ARCHITECTURE.md) plus where they came from.

    ``hashes`` maps table role -> sha256 of the source bytes (a folder: sha256 of its files' names and
    hashes); ``sources`` maps table role -> the files read; ``notes`` says what the loader left out or
    how it read the data (row numbers as ids); ``rows`` maps table role -> rows read (after the segment /
    market filter); ``left_out`` maps table role -> {reason: rows} of rows that count as no answer
    (survey: ``blank outcome``, ``not-applicable code``).
    """

    spec: DatasetSpec
    survey: pd.DataFrame | None
    customers: pd.DataFrame | None
    benchmark: pd.DataFrame | None
    hashes: dict[str, str]
    sources: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- recoding
#: name of the computed column holding tenure from start / end dates (customers)
_TENURE = "__cx_tenure"
#: name of the computed column that says whether a row passes the segment / market filter (numbered survey)
_KEEP = "__cx_keep"
#: canonical names of the survey outcome (rows without one are counted as left out)
_OUTCOMES = ("recommend", "outcome")


def _recode_columns(
    spec: DatasetSpec, role: str, rules: Sequence[FieldRule], table: SourceTable
) -> list[tuple[str, str]]:
    """(alias, SQL) of the recoding engine's columns for every rule whose raw column the table has:
    ``__cx_v<i>`` value as read, ``__cx_b<i>`` bad, ``__cx_n<i>`` blank (required columns), ``__cx_c<i>``
    canonical value (when it differs from the value as read)."""
    items: list[tuple[str, str]] = []
    date_format = spec.table_date_format(role)
    for i, rule in enumerate(rules):
        kind = table.columns.get(rule.column)
        if kind is None:  # reported by validation as a missing column
            continue
        value, bad = parsed_sql(rule, kind, date_format)
        items += [(f"__cx_v{i}", value), (f"__cx_b{i}", bad)]
        if rule.required or rule.name in _OUTCOMES:
            items.append((f"__cx_n{i}", blank_sql(rule.column, kind)))
        canonical = canonical_sql(rule, kind, date_format)
        if canonical != value:
            items.append((f"__cx_c{i}", canonical))
    c = spec.customers
    if role == "customers" and c is not None and c.start and c.start in table.columns and spec.as_of is not None:
        names = {r.name for r in rules}
        if "start_date" in names and (not c.end or c.end in table.columns):
            start = date_sql(c.start, table.columns[c.start], date_format)[0]
            end = date_sql(c.end, table.columns[c.end], date_format)[0] if c.end else None
            items.append((_TENURE, tenure_from_dates_sql(start, end, spec.as_of)))
    return items


def _as_bool(values: pd.Series) -> pd.Series:
    """A SQL flag column as numpy bool (the engine's flags are never NULL)."""
    if values.isna().any():
        raise AssertionError(f"recoding flag {values.name} has missing values")
    return values.astype(bool)


def _parsed(
    frame: pd.DataFrame, rules: Sequence[FieldRule], date_format: str | None, date_source: str = ""
) -> ParsedValues:
    values, bad, blank = {}, {}, {}
    for i, rule in enumerate(rules):
        if f"__cx_v{i}" not in frame:
            continue
        key = (rule.name, rule.column)
        value = frame[f"__cx_v{i}"]
        values[key] = value.astype("datetime64[ns]") if rule.kind == "date" else value
        bad[key] = _as_bool(frame[f"__cx_b{i}"])
        if f"__cx_n{i}" in frame:
            blank[key] = _as_bool(frame[f"__cx_n{i}"])
    return ParsedValues(values, bad, blank, date_format, date_source or "the spec's date_format")


def _canonical(frame: pd.DataFrame, rules: Sequence[FieldRule]) -> dict[str, pd.Series]:
    """The canonical columns the engine computed, with the pandas dtypes of docs/ARCHITECTURE.md."""
    out: dict[str, pd.Series] = {}
    for i, rule in enumerate(rules):
        values = frame[f"__cx_c{i}" if f"__cx_c{i}" in frame else f"__cx_v{i}"].rename(rule.name)
        if rule.kind in ("id", "code", "text"):
            out[rule.name] = values.astype(TEXT)
        elif rule.kind == "date":
            out[rule.name] = values.astype("datetime64[ns]")
        elif rule.kind in ("rating", "number", "duration"):
            out[rule.name] = values.astype("float64")
        elif rule.kind in ("recommend", "label"):
            out[rule.name] = values.astype("Int64")
        elif rule.kind == "churn":
            out[rule.name] = values.astype("int64") if not values.isna().any() else values.astype("Int64")
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(rule.kind)
    if _TENURE in frame:  # tenure from dates replaces a duration column (as the spec's start date says)
        out["tenure"] = frame[_TENURE].astype("float64").rename("tenure")
    return out


def _survey_frame(cols: dict[str, pd.Series], spec: DatasetSpec, index: pd.Index) -> pd.DataFrame:
    s = spec.require_survey("a survey frame")
    frame = pd.DataFrame(cols, index=index)
    if "wave" not in frame:
        frame["wave"] = pd.Series("1", index=index, dtype=TEXT)
    order = ["customer_id", "segment", "market", "wave", "survey_date", "unit", *s.groups, *s.touchpoints]
    order += list(s.emotion.items) if s.emotion else []
    order += ["recommend", "outcome", *s.covariates, *(s.comments.names if s.comments else [])]
    return frame[[c for c in order if c in frame]]


def _customers_frame(cols: dict[str, pd.Series], spec: DatasetSpec, index: pd.Index) -> pd.DataFrame:
    c = spec.customers
    if c is None:
        raise ValueError(f"dataset {spec.name!r}: the spec has no customer table ('customers:')")
    frame = pd.DataFrame(cols, index=index)
    order = [
        "customer_id",
        "segment",
        "market",
        "unit",
        "tenure",
        "churn",
        "margin",
        "start_date",
        "end_date",
        *c.cross_sell,
        *c.groups,
        *c.covariates,
    ]
    return frame[[col for col in order if col in frame]]


def _benchmark_frame(cols: dict[str, pd.Series], spec: DatasetSpec, index: pd.Index) -> pd.DataFrame:
    b = spec.benchmark
    if b is None:
        raise ValueError(f"dataset {spec.name!r}: the spec has no benchmark table ('benchmark:')")
    frame = pd.DataFrame(cols, index=index)
    frame.insert(1, "is_own", (frame["brand"] == b.own_brand).fillna(False).astype(bool))
    order = ["brand", "is_own", "market", "wave", "recommend", *b.attributes]
    return frame[[col for col in order if col in frame]]


# --------------------------------------------------------------------------------------------- loading
@dataclass
class _Loaded:
    frame: pd.DataFrame | None
    table: SourceTable | None


class _Loader:
    def __init__(self, spec: DatasetSpec, conn: duckdb.DuckDBPyConnection, validate: bool):
        self.spec = spec
        self.reader = SourceReader(spec, conn)
        self.validate = validate
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.rows: dict[str, int] = {}
        self.left_out: dict[str, dict[str, int]] = {}

    def load(
        self,
        role: str,
        rules: list[FieldRule],
        filters: dict[str, tuple[str, list[str] | None]],
        keys: pd.Series | None = None,
        key_column: str | None = None,
    ) -> _Loaded:
        """Read, validate and recode one table role. ``filters``: raw column -> (dimension, values)."""
        try:
            table = self.reader.open(role)
        except SourceProblem as exc:
            self.problems.append(exc.problem)
            return _Loaded(None, None)
        sql_filters = {col: values for col, (_, values) in filters.items() if values}
        computed = _recode_columns(self.spec, role, rules, table)
        numbered = role == "survey" and self.spec.survey is not None and self.spec.survey.id is None
        if numbered and sql_filters:  # number every row first, filter after: a row keeps its number
            clauses, bound = filter_clauses(table, sql_filters)
            computed.append((_KEEP, inline_params(" AND ".join(clauses), bound)))
        try:
            frame = self.reader.fetch(
                table,
                [r.column for r in rules],
                {} if numbered else sql_filters,
                keys,
                key_column,
                computed=computed,
            )
        except SourceProblem as exc:
            self.problems.append(exc.problem)
            return _Loaded(None, table)
        row_ids: pd.Series | None = None
        if numbered:
            total = len(frame)
            row_ids = pd.Series(pd.RangeIndex(1, total + 1).astype(str), dtype=TEXT)
            if _KEEP in frame:
                keep = frame[_KEEP].fillna(False).astype(bool).to_numpy()
                frame, row_ids = frame[keep].reset_index(drop=True), row_ids[keep].reset_index(drop=True)
            if total:
                self.notes.append(
                    f"{table.label}: no survey.id column: each row's number (1-{total:,}, in file order) is its id"
                )
        if frame.empty and self.reader.count(table) == 0:  # (an empty selection of a table with rows is no fault)
            self.problems.append(Problem(table.label, None, _empty_message(table)))
            return _Loaded(None, table)
        if frame.empty and sql_filters:
            for col, (what, values) in filters.items():
                known = self.reader.distinct(table, col)
                if values and col in table.columns and not set(values) & set(known):
                    close = [m for v in values for m in difflib.get_close_matches(v, known, n=1, cutoff=0.6)]
                    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                    message = (
                        f"no rows for {what} {', '.join(map(repr, values))}{hint} (values: {', '.join(known[:20])})"
                    )
                    if role == "benchmark":
                        self.notes.append(f"{table.label}: column {col}: {message}")
                    else:
                        self.problems.append(Problem(table.label, col, message))
        raw = frame[[col for col in frame.columns if not col.startswith("__cx_") or col == table.file_column]]
        parsed = _parsed(frame, rules, self.spec.table_date_format(role), self.spec.date_format_source(role))
        schema, registry = build_schema(
            self.spec, role, rules, list(raw.columns), parsed, essential_only=not self.validate
        )
        problems = run_schema(raw, schema, registry, table.info())
        if problems:
            self.problems += problems
            return _Loaded(None, table)
        self.rows[role] = len(frame)
        self._count_left_out(role, rules, parsed, table)
        columns = _canonical(frame, rules)
        if row_ids is not None:
            columns = {"customer_id": row_ids.set_axis(frame.index).rename("customer_id"), **columns}
        return _Loaded(pd.DataFrame(columns, index=frame.index), table)

    def _count_left_out(self, role: str, rules: Sequence[FieldRule], parsed: ParsedValues, table: SourceTable) -> None:
        """Count the survey rows without an outcome (blank, or a not-applicable code) and say so in a note:
        the NPS, scorecards and driver models leave them out."""
        for rule in rules:
            if rule.name not in _OUTCOMES or (rule.name, rule.column) not in parsed.values:
                continue
            values, _ = parsed.get(rule)
            blank = parsed.is_blank(rule)
            counts = {
                "blank outcome": int(blank.sum()),
                "not-applicable code": int((values.isna() & ~blank).sum()),
            }
            counts = {k: v for k, v in counts.items() if v}
            self.left_out[role] = counts
            if counts:
                self.notes.append(
                    f"{table.label}: column {rule.column}: {left_out_text(len(values), counts)} ({rule.what})"
                )


def _empty_message(table: SourceTable) -> str:
    """What an empty table is called: a file with a header line only, a folder, a database table, a query."""
    if table.file_column is not None:
        return f"the folder has no rows in any of its {len(table.files):,} files"
    if table.alias is not None or table.label.endswith("(query)"):
        return "the table is empty (no rows)" if not table.label.endswith("(query)") else "the query returns no rows"
    if table.files and "parquet" in table.from_sql:
        return "the file is empty (no rows)"
    return "the file is empty (a header line and no data rows)"


def _membership(survey: pd.DataFrame) -> pd.DataFrame:
    """customer_id -> segment, market from the survey: the latest wave a customer answered."""
    waves = sorted(survey["wave"].dropna().unique().tolist(), key=natural_key)
    rank = survey["wave"].map({w: i for i, w in enumerate(waves)})
    cols = [c for c in ("segment", "market") if c in survey]
    latest = survey.assign(_rank=rank).sort_values("_rank", kind="stable").groupby("customer_id", sort=False).last()
    return latest[cols]


def load_dataset(
    spec: DatasetSpec | str | Path,
    segment: Any = None,
    market: Any = None,
    tables: Sequence[str] = ROLES,
    validate: bool = True,
) -> CXData:
    """Load (and validate) the dataset a spec describes into canonical frames.

    ``segment`` / ``market``: a value, a list of values, or None / "all" (no filter); pushed down to
    DuckDB. ``tables``: which roles to load (others come back as None). ``validate=False`` runs only the
    checks the recoding needs (columns present, values parseable, labels known), not scale ranges,
    duplicates or date order. Raises :class:`DataValidationError` listing every problem found.
    """
    spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
    wanted = tuple(dict.fromkeys([tables] if isinstance(tables, str) else tables))
    unknown = [t for t in wanted if t not in ROLES]
    if unknown:
        raise ValueError(f"unknown table role(s) {unknown}; choose from {list(ROLES)}")
    segments, markets = filter_values(segment, "segment"), filter_values(market, "market")
    frames: dict[str, pd.DataFrame | None] = {role: None for role in ROLES}
    loaded: dict[str, SourceTable] = {}

    c = spec.customers
    customers_wanted = "customers" in wanted and c is not None
    needs_membership = (
        customers_wanted and c is not None and spec.survey is not None and (c.segment is None or c.market is None)
    )

    with connect() as conn:
        loader = _Loader(spec, conn, validate)
        s = spec.survey
        if s is not None and ("survey" in wanted or needs_membership):
            rules = rules_for(spec, "survey")
            if "survey" not in wanted:  # only the customer -> segment/market membership is needed
                rules = [r for r in rules if r.name in ("customer_id", "segment", "market", "wave")]
            result = loader.load("survey", rules, {s.segment: ("segment", segments), s.market: ("market", markets)})
            if result.frame is not None:
                assert result.table is not None  # load() returns a frame only together with its table
                frames["survey"] = _survey_frame(result.frame.to_dict("series"), spec, result.frame.index)
                if "survey" in wanted:
                    loaded["survey"] = result.table

        if customers_wanted and not (needs_membership and frames["survey"] is None):
            assert c is not None  # customers_wanted is False without a customers block
            rules = rules_for(spec, "customers")
            filters = {}
            if c.segment:
                filters[c.segment] = ("segment", segments)
            if c.market:
                filters[c.market] = ("market", markets)
            keys: pd.Series | None = None
            if needs_membership:
                survey_frame = frames["survey"]
                assert survey_frame is not None  # this branch is skipped when membership is needed but no survey
                keys = survey_frame["customer_id"]
            result = loader.load("customers", rules, filters, keys=keys, key_column=c.id)
            if result.frame is not None:
                assert result.table is not None  # load() returns a frame only together with its table
                cust = result.frame
                if s is None:  # no survey to place customers: one segment / market "all" where not declared
                    for dim, values, declared in (("segment", segments, c.segment), ("market", markets, c.market)):
                        if declared is None:
                            if values is not None and set(map(str, values)) != {"all"}:
                                raise ValueError(
                                    f"dataset {spec.name!r}: cannot select {dim} {sorted(map(str, values))}: the "
                                    f"customers table declares no {dim} column and there is no survey"
                                )
                            cust = cust.assign(**{dim: pd.Series("all", index=cust.index, dtype=TEXT)})
                if needs_membership:
                    members = _membership(frames["survey"])
                    missing = [d for d in ("segment", "market") if d not in cust]
                    before = len(cust)
                    cust = cust.join(members[missing], on="customer_id", how="inner")
                    cust = cust.astype({d: TEXT for d in missing}).reset_index(drop=True)
                    if segments is None and markets is None:
                        total = loader.reader.count(result.table)
                        if total > before:
                            loader.notes.append(
                                f"{result.table.label}: {total - before:,} customers not in the survey were left out "
                                f"(the customers table has no {' / '.join(missing)} column to place them)"
                            )
                frames["customers"] = _customers_frame(cust.to_dict("series"), spec, cust.index)
                loaded["customers"] = result.table

        if "benchmark" in wanted and spec.benchmark is not None:
            b = spec.benchmark
            filters = {b.market: ("market", markets)} if b.market else {}
            result = loader.load("benchmark", rules_for(spec, "benchmark"), filters)
            if result.frame is not None:
                assert result.table is not None  # load() returns a frame only together with its table
                frames["benchmark"] = _benchmark_frame(result.frame.to_dict("series"), spec, result.frame.index)
                loaded["benchmark"] = result.table

        # the survey's unit from the customers table when the survey has none
        if (
            "survey" in wanted
            and frames["survey"] is not None
            and s is not None
            and s.unit is None
            and c is not None
            and c.unit
            and not loader.problems
        ):
            if frames["customers"] is not None:
                units = frames["customers"].set_index("customer_id")["unit"]
            else:
                rules = [r for r in rules_for(spec, "customers") if r.name in ("customer_id", "unit")]
                result = loader.load("customers", rules, {}, keys=frames["survey"]["customer_id"], key_column=c.id)
                units = (
                    result.frame.drop_duplicates("customer_id").set_index("customer_id")["unit"]
                    if result.frame is not None
                    else None
                )
            if units is not None:
                survey = frames["survey"].copy()
                survey["unit"] = survey["customer_id"].map(units).astype(TEXT)
                frames["survey"] = _survey_frame(survey.to_dict("series"), spec, survey.index)

    if loader.problems:
        raise DataValidationError(loader.problems)
    if "survey" not in wanted:
        frames["survey"] = None
    hashes, sources = {}, {}
    for role, table in loaded.items():
        root: Path | None = None
        if table.file_column:
            path = spec.tables[getattr(spec, role).table].path
            assert path is not None  # file_column is set only for a folder source, which has a path
            root = spec.resolve(path)
        query = spec.tables[getattr(spec, role).table].query
        if query is not None:  # its text and the bytes of the files it reads (wherever the folder lies)
            hashes[role] = sha256_text("\n".join([query, *sorted(source_hash([f]) for f in table.files)]))
        else:
            hashes[role] = source_hash(table.files, root)
        sources[role] = [str(f) for f in table.files]
    for note in loader.notes:  # returned in CXData.notes too; logged for notebooks and scripts
        _LOG.info("%s", note)
    return CXData(
        spec=spec,
        survey=frames["survey"],
        customers=frames["customers"],
        benchmark=frames["benchmark"],
        hashes=hashes,
        sources=sources,
        notes=loader.notes,
        rows={role: n for role, n in loader.rows.items() if frames.get(role) is not None},
        left_out={role: n for role, n in loader.left_out.items() if frames.get(role) is not None},
    )


def explain_load(spec: DatasetSpec | str | Path, role: str = "survey", segment: Any = None, market: Any = None) -> str:
    """DuckDB's physical plan of the select a filtered load runs (shows filters pushed into the scan)."""
    spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
    block = getattr(spec, role)
    segments, markets = filter_values(segment, "segment"), filter_values(market, "market")
    filters: dict[str, list[str]] = {}
    if getattr(block, "segment", None) and segments:
        filters[block.segment] = segments
    if getattr(block, "market", None) and markets:
        filters[block.market] = markets
    with connect() as conn:
        reader = SourceReader(spec, conn)
        try:
            table = reader.open(role)
        except SourceProblem as exc:
            raise DataValidationError([exc.problem]) from None
        rules = rules_for(spec, role)
        sql, params = reader.select_sql(
            table, [r.column for r in rules], filters, computed=_recode_columns(spec, role, rules, table)
        )
        with reader.using(table):
            rows = conn.execute(f"EXPLAIN {sql}", params).fetchall()
    return "\n".join(str(r[1]) for r in rows)


def distinct_values(
    spec: DatasetSpec | str | Path, role: str = "survey", columns: Sequence[str] = ("segment", "market")
) -> pd.DataFrame:
    """Distinct combinations of canonical code columns (e.g. segment x market) of one table role.

    Reads the source exactly as :func:`load_dataset` does (same file discovery, CSV / Parquet / folder /
    DuckDB handling) but runs ``SELECT DISTINCT`` inside DuckDB, so only the combinations reach pandas.
    ``columns`` are canonical names of code fields (``segment``, ``market``, ``wave``, ``unit``...);
    values come back as stripped text, and rows where any of them is blank are left out. Raises
    :class:`DataValidationError` naming the table when it cannot be read, and ``ValueError`` naming the
    column when the spec declares no such field for ``role``.
    """
    spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
    if role not in ROLES or getattr(spec, role) is None:
        raise ValueError(f"table role {role!r} is not in this dataset spec (roles: {list(ROLES)})")
    by_name = {rule.name: rule for rule in rules_for(spec, role)}
    unknown = [c for c in columns if c not in by_name]
    if unknown or not columns:
        raise ValueError(f"{role}: no field(s) {unknown or list(columns)} in the spec (declared: {', '.join(by_name)})")
    with connect() as conn:
        reader = SourceReader(spec, conn)
        try:
            table = reader.open(role)
        except SourceProblem as exc:
            raise DataValidationError([exc.problem]) from None
        missing = [by_name[c].column for c in columns if by_name[c].column not in table.columns]
        if missing:
            raise DataValidationError(
                [
                    Problem(table.label, col, f"column not found (columns: {', '.join(sorted(table.columns))})")
                    for col in missing
                ]
            )
        # the same canonical form as the loader's code columns: stripped text, blank -> missing
        items = [f"NULLIF(trim(CAST({quote(by_name[c].column)} AS VARCHAR)), '') AS {quote(c)}" for c in columns]
        keep = " AND ".join(f"{quote(c)} IS NOT NULL" for c in columns)
        sql = f"SELECT * FROM (SELECT DISTINCT {', '.join(items)} FROM {table.from_sql} AS t) WHERE {keep}"
        try:
            with reader.using(table):
                rows = conn.execute(sql, table.params).fetchall()
        except duckdb.Error as exc:
            raise DataValidationError([Problem(table.label, None, f"cannot read: {first_line(exc)}")]) from None
    rows = sorted(rows, key=lambda row: tuple(natural_key(v) for v in row))
    return pd.DataFrame(rows, columns=list(columns), dtype=object).astype(TEXT)
