"""Load a dataset described by a spec into the canonical frames of ``docs/ARCHITECTURE.md``.

Every table is read through DuckDB (in-process, a fresh in-memory connection per load; database files
are attached read-only): a Parquet file, a CSV file (all columns read as text so codes such as ``007``
survive and bad values can be reported), a folder of CSV/Parquet files (unioned by column name, hive
``key=value`` folders become columns), or a DuckDB database with a table or a SQL query.

Only the columns the spec names are selected, and the segment / market filters are pushed down as SQL
``WHERE`` clauses with bound parameters, so a filtered load of a 10M-row Parquet file reads only the
matching rows into pandas. The raw rows are validated (:mod:`cxresearch.data.validation`) and then
recoded: not-applicable codes -> missing, 1-11 -> 0-10, labels -> codes, reverse-keyed items reversed,
tenure in months, margin from revenue when no margin is given. Source files are never written to.
"""
from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from cxresearch.data.spec import DatasetSpec, load_spec
from cxresearch.data.validation import (
    DAYS_PER_MONTH,
    MONTHS_PER_UNIT,
    TEXT,
    DataValidationError,
    FieldRule,
    Problem,
    SourceInfo,
    _natural_key,
    build_schema,
    rules_for,
    run_schema,
)

ROLES: tuple[str, ...] = ("survey", "customers", "benchmark")
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
FILE_COLUMN = "__cx_source_file"
#: Arrow -> pandas: text stays Arrow-backed (fast, vectorised string operations)
_ARROW_TYPES = {pa.string(): TEXT, pa.large_string(): TEXT, pa.string_view(): TEXT}


@dataclass
class CXData:
    """Canonical frames of one dataset (see docs/ARCHITECTURE.md) plus where they came from.

    ``hashes`` maps table role -> sha256 of the source bytes (a folder: sha256 of its files' names and
    hashes); ``sources`` maps table role -> the files read; ``notes`` says what the loader left out.
    """

    spec: DatasetSpec
    survey: pd.DataFrame | None
    customers: pd.DataFrame | None
    benchmark: pd.DataFrame | None
    hashes: dict[str, str]
    sources: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)


