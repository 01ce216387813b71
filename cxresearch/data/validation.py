"""Data validation: pandera schemas built from the dataset spec, and one clear message per problem.

Every column a spec names gets a *rule* (:class:`FieldRule`: its role, scale, not-applicable codes,
labels). The rules become a pandera ``DataFrameSchema`` that runs lazily on the raw table as read from
the source (CSV columns still text), so every problem is collected before anything is raised. Each
pandera failure is turned into a :class:`Problem` that names the file, the column, how many rows and the
first few offending values, e.g.::

    survey.parquet: column tp_branch: 3 rows outside the scale 1-5 (not-applicable codes: 0): 7, 8, -1

The parsing helpers here (not-applicable codes, numbers, dates, labels) are the same ones the loader
uses to build the canonical frames, so what validation accepts is exactly what loading converts.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
from pandera.errors import SchemaErrors

from cxresearch.data.spec import DatasetSpec, NACode, Recode, Scale, SpecError, label_key, load_spec

if TYPE_CHECKING:  # pragma: no cover
    from cxresearch.data.loading import CXData

FieldKind = Literal["id", "code", "date", "rating", "recommend", "label", "churn", "duration", "number"]

#: days per month used to express durations in months (365.25 / 12)
DAYS_PER_MONTH = 30.4375
MONTHS_PER_UNIT = {"days": 1 / DAYS_PER_MONTH, "weeks": 7 / DAYS_PER_MONTH, "months": 1.0, "years": 12.0}

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


@dataclass
class ValidationReport:
    """Result of :func:`validate_dataset`: ``ok``, every problem, and the loaded data when it is ok."""

    spec_path: str
    problems: list[Problem] = field(default_factory=list)
    data: CXData | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """A short human summary: tables and rows, segments, markets, waves, touchpoint usage, churn."""
        if not self.ok:
            n = len(self.problems)
            lines = [f"{self.spec_path}: {n} problem{'s' if n != 1 else ''}"]
            lines += [f"  - {p}" for p in self.problems]
            return "\n".join(lines)
        return describe_data(self.data, self.spec_path) if self.data is not None else f"{self.spec_path}: ok"


def describe_data(data: CXData, title: str = "") -> str:
    """Summary lines of loaded data (used by ``cxresearch validate``)."""
    spec = data.spec
    lines = [f"{title or spec.name}: ok (dataset {spec.name!r}" + (f", as of {spec.as_of}" if spec.as_of else "") + ")"]
    for role in ("survey", "customers", "benchmark"):
        frame = getattr(data, role)
        if frame is not None:
            files = data.sources.get(role, [])
            where = Path(files[0]).name if len(files) == 1 else f"{len(files)} files"
            lines.append(f"  {role}: {len(frame):,} rows ({where})")
    survey = data.survey
    if survey is not None:
        def values(col: str) -> str:
            return ", ".join(sorted(survey[col].dropna().unique().tolist(), key=_natural_key))

        lines.append(f"  segments: {values('segment')}")
        lines.append(f"  markets: {values('market')}")
        lines.append(f"  waves: {values('wave')}")
        usage = ", ".join(f"{key} {100 * survey[key].notna().mean():.0f}%" for key in spec.survey.touchpoints)
        lines.append(f"  touchpoint usage: {usage}")
        if "recommend" in survey:
            from cxresearch.data.nps import nps_score

            lines.append(f"  NPS: {nps_score(survey['recommend'].astype('float64')):.1f} "
                         f"({survey['recommend'].notna().sum():,} answers)")
    if data.customers is not None and len(data.customers):
        churn = data.customers["churn"]
        lines.append(f"  churn rate: {100 * churn.mean():.1f}% ({int(churn.sum()):,} of {len(churn):,} customers)")
    if data.benchmark is not None:
        brands = sorted(data.benchmark["brand"].dropna().unique().tolist(), key=_natural_key)
        lines.append(f"  benchmark brands: {', '.join(brands)} (own: {spec.benchmark.own_brand})")
    lines += [f"  note: {note}" for note in data.notes]
    return "\n".join(lines)


def _natural_key(text: str) -> tuple:
    """Sort "2" before "10" and keep text codes in alphabetical order."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", str(text)) if part)


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


