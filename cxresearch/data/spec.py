"""Dataset spec: a YAML file that maps any survey / CRM export to the roles cxresearch needs.

A researcher describes their files (CSV, Parquet, a folder of tables, a DuckDB database) and says which
column plays which role (id, segment, market, wave, touchpoint ratings with their scale and
not-applicable codes, emotion items, the outcome, the customer table, a competitor benchmark). No code.

The spec is validated with pydantic (unknown keys are rejected with their path); the *data* is validated
with pandera on load (:mod:`cxresearch.data.validation`).
"""

from __future__ import annotations

import codecs
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

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


#: encodings DuckDB's CSV reader decodes itself (Python codec name -> DuckDB's name); any other encoding
#: Python knows (cp1252, mac_roman, shift_jis...) is transcoded to a temporary UTF-8 copy first
DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "iso8859-1": "latin-1"}


def _check_date_format(value: str | None) -> str | None:
    if value is not None and "%" not in value:
        raise ValueError(
            f"date_format {value!r} has no format codes; write it with strptime codes, e.g. '%d.%m.%Y' for 31.12.2024"
        )
    return value


def _check_encoding(value: str | None) -> str | None:
    """A text encoding Python knows (``latin-1``, ``ISO-8859-1``, ``cp1252``...), as written."""
    if value is None:
        return None
    try:
        codecs.lookup(value.strip())
        return value.strip()
    except LookupError:
        raise ValueError(
            f"unknown encoding {value!r}; use a name such as utf-8, latin-1, cp1252 (Windows Excel) or utf-16"
        ) from None


class TableSource(_Strict):
    """Where a table comes from: a ``path``, a DuckDB ``database``, or a DuckDB SQL ``query`` over files.

    - ``path``: a CSV or Parquet file, or a folder of such files (all unioned by column name);
      relative paths are resolved against the spec file's folder.
    - ``database`` + ``table`` or ``query``: a DuckDB database file, read-only.
    - ``query`` alone: DuckDB SQL over files, e.g. ``select * from read_csv('../x.csv')``; relative file
      paths inside it resolve against the spec file's folder too.
    - ``encoding`` (CSV only): the files' text encoding (default utf-8), e.g. ``latin-1`` or ``cp1252``.
    - ``date_format``: strptime codes of this table's text dates (default: the spec's ``date_format``).
    """

    path: str | None = None
    format: Literal["csv", "parquet"] | None = None  # default: from the file extension
    database: str | None = None
    table: str | None = None
    query: str | None = None
    csv_delimiter: str | None = None
    encoding: str | None = None
    date_format: str | None = None

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str | None) -> str | None:
        return _check_date_format(value)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        return _check_encoding(value)

    @model_validator(mode="after")
    def _one_kind(self) -> TableSource:
        if self.path is not None and self.database is not None:
            raise ValueError("give exactly one of 'path' (CSV/Parquet file or folder) or 'database' (DuckDB file)")
        if self.path is None and self.database is None and self.query is None:
            raise ValueError(
                "give one of 'path' (CSV/Parquet file or folder), 'database' (DuckDB file) or 'query' "
                "(DuckDB SQL, e.g. select * from read_csv('survey.csv'))"
            )
        if self.database is not None and (self.table is None) == (self.query is None):
            raise ValueError("a DuckDB source needs exactly one of 'table' or 'query'")
        if self.path is not None and (self.table is not None or self.query is not None):
            raise ValueError("'table' and 'query' apply only to a DuckDB 'database' source")
        if self.path is None and self.database is None and self.table is not None:
            raise ValueError("'table' needs a 'database' (DuckDB file)")
        if self.encoding is not None and (self.path is None or self.format == "parquet"):
            raise ValueError(
                "'encoding' applies to CSV files given by 'path'; "
                "inside a query write read_csv(..., encoding='latin-1')"
            )
        if self.path is None and self.csv_delimiter is not None:
            raise ValueError("'csv_delimiter' applies to CSV files given by 'path'")
        return self

    @property
    def duckdb_encoding(self) -> str | None:
        """The encoding as DuckDB's CSV reader names it; None when DuckDB cannot decode it itself."""
        return DUCKDB_ENCODINGS.get(codecs.lookup(self.encoding or "utf-8").name)


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
    def _ordered(self) -> Scale:
        if not self.min < self.max:
            raise ValueError(f"scale min {self.min:g} must be below max {self.max:g}")
        return self

    @property
    def points(self) -> int:
        """Number of answer categories on an integer scale."""
        return int(round(self.max - self.min)) + 1

    def __str__(self) -> str:
        return f"{self.min:g}-{self.max:g}"