class _SourceProblem(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


# --------------------------------------------------------------------------------------------- sources
def _quote(identifier: str) -> str:
    """A SQL identifier, double-quoted (column names come from the spec, never trusted as SQL)."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass
class _Table:
    role: str
    label: str
    from_sql: str
    params: list[Any]
    files: list[Path]
    alias: str | None = None  # attached database to USE while querying (SQL queries name its tables)
    columns: dict[str, str] = field(default_factory=dict)  # user columns -> DuckDB type
    file_column: str | None = None
    file_labels: dict[str, str] = field(default_factory=dict)

    def info(self) -> SourceInfo:
        return SourceInfo(self.label, tuple(self.columns), self.file_column, self.file_labels)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _format_of(path: Path, declared: str | None) -> str | None:
    if declared:
        return declared
    suffix = _suffix(path)
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return None


class _Reader:
    """Opens the spec's tables on one DuckDB connection and runs the filtered, projected selects."""

    def __init__(self, spec: DatasetSpec, conn: duckdb.DuckDBPyConnection):
        self.spec = spec
        self.conn = conn
        self._aliases: dict[Path, str] = {}
        self._tables: dict[str, _Table] = {}

    # -- opening
    def open(self, role: str) -> _Table:
        if role in self._tables:
            return self._tables[role]
        block = getattr(self.spec, role)
        src = self.spec.tables[block.table]
        table = self._open_path(role, block.table, src) if src.path is not None else self._open_db(role, src)
        try:
            with self._using(table):
                described = self.conn.execute(f"DESCRIBE SELECT * FROM {table.from_sql} AS t", table.params).fetchall()
        except duckdb.Error as exc:
            raise _SourceProblem(Problem(table.label, None, f"cannot read: {_first_line(exc)}")) from None
        table.columns = {str(row[0]): str(row[1]) for row in described if row[0] != FILE_COLUMN}
        self._tables[role] = table
        return table

    def _open_path(self, role: str, name: str, src: Any) -> _Table:
        path = self.spec.resolve(src.path)
        label = src.path
        if not path.exists():
            raise _SourceProblem(Problem(label, None, f"file or folder not found (looked for {path})"))
        delim = src.csv_delimiter
        if path.is_dir():
            def readable(f: Path) -> bool:  # data files only: no hidden files or _SUCCESS-style markers
                hidden = any(part.startswith((".", "_")) for part in f.relative_to(path).parts)
                fmt = _format_of(f, None)
                return f.is_file() and not hidden and fmt is not None and src.format in (None, fmt)

            files = sorted(f for f in path.rglob("*") if readable(f))
            if not files:
                raise _SourceProblem(Problem(label, None, "no CSV or Parquet files in this folder"))
            hive = any("=" in part for f in files for part in f.relative_to(path).parent.parts)
            hive_sql = ", hive_partitioning=true, hive_types_autocast=false" if hive else ""
            csv = [str(f) for f in files if _format_of(f, None) == "csv"]
            parquet = [str(f) for f in files if _format_of(f, None) == "parquet"]
            parts, params = [], []
            if csv:
                parts.append(f"SELECT * FROM read_csv(?, all_varchar=true, header=true, union_by_name=true, "
                             f"filename='{FILE_COLUMN}'{hive_sql}{', delim=?' if delim else ''})")
                params += [csv] + ([delim] if delim else [])
            if parquet:
                parts.append(f"SELECT * FROM read_parquet(?, union_by_name=true, filename='{FILE_COLUMN}'{hive_sql})")
                params.append(parquet)
            from_sql = f"({' UNION ALL BY NAME '.join(parts)})"
            base = label.rstrip("/\\")
            labels = {str(f): f"{base}/{f.relative_to(path).as_posix()}" for f in files}
            return _Table(role, label, from_sql, params, files, file_column=FILE_COLUMN, file_labels=labels)
        fmt = _format_of(path, src.format)
        if fmt is None:
            raise _SourceProblem(Problem(label, None, "cannot tell the format from the file name; "
                                         "add 'format: csv' or 'format: parquet' to the table"))
        if fmt == "csv":
            if delim is None and _suffix(path).startswith(".tsv"):
                delim = "\t"
            from_sql = f"read_csv(?, all_varchar=true, header=true{', delim=?' if delim else ''})"
            params = [str(path)] + ([delim] if delim else [])
        else:
            from_sql, params = "read_parquet(?)", [str(path)]
        return _Table(role, label, from_sql, params, [path])

    def _open_db(self, role: str, src: Any) -> _Table:
        path = self.spec.resolve(src.database)
        label = f"{src.database} (table {src.table})" if src.table else f"{src.database} (query)"
        if not path.is_file():
            raise _SourceProblem(Problem(label, None, f"DuckDB database not found (looked for {path})"))
        key = path.resolve()
        if key not in self._aliases:
            alias = f"cx_db{len(self._aliases)}"
            try:
                self.conn.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(key)])
            except duckdb.Error as exc:
                message = f"cannot open as a DuckDB database: {_first_line(exc)}"
                raise _SourceProblem(Problem(label, None, message)) from None
            self._aliases[key] = alias
        alias = self._aliases[key]
        if src.query is not None:
            from_sql = f"({src.query.strip().rstrip(';')})"
        else:
            parts = src.table.split(".")
            known = self._db_tables(alias)
            wanted = parts[-1]
            if wanted not in {t for _, t in known}:
                names = sorted({t for _, t in known})
                close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise _SourceProblem(Problem(label, None, f"table {wanted!r} not found{hint} "
                                             f"(tables: {', '.join(names) or 'none'})"))
            from_sql = ".".join([alias] + [_quote(p) for p in parts])
        return _Table(role, label, from_sql, [], [path], alias=alias)

    def _db_tables(self, alias: str) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal",
            [alias, alias]).fetchall()
        return [(str(s), str(t)) for s, t in rows]

    # -- reading
    class _Use:
        def __init__(self, conn: duckdb.DuckDBPyConnection, alias: str | None):
            self.conn, self.alias = conn, alias

        def __enter__(self) -> None:
            if self.alias:
                self.conn.execute(f"USE {self.alias}")

        def __exit__(self, *exc: object) -> None:
            if self.alias:
                self.conn.execute("USE memory")

    def _using(self, table: _Table) -> _Reader._Use:
        return _Reader._Use(self.conn, table.alias)

    def select_sql(self, table: _Table, columns: Iterable[str], filters: dict[str, list[str]],
                   semi_join: str | None = None) -> tuple[str, list[Any]]:
        """SELECT of the existing needed columns with the filters as bound-parameter WHERE clauses."""
        wanted = [c for c in dict.fromkeys(columns) if c in table.columns]
        items = [f"CAST({_quote(c)} AS DOUBLE) AS {_quote(c)}" if table.columns[c].upper().startswith(("DECIMAL",
                 "HUGEINT", "UHUGEINT")) else _quote(c) for c in wanted]
        if table.file_column:
            items.append(_quote(table.file_column))
        select = ", ".join(items) or "NULL AS __cx_none"
        clauses, params = [], list(table.params)
        for col, values in filters.items():
            if col not in table.columns or not values:
                continue
            ref = _quote(col)
            if table.columns[col].upper() != "VARCHAR":
                ref = f"CAST({ref} AS VARCHAR)"
            clauses.append(f"{ref} IN ({', '.join('?' for _ in values)})")
            params += list(values)
        if semi_join is not None and semi_join in table.columns:
            clauses.append(f"trim(CAST({_quote(semi_join)} AS VARCHAR)) IN (SELECT customer_id FROM __cx_keys)")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return f"SELECT {select} FROM {table.from_sql} AS t{where}", params

    def fetch(self, table: _Table, columns: Iterable[str], filters: dict[str, list[str]],
              keys: pd.Series | None = None, key_column: str | None = None) -> pd.DataFrame:
        """Run the projected, filtered select and return the raw rows (RangeIndex)."""
        sql, params = self.select_sql(table, columns, filters, key_column if keys is not None else None)
        try:
            if keys is not None:
                self.conn.register("__cx_keys", pd.DataFrame({"customer_id": keys.astype(str).unique()}))
            with self._using(table):
                arrow = self.conn.sql(sql, params=params).to_arrow_table()
            frame = arrow.to_pandas(types_mapper=_ARROW_TYPES.get, date_as_object=False)
        except duckdb.Error as exc:
            raise _SourceProblem(Problem(table.label, None, f"cannot read: {_first_line(exc)}")) from None
        finally:
            if keys is not None:
                self.conn.unregister("__cx_keys")
        if "__cx_none" in frame:
            frame = frame.drop(columns="__cx_none")
        return frame.reset_index(drop=True)

    def count(self, table: _Table) -> int:
        """Number of rows in a table (no filter)."""
        with self._using(table):
            return int(self.conn.execute(f"SELECT count(*) FROM {table.from_sql} AS t", table.params).fetchone()[0])

    def distinct(self, table: _Table, column: str, limit: int = 50) -> list[str]:
        """Distinct values of a column (for messages when a filter matches nothing)."""
        if column not in table.columns:
            return []
        with self._using(table):
            rows = self.conn.execute(f"SELECT DISTINCT CAST({_quote(column)} AS VARCHAR) AS v FROM {table.from_sql} "
                                     f"AS t WHERE v IS NOT NULL LIMIT {int(limit)}", table.params).fetchall()
        return sorted((str(r[0]) for r in rows), key=_natural_key)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection, quiet (no progress bar in notebooks or the CLI)."""
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        # Inside a Jupyter kernel without ipywidgets DuckDB refuses to touch the setting at all; its
        # progress bar is then never drawn either, so there is nothing to switch off.
        pass
    return conn


# --------------------------------------------------------------------------------------------- hashing
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def source_hash(files: Sequence[Path], root: Path | None = None) -> str:
    """sha256 of one file's bytes, or of the sorted "relative name + sha256" lines of several files."""
    if len(files) == 1 and root is None:
        return _sha256_file(files[0])
    lines = sorted(f"{(f.relative_to(root) if root else f).as_posix()}\t{_sha256_file(f)}\n" for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


# --------------------------------------------------------------------------------------------- recoding
def _canonical(raw: pd.DataFrame, rules: Sequence[FieldRule], parsed: Any) -> dict[str, pd.Series]:
    """Convert validated raw columns to canonical ones (codes -> missing, recodes, labels, units).

    ``parsed`` is the validation run's cache, so each column is parsed once for checking and recoding.
    """
    out: dict[str, pd.Series] = {}
    for rule in rules:
        values = parsed.get(rule, raw[rule.column])[0]
        if rule.kind in ("id", "code", "date", "label"):
            out[rule.name] = values
        elif rule.kind == "rating":
            if rule.reverse and rule.scale is not None:
                values = rule.scale.max + rule.scale.min - values
            out[rule.name] = values.astype("float64")
        elif rule.kind == "recommend":
            if rule.recode is not None:
                values = values - rule.recode.from_.min + rule.recode.to.min
            out[rule.name] = values.round().astype("Int64")
        elif rule.kind == "churn":
            out[rule.name] = values.astype("int64") if not values.isna().any() else values
        elif rule.kind == "duration":
            out[rule.name] = values * MONTHS_PER_UNIT[rule.time_unit]
        elif rule.kind == "number":
            out[rule.name] = values.astype("float64")
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(rule.kind)
    return out


def _survey_frame(cols: dict[str, pd.Series], spec: DatasetSpec, index: pd.Index) -> pd.DataFrame:
    s = spec.survey
    frame = pd.DataFrame(cols, index=index)
    if "wave" not in frame:
        frame["wave"] = pd.Series("1", index=index, dtype=TEXT)
    order = ["customer_id", "segment", "market", "wave", "survey_date", "unit", *s.touchpoints]
    order += list(s.emotion.items) if s.emotion else []
    order += ["recommend", "outcome"]
    return frame[[c for c in order if c in frame]]


def _customers_frame(cols: dict[str, pd.Series], spec: DatasetSpec, index: pd.Index) -> pd.DataFrame:
    c = spec.customers
    frame = pd.DataFrame(cols, index=index)
    if c.start:
        as_of = pd.Timestamp(spec.as_of)
        end = frame["end_date"] if "end_date" in frame else pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
        days = (end.fillna(as_of) - frame["start_date"]).dt.total_seconds() / 86400.0
        frame["tenure"] = days / DAYS_PER_MONTH
    order = ["customer_id", "segment", "market", "unit", "tenure", "churn", "margin", "start_date", "end_date",
             *c.cross_sell]
    return frame[[col for col in order if col in frame]]


def _benchmark_frame(cols: dict[str, pd.Series], spec: DatasetSpec, index: pd.Index) -> pd.DataFrame:
    b = spec.benchmark
    frame = pd.DataFrame(cols, index=index)
    frame.insert(1, "is_own", (frame["brand"] == b.own_brand).fillna(False).astype(bool))
    order = ["brand", "is_own", "market", "wave", "recommend", *b.attributes]
    return frame[[col for col in order if col in frame]]


# --------------------------------------------------------------------------------------------- loading
def _filter_values(value: Any, what: str) -> list[str] | None:
    """None / "all" -> no filter; a value or a list of values -> their string codes."""
    if value is None:
        return None
    values = [value] if isinstance(value, (str, int, float)) else list(value)
    if not values:
        raise ValueError(f"{what} filter is an empty list; use None or 'all' for no filter")
    texts = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip() for v in values]
    if any(t.lower() == "all" for t in texts):
        if len(texts) > 1:
            raise ValueError(f"{what} filter mixes 'all' with values {texts}")
        return None
    return list(dict.fromkeys(texts))


