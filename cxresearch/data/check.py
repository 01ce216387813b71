"""Checking a dataset against its spec: :func:`validate_dataset` and its :class:`ValidationReport`.

The entry point of ``cxresearch validate`` (:mod:`cxresearch.data.commands`): it loads the data with
full validation (:func:`cxresearch.data.loading.load_dataset`) and reports every problem found instead
of raising, or a short summary of what was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxresearch.data import MIN_ANSWERS
from cxresearch.data.loading import CXData, left_out_text, load_dataset
from cxresearch.data.nps import nps_score
from cxresearch.data.rules import DataValidationError, Problem, natural_key
from cxresearch.data.spec import DatasetSpec, SpecError, load_spec


@dataclass
class ValidationReport:
    """Result of :func:`validate_dataset`: ``ok``, every problem, and the loaded data when it is ok."""

    spec_path: str
    problems: list[Problem] = field(default_factory=list)
    data: CXData | None = None
    warnings: list[str] = field(default_factory=list)  # things that load but deserve a look (data_warnings)

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
        if self.data is None:
            return f"{self.spec_path}: ok"
        return describe_data(self.data, self.spec_path, self.warnings)


def describe_data(data: CXData, title: str = "", warnings: list[str] | None = None) -> str:
    """Summary lines of loaded data (used by ``cxresearch validate``); ``warnings`` default to the
    recommend-scale warning alone (``validate_dataset`` passes :func:`data_warnings`)."""
    spec = data.spec
    lines = [f"{title or spec.name}: ok (dataset {spec.name!r}" + (f", as of {spec.as_of}" if spec.as_of else "") + ")"]
    for role in ("survey", "customers", "benchmark"):
        frame = getattr(data, role)
        if frame is not None:
            files = data.sources.get(role, [])
            where = Path(files[0]).name if len(files) == 1 else f"{len(files)} files" if files else "a query"
            lines.append(f"  {role}: {len(frame):,} rows ({where})")
    survey = data.survey
    if survey is not None and spec.survey is not None:

        def values(col: str) -> str:
            return ", ".join(sorted(survey[col].dropna().unique().tolist(), key=natural_key))

        lines.append(f"  segments: {values('segment')}")
        lines.append(f"  markets: {values('market')}")
        lines.append(f"  waves: {values('wave')}")
        usage = ", ".join(f"{key} {100 * survey[key].notna().mean():.0f}%" for key in spec.survey.touchpoints)
        lines.append(f"  touchpoint usage: {usage}")
        if "recommend" in survey:
            answered = int(survey["recommend"].notna().sum())
            score = f"{nps_score(survey['recommend'].astype('float64')):.1f}" if answered else "none"
            lines.append(f"  NPS: {score} ({answered:,} answers)")
            if warnings is None:
                warning = recommend_scale_warning(survey["recommend"], spec.survey.outcome.column)
                if warning:
                    lines.append(f"  warning: {warning}")
        elif "outcome" in survey:
            counts = survey["outcome"].value_counts().sort_index()
            per_code = ", ".join(f"{int(code)}: {int(n):,}" for code, n in counts.items())
            lines.append(f"  outcome ({spec.survey.outcome.kind}): {int(counts.sum()):,} answers ({per_code})")
        if spec.survey.comments is not None:
            names = [n for n in spec.survey.comments.names if n in survey]
            written = survey[names].apply(lambda col: col.str.strip().str.len() > 0).any(axis=1) if names else []
            n_written = int(sum(written))
            lines.append(
                f"  comments: {n_written:,} of {len(survey):,} answers ({100 * n_written / max(len(survey), 1):.0f}%; "
                f"column {', '.join(spec.survey.comments.columns)}, language {spec.survey.comments.language})"
            )
    if data.customers is not None and len(data.customers) and survey is None:
        cust = data.customers
        for col in ("segment", "market", *(spec.customers.groups if spec.customers else {})):
            if col in cust:
                shown = sorted(cust[col].dropna().astype(str).unique().tolist(), key=natural_key)
                lines.append(f"  {col} (customers): {', '.join(shown[:12])}" + (" ..." if len(shown) > 12 else ""))
    if data.customers is not None and len(data.customers):
        churn = data.customers["churn"]
        lines.append(f"  churn rate: {100 * churn.mean():.1f}% ({int(churn.sum()):,} of {len(churn):,} customers)")
    if data.benchmark is not None:
        if spec.benchmark is None:
            raise ValueError(f"dataset {spec.name!r}: a benchmark table was loaded but the spec has no 'benchmark:'")
        brands = sorted(data.benchmark["brand"].dropna().unique().tolist(), key=natural_key)
        lines.append(f"  benchmark brands: {', '.join(brands)} (own: {spec.benchmark.own_brand})")
    lines += [f"  note: {note}" for note in data.notes]
    lines += [f"  warning: {warning}" for warning in warnings or []]
    return "\n".join(lines)


def recommend_scale_warning(answers: Any, column: str) -> str | None:
    """A warning when a column declared as the 0-10 recommend answer only uses 1-5 (a CSAT score read as
    0-10 would make everyone a detractor); None otherwise (or with fewer than 30 answers)."""
    import pandas as pd

    values = pd.to_numeric(pd.Series(answers), errors="coerce").dropna()
    if len(values) < 30 or values.min() < 1 or values.max() > 5:
        return None
    return (
        f"column {column!r} is declared as the 0-10 recommend answer, but its {len(values):,} answers only use "
        f"{values.min():g}-{values.max():g}: read as 0-10, everyone would be a detractor (NPS -100). If it is a "
        "1-5 score, declare the outcome with kind: ordinal (and, for the economics study, classes: {from: outcome, "
        "levels: {...}}) or recode it to 0-10."
    )


def validate_dataset(
    spec: DatasetSpec | str | Path, segment: Any = None, market: Any = None, min_answers: int = MIN_ANSWERS
) -> ValidationReport:
    """Load and validate a dataset described by a spec; every problem found is in the report (none raised),
    with :func:`data_warnings` (groups under ``min_answers`` answers, unused touchpoints...) when it loads.

    An unreadable spec is reported as problems too (one per spec error line).
    """
    label = str(spec) if not isinstance(spec, DatasetSpec) else spec.name
    try:
        if not isinstance(spec, DatasetSpec):
            spec = load_spec(spec)
    except (SpecError, FileNotFoundError, ValueError) as exc:
        lines = _yaml_error_line(exc) or str(exc).splitlines() or [str(exc)]
        return ValidationReport(label, [Problem(label, None, line.removeprefix(f"{label}: ")) for line in lines])
    try:
        data = load_dataset(spec, segment=segment, market=market, validate=True)
    except DataValidationError as exc:
        return ValidationReport(label, exc.problems)
    return ValidationReport(label, [], data, data_warnings(data, min_answers))


def _yaml_error_line(exc: BaseException) -> list[str]:
    """A YAML syntax error as one line with its position (PyYAML's message runs over eight lines)."""
    import yaml

    cause = exc.__cause__
    if not isinstance(cause, yaml.MarkedYAMLError):
        return []
    mark = cause.problem_mark or cause.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = ""
    if cause.context and cause.context_mark is not None:
        context = f" ({cause.context} at line {cause.context_mark.line + 1}, column {cause.context_mark.column + 1})"
    return [f"invalid YAML{where}: {cause.problem or cause.context}{context}"]


def data_warnings(data: CXData, min_answers: int = MIN_ANSWERS) -> list[str]:
    """What loads but would mislead a study: a touchpoint or emotion item nobody answered (no mean can be
    shown), an answer scale of which only a part is used (a 1-5 score declared as 0-10), and segments,
    markets or segment x market groups with fewer than ``min_answers`` outcome answers (too few to report
    a driver model or a scorecard on)."""
    survey, spec = data.survey, data.spec.survey
    if survey is None or spec is None:
        return []
    out: list[str] = []
    columns = {key: tp.column for key, tp in spec.touchpoints.items()}
    columns.update({key: item.column for key, item in (spec.emotion.items.items() if spec.emotion else [])})
    for key, column in columns.items():
        if key in survey and len(survey) and survey[key].isna().all():
            what = "touchpoint" if key in spec.touchpoints else "emotion item"
            out.append(
                f"{what} {key} (column {column}): no answers at all ({len(survey):,} rows blank or not applicable); "
                "it gets no mean, box shares or driver effect"
            )
    for key, tp in spec.touchpoints.items():
        if key in survey:
            what = f"touchpoint {key} (column {tp.column})"
            warning = subrange_warning(survey[key], tp.scale.min, tp.scale.max, what)
            if warning:
                out.append(warning)
    answer = "recommend" if "recommend" in survey else "outcome" if "outcome" in survey else None
    if answer == "recommend":
        warning = recommend_scale_warning(survey["recommend"], spec.outcome.column)
        warning = warning or subrange_warning(
            survey["recommend"], 0, 10, f"the 0-10 recommend answer (column {spec.outcome.column})", narrow=True
        )
        if warning:
            out.append(warning)
    if answer is None or min_answers <= 1:
        return out
    answered = survey[survey[answer].notna()]
    if len(answered) < min_answers:
        out.append(
            f"only {len(answered):,} outcome answers in all (min_answers {min_answers}): too few for driver "
            "numbers or scorecard intervals"
        )
        return out
    dims = [d for d in ("segment", "market") if survey[d].nunique() > 1]
    groupings = [[d] for d in dims] + ([dims] if len(dims) == 2 else [])
    for group in groupings:
        counts = answered.groupby(group, observed=True).size()
        levels = survey.groupby(group, observed=True).size().index
        counts = counts.reindex(levels, fill_value=0)
        small = counts[counts < min_answers]
        if small.empty:
            continue
        names = [" x ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in small.index]
        ordered = sorted(zip(small.to_numpy().tolist(), names), key=lambda item: (item[0], natural_key(item[1])))
        shown = ", ".join(f"{name} ({int(n):,})" for n, name in ordered[:8])
        more = f" and {len(small) - 8} more" if len(small) > 8 else ""
        out.append(
            f"{' x '.join(group)}: {len(small):,} of {len(counts):,} with fewer than {min_answers} outcome answers "
            f"(min_answers): {shown}{more}; their reports show counts and 'too few answers', no estimates"
        )
    return out


def subrange_warning(answers: Any, low: float, high: float, what: str, narrow: bool = False) -> str | None:
    """A warning when the answers of a scale with 7 or more points use only its lower half (a 1-5 score
    declared as 0-10 or 1-10 would read as poor ratings), or (``narrow``) span under half the scale; None
    otherwise (or with fewer than 30 answers)."""
    import pandas as pd

    values = pd.to_numeric(pd.Series(answers), errors="coerce").dropna()
    width = high - low
    if len(values) < 30 or width < 6:
        return None
    lo, hi = float(values.min()), float(values.max())
    if hi <= low + width / 2 or (narrow and hi - lo < width / 2):
        return (
            f"{what}: its {len(values):,} answers only use {lo:g}-{hi:g} of the scale {low:g}-{high:g}; check the "
            "declared scale (or recode) if the export uses a shorter one"
        )
    return None


def loading_line(data: Any, role: str = "survey") -> str | None:
    """What loading used and left out, in one line: '17,859 answers from 17,942 rows: 83 blank outcome
    answers left out.' (from :class:`~cxresearch.data.CXData` ``rows`` and ``left_out``), plus 'no survey.id
    column: each row's number is its id.' when the spec declares no id. None when the role was not loaded."""
    rows = getattr(data, "rows", {}).get(role)
    if rows is None:
        return None
    line = left_out_text(rows, getattr(data, "left_out", {}).get(role, {})) + "."
    table = getattr(getattr(data, "spec", None), role, None)
    if table is not None and getattr(table, "id", "") is None and rows:
        line += f" No {role}.id column: each row's number (in file order) is its id."
    return line
