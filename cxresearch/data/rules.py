"""What a spec's columns mean, and how problems in the data are reported.

Shared by :mod:`cxresearch.data.recode` (the SQL recoding), :mod:`cxresearch.data.validation` (the
pandera checks), :mod:`cxresearch.data.loading` and :mod:`cxresearch.economics.scale`; it imports
nothing else from the package but the spec, so none of those modules import each other in a cycle.

Every column a spec names gets a :class:`FieldRule` (:func:`rules_for`): its canonical name, kind,
scale, not-applicable codes, labels. Every problem found is a :class:`Problem`;
:class:`DataValidationError` carries all of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from cxresearch.data.spec import DatasetSpec, NACode, Recode, Scale, label_key

FieldKind = Literal["id", "code", "text", "date", "rating", "recommend", "label", "churn", "duration", "number"]

#: days per month used to express durations in months (365.25 / 12)
DAYS_PER_MONTH = 30.4375
#: months per unit of a duration column (``tenure_unit``)
MONTHS_PER_UNIT = {"days": 1 / DAYS_PER_MONTH, "weeks": 7 / DAYS_PER_MONTH, "months": 1.0, "years": 12.0}

#: text columns are handled as Arrow-backed strings (vectorised strip / lower / casts)
TEXT = pd.StringDtype("pyarrow")

#: how many distinct offending values a message shows
SHOW_VALUES = 5


# --------------------------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """One problem in the data: where (file, column), what, how many rows, the first offending values."""

    source: str
    column: str | None
    message: str
    rows: int = 0
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.source}: column {self.column}" if self.column else self.source
        text = f"{where}: {self.message}"
        return f"{text}: {', '.join(self.values)}" if self.values else text


class DataValidationError(ValueError):
    """The data does not match its spec; ``problems`` holds every problem found, ``str()`` lists them."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the data:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))

    def __reduce__(self) -> tuple[Any, ...]:  # keep the problems when pickled (e.g. across Dask workers)
        return (type(self), (self.problems,))