@dataclass
class _Loaded:
    frame: pd.DataFrame | None
    table: _Table | None


class _Loader:
    def __init__(self, spec: DatasetSpec, conn: duckdb.DuckDBPyConnection, validate: bool):
        self.spec = spec
        self.reader = _Reader(spec, conn)
        self.validate = validate
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def load(self, role: str, rules: list[FieldRule], filters: dict[str, tuple[str, list[str] | None]],
             keys: pd.Series | None = None, key_column: str | None = None) -> _Loaded:
        """Read, validate and recode one table role. ``filters``: raw column -> (dimension, values)."""
        try:
            table = self.reader.open(role)
        except _SourceProblem as exc:
            self.problems.append(exc.problem)
            return _Loaded(None, None)
        sql_filters = {col: values for col, (_, values) in filters.items() if values}
        try:
            raw = self.reader.fetch(table, [r.column for r in rules], sql_filters, keys, key_column)
        except _SourceProblem as exc:
            self.problems.append(exc.problem)
            return _Loaded(None, table)
        if raw.empty and sql_filters:
            for col, (what, values) in filters.items():
                known = self.reader.distinct(table, col)
                if values and col in table.columns and not set(values) & set(known):
                    close = [m for v in values for m in difflib.get_close_matches(v, known, n=1, cutoff=0.6)]
                    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                    message = (f"no rows for {what} {', '.join(map(repr, values))}{hint} "
                               f"(values: {', '.join(known[:20])})")
                    if role == "benchmark":
                        self.notes.append(f"{table.label}: column {col}: {message}")
                    else:
                        self.problems.append(Problem(table.label, col, message))
        schema, registry, parsed = build_schema(self.spec, role, rules, list(raw.columns),
                                                essential_only=not self.validate)
        problems = run_schema(raw, schema, registry, table.info())
        if problems:
            self.problems += problems
            return _Loaded(None, table)
        return _Loaded(pd.DataFrame(_canonical(raw, rules, parsed), index=raw.index), table)


