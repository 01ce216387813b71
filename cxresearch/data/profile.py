"""Profiling raw exports for ``cxresearch init``: read each export through DuckDB, describe every column.

An export is a CSV, Parquet, Excel (DuckDB's ``excel`` extension, when installed) or DuckDB database
file. Every value is read as text, as the loader reads CSV files, so codes such as ``007`` survive. A
*label row* (a second header line of question texts, common in survey exports) is detected and kept
apart: its texts become labels, and the draft spec's query skips it.

A :class:`ColumnProfile` says what a column holds (numbers, whole numbers, dates, text), its distinct
values, its range, its share missing, and the codes that look like "not applicable" (0 on an otherwise
1-5 column, 99 / 999 on a rating scale, blanks). :mod:`cxresearch.data.draft` turns profiles into roles.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

#: numeric codes that exports use for "not applicable" / "don't know" when they lie outside the scale
SPECIAL_CODES = (-999, -99, -9, -1, 96, 97, 98, 99, 996, 997, 998, 999, 9999)
#: date formats tried, most common first (strptime codes, as a spec's ``date_format`` takes them)
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
)
#: text values read as "no answer" besides blanks
TEXT_MISSING = {"", "na", "n/a", "nan", "null", "none", "-", "."}
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
DUCKDB_SUFFIXES = (".duckdb", ".ddb", ".db")
EXCEL_SUFFIXES = (".xlsx", ".xls")


class ExportError(ValueError):
    """An export that cannot be read or profiled; the message names the file and why."""


@dataclass
class ExportTable:
    """One table of an export: where it comes from, its rows as text, and its label row (if any)."""

    name: str  # table name for the spec (identifier)
    path: Path
    kind: str  # csv | parquet | duckdb | excel
    frame: pd.DataFrame  # every value as text (None for NULL), label row removed
    labels: dict[str, str] = field(default_factory=dict)  # column -> question text from the label row
    db_table: str | None = None  # the table inside a DuckDB database
    encoding: str | None = None  # CSV read as latin-1 or cp1252 when not UTF-8
    delimiter: str | None = None
    skip_values: dict[str, list[str]] = field(default_factory=dict)  # column -> raw values of the rows skipped
    extra_rows: list[str] = field(default_factory=list)  # what the skipped rows are ("question texts", ...)

    @property
    def has_label_row(self) -> bool:
        return bool(self.labels)


@dataclass
class ColumnProfile:
    """What one column holds; the evidence :mod:`cxresearch.data.draft` guesses roles from."""

    name: str
    label: str | None
    rows: int
    missing: int  # blank / NULL / NA-like text
    distinct: int  # distinct non-missing values
    kind: str  # "integer", "number", "date", "text", "empty"
    counts: dict[Any, int]  # value -> rows (numbers for numeric columns, text otherwise); at most 200
    date_format: str | None = None
    date_also: list[str] = field(default_factory=list)  # other formats that read every date too (ambiguous)
    na_codes: list[Any] = field(default_factory=list)  # numeric not-applicable codes found (0, 99, ...)
    na_reasons: list[str] = field(default_factory=list)  # why each code looks like not applicable
    answers: list[float] = field(default_factory=list)  # distinct numeric answers once the codes are removed
    na_doubtful: list[Any] = field(default_factory=list)  # codes among na_codes that could be answers (CHECK)
    decimal_comma: bool = False  # numbers written with a decimal comma ("5,4"): read as text
    numeric: pd.Series | None = None  # the values as numbers (NaN for missing), for correlations

    @property
    def missing_share(self) -> float:
        return self.missing / self.rows if self.rows else 1.0

    @property
    def low(self) -> float | None:
        return min(self.answers) if self.answers else None

    @property
    def high(self) -> float | None:
        return max(self.answers) if self.answers else None

    def describe(self) -> str:
        """One short phrase: type, range or distinct values, share missing."""
        if self.kind == "empty":
            return "always blank"
        if self.kind in ("integer", "number") and self.answers:
            what = f"{self.kind}s {_num(self.low)}-{_num(self.high)}"
        elif self.kind == "date":
            what = f"dates ({self.date_format})"
        else:
            what = f"text, {self.distinct:,} distinct values"
        if self.na_codes:
            what += f", codes {', '.join(_num(c) for c in self.na_codes)}"
        if self.missing:
            what += f", {blank_text(self.missing, self.rows)}"
        return what


def blank_text(missing: int, rows: int) -> str:
    """``12% blank``, or ``5 rows blank`` under 1%."""
    share = missing / rows if rows else 1.0
    return f"{share:.0%} blank" if share >= 0.01 else f"{missing:,} rows blank"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES + DUCKDB_SUFFIXES + EXCEL_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def table_name(path: Path, taken: set[str]) -> str:
    """An identifier for a table, from its file name (``Survey export 2024.csv`` -> ``survey_export_2024``)."""
    stem = path.name
    suffix = _suffix(path)
    if suffix and stem.lower().endswith(suffix):
        stem = stem[: -len(suffix)]
    return unique_identifier(stem, taken, fallback="table")


def slug(text: str) -> str:
    """An identifier from any text: accents dropped, camelCase split, other characters -> ``_``, lower case."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    ascii_text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_text)  # camelCase -> camel_Case
    out = re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()
    if out and out[0].isdigit():
        out = "c_" + out
    return out