def _normalise_na_code(code: Any) -> NACode:
    """Numbers stay numbers; a quoted number (``"99"``) becomes that number; ``blank``/``""`` -> ``"blank"``."""
    if isinstance(code, bool):
        raise ValueError(f"not-applicable code {code!r} is a yes/no value; write the code as it appears in the export")
    if isinstance(code, (int, float)):
        return code
    if isinstance(code, str):
        text = code.strip()
        if text.lower() in ("blank", ""):
            return "blank"
        try:
            number = float(text)
        except ValueError:
            return text  # a string code such as "NA" or "n/a" in a CSV export
        return int(number) if number.is_integer() else number
    raise ValueError(f"not-applicable code {code!r} must be a number, a string or the word 'blank'")


#: a not-applicable code as a spec field: normalised before pydantic's own coercion (so yes/no is refused)
NACodeField = Annotated[NACode, BeforeValidator(_normalise_na_code)]


def _check_na_codes(codes: list[NACode], scale: Scale | None, what: str) -> list[NACode]:
    """Normalise the codes and reject numeric codes inside the answer scale (they would hide real answers)."""
    codes = list(dict.fromkeys(_normalise_na_code(code) for code in codes))
    for code in codes:
        if scale is not None and not isinstance(code, str) and scale.min <= float(code) <= scale.max:
            raise ValueError(
                f"{what}: not-applicable code {code!r} lies inside the scale {scale}; "
                "it would be indistinguishable from a real answer"
            )
    return codes


def check_box(value: float) -> float:
    """A top / bottom box setting: a share of the scale below 1 (0.4) or a whole number of points (2)."""
    if value >= 1 and value != int(value):
        raise ValueError(f"a box is a share of the scale below 1 (0.4) or a whole number of points (2), got {value}")
    return value


