"""Opening a spec's tables in DuckDB: files, folders and databases as one SQL source each.

Every table is read through DuckDB (in-process, a fresh in-memory connection per load; database files
are attached read-only): a Parquet file, a CSV file (all columns read as text so codes such as ``007``
survive and bad values can be reported), a folder of CSV/Parquet files (unioned by column name, hive
``key=value`` folders become columns), or a DuckDB database with a table or a SQL query. Source files
are never written to. Used by :mod:`cxresearch.data.loading` and :mod:`cxresearch.economics.scale`.
"""

from __future__ import annotations

import atexit
import difflib
import glob
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from cxresearch.data.rules import TEXT, Problem, SourceInfo, natural_key
from cxresearch.data.spec import DatasetSpec, TableSource
from cxresearch.runtime import sha256_file, sha256_text

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
FILE_COLUMN = "__cx_source_file"
#: Arrow -> pandas: text stays Arrow-backed (fast, vectorised string operations)
ARROW_TYPES = {pa.string(): TEXT, pa.large_string(): TEXT, pa.string_view(): TEXT}


class SourceProblem(Exception):
    """A table that cannot be opened or read; ``problem`` says which and why."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


# --------------------------------------------------------------------------------------------- sources
def quote(identifier: str) -> str:
    """A SQL identifier, double-quoted (column names come from the spec, never trusted as SQL)."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass
class SourceTable:
    """One opened table: its SQL source (``from_sql`` with ``params``), files, DuckDB column types."""

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
        """How validation messages name this table (label, columns, per-row file column)."""
        return SourceInfo(self.label, tuple(self.columns), self.file_column, self.file_labels)


def filter_clauses(table: SourceTable, filters: Mapping[str, list[str] | None]) -> tuple[list[str], list[str]]:
    """WHERE clauses (bound ``?`` parameters) keeping rows whose raw value, as text, is one of the
    filter's values; columns the table lacks and empty filters are skipped."""
    clauses, params = [], []
    for col, values in filters.items():
        if col not in table.columns or not values:
            continue
        ref = quote(col)
        if table.columns[col].upper() != "VARCHAR":
            ref = f"CAST({ref} AS VARCHAR)"
        clauses.append(f"{ref} IN ({', '.join('?' for _ in values)})")
        params += list(values)
    return clauses, params


def filtered_source_sql(table: SourceTable, filters: Mapping[str, list[str] | None]) -> str:
    """``(SELECT * FROM <source> WHERE <filters>)`` with every parameter inlined as a literal, for lazy
    relations (which take no parameters); the filters as :meth:`SourceReader.select_sql` applies them."""
    clauses, values = filter_clauses(table, filters)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return inline_params(f"(SELECT * FROM {table.from_sql} AS t{where})", list(table.params) + values)


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


