"""Data validation: pandera schemas built from the dataset spec, and one clear message per problem.

Every column a spec names has a rule (:class:`cxresearch.data.rules.FieldRule`: its role, scale,
not-applicable codes, labels). The rules become a pandera ``DataFrameSchema`` that runs lazily on the raw
table as read from the source (CSV columns still text), so every problem is collected before anything is
raised. Each pandera failure is turned into a :class:`~cxresearch.data.rules.Problem` that names the
file, the column, how many rows and the first few offending values, e.g.::

    survey.parquet: column tp_branch: 3 rows outside the scale 1-5 (not-applicable codes: 0): 7, 8, -1

The checks do not parse values themselves: they read the values and *bad* flags that the recoding
engine (:mod:`cxresearch.data.recode`, DuckDB SQL) computed beside the raw columns
(:class:`ParsedValues`), so what validation accepts is exactly what loading converts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pandera
from pandera.errors import SchemaErrors

from cxresearch.data.rules import (  # noqa: F401  (DataValidationError, rules_for: re-exported)
    SHOW_VALUES,
    DataValidationError,
    FieldRule,
    Problem,
    SourceInfo,
    rules_for,
)
from cxresearch.data.spec import DatasetSpec, NACode

__all__ = [
    "DataValidationError",
    "ParsedValues",
    "Problem",
    "build_schema",
    "rule_date_hint",
    "rules_for",
    "run_schema",
]


class _Shown(str):
    """Text already formatted for a message (e.g. a composite "C0001 in wave 1")."""


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def _show(value: Any) -> str:
    """A value as a message shows it: numbers and ISO dates plainly, other text quoted, blanks as (blank)."""
    if isinstance(value, _Shown):
        return str(value)
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "(blank)"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{float(value):g}"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    text = str(value)
    if text.strip() == text and _ISO_DATE.match(text):
        return text
    try:
        float(text.strip())
        return text.strip() if text.strip() == text else repr(text)
    except ValueError:
        return repr(text)


def _first_values(values: pd.Series | Sequence[Any], limit: int = SHOW_VALUES) -> tuple[str, ...]:
    shown: list[str] = []
    for value in values:
        text = _show(value)
        if text not in shown:
            shown.append(text)
            if len(shown) > limit:
                return (*shown[:limit], "...")
    return tuple(shown)


def _codes_note(codes: Sequence[NACode]) -> str:
    if not codes:
        return ""
    return f" (not-applicable codes: {', '.join(_show(c) if c != 'blank' else 'blank' for c in codes)})"


def _rows(n: int) -> str:
    return f"{n:,} row{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class _CheckInfo:
    column: str  # what the message names as the column
    stem: str  # message after "N rows"
    show: Callable[[pd.DataFrame, pd.Index], pd.Series | list[Any]]  # offending values to show
    show_values: bool = True
    across_columns: bool = False  # a check on the whole row (reported after the single-column checks)


class ParsedValues:
    """The recoding engine's reading of each rule's raw column, row-aligned with the raw table.

    ``values[key]`` / ``bad[key]`` / ``blank[key]`` with ``key = (rule.name, rule.column)``: the value as
    read (a rating on its scale, a date, a label's code, a code as text), True where a non-blank value
    cannot be read, True where the value is missing (NULL, NaN or blank text).
    """

    def __init__(
        self,
        values: Mapping[tuple[str, str], pd.Series],
        bad: Mapping[tuple[str, str], pd.Series],
        blank: Mapping[tuple[str, str], pd.Series],
        date_format: str | None,
        date_source: str = "the spec's date_format",
    ):
        self.values, self.bad, self.blank = dict(values), dict(bad), dict(blank)
        self.date_format = date_format
        self.date_source = date_source  # where the format comes from, in words ("the spec's date_format")

    def get(self, rule: FieldRule, raw: pd.Series | None = None) -> tuple[pd.Series, pd.Series]:
        """(values, bad) of one rule's column (``raw`` is accepted for the checks' call shape, not read)."""
        key = (rule.name, rule.column)
        if key not in self.values:
            raise KeyError(f"column {rule.column!r} ({rule.what}) was not read with the recoding engine")
        return self.values[key], self.bad[key]

    def is_blank(self, rule: FieldRule) -> pd.Series:
        """True where the rule's column is missing (NULL, NaN, empty or whitespace-only text)."""
        return self.blank[(rule.name, rule.column)]