def label_key(value: Any) -> str:
    """The text form of an export value used to match ``labels`` / ``churn_labels`` keys.

    Case-insensitive and stripped; numbers without a fractional part lose their ``.0``; yes/no booleans
    become ``true``/``false``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def _check_labels(labels: dict[Any, int] | None, what: str) -> dict[str, int] | None:
    if labels is None:
        return None
    if not isinstance(labels, dict):
        raise ValueError(f"{what} must be a mapping of export values to codes")
    out: dict[str, int] = {}
    for key, code in labels.items():
        text = key if isinstance(key, str) else label_key(key)
        if label_key(text) in {label_key(k) for k in out}:
            raise ValueError(f"{what}: label {text!r} is given twice (labels are matched ignoring case)")
        out[text] = code
    return out


class Touchpoint(_Strict):
    """One touchpoint experience rating (one column)."""

    column: str
    label: str | None = None
    channel: str | None = None  # branch, call centre, web, app, billing...
    stage: str | None = None  # journey stage: onboarding, usage, service, billing...
    need: str | None = None  # customer need served (for initiative roadmaps)
    scale: Scale
    not_applicable: list[NACodeField] = Field(default_factory=list)

    @model_validator(mode="after")
    def _na_codes(self) -> Touchpoint:
        object.__setattr__(
            self,
            "not_applicable",
            _check_na_codes(self.not_applicable, self.scale, f"touchpoint column {self.column!r}"),
        )
        return self


class Item(_Strict):
    """One survey item (e.g. an emotion Likert item)."""

    column: str
    label: str | None = None
    reverse: bool = False  # reverse-keyed item: scored as max + min - x


class Emotion(_Strict):
    """Emotion items (Likert) measuring the latent emotion that mediates experience -> behaviour."""

    items: dict[str, Item]
    scale: Scale
    not_applicable: list[NACodeField] = Field(default_factory=list)

    @field_validator("items")
    @classmethod
    def _keys(cls, items: dict[str, Item]) -> dict[str, Item]:
        if not items:
            raise ValueError("emotion needs at least one item")
        for key in items:
            _check_identifier(key, "emotion item name")
        return items

    @model_validator(mode="after")
    def _na_codes(self) -> Emotion:
        object.__setattr__(self, "not_applicable", _check_na_codes(self.not_applicable, self.scale, "emotion"))
        return self


class Recode(_Strict):
    """Linear recode of an answer scale, e.g. an export coded 1-11 to the 0-10 NPS scale."""

    from_: Scale = Field(alias="from")
    to: Scale

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _same_width(self) -> Recode:
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
    not_applicable: list[NACodeField] = Field(default_factory=list)

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys(cls, labels: Any) -> Any:
        return _check_labels(labels, "outcome labels")

    @property
    def answer_scale(self) -> Scale | None:
        """The scale of the exported answers (before recoding); None for labelled outcomes."""
        if self.kind != "recommend":
            return None
        return self.recode.from_ if self.recode is not None else Scale(min=0, max=10)

    @model_validator(mode="after")
    def _consistent(self) -> Outcome:
        object.__setattr__(
            self,
            "not_applicable",
            _check_na_codes(self.not_applicable, self.answer_scale, f"outcome column {self.column!r}"),
        )
        if self.labels is not None:
            keys = {label_key(k) for k in self.labels}
            for code in self.not_applicable:
                if label_key(code) in keys:
                    raise ValueError(f"outcome not-applicable code {code!r} is also one of the labels")
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


class Comments(_Strict):
    """Free-text answers ("why did you give that score?"): one or more text columns of the survey table.

    One column is read into the canonical column ``comment``; several into ``comment_1``, ``comment_2``... in
    the order given (the verbatims study reads them as one comment per answer). ``language``: ``en``, ``es`` or
    ``auto`` (each comment's language from its stop words).
    """

    column: str | list[str]
    language: Literal["en", "es", "auto"] = "auto"

    @field_validator("column")
    @classmethod
    def _columns(cls, value: str | list[str]) -> str | list[str]:
        columns = [value] if isinstance(value, str) else value
        if not columns:
            raise ValueError("name at least one text column")
        blank = [c for c in columns if not str(c).strip()]
        if blank:
            raise ValueError(f"a comment column name must not be empty, got {columns!r}")
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise ValueError(f"comment columns named twice: {twice}")
        return value

    @property
    def columns(self) -> list[str]:
        """The source columns, in order."""
        return [self.column] if isinstance(self.column, str) else list(self.column)

    @property
    def names(self) -> list[str]:
        """The canonical column names: ``comment``, or ``comment_1``... for several columns."""
        cols = self.columns
        return ["comment"] if len(cols) == 1 else [f"comment_{i}" for i in range(1, len(cols) + 1)]


class Survey(_Strict):
    """The survey table: one row per answer (respondent x wave).

    ``id`` may be left out for an anonymous survey: each row then gets its row number (1 = the first
    data row; a folder counts its files in sorted name order) as its id, so answers cannot be joined to
    customers.
    """

    table: str = "survey"
    id: str | None = None
    segment: str
    market: str
    wave: str | None = None
    date: str | None = None
    unit: str | None = None  # branch / agent / team, if the survey carries it
    # more groupings (name -> column), e.g. {travel: type_of_travel}: text codes, usable in a driver model's
    # group_by like segment and market
    groups: dict[str, str] = Field(default_factory=dict)
    # numeric covariates (name -> column), e.g. {tenure: tenure_months}: usable as a driver model's controls
    covariates: dict[str, str] = Field(default_factory=dict)
    # the touchpoints rated (none: a survey with only the outcome, e.g. for the economics study; the drivers
    # and measurement studies need at least one)
    touchpoints: dict[str, Touchpoint] = Field(default_factory=dict)
    emotion: Emotion | None = None
    outcome: Outcome
    # free-text answers (the verbatims study): {column: why, language: en}
    comments: Comments | None = None

    @field_validator("touchpoints")
    @classmethod
    def _tp_keys(cls, tps: dict[str, Touchpoint]) -> dict[str, Touchpoint]:
        for key in tps:
            _check_identifier(key, "touchpoint name")
        return tps

    @field_validator("groups", "covariates")
    @classmethod
    def _extra_names(cls, columns: dict[str, str]) -> dict[str, str]:
        for key in columns:
            _check_identifier(key, "group or covariate name")
        return columns

    @model_validator(mode="after")
    def _output_names(self) -> Survey:
        reserved = {"customer_id", "segment", "market", "wave", "survey_date", "unit", "recommend", "outcome"}
        seen: dict[str, str] = {}
        names = [(k, "touchpoint") for k in self.touchpoints]
        names += [(k, "emotion item") for k in (self.emotion.items if self.emotion else {})]
        names += [(k, "group") for k in self.groups] + [(k, "covariate") for k in self.covariates]
        reserved |= set(self.comments.names) if self.comments else set()
        for name, what in names:
            if name in reserved:
                raise ValueError(f"{what} name {name!r} is reserved for a column of the canonical survey table")
            if name in seen:
                raise ValueError(f"{what} name {name!r} is also used as a {seen[name]} name")
            seen[name] = what
        return self


class Customers(_Strict):
    """The customer (CRM) table: one row per customer, with tenure, churn and value."""

    table: str = "customers"
    id: str
    segment: str | None = None  # taken from the survey when absent ("all" when there is no survey)
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
    # more groupings (name -> column), e.g. {contract: Contract}: text codes, usable as economics classes
    groups: dict[str, str] = Field(default_factory=dict)
    # numeric covariates (name -> column), e.g. {monthly_charges: MonthlyCharges}
    covariates: dict[str, str] = Field(default_factory=dict)

    @field_validator("groups", "covariates")
    @classmethod
    def _extra_names(cls, columns: dict[str, str]) -> dict[str, str]:
        reserved = {"customer_id", "segment", "market", "unit", "tenure", "churn", "margin", "start_date", "end_date"}
        for key in columns:
            _check_identifier(key, "group or covariate name")
            if key in reserved:
                raise ValueError(f"group or covariate name {key!r} is reserved for a column of the customers table")
        return columns

    @model_validator(mode="after")
    def _duration(self) -> Customers:
        if self.tenure is None and self.start is None:
            raise ValueError("give 'tenure' (a duration column) or 'start' (and 'end') date columns")
        if self.tenure is not None and self.start is not None:
            raise ValueError("give either 'tenure' or 'start'/'end', not both")
        if self.end is not None and self.start is None:
            raise ValueError("'end' needs 'start'")
        if self.churn_labels is not None and sorted(set(self.churn_labels.values())) != [0, 1]:
            raise ValueError("churn_labels must map to 0 and 1")
        if self.margin is not None and self.revenue is not None:
            raise ValueError("give either 'margin' or 'revenue' (used as margin when no margin is known), not both")
        return self

    @field_validator("churn_labels", mode="before")
    @classmethod
    def _label_keys(cls, labels: Any) -> Any:
        return _check_labels(labels, "churn_labels")


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
    not_applicable: list[NACodeField] = Field(default_factory=list)

    @model_validator(mode="after")
    def _scale_if_attrs(self) -> Benchmark:
        if self.attributes and self.scale is None:
            raise ValueError("benchmark attributes need a 'scale'")
        for key in self.attributes:
            _check_identifier(key, "benchmark attribute name")
            if key in ("brand", "is_own", "market", "wave", "recommend"):
                raise ValueError(f"benchmark attribute name {key!r} is reserved for a column of the canonical table")
        # the codes apply to the attribute ratings (not to recommend, where 0 is a real answer)
        object.__setattr__(
            self, "not_applicable", _check_na_codes(self.not_applicable, self.scale, "benchmark attributes")
        )
        return self


class DatasetSpec(_Strict):
    """A complete dataset spec (see README, 'Dataset spec')."""

    version: Literal[1] = 1
    name: str
    description: str | None = None
    as_of: date | None = None  # data as-of date: report headers; active customers are censored here
    # strftime format of text dates (e.g. "%d/%m/%Y"); default ISO 8601; a table's own date_format wins
    date_format: str | None = None
    tables: dict[str, TableSource]
    survey: Survey | None = None  # none: a customers table alone (survival and CLV by any grouping)
    customers: Customers | None = None
    benchmark: Benchmark | None = None

    #: folder the spec was read from; relative table paths resolve against it
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str | None) -> str | None:
        return _check_date_format(value)

    @model_validator(mode="after")
    def _tables_exist(self) -> DatasetSpec:
        if self.survey is None and self.customers is None:
            raise ValueError("declare a 'survey:' table, a 'customers:' table, or both")
        for role, block in (("survey", self.survey), ("customers", self.customers), ("benchmark", self.benchmark)):
            if block is not None and block.table not in self.tables:
                raise ValueError(
                    f"{role}.table {block.table!r} is not declared under 'tables' (declared: {sorted(self.tables)})"
                )
        if self.customers is not None and self.customers.start is not None and self.as_of is None:
            raise ValueError(
                "customers with 'start' dates need 'as_of' (YYYY-MM-DD): customers still active (no end date) "
                "are censored at that date"
            )
        if self.survey is not None and self.survey.id is None and self.customers is not None:
            raise ValueError(
                "survey.id is needed when a customers table is declared: answers are joined to customers by id "
                "(without an id column, each survey row is numbered and no answer can be matched to a customer)"
            )
        return self

    def table_date_format(self, role: str) -> str | None:
        """The date format of one role's table: its own ``date_format``, else the spec's (None: ISO 8601)."""
        block = getattr(self, role, None)
        if block is None:
            return self.date_format
        return self.tables[block.table].date_format or self.date_format

    def date_format_source(self, role: str) -> str:
        """Where a role's date format comes from, in words, for messages."""
        block = getattr(self, role, None)
        if block is not None and self.tables[block.table].date_format:
            return f"the date_format of table {block.table!r}"
        return "the spec's date_format"

    def require_survey(self, needed_by: str) -> Survey:
        """The survey block, or a clear error naming what needs it (a spec may declare customers alone)."""
        if self.survey is None:
            raise ValueError(f"dataset {self.name!r}: the spec has no survey table ('survey:'); {needed_by} needs one")
        return self.survey

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
        msg = msg.removeprefix("Value error, ")
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