def unique_identifier(text: str, taken: set[str], fallback: str = "column") -> str:
    """:func:`slug` of ``text``, made unique against ``taken`` (and added to it)."""
    base = slug(text) or fallback
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


# --------------------------------------------------------------------------------------------- reading
def _as_text(conn: Any, sql: str, params: list[Any]) -> pd.DataFrame:
    """Rows of a DuckDB select, every column cast to text (NULL stays None)."""
    cols = [str(r[0]) for r in conn.execute(f"DESCRIBE SELECT * FROM {sql}", params).fetchall()]
    if not cols:
        return pd.DataFrame()
    select = ", ".join(f'CAST("{c.replace(chr(34), chr(34) * 2)}" AS VARCHAR)' for c in cols)
    frame = conn.execute(f"SELECT {select} FROM {sql}", params).df()
    frame.columns = cols
    return frame.astype(object).where(frame.notna(), None)


def read_export(path: str | Path, taken: set[str] | None = None) -> list[ExportTable]:
    """Read one export file into :class:`ExportTable` s (a DuckDB database may hold several tables)."""
    from cxresearch.data.sources import connect

    path = Path(path)
    taken = set() if taken is None else taken
    if not path.is_file():
        raise ExportError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ExportError(f"{path}: the file is empty (0 bytes)")
    suffix = _suffix(path)
    conn = connect()
    try:
        if suffix in CSV_SUFFIXES:
            return [_read_csv(conn, path, table_name(path, taken))]
        if suffix in PARQUET_SUFFIXES:
            frame = _as_text(conn, "read_parquet(?)", [str(path)])
            if frame.empty:
                raise ExportError(f"{path}: no data rows")
            return [ExportTable(table_name(path, taken), path, "parquet", frame)]
        if suffix in DUCKDB_SUFFIXES:
            return _read_duckdb(conn, path, taken)
        if suffix in EXCEL_SUFFIXES:
            return [_read_excel(conn, path, table_name(path, taken))]
    except ExportError:
        raise
    except Exception as exc:  # DuckDB's errors run over many lines: the first names the problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: cannot read: {first}") from None
    finally:
        conn.close()
    raise ExportError(
        f"{path}: unknown file type {suffix or '(no extension)'!r}; give a CSV (.csv, .tsv, .txt), Parquet "
        "(.parquet), Excel (.xlsx) or DuckDB (.duckdb) export"
    )