def _column_checks(
    rule: FieldRule, parsed: ParsedValues, essential_only: bool, register: Callable[[_CheckInfo], str]
) -> list[pandera.Check]:
    """pandera checks for one rule; each check returns True for good rows."""
    col = rule.column
    checks: list[pandera.Check] = []

    def add(fn: Callable[[pd.Series], pd.Series], stem: str, show_values: bool = True) -> None:
        key = register(_CheckInfo(col, stem, lambda raw, idx: raw.loc[idx, col], show_values))
        checks.append(pandera.Check(fn, error=key, name=key, ignore_na=False))

    if rule.required:
        add(lambda s: ~parsed.is_blank(rule), f"with no {rule.what} (every row needs one)", show_values=False)

    if rule.kind in ("rating", "recommend", "number", "duration"):
        note = _codes_note(rule.na_codes)
        hint = note or " (declare text codes such as 'NA' under not_applicable)"
        add(lambda s: ~parsed.get(rule, s)[1], f"not a number{hint}")
        if not essential_only and rule.scale is not None:
            lo, hi = rule.scale.min, rule.scale.max

            def in_scale(s: pd.Series, lo: float = lo, hi: float = hi) -> pd.Series:
                values = parsed.get(rule, s)[0]
                return values.isna() | values.between(lo, hi)

            if rule.kind == "recommend" and rule.recode is not None:
                stem = f"outside 0-10 after recoding {rule.recode.from_} to {rule.recode.to}{note}"
            elif rule.kind == "recommend":
                stem = f"outside the scale 0-10 of likelihood to recommend{note}"
            else:
                stem = f"outside the scale {rule.scale}{note}"
            add(in_scale, stem)
        if rule.kind == "recommend":
            add(lambda s: _whole(parsed.get(rule, s)[0]), f"not a whole number on the scale {rule.scale}")
        elif rule.kind == "rating" and not essential_only and _integer_scale(rule.scale):
            # the scorecards and driver models count answers per scale point: 3.5 on 1-5 is no answer there
            add(
                lambda s: _whole(parsed.get(rule, s)[0]),
                f"not a whole number on the integer scale {rule.scale} of {rule.what}",
            )
        if rule.kind == "duration" and not essential_only:
            add(lambda s: ~(parsed.get(rule, s)[0] < 0), "with a negative duration")
    elif rule.kind == "date":
        expected = rule_date_hint(parsed.date_format, parsed.date_source)
        add(lambda s: ~parsed.get(rule, s)[1], f"not a date (expected {expected})")
    elif rule.kind == "label":
        known = ", ".join(sorted(rule.labels or {}))
        add(lambda s: ~parsed.get(rule, s)[1], f"with unknown labels (known: {known}){_codes_note(rule.na_codes)}")
    elif rule.kind == "churn":
        if rule.labels:
            known = ", ".join(sorted(rule.labels))
            add(lambda s: ~parsed.get(rule, s)[1], f"with unknown churn labels (known: {known})")
        else:
            add(
                lambda s: ~parsed.get(rule, s)[1],
                "not a 0/1 churn flag (map text values with churn_labels, e.g. {Yes: 1, No: 0})",
            )
    elif rule.kind == "id" and rule.unique and not essential_only:

        def unique(s: pd.Series) -> pd.Series:
            ids = parsed.get(rule, s)[0]
            return ~(ids.notna() & ids.duplicated(keep=False))

        add(unique, "with a duplicated customer id (one row per customer expected)")
    return checks


def rule_date_hint(date_format: str | None, source: str = "the spec's date_format") -> str:
    """How the expected date format is described in messages (``source``: where the format is declared)."""
    if not date_format:
        return "ISO 8601, YYYY-MM-DD; declare date_format for other formats, e.g. '%d.%m.%Y'"
    return f"{source} {date_format}"


def _integer_scale(scale: Any) -> bool:
    """True for a scale of whole-number points (1-5, 0-10, 1-100)."""
    return scale is not None and float(scale.min).is_integer() and float(scale.max).is_integer()


def _whole(values: pd.Series) -> pd.Series:
    return values.isna() | np.isclose(values.fillna(0.0), np.round(values.fillna(0.0)))