def _membership(survey: pd.DataFrame) -> pd.DataFrame:
    """customer_id -> segment, market from the survey: the latest wave a customer answered."""
    waves = sorted(survey["wave"].dropna().unique().tolist(), key=_natural_key)
    rank = survey["wave"].map({w: i for i, w in enumerate(waves)})
    cols = [c for c in ("segment", "market") if c in survey]
    latest = survey.assign(_rank=rank).sort_values("_rank", kind="stable").groupby("customer_id", sort=False).last()
    return latest[cols]


def load_dataset(spec: DatasetSpec | str | Path, segment: Any = None, market: Any = None,
                 tables: Sequence[str] = ROLES, validate: bool = True) -> CXData:
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
    segments, markets = _filter_values(segment, "segment"), _filter_values(market, "market")
    frames: dict[str, pd.DataFrame | None] = {role: None for role in ROLES}
    loaded: dict[str, _Table] = {}

    c = spec.customers
    customers_wanted = "customers" in wanted and c is not None
    needs_membership = customers_wanted and (c.segment is None or c.market is None)

    with _connect() as conn:
        loader = _Loader(spec, conn, validate)
        s = spec.survey
        if "survey" in wanted or needs_membership:
            rules = rules_for(spec, "survey")
            if "survey" not in wanted:  # only the customer -> segment/market membership is needed
                rules = [r for r in rules if r.name in ("customer_id", "segment", "market", "wave")]
            result = loader.load("survey", rules, {s.segment: ("segment", segments), s.market: ("market", markets)})
            if result.frame is not None:
                frames["survey"] = _survey_frame(result.frame.to_dict("series"), spec, result.frame.index)
                if "survey" in wanted:
                    loaded["survey"] = result.table

        if customers_wanted and not (needs_membership and frames["survey"] is None):
            rules = rules_for(spec, "customers")
            filters = {}
            if c.segment:
                filters[c.segment] = ("segment", segments)
            if c.market:
                filters[c.market] = ("market", markets)
            keys = frames["survey"]["customer_id"] if needs_membership else None
            result = loader.load("customers", rules, filters, keys=keys, key_column=c.id)
            if result.frame is not None:
                cust = result.frame
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
                                f"(the customers table has no {' / '.join(missing)} column to place them)")
                frames["customers"] = _customers_frame(cust.to_dict("series"), spec, cust.index)
                loaded["customers"] = result.table

        if "benchmark" in wanted and spec.benchmark is not None:
            b = spec.benchmark
            filters = {b.market: ("market", markets)} if b.market else {}
            result = loader.load("benchmark", rules_for(spec, "benchmark"), filters)
            if result.frame is not None:
                frames["benchmark"] = _benchmark_frame(result.frame.to_dict("series"), spec, result.frame.index)
                loaded["benchmark"] = result.table

        # the survey's unit from the customers table when the survey has none
        if ("survey" in wanted and frames["survey"] is not None and s.unit is None and c is not None and c.unit
                and not loader.problems):
            if frames["customers"] is not None:
                units = frames["customers"].set_index("customer_id")["unit"]
            else:
                rules = [r for r in rules_for(spec, "customers") if r.name in ("customer_id", "unit")]
                result = loader.load("customers", rules, {}, keys=frames["survey"]["customer_id"], key_column=c.id)
                units = (result.frame.drop_duplicates("customer_id").set_index("customer_id")["unit"]
                         if result.frame is not None else None)
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
        root = spec.resolve(spec.tables[getattr(spec, role).table].path) if table.file_column else None
        hashes[role] = source_hash(table.files, root)
        sources[role] = [str(f) for f in table.files]
    return CXData(spec=spec, survey=frames["survey"], customers=frames["customers"], benchmark=frames["benchmark"],
                  hashes=hashes, sources=sources, notes=loader.notes)