def rules_for(spec: DatasetSpec, role: str) -> list[FieldRule]:
    """The field rules of one table role ("survey", "customers", "benchmark") of a spec."""
    if role == "survey":
        s = spec.survey
        rules = [FieldRule("customer_id", s.id, "id", "customer id", required=True),
                 FieldRule("segment", s.segment, "code", "segment", required=True),
                 FieldRule("market", s.market, "code", "market", required=True)]
        if s.wave:
            rules.append(FieldRule("wave", s.wave, "code", "wave", required=True))
        if s.date:
            rules.append(FieldRule("survey_date", s.date, "date", "survey date"))
        if s.unit:
            rules.append(FieldRule("unit", s.unit, "code", "unit"))
        for key, tp in s.touchpoints.items():
            rules.append(FieldRule(key, tp.column, "rating", f"touchpoint {key}", scale=tp.scale,
                                   na_codes=tuple(tp.not_applicable)))
        if s.emotion is not None:
            for key, item in s.emotion.items.items():
                rules.append(FieldRule(key, item.column, "rating", f"emotion item {key}", scale=s.emotion.scale,
                                       na_codes=tuple(s.emotion.not_applicable), reverse=item.reverse))
        out = s.outcome
        if out.kind == "recommend":
            rules.append(FieldRule("recommend", out.column, "recommend", "likelihood to recommend",
                                   scale=out.answer_scale, na_codes=tuple(out.not_applicable), recode=out.recode))
        else:
            rules.append(FieldRule("outcome", out.column, "label", f"{out.kind} outcome",
                                   na_codes=tuple(out.not_applicable), labels=out.labels))
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
        if c.margin or c.revenue:
            rules.append(FieldRule("margin", c.margin or c.revenue, "number", "margin" if c.margin else "revenue"))
        for col in c.cross_sell:
            rules.append(FieldRule(col, col, "number", f"cross-sell column {col}"))
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
            rules.append(FieldRule("recommend", b.recommend, "rating", "likelihood to recommend",
                                   scale=Scale(min=0, max=10)))
        for key, col in b.attributes.items():
            rules.append(FieldRule(key, col, "rating", f"benchmark attribute {key}", scale=b.scale,
                                   na_codes=tuple(b.not_applicable)))
        return rules
    raise ValueError(f"unknown table role {role!r}; use survey, customers or benchmark")


# --------------------------------------------------------------------------------------------- parsing
#: text columns are handled as Arrow-backed strings (vectorised strip / lower / casts)
TEXT = pd.StringDtype("pyarrow")


def _is_text(raw: pd.Series) -> bool:
    if isinstance(raw.dtype, pd.StringDtype):
        return True
    return raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty")


def _is_number(raw: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype)


def stripped_text(raw: pd.Series) -> pd.Series:
    """A text column stripped of surrounding spaces, with empty strings as <NA> (Arrow strings)."""
    text = raw.astype(TEXT).str.strip()
    return text.mask(text.eq("").fillna(False).astype(bool))


def _per_value(raw: pd.Series, fn: Callable[[Any], Any]) -> pd.Series:
    """Fallback for columns mixing Python types: apply ``fn`` to each non-missing value."""
    return raw.astype(object).map(lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v)) else fn(v))