class SourceReader:
    """Opens the spec's tables on one DuckDB connection and runs the filtered, projected selects."""

    def __init__(self, spec: DatasetSpec, conn: duckdb.DuckDBPyConnection):
        self.spec = spec
        self.conn = conn
        self._aliases: dict[Path, str] = {}
        self.tables: dict[str, SourceTable] = {}

    # -- opening
    def open(self, role: str) -> SourceTable:
        if role in self.tables:
            return self.tables[role]
        block = getattr(self.spec, role)
        src = self.spec.tables[block.table]
        if src.path is not None:
            table = self._open_path(role, block.table, src)
        else:
            table = self._open_db(role, block.table, src)
        try:
            with self.using(table):
                described = self.conn.execute(f"DESCRIBE SELECT * FROM {table.from_sql} AS t", table.params).fetchall()
        except duckdb.Error as exc:
            raise SourceProblem(read_problem(exc, table, block.table)) from None
        table.columns = {str(row[0]): str(row[1]) for row in described if row[0] != FILE_COLUMN}
        self.tables[role] = table
        return table

    def _open_path(self, role: str, name: str, src: Any) -> SourceTable:
        path = self.spec.resolve(src.path)
        label = src.path
        if not path.exists():
            raise SourceProblem(Problem(label, None, f"file or folder not found (looked for {path})"))
        delim = src.csv_delimiter
        encoding = src.duckdb_encoding if src.encoding else None  # None: UTF-8, or a transcoded copy
        if path.is_dir():

            def readable(f: Path) -> bool:  # data files only: no hidden files or _SUCCESS-style markers
                hidden = any(part.startswith((".", "_")) for part in f.relative_to(path).parts)
                fmt = _format_of(f, None)
                return f.is_file() and not hidden and fmt is not None and src.format in (None, fmt)

            files = sorted(f for f in path.rglob("*") if readable(f))
            if not files:
                raise SourceProblem(Problem(label, None, "no CSV or Parquet files in this folder"))
            base = label.rstrip("/\\")
            labels = {str(f): f"{base}/{f.relative_to(path).as_posix()}" for f in files}
            for f in files:
                _refuse_empty(f, labels[str(f)])
            hive = any("=" in part for f in files for part in f.relative_to(path).parent.parts)
            hive_sql = ", hive_partitioning=true, hive_types_autocast=false" if hive else ""
            csv = [f for f in files if _format_of(f, None) == "csv"]
            parquet = [str(f) for f in files if _format_of(f, None) == "parquet"]
            parts, params = [], []
            if csv:
                read = [str(_readable_copy(f, labels[str(f)], src)) for f in csv]
                labels.update({r: labels[str(f)] for r, f in zip(read, csv)})
                parts.append(
                    f"SELECT * FROM read_csv(?, all_varchar=true, header=true, union_by_name=true, "
                    f"filename='{FILE_COLUMN}'{hive_sql}{', delim=?' if delim else ''}"
                    f"{', encoding=?' if encoding else ''})"
                )
                params += [read] + ([delim] if delim else []) + ([encoding] if encoding else [])
            if parquet:
                parts.append(f"SELECT * FROM read_parquet(?, union_by_name=true, filename='{FILE_COLUMN}'{hive_sql})")
                params.append(parquet)
            from_sql = f"({' UNION ALL BY NAME '.join(parts)})"
            return SourceTable(role, label, from_sql, params, files, file_column=FILE_COLUMN, file_labels=labels)
        fmt = _format_of(path, src.format)
        if fmt is None:
            raise SourceProblem(
                Problem(
                    label,
                    None,
                    "cannot tell the format from the file name; add 'format: csv' or 'format: parquet' to the table",
                )
            )
        if path.is_file():
            _refuse_empty(path, label)
        if fmt == "csv":
            if delim is None and _suffix(path).startswith(".tsv"):
                delim = "\t"
            from_sql = f"read_csv(?, all_varchar=true, header=true{', delim=?' if delim else ''}"
            from_sql += f"{', encoding=?' if encoding else ''})"
            params = [str(_readable_copy(path, label, src))] + ([delim] if delim else [])
            params += [encoding] if encoding else []
        else:
            if src.encoding is not None:
                message = f"'encoding: {src.encoding}' applies to CSV files; a Parquet file stores its text as UTF-8"
                raise SourceProblem(Problem(label, None, message))
            from_sql, params = "read_parquet(?)", [str(path)]
        return SourceTable(role, label, from_sql, params, [path])

    def _open_db(self, role: str, name: str, src: TableSource) -> SourceTable:
        if src.database is None:  # DuckDB SQL over files, run on the in-memory connection
            assert src.query is not None  # TableSource requires a query without path and database
            query, files = resolve_query_paths(src.query, self.spec.base_dir)
            return SourceTable(role, f"table {name} (query)", f"({query.strip().rstrip(';')})", [], files)
        path = self.spec.resolve(src.database)
        label = f"{src.database} (table {src.table})" if src.table else f"{src.database} (query)"
        if not path.is_file():
            raise SourceProblem(Problem(label, None, f"DuckDB database not found (looked for {path})"))
        key = path.resolve()
        if key not in self._aliases:
            alias = f"cx_db{len(self._aliases)}"
            try:
                self.conn.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(key)])
            except duckdb.Error as exc:
                message = f"cannot open as a DuckDB database: {first_line(exc)}"
                raise SourceProblem(Problem(label, None, message)) from None
            self._aliases[key] = alias
        alias = self._aliases[key]
        files = [path]
        if src.query is not None:
            query, read = resolve_query_paths(src.query, self.spec.base_dir)
            from_sql = f"({query.strip().rstrip(';')})"
            files += read
        else:
            assert src.table is not None  # TableSource requires a table or a query with a database
            parts = src.table.split(".")
            known = self._db_tables(alias)
            wanted = parts[-1]
            if wanted not in {t for _, t in known}:
                names = sorted({t for _, t in known})
                close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise SourceProblem(
                    Problem(label, None, f"table {wanted!r} not found{hint} (tables: {', '.join(names) or 'none'})")
                )
            from_sql = ".".join([alias] + [quote(p) for p in parts])
        return SourceTable(role, label, from_sql, [], files, alias=alias)

    def _db_tables(self, alias: str) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal",
            [alias, alias],
        ).fetchall()
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

    def using(self, table: SourceTable) -> SourceReader._Use:
        return SourceReader._Use(self.conn, table.alias)

    def select_sql(
        self,
        table: SourceTable,
        columns: Iterable[str],
        filters: dict[str, list[str]],
        semi_join: str | None = None,
        computed: Sequence[tuple[str, str]] = (),
    ) -> tuple[str, list[Any]]:
        """SELECT of the existing needed columns, plus ``computed`` (alias, SQL expression) columns, with
        the filters as bound-parameter WHERE clauses (``semi_join``: only ids in the registered keys)."""
        wanted = [c for c in dict.fromkeys(columns) if c in table.columns]
        items = [
            f"CAST({quote(c)} AS DOUBLE) AS {quote(c)}"
            if table.columns[c].upper().startswith(("DECIMAL", "HUGEINT", "UHUGEINT"))
            else quote(c)
            for c in wanted
        ]
        if table.file_column:
            items.append(quote(table.file_column))
        items += [f"{sql} AS {quote(alias)}" for alias, sql in computed]
        select = ", ".join(items) or "NULL AS __cx_none"
        clauses, values = filter_clauses(table, filters)
        params = list(table.params) + values
        if semi_join is not None and semi_join in table.columns:
            clauses.append(f"trim(CAST({quote(semi_join)} AS VARCHAR)) IN (SELECT customer_id FROM __cx_keys)")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return f"SELECT {select} FROM {table.from_sql} AS t{where}", params

    def fetch(
        self,
        table: SourceTable,
        columns: Iterable[str],
        filters: dict[str, list[str]],
        keys: pd.Series | None = None,
        key_column: str | None = None,
        computed: Sequence[tuple[str, str]] = (),
    ) -> pd.DataFrame:
        """Run the projected, filtered select and return its rows (RangeIndex; text as Arrow strings)."""
        sql, params = self.select_sql(table, columns, filters, key_column if keys is not None else None, computed)
        try:
            if keys is not None:
                self.conn.register("__cx_keys", pd.DataFrame({"customer_id": keys.astype(str).unique()}))
            with self.using(table):
                arrow = self.conn.sql(sql, params=params).to_arrow_table()
            frame = arrow.to_pandas(types_mapper=ARROW_TYPES.get, date_as_object=False)
        except duckdb.Error as exc:
            raise SourceProblem(read_problem(exc, table, self._table_name(table))) from None
        finally:
            if keys is not None:
                self.conn.unregister("__cx_keys")
        if "__cx_none" in frame:
            frame = frame.drop(columns="__cx_none")
        return frame.reset_index(drop=True)

    def _table_name(self, table: SourceTable) -> str:
        block = getattr(self.spec, table.role, None)
        return block.table if block is not None else table.role

    def count(self, table: SourceTable) -> int:
        """Number of rows in a table (no filter)."""
        with self.using(table):
            row = self.conn.execute(f"SELECT count(*) FROM {table.from_sql} AS t", table.params).fetchone()
            assert row is not None  # an aggregate without GROUP BY always returns exactly one row
            return int(row[0])

    def distinct(self, table: SourceTable, column: str, limit: int = 50) -> list[str]:
        """Distinct values of a column (for messages when a filter matches nothing)."""
        if column not in table.columns:
            return []
        with self.using(table):
            rows = self.conn.execute(
                f"SELECT DISTINCT CAST({quote(column)} AS VARCHAR) AS v FROM {table.from_sql} "
                f"AS t WHERE v IS NOT NULL LIMIT {int(limit)}",
                table.params,
            ).fetchall()
        return sorted((str(r[0]) for r in rows), key=natural_key)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (DuckDB errors run over several lines)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CSV_FILE = re.compile(r"^\s*file = (.+?)\s*$", re.MULTILINE)