def _sniff_encoding(path: Path) -> str:
    """``cp1252`` when the file holds bytes 0x80-0x9F (Windows Excel's curly quotes, euro sign, dashes:
    control characters in Latin-1), else ``latin-1``; for a file that is not UTF-8."""
    import gzip

    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if any(0x80 <= b <= 0x9F for b in data):
        try:
            data.decode("cp1252")
        except UnicodeDecodeError:
            return "latin-1"
        return "cp1252"
    return "latin-1"


def _cp1252_copy(path: Path) -> Path:
    """A temporary UTF-8 copy of a cp1252 CSV (DuckDB's reader cannot decode cp1252 itself)."""
    import atexit
    import gzip
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cxresearch-init-"))
    atexit.register(shutil.rmtree, folder, True)
    target = folder / (path.name[: -len(".gz")] if path.name.lower().endswith(".gz") else path.name)
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with (
        opener(path, "rt", encoding="cp1252", newline="") as inp,
        open(target, "w", encoding="utf-8", newline="") as out,
    ):
        shutil.copyfileobj(inp, out)
    return target


def _read_csv(conn: Any, path: Path, name: str) -> ExportTable:
    encoding = None
    delimiter = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else None
    delim = ", delim='\t'" if delimiter else ""
    try:
        frame = _as_text(conn, f"read_csv(?, all_varchar=true, header=true{delim})", [str(path)])
    except Exception as exc:
        if "utf-8" not in str(exc).lower() and "unicode" not in str(exc).lower():
            raise
        encoding = _sniff_encoding(path)  # Excel on Windows saves cp1252; other tools Latin-1
        if encoding == "cp1252":
            frame = _as_text(conn, f"read_csv(?, all_varchar=true, header=true{delim})", [str(_cp1252_copy(path))])
        else:
            sql = f"read_csv(?, all_varchar=true, header=true, encoding='latin-1'{delim})"
            frame = _as_text(conn, sql, [str(path)])
    table = ExportTable(name, path, "csv", frame, encoding=encoding, delimiter=delimiter)
    _split_label_rows(table)
    return table


def _split_label_rows(table: ExportTable) -> None:
    """Move a label row (and a Qualtrics ``{"ImportId": ...}`` row under it) out of the table's rows."""
    frame = table.frame
    if frame.empty:
        raise ExportError(f"{table.path}: no data rows (only a header line)")
    skipped = 0
    labels = detect_label_row(frame)
    if labels:
        skipped = 1
        table.extra_rows.append("question texts (used as labels)")
        if len(frame) > 1 and _is_import_id_row(frame.iloc[1]):
            skipped = 2
            table.extra_rows.append('Qualtrics import ids ({"ImportId": ...})')
    elif len(frame) > 1 and _is_import_id_row(frame.iloc[1]):  # Qualtrics: texts over import ids
        labels = {str(c): str(frame.iloc[0][c]).strip() for c in frame.columns if not _blank(frame.iloc[0][c])}
        skipped = 2
        table.extra_rows += ["question texts (used as labels)", 'Qualtrics import ids ({"ImportId": ...})']
    elif _is_import_id_row(frame.iloc[0]):
        skipped = 1
        table.extra_rows.append('Qualtrics import ids ({"ImportId": ...})')
    if not skipped:
        return
    table.labels = labels
    table.skip_values = {
        str(c): [str(v) for v in frame[c].iloc[:skipped].tolist() if v is not None] for c in frame.columns
    }
    table.frame = frame.iloc[skipped:].reset_index(drop=True)
    if table.frame.empty:
        raise ExportError(f"{table.path}: no data rows (only the header and {', '.join(table.extra_rows)})")


def _is_import_id_row(row: pd.Series) -> bool:
    """Qualtrics' third header line: ``{"ImportId":"QID1"}`` in most cells."""
    values = [str(v).strip() for v in row.tolist() if not _blank(v)]
    hits = sum(bool(re.match(r"^\{\s*[\"']ImportId[\"']\s*:", v)) for v in values)
    return bool(values) and hits >= 0.6 * len(values)