def build_schema(
    spec: DatasetSpec,
    role: str,
    rules: Sequence[FieldRule],
    present: Sequence[str],
    parsed: ParsedValues,
    essential_only: bool = False,
) -> tuple[pandera.DataFrameSchema, dict[str, _CheckInfo]]:
    """The pandera schema of one table role and what each check's failures mean.

    ``parsed`` holds the recoding engine's values of every rule whose column is ``present``.
    ``essential_only`` keeps only what recoding needs (columns present, required values, values that
    parse, known labels) and drops scale ranges, duplicates, negative durations and cross-column checks.
    """
    registry: dict[str, _CheckInfo] = {}

    def register(info: _CheckInfo) -> str:
        key = f"cx{len(registry)}:{info.column}"
        registry[key] = info
        return key

    columns: dict[str, pandera.Column] = {}
    by_column: dict[str, list[pandera.Check]] = {}
    for rule in rules:
        by_column.setdefault(rule.column, []).extend(_column_checks(rule, parsed, essential_only, register))
    for col, checks in by_column.items():
        columns[col] = pandera.Column(checks=checks, nullable=True, required=True, coerce=False, name=col)

    frame_checks: list[pandera.Check] = []
    if not essential_only:
        frame_checks = _frame_checks(spec, role, {r.name: r for r in rules}, set(present), parsed, register)
    schema = pandera.DataFrameSchema(columns, checks=frame_checks, strict=False, coerce=False, name=role)
    return schema, registry


def _frame_checks(
    spec: DatasetSpec,
    role: str,
    rules: dict[str, FieldRule],
    present: set[str],
    parsed: ParsedValues,
    register: Callable[[_CheckInfo], str],
) -> list[pandera.Check]:
    """Checks across columns: duplicated (id, wave) answers, dates, churn vs end date, the own brand."""
    checks: list[pandera.Check] = []

    def has(*names: str) -> bool:
        return all(n in rules and rules[n].column in present for n in names)

    def add(fn: Callable[[pd.DataFrame], Any], info: _CheckInfo) -> None:
        key = register(replace(info, across_columns=True))
        checks.append(pandera.Check(fn, error=key, name=key, ignore_na=False))

    if role == "survey" and has("customer_id"):
        rid = rules["customer_id"]
        rwave = rules.get("wave") if has("wave") else None
        cols = [rid.column] + ([rwave.column] if rwave else [])

        def unique_answers(df: pd.DataFrame) -> pd.Series:
            keys = pd.DataFrame({r.column: parsed.get(r)[0] for r in [rid] + ([rwave] if rwave else [])})
            return ~(keys.notna().all(axis=1) & keys.duplicated(keep=False))

        if rwave:
            stem = "with a duplicated (customer id, wave) pair (one answer per customer and wave expected)"
            wave_column = rwave.column

            def show(raw: pd.DataFrame, idx: Any) -> Any:
                return [
                    _Shown(f"{_show(a)} in wave {_show(b)}")
                    for a, b in zip(raw.loc[idx, rid.column], raw.loc[idx, wave_column])
                ]
        else:
            stem = "with a duplicated customer id (one answer per customer expected; declare survey.wave?)"

            def show(raw: pd.DataFrame, idx: Any) -> Any:
                return raw.loc[idx, rid.column]

        add(unique_answers, _CheckInfo(" x ".join(cols), stem, show))

    if role == "customers":
        start, end, churn = rules.get("start_date"), rules.get("end_date"), rules.get("churn")
        as_of = pd.Timestamp(spec.as_of) if spec.as_of else None
        if has("start_date", "end_date"):
            assert start is not None and end is not None  # has() just found both rules

            def ordered(df: pd.DataFrame) -> pd.Series:
                s = parsed.get(start, df[start.column])[0]
                e = parsed.get(end, df[end.column])[0]
                return ~(e < s)

            add(
                ordered,
                _CheckInfo(
                    f"{start.column}/{end.column}",
                    "with an end date before the start date (negative duration)",
                    lambda raw, idx: [
                        _Shown(f"{_show(a)} -> {_show(b)}")
                        for a, b in zip(raw.loc[idx, start.column], raw.loc[idx, end.column])
                    ],
                ),
            )
        if has("start_date") and as_of is not None:
            assert start is not None  # has() just found the rule

            def started(df: pd.DataFrame) -> pd.Series:
                s = parsed.get(start, df[start.column])[0]
                e = (
                    parsed.get(end, df[end.column])[0]
                    if end is not None and has("end_date")
                    else pd.Series(pd.NaT, index=df.index)
                )
                unreadable = parsed.get(end)[1] if end is not None and has("end_date") else False
                return ~(e.isna() & (s > as_of) & ~unreadable)

            add(
                started,
                _CheckInfo(
                    start.column,
                    f"with a start date after as_of {spec.as_of} and no end date (negative duration)",
                    lambda raw, idx: raw.loc[idx, start.column],
                ),
            )
        if has("start_date", "end_date", "churn"):
            assert churn is not None and end is not None  # has() just found both rules

            def churn_has_end(df: pd.DataFrame) -> pd.Series:
                flag = parsed.get(churn, df[churn.column])[0]
                e, unreadable = parsed.get(end, df[end.column])
                # an end date that does not parse is reported as a date problem, not as a missing end date
                return ~(flag.eq(1).fillna(False).astype(bool) & e.isna() & ~unreadable)

            add(
                churn_has_end,
                _CheckInfo(
                    f"{churn.column}/{end.column}",
                    "with churn = 1 but no end date",
                    lambda raw, idx: raw.loc[idx, rules["customer_id"].column] if has("customer_id") else [],
                    True,
                ),
            )

    if role == "benchmark" and has("brand") and spec.benchmark is not None:
        rbrand = rules["brand"]
        own = spec.benchmark.own_brand

        def own_present(df: pd.DataFrame) -> bool:
            brands = parsed.get(rbrand)[0]
            return bool(len(brands) == 0 or (brands == own).any())

        add(own_present, _CheckInfo(rbrand.column, f"own_brand {own!r} does not occur", lambda raw, idx: [], False))
    return checks