def natural_key(text: str) -> tuple:
    """Sort key that puts "2" before "10" and keeps text codes in alphabetical order."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)) if part
    )


# --------------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class FieldRule:
    """What one raw column means: its canonical name, kind, scale, codes and labels."""

    name: str  # canonical column name in CXData
    column: str  # column in the source table
    kind: FieldKind
    what: str  # in words, for messages ("segment", "touchpoint onboarding")
    required: bool = False  # every row needs a value
    scale: Scale | None = None
    na_codes: tuple[NACode, ...] = ()
    recode: Recode | None = None
    labels: dict[str, int] | None = None
    reverse: bool = False
    unique: bool = False
    time_unit: str = "months"  # for duration columns


@dataclass(frozen=True)
class SourceInfo:
    """How messages name a table: its label, every column it has, and (folders) the per-row file column."""

    label: str
    columns: tuple[str, ...]
    file_column: str | None = None
    file_labels: dict[str, str] = field(default_factory=dict)  # file path as DuckDB reports it -> label


def split_na_codes(codes: Sequence[NACode]) -> tuple[list[float], set[str]]:
    """Not-applicable codes split into numbers and lower-case words (``blank`` is left out: blanks are
    always missing)."""
    numbers = [float(c) for c in codes if not isinstance(c, str)]
    words = {label_key(c) for c in codes if isinstance(c, str) and c != "blank"}
    return numbers, words


def rules_for(spec: DatasetSpec, role: str) -> list[FieldRule]:
    """The field rules of one table role ("survey", "customers", "benchmark") of a spec."""
    if role == "survey":
        s = spec.survey
        if s is None:
            return []
        # without survey.id the loader numbers the rows (customer_id = row number) and there is no id rule
        rules = [FieldRule("customer_id", s.id, "id", "customer id", required=True)] if s.id else []
        rules += [
            FieldRule("segment", s.segment, "code", "segment", required=True),
            FieldRule("market", s.market, "code", "market", required=True),
        ]
        if s.wave:
            rules.append(FieldRule("wave", s.wave, "code", "wave", required=True))
        if s.date:
            rules.append(FieldRule("survey_date", s.date, "date", "survey date"))
        if s.unit:
            rules.append(FieldRule("unit", s.unit, "code", "unit"))
        for key, column in s.groups.items():
            rules.append(FieldRule(key, column, "code", f"group {key}"))
        for key, column in s.covariates.items():
            rules.append(FieldRule(key, column, "number", f"covariate {key}"))
        for key, tp in s.touchpoints.items():
            rules.append(
                FieldRule(
                    key, tp.column, "rating", f"touchpoint {key}", scale=tp.scale, na_codes=tuple(tp.not_applicable)
                )
            )
        if s.emotion is not None:
            for key, item in s.emotion.items.items():
                rules.append(
                    FieldRule(
                        key,
                        item.column,
                        "rating",
                        f"emotion item {key}",
                        scale=s.emotion.scale,
                        na_codes=tuple(s.emotion.not_applicable),
                        reverse=item.reverse,
                    )
                )
        if s.comments is not None:
            for name, column in zip(s.comments.names, s.comments.columns, strict=True):
                rules.append(FieldRule(name, column, "text", f"comment column {column!r}"))
        out = s.outcome
        if out.kind == "recommend":
            rules.append(
                FieldRule(
                    "recommend",
                    out.column,
                    "recommend",
                    "likelihood to recommend",
                    scale=out.answer_scale,
                    na_codes=tuple(out.not_applicable),
                    recode=out.recode,
                )
            )
        else:
            rules.append(
                FieldRule(
                    "outcome",
                    out.column,
                    "label",
                    f"{out.kind} outcome",
                    na_codes=tuple(out.not_applicable),
                    labels=out.labels,
                )
            )
        return rules
    if role == "customers":
        c = spec.customers
        if c is None:
            return []
        rules = [FieldRule("customer_id", c.id, "id", "customer id", required=True, unique=True)]
        if c.segment:
            rules.append(FieldRule("segment", c.segment, "code", "segment", required=True))
        if c.market:
            rules.append(FieldRule("market", c.market, "code", "market", required=True))
        if c.unit:
            rules.append(FieldRule("unit", c.unit, "code", "unit"))
        if c.tenure:
            rules.append(FieldRule("tenure", c.tenure, "duration", "tenure", required=True, time_unit=c.tenure_unit))
        if c.start:
            rules.append(FieldRule("start_date", c.start, "date", "start date", required=True))
        if c.end:
            rules.append(FieldRule("end_date", c.end, "date", "end date"))
        rules.append(FieldRule("churn", c.churn, "churn", "churn flag", required=True, labels=c.churn_labels))
        money = c.margin or c.revenue
        if money:
            rules.append(FieldRule("margin", money, "number", "margin" if c.margin else "revenue"))
        for col in c.cross_sell:
            rules.append(FieldRule(col, col, "number", f"cross-sell column {col}"))
        for key, column in c.groups.items():
            rules.append(FieldRule(key, column, "code", f"group {key}"))
        for key, column in c.covariates.items():
            rules.append(FieldRule(key, column, "number", f"covariate {key}"))
        return rules
    if role == "benchmark":
        b = spec.benchmark
        if b is None:
            return []
        rules = [FieldRule("brand", b.brand, "code", "brand", required=True)]
        if b.market:
            rules.append(FieldRule("market", b.market, "code", "market", required=True))
        if b.wave:
            rules.append(FieldRule("wave", b.wave, "code", "wave", required=True))
        if b.recommend:
            rules.append(
                FieldRule("recommend", b.recommend, "rating", "likelihood to recommend", scale=Scale(min=0, max=10))
            )
        for key, col in b.attributes.items():
            rules.append(
                FieldRule(
                    key, col, "rating", f"benchmark attribute {key}", scale=b.scale, na_codes=tuple(b.not_applicable)
                )
            )
        return rules
    raise ValueError(f"unknown table role {role!r}; use survey, customers or benchmark")
