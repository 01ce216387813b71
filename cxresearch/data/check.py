"""Checking a dataset against its spec: :func:`validate_dataset` and its :class:`ValidationReport`.

The entry point of ``cxresearch validate`` (:mod:`cxresearch.data.commands`): it loads the data with
full validation (:func:`cxresearch.data.loading.load_dataset`) and reports every problem found instead
of raising, or a short summary of what was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxresearch.data.loading import CXData, load_dataset
from cxresearch.data.nps import nps_score
from cxresearch.data.rules import DataValidationError, Problem, natural_key
from cxresearch.data.spec import DatasetSpec, SpecError, load_spec


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
    if survey is not None and spec.survey is not None:

        def values(col: str) -> str:
            return ", ".join(sorted(survey[col].dropna().unique().tolist(), key=natural_key))

        lines.append(f"  segments: {values('segment')}")
        lines.append(f"  markets: {values('market')}")
        lines.append(f"  waves: {values('wave')}")
        usage = ", ".join(f"{key} {100 * survey[key].notna().mean():.0f}%" for key in spec.survey.touchpoints)
        lines.append(f"  touchpoint usage: {usage}")
        if "recommend" in survey:
            lines.append(
                f"  NPS: {nps_score(survey['recommend'].astype('float64')):.1f} "
                f"({survey['recommend'].notna().sum():,} answers)"
            )
            warning = recommend_scale_warning(survey["recommend"], spec.survey.outcome.column)
            if warning:
                lines.append(f"  warning: {warning}")
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


def validate_dataset(spec: DatasetSpec | str | Path, segment: Any = None, market: Any = None) -> ValidationReport:
    """Load and validate a dataset described by a spec; every problem found is in the report (none raised).

    An unreadable spec is reported as problems too (one per spec error line).
    """
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