def read_problem(exc: BaseException, table: SourceTable, name: str) -> Problem:
    """A DuckDB read error as one line naming the file; a file that is not UTF-8 text gets DuckDB's reason
    and the ``encoding`` to declare (DuckDB's own message runs over twenty lines)."""
    text = str(exc)
    if "not utf-8 encoded" not in text.lower() and "invalid unicode" not in text.lower():
        return Problem(table.label, None, f"cannot read: {first_line(exc)}")
    found = _CSV_FILE.search(text)
    query = table.label.endswith("(query)")
    label = table.label
    if found and (table.file_column is not None or query):
        label = table.file_labels.get(found.group(1), f"{table.label}: {found.group(1)}")
    line = _CSV_LINE.search(text)
    where = f" (line {line.group(1)})" if line else ""
    fix = (
        "read it with read_csv(..., encoding='latin-1') in the query"
        if query
        else f"add 'encoding: latin-1' to table {name!r} under 'tables'"
    )
    return Problem(
        label,
        None,
        f"cannot read: the file is not UTF-8 text{where}: DuckDB found an invalid byte sequence ('This file is not "
        f"utf-8 encoded'); if it was saved as Latin-1, {fix} (cp1252 for Excel on Windows, utf-16 for Unicode text)",
    )


def _refuse_empty(path: Path, label: str) -> None:
    """A 0-byte file is one clear problem (DuckDB would read it as one column named column0)."""
    if path.is_file() and path.stat().st_size == 0:
        raise SourceProblem(Problem(label, None, "the file is empty (0 bytes)"))


