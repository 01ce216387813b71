"""Dataset spec: a YAML file that maps any survey / CRM export to the roles cxresearch needs.

A researcher describes their files (CSV, Parquet, a folder of tables, a DuckDB database) and says which
column plays which role (id, segment, market, wave, touchpoint ratings with their scale and
not-applicable codes, emotion items, the outcome, the customer table, a competitor benchmark). No code.

The spec is validated with pydantic (unknown keys are rejected with their path); the *data* is validated
with pandera on load (:mod:`cxresearch.data.validation`).
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cxresearch.yamlio import load_yaml

#: A not-applicable code: a number, or the word ``blank`` (empty string / NULL in the export).
NACode = float | int | str

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"{what} {value!r} must be an identifier (letters, digits, underscore)")
    return value


class TableSource(_Strict):
    """Where a table comes from. Exactly one of ``path`` or ``database`` is given.

    - ``path``: a CSV or Parquet file, or a folder of such files (all unioned by column name);
      relative paths are resolved against the spec file's folder.
    - ``database`` + ``table`` or ``query``: a DuckDB database file, read-only.
    """

    path: str | None = None
    format: Literal["csv", "parquet"] | None = None  # default: from the file extension
    database: str | None = None
    table: str | None = None
    query: str | None = None
    csv_delimiter: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "TableSource":
        if (self.path is None) == (self.database is None):
            raise ValueError("give exactly one of 'path' (CSV/Parquet file or folder) or 'database' (DuckDB file)")
        if self.database is not None and (self.table is None) == (self.query is None):
            raise ValueError("a DuckDB source needs exactly one of 'table' or 'query'")
        if self.path is not None and (self.table is not None or self.query is not None):
            raise ValueError("'table' and 'query' apply only to a DuckDB 'database' source")
        return self


class Scale(_Strict):
    """A rating scale, inclusive, e.g. 1-5, 0-10, 1-100."""

    min: float
    max: float

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError(f"a scale is [min, max], got {list(value)!r}")
            return {"min": value[0], "max": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Scale":
        if not self.min < self.max:
            raise ValueError(f"scale min {self.min} must be below max {self.max}")
        return self

    @property
    def points(self) -> int:
        """Number of answer categories on an integer scale."""
        return int(round(self.max - self.min)) + 1

    def __str__(self) -> str:
        return f"{self.min:g}-{self.max:g}"


def _check_na_codes(codes: list[NACode], scale: Scale, what: str) -> list[NACode]:
    for code in codes:
        if isinstance(code, str):
            if code.strip().lower() not in ("blank", ""):
                # a string code such as "NA" or "n/a" in a CSV export
                continue
        elif scale.min <= float(code) <= scale.max:
            raise ValueError(
                f"{what}: not-applicable code {code!r} lies inside the scale {scale}; "
                "it would be indistinguishable from a real answer")
    return codes


class Touchpoint(_Strict):
    """One touchpoint experience rating (one column)."""

    column: str
    label: str | None = None
    channel: str | None = None  # branch, call centre, web, app, billing...
    stage: str | None = None  # journey stage: onboarding, usage, service, billing...
    need: str | None = None  # customer need served (for initiative roadmaps)
    scale: Scale
    not_applicable: list[NACode] = Field(default_factory=list)


class Item(_Strict):
    """One survey item (e.g. an emotion Likert item)."""

    column: str
    label: str | None = None
    reverse: bool = False  # reverse-keyed item: scored as max + min - x


class Emotion(_Strict):
    """Emotion items (Likert) measuring the latent emotion that mediates experience -> behaviour."""

    items: dict[str, Item]
    scale: Scale
    not_applicable: list[NACode] = Field(default_factory=list)

    @field_validator("items")
    @classmethod
    def _keys(cls, items: dict[str, Item]) -> dict[str, Item]:
        if not items:
            raise ValueError("emotion needs at least one item")
        for key in items:
            _check_identifier(key, "emotion item name")
        return items


class Recode(_Strict):
    """Linear recode of an answer scale, e.g. an export coded 1-11 to the 0-10 NPS scale."""

    from_: Scale = Field(alias="from")
    to: Scale

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _same_width(self) -> "Recode":
        if abs((self.from_.max - self.from_.min) - (self.to.max - self.to.min)) > 1e-9:
            raise ValueError(f"recode from {self.from_} to {self.to}: the two scales must have the same width")
        return self


class Outcome(_Strict):
    """The behavioural outcome of the survey.

    - ``recommend``: likelihood to recommend on 0-10 (NPS); ``recode`` maps other codings onto 0-10.
    - ``binary``: a yes/no outcome; ``labels`` maps the export's values to 0/1.
    - ``ordinal``: an ordered satisfaction label; ``labels`` maps each label to its rank 0..K-1.
    """

    kind: Literal["recommend", "binary", "ordinal"] = "recommend"
    column: str
    label: str | None = None
    recode: Recode | None = None
    labels: dict[str, int] | None = None
    not_applicable: list[NACode] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "Outcome":
        if self.kind == "recommend":
            if self.labels is not None:
                raise ValueError("a 'recommend' outcome is numeric 0-10: use 'recode', not 'labels'")
            if self.recode is not None and (self.recode.to.min, self.recode.to.max) != (0, 10):
                raise ValueError(f"a 'recommend' outcome must be recoded to 0-10, not {self.recode.to}")
        else:
            if not self.labels:
                raise ValueError(f"a '{self.kind}' outcome needs 'labels' mapping export values to codes")
            codes = sorted(set(self.labels.values()))
            if self.kind == "binary" and codes != [0, 1]:
                raise ValueError(f"binary labels must map to 0 and 1, got codes {codes}")
            if self.kind == "ordinal" and codes != list(range(len(codes))):
                raise ValueError(f"ordinal labels must map to ranks 0..K-1, got codes {codes}")
        return self


class Survey(_Strict):
    """The survey table: one row per answer (respondent x wave)."""

    table: str = "survey"
    id: str
    segment: str
    market: str
    wave: str | None = None
    date: str | None = None
    unit: str | None = None  # branch / agent / team, if the survey carries it
    touchpoints: dict[str, Touchpoint]
    emotion: Emotion | None = None
    outcome: Outcome

    @field_validator("touchpoints")
    @classmethod
    def _tp_keys(cls, tps: dict[str, Touchpoint]) -> dict[str, Touchpoint]:
        if not tps:
            raise ValueError("declare at least one touchpoint")
        for key, tp in tps.items():
            _check_identifier(key, "touchpoint name")
            _check_na_codes(tp.not_applicable, tp.scale, f"touchpoint {key!r}")
        return tps


class Customers(_Strict):
    """The customer (CRM) table: one row per customer, with tenure, churn and value."""

    table: str = "customers"
    id: str
    segment: str | None = None  # taken from the survey when absent
    market: str | None = None
    unit: str | None = None
    tenure: str | None = None  # duration column; or give start (and end) dates
    tenure_unit: Literal["days", "weeks", "months", "years"] = "months"
    start: str | None = None
    end: str | None = None
    churn: str
    churn_labels: dict[str, int] | None = None  # e.g. {"Yes": 1, "No": 0}
    margin: str | None = None  # monthly margin (preferred for CLV)
    revenue: str | None = None  # monthly revenue, if no margin
    cross_sell: list[str] = Field(default_factory=list)  # product / cross-sell count columns

    @model_validator(mode="after")
    def _duration(self) -> "Customers":
        if self.tenure is None and self.start is None:
            raise ValueError("give 'tenure' (a duration column) or 'start' (and 'end') date columns")
        if self.tenure is not None and self.start is not None:
            raise ValueError("give either 'tenure' or 'start'/'end', not both")
        if self.end is not None and self.start is None:
            raise ValueError("'end' needs 'start'")
        if self.churn_labels is not None and sorted(set(self.churn_labels.values())) != [0, 1]:
            raise ValueError("churn_labels must map to 0 and 1")
        return self


class Benchmark(_Strict):
    """Optional competitor benchmark survey: one row per respondent x brand rated."""

    table: str = "benchmark"
    brand: str
    own_brand: str
    market: str | None = None
    wave: str | None = None
    recommend: str | None = None  # 0-10
    attributes: dict[str, str] = Field(default_factory=dict)  # attribute name -> column
    scale: Scale | None = None  # scale of the attributes
    not_applicable: list[NACode] = Field(default_factory=list)

    @model_validator(mode="after")
    def _scale_if_attrs(self) -> "Benchmark":
        if self.attributes and self.scale is None:
            raise ValueError("benchmark attributes need a 'scale'")
        for key in self.attributes:
            _check_identifier(key, "benchmark attribute name")
        return self


class DatasetSpec(_Strict):
    """A complete dataset spec (see README, 'Dataset spec')."""

    version: Literal[1] = 1
    name: str
    description: str | None = None
    as_of: date | None = None  # data as-of date shown in report headers
    tables: dict[str, TableSource]
    survey: Survey
    customers: Customers | None = None
    benchmark: Benchmark | None = None

    #: folder the spec was read from; relative table paths resolve against it
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")

    @model_validator(mode="after")
    def _tables_exist(self) -> "DatasetSpec":
        for role, block in (("survey", self.survey), ("customers", self.customers), ("benchmark", self.benchmark)):
            if block is not None and block.table not in self.tables:
                raise ValueError(
                    f"{role}.table {block.table!r} is not declared under 'tables' (declared: {sorted(self.tables)})")
        return self

    def resolve(self, relative: str) -> Path:
        """Resolve a path from the spec relative to the spec file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def format_pydantic_error(exc: Exception, source: str) -> str:
    """One line per problem, each naming the file and the key path."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return f"{source}: {exc}"
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the spec; check its spelling)"
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


class SpecError(ValueError):
    """A dataset spec that cannot be used; the message names the file and key."""


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a dataset spec YAML file."""
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a dataset spec is a mapping of keys, got {type(raw).__name__}")
    from pydantic import ValidationError

    try:
        return DatasetSpec.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise SpecError(format_pydantic_error(exc, str(path))) from None