def _text_of(raw: pd.Series) -> pd.Series:
    """Any column as stripped text (numbers without a trailing .0, booleans as true/false), blanks <NA>."""
    if _is_text(raw):
        return stripped_text(raw)
    if _is_number(raw):
        arr = pa.array(raw.astype("float64") if pd.api.types.is_float_dtype(raw.dtype) else raw, from_pandas=True)
        return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.string())), index=raw.index)
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.map({True: "true", False: "false"}).astype(TEXT)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        at_midnight = (raw.dropna() == raw.dropna().dt.normalize()).all()
        return raw.dt.strftime("%Y-%m-%d" if at_midnight else "%Y-%m-%dT%H:%M:%S").astype(TEXT)

    def text(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "true" if v else "false"
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        if isinstance(v, (date, datetime)):
            return v.isoformat()
        return str(v).strip()

    return stripped_text(_per_value(raw, text).astype(object))


def blank_mask(raw: pd.Series) -> pd.Series:
    """NULL, NaN or an empty / whitespace-only string: always missing."""
    if _is_text(raw) or raw.dtype == object:
        return _text_of(raw).isna().astype(bool)
    return raw.isna().astype(bool)


def _to_float(text: pd.Series) -> pd.Series:
    """Stripped text -> float64 (NaN where not a number). Arrow's cast is the fast path for clean columns."""
    try:
        arr = pa.array(text.array).cast(pa.float64())
        return pd.Series(arr.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return pd.to_numeric(text.astype(object), errors="coerce").astype("float64")


def _codes(codes: Sequence[NACode]) -> tuple[list[float], set[str]]:
    numbers = [float(c) for c in codes if not isinstance(c, str)]
    words = {label_key(c) for c in codes if isinstance(c, str) and c != "blank"}
    return numbers, words


def na_mask(raw: pd.Series, codes: Sequence[NACode]) -> pd.Series:
    """Rows holding a not-applicable code (or blank): these become missing, never a score."""
    return parse_numbers(raw, codes, _only_missing=True)[0]


def parse_numbers(raw: pd.Series, codes: Sequence[NACode] = (), _only_missing: bool = False
                  ) -> tuple[pd.Series, pd.Series]:
    """(float64 values with not-applicable codes as NaN, mask of rows that are not numbers)."""
    numbers, words = _codes(codes)
    if _is_number(raw) or pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.astype("float64")
        missing = values.isna() | values.isin(numbers)
    else:
        text = _text_of(raw)
        missing = text.isna().astype(bool)
        if words:
            missing |= text.str.lower().isin(words).fillna(False).astype(bool)
        values = _to_float(text.mask(missing))
        if numbers:
            missing |= values.isin(numbers)
    if _only_missing:
        return missing, missing
    values = values.mask(missing)
    bad = (~missing) & values.isna()
    return values, bad.astype(bool)


def parse_dates(raw: pd.Series, date_format: str | None = None) -> tuple[pd.Series, pd.Series]:
    """(datetime64[ns] values, mask of non-blank rows that are not dates). Text dates: ISO 8601 by default."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        values = raw.dt.tz_localize(None) if getattr(raw.dt, "tz", None) is not None else raw
        missing = values.isna()
    else:
        text = _text_of(raw)
        missing = text.isna()
        values = pd.to_datetime(text.astype(object), errors="coerce", format=date_format or "ISO8601")
    values = values.astype("datetime64[ns]")
    bad = (~missing.astype(bool)) & values.isna()
    return values, bad.astype(bool)


def parse_labels(raw: pd.Series, labels: dict[str, int], codes: Sequence[NACode] = ()) -> tuple[pd.Series, pd.Series]:
    """(Int64 codes from ``labels``, mask of rows whose value is not a known label nor a not-applicable code)."""
    keys = _text_of(raw).str.lower()
    numbers, words = _codes(codes)
    missing = keys.isna().astype(bool)
    na_words = words | {label_key(n) for n in numbers}
    if na_words:
        missing |= keys.isin(na_words).fillna(False).astype(bool)
    values = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    for label, code in labels.items():
        values[keys.eq(label_key(label)).fillna(False).astype(bool).to_numpy()] = code
    values = values.mask(missing)
    bad = (~missing) & values.isna()
    return values, bad.astype(bool)


def parse_churn(raw: pd.Series, labels: dict[str, int] | None) -> tuple[pd.Series, pd.Series]:
    """(Int64 0/1 churn flags, mask of non-blank rows that are not 0/1 or a known churn label)."""
    if labels:
        return parse_labels(raw, labels)
    values, bad = parse_numbers(raw)
    bad = bad | (values.notna() & ~values.isin([0.0, 1.0]))
    return values.where(~bad).astype("Int64"), bad


def code_strings(raw: pd.Series) -> pd.Series:
    """Codes (ids, segments, markets, waves, units, brands) as stripped strings; blanks become <NA>.

    Whole numbers lose their ``.0`` (a wave stored as 1.0 is "1"); text such as ``NO`` or ``007`` is kept.
    The dtype is pandas' ``string`` (Arrow-backed).
    """
    return _text_of(raw)


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


class _Parsed:
    """Parse each raw column once per validation run (several checks look at the same parsed values)."""

    def __init__(self, date_format: str | None):
        self.date_format = date_format
        self._cache: dict[tuple[str, str], tuple[pd.Series, pd.Series]] = {}

    def get(self, rule: FieldRule, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
        key = (rule.name, rule.column)
        if key not in self._cache:
            if rule.kind in ("rating", "recommend", "number", "duration"):
                self._cache[key] = parse_numbers(raw, rule.na_codes)
            elif rule.kind == "date":
                self._cache[key] = parse_dates(raw, self.date_format)
            elif rule.kind == "label":
                self._cache[key] = parse_labels(raw, rule.labels or {}, rule.na_codes)
            elif rule.kind == "churn":
                self._cache[key] = parse_churn(raw, rule.labels)
            else:
                self._cache[key] = (code_strings(raw), pd.Series(False, index=raw.index))
        return self._cache[key]


def _column_checks(rule: FieldRule, parsed: _Parsed, essential_only: bool,
                   register: Callable[[_CheckInfo], str]) -> list[pandera.Check]:
    """pandera checks for one rule; each check returns True for good rows."""
    col = rule.column
    checks: list[pandera.Check] = []

    def add(fn: Callable[[pd.Series], pd.Series], stem: str, show_values: bool = True) -> None:
        key = register(_CheckInfo(col, stem, lambda raw, idx: raw.loc[idx, col], show_values))
        checks.append(pandera.Check(fn, error=key, name=key, ignore_na=False))

    if rule.required:
        add(lambda s: ~blank_mask(s), f"with no {rule.what} (every row needs one)", show_values=False)

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
        if rule.kind == "duration" and not essential_only:
            add(lambda s: ~(parsed.get(rule, s)[0] < 0), "with a negative duration")
    elif rule.kind == "date":
        expected = rule_date_hint(parsed.date_format)
        add(lambda s: ~parsed.get(rule, s)[1], f"not a date (expected {expected})")
    elif rule.kind == "label":
        known = ", ".join(sorted(rule.labels or {}))
        add(lambda s: ~parsed.get(rule, s)[1], f"with unknown labels (known: {known}){_codes_note(rule.na_codes)}")
    elif rule.kind == "churn":
        if rule.labels:
            known = ", ".join(sorted(rule.labels))
            add(lambda s: ~parsed.get(rule, s)[1], f"with unknown churn labels (known: {known})")
        else:
            add(lambda s: ~parsed.get(rule, s)[1],
                "not a 0/1 churn flag (map text values with churn_labels, e.g. {Yes: 1, No: 0})")
    elif rule.kind == "id" and rule.unique and not essential_only:
        def unique(s: pd.Series) -> pd.Series:
            ids = parsed.get(rule, s)[0]
            return ~(ids.notna() & ids.duplicated(keep=False))

        add(unique, "with a duplicated customer id (one row per customer expected)")
    return checks


def rule_date_hint(date_format: str | None) -> str:
    """How the expected date format is described in messages."""
    return f"the spec's date_format {date_format}" if date_format else "ISO 8601, YYYY-MM-DD"


def _whole(values: pd.Series) -> pd.Series:
    return values.isna() | np.isclose(values.fillna(0.0), np.round(values.fillna(0.0)))


def build_schema(spec: DatasetSpec, role: str, rules: Sequence[FieldRule], present: Sequence[str],
                 essential_only: bool = False) -> tuple[pandera.DataFrameSchema, dict[str, _CheckInfo], _Parsed]:
    """The pandera schema of one table role, what each check's failures mean, and the parsed-values cache.

    ``essential_only`` keeps only what recoding needs (columns present, required values, values that
    parse, known labels) and drops scale ranges, duplicates, negative durations and cross-column checks.
    """
    registry: dict[str, _CheckInfo] = {}

    def register(info: _CheckInfo) -> str:
        key = f"cx{len(registry)}:{info.column}"
        registry[key] = info
        return key

    parsed = _Parsed(spec.date_format)
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
    return schema, registry, parsed


def _frame_checks(spec: DatasetSpec, role: str, rules: dict[str, FieldRule], present: set[str], parsed: _Parsed,
                  register: Callable[[_CheckInfo], str]) -> list[pandera.Check]:
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
            keys = pd.DataFrame({c: code_strings(df[c]) for c in cols})
            return ~(keys.notna().all(axis=1) & keys.duplicated(keep=False))

        if rwave:
            stem = "with a duplicated (customer id, wave) pair (one answer per customer and wave expected)"
            show = (lambda raw, idx: [_Shown(f"{_show(a)} in wave {_show(b)}")
                                      for a, b in zip(raw.loc[idx, rid.column], raw.loc[idx, rwave.column])])
        else:
            stem = "with a duplicated customer id (one answer per customer expected; declare survey.wave?)"
            show = (lambda raw, idx: raw.loc[idx, rid.column])
        add(unique_answers, _CheckInfo(" x ".join(cols), stem, show))

    if role == "customers":
        start, end, churn = rules.get("start_date"), rules.get("end_date"), rules.get("churn")
        as_of = pd.Timestamp(spec.as_of) if spec.as_of else None
        if has("start_date", "end_date"):
            def ordered(df: pd.DataFrame) -> pd.Series:
                s = parsed.get(start, df[start.column])[0]
                e = parsed.get(end, df[end.column])[0]
                return ~(e < s)

            add(ordered, _CheckInfo(f"{start.column}/{end.column}",
                                    "with an end date before the start date (negative duration)",
                                    lambda raw, idx: [_Shown(f"{_show(a)} -> {_show(b)}") for a, b in
                                                      zip(raw.loc[idx, start.column], raw.loc[idx, end.column])]))
        if has("start_date") and as_of is not None:
            def started(df: pd.DataFrame) -> pd.Series:
                s = parsed.get(start, df[start.column])[0]
                e = parsed.get(end, df[end.column])[0] if has("end_date") else pd.Series(pd.NaT, index=df.index)
                return ~(e.isna() & (s > as_of))

            add(started, _CheckInfo(start.column, f"with a start date after as_of {spec.as_of} and no end date "
                                    "(negative duration)", lambda raw, idx: raw.loc[idx, start.column]))
        if has("start_date", "end_date", "churn"):
            def churn_has_end(df: pd.DataFrame) -> pd.Series:
                flag = parsed.get(churn, df[churn.column])[0]
                e = parsed.get(end, df[end.column])[0]
                return ~(flag.eq(1).fillna(False).astype(bool) & e.isna())

            add(churn_has_end, _CheckInfo(f"{churn.column}/{end.column}",
                                          "with churn = 1 but no end date",
                                          lambda raw, idx: raw.loc[idx, rules["customer_id"].column]
                                          if has("customer_id") else [], True))

    if role == "benchmark" and has("brand") and spec.benchmark is not None:
        rbrand = rules["brand"]
        own = spec.benchmark.own_brand

        def own_present(df: pd.DataFrame) -> bool:
            brands = code_strings(df[rbrand.column])
            return bool(len(brands) == 0 or (brands == own).any())

        add(own_present, _CheckInfo(rbrand.column, f"own_brand {own!r} does not occur", lambda raw, idx: [], False))
    return checks


def run_schema(raw: pd.DataFrame, schema: pandera.DataFrameSchema, registry: dict[str, _CheckInfo],
               source: SourceInfo) -> list[Problem]:
    """Validate ``raw`` lazily and turn every pandera failure into a :class:`Problem`."""
    try:
        schema.validate(raw, lazy=True)
    except SchemaErrors as exc:
        return _problems(exc.failure_cases, raw, registry, source)
    return []


def _problems(failures: pd.DataFrame, raw: pd.DataFrame, registry: dict[str, _CheckInfo],
              source: SourceInfo) -> list[Problem]:
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
        number = int(check[2:check.index(":")]) if info is not None else 0
        if info is None:  # a pandera built-in we did not ask for; report it verbatim
            problems.append(Problem(source.label, _col(group), f"{check}: {_first_values(group['failure_case'])}"))
            continue
        index = pd.Index(pd.unique(group["index"].dropna()))
        if not len(index):  # a check on the whole table
            problems.append(Problem(source.label, info.column, info.stem))
            rank[id(problems[-1])] = (2, 0, number)
            continue
        index = index.sort_values()
        parts = ([(source.label, index)] if source.file_column is None or source.file_column not in raw
                 else [(source.file_labels.get(str(name), str(name)), idx) for name, idx in
                       raw.loc[index, source.file_column].groupby(raw.loc[index, source.file_column],
                                                                  sort=True).groups.items()])
        for label, idx in parts:
            values = _first_values(info.show(raw, pd.Index(idx))) if info.show_values else ()
            problems.append(Problem(label, info.column, f"{_rows(len(idx))} {info.stem}", len(idx), values))
            rank[id(problems[-1])] = ((2, 0, number) if info.across_columns or info.column not in order
                                      else (1, order[info.column], number))
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


# --------------------------------------------------------------------------------------------- entry point
def validate_dataset(spec: DatasetSpec | str | Path, segment: Any = None, market: Any = None) -> ValidationReport:
    """Load and validate a dataset described by a spec; every problem found is in the report (none raised).

    An unreadable spec is reported as problems too (one per spec error line).
    """
    from cxresearch.data.loading import load_dataset

    label = str(spec) if not isinstance(spec, DatasetSpec) else spec.name
    try:
        if not isinstance(spec, DatasetSpec):
            spec = load_spec(spec)
    except (SpecError, FileNotFoundError, ValueError) as exc:
        lines = str(exc).splitlines() or [str(exc)]
        return ValidationReport(label, [Problem(label, None, line.removeprefix(f"{label}: ")) for line in lines])
    try:
        data = load_dataset(spec, segment=segment, market=market, validate=True)
    except DataValidationError as exc:
        return ValidationReport(label, exc.problems)
    return ValidationReport(label, [], data)