# --------------------------------------------------------------------------------------------- encodings
_TRANSCODED: dict[tuple[str, int, int, str], Path] = {}
_TRANSCODE_DIR: list[Path] = []


def _transcode_dir() -> Path:
    if not _TRANSCODE_DIR:
        folder = Path(tempfile.mkdtemp(prefix="cxresearch-utf8-"))
        atexit.register(shutil.rmtree, folder, True)
        _TRANSCODE_DIR.append(folder)
    return _TRANSCODE_DIR[0]


def _readable_copy(path: Path, label: str, src: TableSource) -> Path:
    """The file DuckDB reads: the source itself, or (an encoding DuckDB cannot decode, e.g. cp1252) a
    temporary UTF-8 copy made once per process and source version. The source is only ever read."""
    if src.encoding is None or src.duckdb_encoding is not None:
        return path
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, src.encoding)
    if key not in _TRANSCODED:
        # decompressed while transcoding: the copy is plain text (.tsv keeps its tab delimiter)
        name = hashlib.sha256(repr(key).encode()).hexdigest()[:16] + (".tsv" if ".tsv" in path.name.lower() else ".csv")
        target = _transcode_dir() / name
        opener = _gzip_open if path.name.lower().endswith(".gz") else open
        try:
            with opener(path, "rt", encoding=src.encoding, newline="") as inp:
                with open(target, "w", encoding="utf-8", newline="") as out:
                    shutil.copyfileobj(inp, out)
        except (UnicodeDecodeError, OSError) as exc:
            target.unlink(missing_ok=True)
            raise SourceProblem(Problem(label, None, f"cannot read as {src.encoding}: {exc}")) from None
        _TRANSCODED[key] = target
    return _TRANSCODED[key]


def _gzip_open(path: Path, mode: str, encoding: str, newline: str) -> Any:
    import gzip

    return gzip.open(path, mode, encoding=encoding, newline=newline)