def _read_duckdb(conn: Any, path: Path, taken: set[str]) -> list[ExportTable]:
    conn.execute("ATTACH ? AS cx_export (READ_ONLY)", [str(path)])
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'cx_export' "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'cx_export' AND NOT internal "
            "ORDER BY 1"
        ).fetchall()
    ]
    if not names:
        raise ExportError(f"{path}: the DuckDB database holds no tables")
    tables = []
    for table in names:
        frame = _as_text(conn, f'cx_export."{table}"', [])
        tables.append(ExportTable(unique_identifier(table, taken, "table"), path, "duckdb", frame, db_table=table))
    return tables


def _read_excel(conn: Any, path: Path, name: str) -> ExportTable:
    try:
        conn.execute("LOAD excel")
    except Exception:
        raise ExportError(
            f"{path}: Excel files are not supported yet here: they need DuckDB's 'excel' extension, which is "
            "not installed (run duckdb's INSTALL excel where the network is reachable), or save the sheet as "
            "CSV (File > Save as > CSV UTF-8) and run cxresearch init on the CSV"
        ) from None
    frame = _as_text(conn, "read_xlsx(?, all_varchar=true, header=true)", [str(path)])
    table = ExportTable(name, path, "excel", frame)
    _split_label_rows(table)
    return table


def _is_number(text: Any) -> bool:
    if text is None:
        return False
    try:
        value = float(str(text).strip())
    except ValueError:
        return False
    return math.isfinite(value)


def _blank(text: Any) -> bool:
    return text is None or str(text).strip().lower() in TEXT_MISSING


def detect_label_row(frame: pd.DataFrame) -> dict[str, str]:
    """Question texts of a label row (the first data row) or {} when there is none.

    A label row is text above numbers: among the columns whose other rows are all numbers, most have
    text (not a number, not blank) in the first row. Needs at least two such columns and two data rows.
    """
    if len(frame) < 3:
        return {}
    first = frame.iloc[0]
    rest = frame.iloc[1:]
    numeric_cols, texts = [], 0
    for col in frame.columns:
        values = [v for v in rest[col].tolist() if not _blank(v)]
        if values and all(_is_number(v) for v in values):
            numeric_cols.append(col)
            if not _blank(first[col]) and not _is_number(first[col]):
                texts += 1
    if len(numeric_cols) < 2 or texts < 0.6 * len(numeric_cols):
        return {}
    return {str(col): str(first[col]).strip() for col in frame.columns if not _blank(first[col])}


# --------------------------------------------------------------------------------------------- profiles
def _date_formats(values: list[str]) -> list[str]:
    """The strptime formats that parse every distinct value, most common first ([] when none does)."""
    sample = values[:500]
    if not sample or not any(ch.isdigit() for ch in sample[0]):
        return []
    found = []
    for fmt in DATE_FORMATS:
        try:
            for v in sample:
                datetime.strptime(v, fmt)
        except ValueError:
            continue
        found.append(fmt)
    return found


def profile_column(name: str, values: pd.Series, label: str | None = None) -> ColumnProfile:
    """Profile one column of text values (see :class:`ColumnProfile`)."""
    text = values.map(lambda v: None if _blank(v) else str(v).strip())
    present = text.dropna()
    rows, missing = len(text), int(text.isna().sum())
    counts_text = present.value_counts()
    distinct_count = len(counts_text)

    def make(kind: str, counts: dict[Any, int], **extra: Any) -> ColumnProfile:
        return ColumnProfile(name, label, rows, missing, distinct_count, kind, counts, **extra)

    if present.empty:
        return make("empty", {})
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        is_int = bool((numbers == numbers.round()).all())
        counts_num = numbers.value_counts()
        counts: dict[Any, int] = {(int(k) if is_int else float(k)): int(v) for k, v in counts_num.head(200).items()}
        profile = make("integer" if is_int else "number", counts, numeric=pd.to_numeric(text, errors="coerce"))
        _find_codes(profile, sorted(float(k) for k in counts_num.index))
        return profile
    formats = _date_formats(sorted(counts_text.index.tolist()))
    counts = {str(k): int(v) for k, v in counts_text.head(200).items()}
    profile = make("date" if formats else "text", counts, date_format=formats[0] if formats else None)
    profile.date_also = formats[1:]
    if not formats and present.str.fullmatch(r"-?\d{1,3}(\.\d{3})*,\d+|-?\d+").all():
        profile.decimal_comma = bool(present.str.contains(",").any())
    return profile