def explain_load(spec: DatasetSpec | str | Path, role: str = "survey", segment: Any = None,
                 market: Any = None) -> str:
    """DuckDB's physical plan of the select a filtered load runs (shows filters pushed into the scan)."""
    spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
    block = getattr(spec, role)
    segments, markets = _filter_values(segment, "segment"), _filter_values(market, "market")
    filters: dict[str, list[str]] = {}
    if getattr(block, "segment", None) and segments:
        filters[block.segment] = segments
    if getattr(block, "market", None) and markets:
        filters[block.market] = markets
    with _connect() as conn:
        reader = _Reader(spec, conn)
        try:
            table = reader.open(role)
        except _SourceProblem as exc:
            raise DataValidationError([exc.problem]) from None
        sql, params = reader.select_sql(table, [r.column for r in rules_for(spec, role)], filters)
        with reader._using(table):
            rows = conn.execute(f"EXPLAIN {sql}", params).fetchall()
    return "\n".join(str(r[1]) for r in rows)


def distinct_values(spec: DatasetSpec | str | Path, role: str = "survey",
                    columns: Sequence[str] = ("segment", "market")) -> pd.DataFrame:
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
        raise ValueError(f"{role}: no field(s) {unknown or list(columns)} in the spec "
                         f"(declared: {', '.join(by_name)})")
    with _connect() as conn:
        reader = _Reader(spec, conn)
        try:
            table = reader.open(role)
        except _SourceProblem as exc:
            raise DataValidationError([exc.problem]) from None
        missing = [by_name[c].column for c in columns if by_name[c].column not in table.columns]
        if missing:
            raise DataValidationError([Problem(table.label, col, "column not found "
                                               f"(columns: {', '.join(sorted(table.columns))})") for col in missing])
        # the same canonical form as the loader's code columns: stripped text, blank -> missing
        items = [f"NULLIF(trim(CAST({_quote(by_name[c].column)} AS VARCHAR)), '') AS {_quote(c)}" for c in columns]
        keep = " AND ".join(f"{_quote(c)} IS NOT NULL" for c in columns)
        sql = f"SELECT * FROM (SELECT DISTINCT {', '.join(items)} FROM {table.from_sql} AS t) WHERE {keep}"
        try:
            with reader._using(table):
                rows = conn.execute(sql, table.params).fetchall()
        except duckdb.Error as exc:
            raise DataValidationError([Problem(table.label, None, f"cannot read: {_first_line(exc)}")]) from None
    rows = sorted(rows, key=lambda row: tuple(_natural_key(v) for v in row))
    return pd.DataFrame(rows, columns=list(columns), dtype=object).astype(TEXT)
