"""The one recoding engine: each rule of the dataset spec written once, as DuckDB SQL.

:func:`cxresearch.data.load_dataset` selects these expressions beside the raw columns (validation reads
the parsed values and the ``bad`` flags; the canonical frames take the recoded values), and
:mod:`cxresearch.economics.scale` builds its lazy per-customer relation from the same expressions, so a
rule cannot drift between the two. The rules:

- text (ids, codes): stripped of surrounding whitespace, blank -> NULL; whole numbers lose ``.0`` (a wave
  stored as 1.0 is "1"), booleans are ``true`` / ``false``, dates ISO; ``007`` stays ``007``;
- numbers: not-applicable codes (numbers, words matched ignoring case, ``blank``) -> NULL; a non-blank
  text that is no finite-or-infinite number (``NaN`` included) is *bad* (reported by validation);
- ratings: reverse-keyed items become ``max + min - value`` on their scale;
- recommend: recoded by the spec's shift (``value - from.min + to.min``, e.g. 1-11 -> 0-10) and rounded
  half to even (``round_even``: 2.5 -> 2, 3.5 -> 4, as pandas' ``round`` does), as an integer;
- dates: ISO 8601 text (``TRY_CAST AS TIMESTAMP``) or the spec's ``date_format`` (``strptime`` codes);
  typed DATE / TIMESTAMP columns as they are;
- labels and churn labels: matched on the stripped, lower-cased text (:func:`cxresearch.data.spec.label_key`);
  on a BOOLEAN column (a Yes/No column DuckDB typed through a query, a true/false Parquet column) labels
  written yes/no, true/false, y/n, t/f or 1/0 match its true / false; churn without labels must be 0 or 1;
- durations in months (``tenure_unit``: days / 30.4375, weeks * 7 / 30.4375, years * 12); tenure from
  start / end dates is ``(end or as_of) - start`` in days / 30.4375.

Every function takes the raw column's name and its DuckDB type (``SourceTable.columns``) and returns SQL
text over a table aliased ``t``; identifiers are quoted and literals escaped (nothing is trusted as SQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from cxresearch.data.rules import DAYS_PER_MONTH, MONTHS_PER_UNIT, FieldRule, split_na_codes
from cxresearch.data.sources import quote, sql_literal
from cxresearch.data.spec import label_key

#: characters stripped around text values (space, tab, newline, vertical tab, form feed, carriage return)
WHITESPACE_SQL = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_INTEGER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
)
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "DECIMAL", "REAL")


def is_numeric_type(duckdb_type: str) -> bool:
    """True for DuckDB integer, floating-point and decimal types."""
    return duckdb_type.upper().startswith(_INTEGER_TYPES + _FLOAT_TYPES)


def text_sql(column: str, duckdb_type: str) -> str:
    """A column as stripped text: whole numbers without ``.0``, booleans ``true``/``false``, dates ISO;
    blanks and NaN are NULL."""
    col, kind = quote(column), duckdb_type.upper()
    if kind.startswith(_INTEGER_TYPES):
        return f"CAST({col} AS VARCHAR)"
    if kind.startswith(_FLOAT_TYPES):
        x = f"CAST({col} AS DOUBLE)"
        # |x| < 1e15: whole doubles print as integers only where every integer is exact (below 2^53)
        return (
            f"(CASE WHEN {x} IS NULL OR isnan({x}) THEN NULL WHEN isfinite({x}) AND {x} = trunc({x}) "
            f"AND abs({x}) < 1e15 THEN CAST(CAST({x} AS BIGINT) AS VARCHAR) ELSE CAST({x} AS VARCHAR) END)"
        )
    if kind == "BOOLEAN":
        return f"(CASE WHEN {col} IS NULL THEN NULL WHEN {col} THEN 'true' ELSE 'false' END)"
    if kind == "DATE":
        return f"strftime({col}, '%Y-%m-%d')"
    return f"NULLIF(trim(CAST({col} AS VARCHAR), {WHITESPACE_SQL}), '')"


def blank_sql(column: str, duckdb_type: str) -> str:
    """SQL true where the value is missing: NULL, NaN, or empty / whitespace-only text."""
    return f"({text_sql(column, duckdb_type)} IS NULL)"


def number_sql(column: str, duckdb_type: str, codes: Sequence[Any] = ()) -> tuple[str, str]:
    """(SQL DOUBLE value, SQL true where a non-blank value is not a number).

    Not-applicable codes (numbers, words, ``blank``) give NULL and are not flagged; NaN is missing in a
    typed column and *not a number* in a text one.
    """
    numbers, words = split_na_codes(codes)
    kind = duckdb_type.upper()
    if kind.startswith(_INTEGER_TYPES + _FLOAT_TYPES) or kind == "BOOLEAN":
        x = f"CAST({quote(column)} AS DOUBLE)"
        value = f"(CASE WHEN isnan({x}) THEN NULL ELSE {x} END)"
        bad = "FALSE"  # typed numbers are always numbers
    else:
        text = text_sql(column, duckdb_type)
        na = f"(lower({text}) IN ({', '.join(sql_literal(w) for w in sorted(words))}))" if words else "FALSE"
        x = f"TRY_CAST({text} AS DOUBLE)"
        value = f"(CASE WHEN {na} THEN NULL WHEN isnan({x}) THEN NULL ELSE {x} END)"
        bad = f"({text} IS NOT NULL AND NOT {na} AND {value} IS NULL)"
    if numbers:
        value = f"(CASE WHEN {value} IN ({', '.join(repr(float(n)) for n in numbers)}) THEN NULL ELSE {value} END)"
    return value, bad


def date_sql(column: str, duckdb_type: str, date_format: str | None) -> tuple[str, str]:
    """(SQL TIMESTAMP, SQL true where a non-blank value is not a date in ISO 8601 / ``date_format``)."""
    kind = duckdb_type.upper()
    if kind == "DATE" or kind.startswith("TIMESTAMP"):
        return f"CAST({quote(column)} AS TIMESTAMP)", "FALSE"
    text = text_sql(column, duckdb_type)
    value = f"try_strptime({text}, {sql_literal(date_format)})" if date_format else f"TRY_CAST({text} AS TIMESTAMP)"
    return value, f"({text} IS NOT NULL AND {value} IS NULL)"


#: label words that name a BOOLEAN column's true / false (matched after label_key: stripped, lower case)
BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "yes", "y", "t", "1"), "true"),
    **dict.fromkeys(("false", "no", "n", "f", "0"), "false"),
}


def label_sql(column: str, duckdb_type: str, labels: dict[str, int], codes: Sequence[Any] = ()) -> tuple[str, str]:
    """(SQL INTEGER code of the label, SQL true where a non-blank value is neither a label nor a
    not-applicable code). Labels and codes are matched on the stripped, lower-cased text; on a BOOLEAN
    column a label yes/no, true/false, y/n, t/f or 1/0 matches true / false."""
    numbers, words = split_na_codes(codes)
    na_words = sorted(words | {label_key(n) for n in numbers})
    key = f"lower({text_sql(column, duckdb_type)})"
    na = f"({key} IN ({', '.join(sql_literal(w) for w in na_words)}))" if na_words else "FALSE"
    boolean = duckdb_type.upper() == "BOOLEAN"

    def match(label: str) -> str:
        text = label_key(label)
        return BOOLEAN_WORDS.get(text, text) if boolean else text

    whens = " ".join(f"WHEN {sql_literal(match(k))} THEN {int(v)}" for k, v in labels.items())
    value = f"(CASE WHEN {na} THEN NULL ELSE (CASE {key} {whens} END) END)"
    return value, f"({key} IS NOT NULL AND NOT {na} AND {value} IS NULL)"


def churn_sql(column: str, duckdb_type: str, labels: dict[str, int] | None) -> tuple[str, str]:
    """(SQL 0/1 churn flag, SQL true where a non-blank value is not 0/1 nor a known churn label)."""
    if labels:
        return label_sql(column, duckdb_type, labels)
    number, bad = number_sql(column, duckdb_type)
    value = f"(CASE WHEN {number} IN (0.0, 1.0) THEN CAST({number} AS INTEGER) END)"
    return value, f"({bad} OR ({number} IS NOT NULL AND {value} IS NULL))"


def recommend_sql(rule: FieldRule, duckdb_type: str) -> tuple[str, str]:
    """(SQL 0-10 answer as INTEGER: recoded, rounded half to even; SQL true where not a number)."""
    value, bad = number_sql(rule.column, duckdb_type, rule.na_codes)
    return _recommend_value(rule, value), bad


def _recommend_value(rule: FieldRule, value: str) -> str:
    if rule.recode is not None:  # a shift: the spec requires both scales to have the same width
        value = f"({value} - {float(rule.recode.from_.min)!r} + {float(rule.recode.to.min)!r})"
    return f"CAST(round_even({value}, 0) AS INTEGER)"


def parsed_sql(rule: FieldRule, duckdb_type: str, date_format: str | None = None) -> tuple[str, str]:
    """(SQL value as read, SQL true where a non-blank value cannot be read) for one rule's raw column.

    The value is what validation checks (a rating on its own scale, a recommend answer before recoding,
    a duration in its own unit); :func:`canonical_sql` turns it into the canonical value.
    """
    col, kind = rule.column, rule.kind
    if kind in ("rating", "recommend", "number", "duration"):
        return number_sql(col, duckdb_type, rule.na_codes)
    if kind == "date":
        return date_sql(col, duckdb_type, date_format)
    if kind == "label":
        return label_sql(col, duckdb_type, rule.labels or {}, rule.na_codes)
    if kind == "churn":
        return churn_sql(col, duckdb_type, rule.labels)
    if kind in ("id", "code", "text"):
        return text_sql(col, duckdb_type), "FALSE"
    raise ValueError(f"unknown field kind {kind!r} of column {col!r}")


def canonical_sql(rule: FieldRule, duckdb_type: str, date_format: str | None = None) -> str:
    """SQL of one rule's canonical value (docs/ARCHITECTURE.md): codes -> NULL, reverse-keyed items
    reversed, recommend recoded onto 0-10 and rounded, durations in months, labels as codes."""
    value, _ = parsed_sql(rule, duckdb_type, date_format)
    if rule.kind == "rating" and rule.reverse and rule.scale is not None:
        return f"({float(rule.scale.max + rule.scale.min)!r} - {value})"
    if rule.kind == "recommend":
        return _recommend_value(rule, value)
    if rule.kind == "duration":
        return f"({value} * {MONTHS_PER_UNIT[rule.time_unit]!r})"
    return value


def tenure_from_dates_sql(start: str, end: str | None, as_of: dt.date) -> str:
    """Months from ``start`` to ``end`` (SQL TIMESTAMPs; open spells censored at ``as_of``), days / 30.4375."""
    stop = f"COALESCE({end}, TIMESTAMP '{as_of.isoformat()}')" if end else f"TIMESTAMP '{as_of.isoformat()}'"
    return f"((epoch({stop}) - epoch({start})) / 86400.0 / {DAYS_PER_MONTH!r})"