# --------------------------------------------------------------------------------------------- queries
#: DuckDB table functions whose first argument is a file path, a glob or a list of them
_FILE_FUNCTIONS = {
    "read_csv",
    "read_csv_auto",
    "read_parquet",
    "parquet_scan",
    "read_json",
    "read_json_auto",
    "read_ndjson",
    "read_ndjson_auto",
    "read_text",
    "read_blob",
    "read_xlsx",
    "sniff_csv",
    "glob",
}


def _string_literal(query: str, start: int) -> tuple[str, int]:
    """The value of the SQL string literal starting at ``start`` and the index after it."""
    i, out = start + 1, []
    while i < len(query):
        if query[i] == "'":
            if query[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(query[i])
        i += 1
    return "".join(out), i


def resolve_query_paths(query: str, base_dir: Path) -> tuple[str, list[Path]]:
    """The query with every relative file path made absolute against ``base_dir`` (the spec's folder),
    and the existing files it names (for the data hash).

    Paths are the string literals that DuckDB reads as files: the first argument of a file function
    (``read_csv('../x.csv')``, ``read_parquet(['a.parquet', 'b/*.parquet'])``) and a quoted file after
    ``FROM`` / ``JOIN`` (``FROM 'x.parquet'``). Other literals (``WHERE x = 'a.csv'``), absolute paths
    and URLs (``s3://``) are left as they are, whatever the working directory; absolute paths are still
    listed among the files read.
    """
    tokens = [(int(start), str(kind)) for start, kind in duckdb.tokenize(query)]
    texts = [
        query[start : tokens[n + 1][0] if n + 1 < len(tokens) else len(query)].strip().lower()
        for n, (start, _) in enumerate(tokens)
    ]
    out, last, files, in_list = [], 0, [], False
    for n, (start, kind) in enumerate(tokens):
        prev = texts[n - 1] if n >= 1 else ""
        prev2 = texts[n - 2] if n >= 2 else ""
        if texts[n] == "[" and prev == "(" and prev2 in _FILE_FUNCTIONS:
            in_list = True
            continue
        if texts[n] == "]":
            in_list = False
            continue
        if not kind.endswith("string_const") or query[start] != "'":
            continue
        if not (in_list or prev in ("from", "join") or (prev == "(" and prev2 in _FILE_FUNCTIONS)):
            continue
        value, end = _string_literal(query, start)
        if not value or "://" in value:
            continue
        if Path(value).expanduser().is_absolute():  # read as written, but hashed like the others
            files += [
                Path(f) for f in sorted(glob.glob(str(Path(value).expanduser()), recursive=True)) if Path(f).is_file()
            ]
            continue
        resolved = os.path.normpath(base_dir / Path(value).expanduser())
        files += [Path(f) for f in sorted(glob.glob(resolved, recursive=True)) if Path(f).is_file()]
        out += [query[last:start], "'" + resolved.replace("'", "''") + "'"]
        last = end
    out.append(query[last:])
    return "".join(out), list(dict.fromkeys(files))


def connect() -> duckdb.DuckDBPyConnection:
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
    """:func:`cxresearch.runtime.sha256_file`, remembered per (path, size, mtime): loading the same source
    again in one process does not read its bytes again."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def source_hash(files: Sequence[Path], root: Path | None = None) -> str:
    """sha256 of one file's bytes, or of the sorted "relative name + sha256" lines of several files."""
    if len(files) == 1 and root is None:
        return _sha256_file(files[0])
    lines = sorted(f"{(f.relative_to(root) if root else f).as_posix()}\t{_sha256_file(f)}\n" for f in files)
    return sha256_text("".join(lines))


def filter_values(value: Any, what: str) -> list[str] | None:
    """A segment / market filter: None / "all" -> no filter; a value or a list of values -> their codes."""
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


def sql_literal(value: Any) -> str:
    """A SQL literal (text, number, boolean or a list of them) for SQL that cannot take bound parameters."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def inline_params(sql: str, params: Sequence[Any]) -> str:
    """Replace the ``?`` placeholders of a table's SQL by literals (a lazy relation has no parameters)."""
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise AssertionError(f"{len(parts) - 1} placeholders for {len(params)} parameters in {sql!r}")
    out = parts[0]
    for value, rest in zip(params, parts[1:]):
        out += sql_literal(value) + rest
    return out