def run_schema(
    raw: pd.DataFrame, schema: pandera.DataFrameSchema, registry: dict[str, _CheckInfo], source: SourceInfo
) -> list[Problem]:
    """Validate ``raw`` lazily and turn every pandera failure into a :class:`Problem`."""
    try:
        schema.validate(raw, lazy=True)
    except SchemaErrors as exc:
        return _problems(exc.failure_cases, raw, registry, source)
    return []


def _problems(
    failures: pd.DataFrame, raw: pd.DataFrame, registry: dict[str, _CheckInfo], source: SourceInfo
) -> list[Problem]:
    problems: list[Problem] = []
    order = {str(c): i for i, c in enumerate(raw.columns)}
    rank: dict[int, tuple[int, int, int]] = {}
    for check, group in failures.groupby("check", sort=False, dropna=False):
        check = str(check)
        if check == "column_in_dataframe":
            for missing in group["failure_case"]:
                problems.append(Problem(source.label, str(missing), _not_found(str(missing), source.columns)))
                rank[id(problems[-1])] = (0, 0, 0)
            continue
        info = registry.get(check)
        number = int(check[2 : check.index(":")]) if info is not None else 0
        if info is None:  # a pandera built-in we did not ask for; report it verbatim
            problems.append(Problem(source.label, _col(group), f"{check}: {_first_values(group['failure_case'])}"))
            continue
        index = pd.Index(pd.unique(group["index"].dropna()))
        if not len(index):  # a check on the whole table
            problems.append(Problem(source.label, info.column, info.stem))
            rank[id(problems[-1])] = (2, 0, number)
            continue
        index = index.sort_values()
        parts = (
            [(source.label, index)]
            if source.file_column is None or source.file_column not in raw
            else [
                (source.file_labels.get(str(name), str(name)), idx)
                for name, idx in raw.loc[index, source.file_column]
                .groupby(raw.loc[index, source.file_column], sort=True)
                .groups.items()
            ]
        )
        for label, idx in parts:
            values = _first_values(info.show(raw, pd.Index(idx))) if info.show_values else ()
            problems.append(Problem(label, info.column, f"{_rows(len(idx))} {info.stem}", len(idx), values))
            rank[id(problems[-1])] = (
                (2, 0, number) if info.across_columns or info.column not in order else (1, order[info.column], number)
            )
    return sorted(problems, key=lambda p: (p.source, *rank.get(id(p), (3, 0, 0))))


def _col(group: pd.DataFrame) -> str | None:
    cols = group["column"].dropna().unique()
    return str(cols[0]) if len(cols) else None


def _not_found(column: str, existing: Sequence[str]) -> str:
    """Message for a missing column, suggesting the closest existing names."""
    close = difflib.get_close_matches(column, list(existing), n=3, cutoff=0.6)
    if not close:  # try ignoring case and separators
        folded = {c.casefold().replace("_", "").replace(" ", ""): c for c in existing}
        key = column.casefold().replace("_", "").replace(" ", "")
        close = [folded[k] for k in difflib.get_close_matches(key, list(folded), n=3, cutoff=0.6)]
    text = "not found"
    if close:
        text += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    shown = ", ".join(list(existing)[:12]) + (", ..." if len(existing) > 12 else "")
    return f"{text} (columns: {shown})"