def _find_codes(profile: ColumnProfile, distinct: list[float]) -> None:
    """Not-applicable codes of a whole-number column: special codes outside the answers, and 0 on an
    otherwise 1-7 column. Sets ``na_codes``, ``na_reasons`` and ``answers``."""
    answers = list(distinct)
    if profile.kind == "integer":
        special = [v for v in answers if int(v) in SPECIAL_CODES]
        rest = [v for v in answers if v not in special]
        if special and rest and max(rest) <= 11 and min(rest) >= 0:
            for v in special:
                profile.na_codes.append(int(v))
                profile.na_reasons.append(
                    f"{int(v)} ({profile.counts.get(int(v), 0):,} rows) lies far outside the answers "
                    f"{_num(min(rest))}-{_num(max(rest))}"
                )
            answers = rest
        if answers and answers[0] == 0 and len(answers) >= 3 and answers[1] <= 3:
            zeros = profile.counts.get(0, 0)
            low = max(profile.counts.get(1, 0), profile.counts.get(2, 0), 1)
            spike = zeros > 3 * low and zeros >= 0.05 * profile.rows
            if answers[-1] <= 7 or spike:
                profile.na_codes.insert(0, 0)
                reason = f"0 ({zeros:,} rows) on an otherwise {_num(answers[1])}-{_num(answers[-1])} column"
                if answers[-1] > 7:
                    reason += f" ({zeros / low:.0f}x as common as its rarest low answers 1 and 2)"
                profile.na_reasons.insert(0, reason)
                answers = answers[1:]
        _find_doubtful_code(profile, answers)
        if profile.na_doubtful:
            answers = [v for v in answers if v not in profile.na_doubtful]
    profile.answers = answers


def _find_doubtful_code(profile: ColumnProfile, answers: list[float]) -> None:
    """A top value that may be a "don't know" code: apart from the answers (1-5 and 9), or one above a
    common scale's top (1-5 and 6, 1-7 and 8). Either reading is possible: marked doubtful (CHECK)."""
    if len(answers) < 4 or answers[0] not in (0, 1) or answers[-1] > 11:
        return
    top, below = answers[-1], answers[-2]
    count = profile.counts.get(int(top), 0)
    share = count / profile.rows if profile.rows else 0.0
    scale = f"{_num(answers[0])}-{_num(below)}"
    contiguous = all(b - a == 1 for a, b in zip(answers[:-1], answers[1:-1]))
    if not contiguous or below not in (4, 5, 7, 10):
        return
    if top - below >= 2:
        reason = (
            f"{_num(top)} ({count:,} rows, {share:.0%}) stands apart from the answers {scale} (nothing in between): "
            f"a 'don't know' / not-applicable code? or a {_num(answers[0])}-{_num(top)} scale"
        )
    elif top in (6, 8) and below in (5, 7):
        reason = (
            f"{_num(top)} ({count:,} rows, {share:.0%}) is one above a {scale} scale: a 'don't know' / "
            f"not-applicable code? or an answer on a wider scale (1-{7 if top == 6 else 10})"
        )
    else:
        return
    profile.na_codes.append(int(top))
    profile.na_reasons.append(reason)
    profile.na_doubtful.append(int(top))


def profile_table(table: ExportTable) -> list[ColumnProfile]:
    """Profiles of every column of an export table, in file order."""
    return [profile_column(str(c), table.frame[c], table.labels.get(str(c))) for c in table.frame.columns]
