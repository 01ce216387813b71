"""Study params files: which notebook, which dataset, the run matrix and the study settings.

A params file is YAML, read with :func:`cxresearch.yamlio.load_yaml` so that codes stay strings
(``market: NO`` is Norway, not False; ``segment: 007`` is a branch code, not 7)::

    study: measurement                      # identifier; output folder name
    title: "Measurement"                    # optional, report header / index
    notebook: ../notebooks/measurement.ipynb   # paths relative to the params file
    dataset: ../data/demo/dataset.yaml
    out: ../reports                         # default output root; `--out` overrides
    matrix:                                 # one mapping or a list of mappings (union, duplicates removed)
      - {segment: each, market: all}        # each = one run per value in the data; all = pooled;
      - {segment: all, market: each}        #   or an explicit value / list of values
    seed: 1
    execution_timeout: 1800                 # seconds per cell
    settings: {draws: 500, target_nps: 30}  # -> notebook parameters (must exist in its parameters cell)

Everything is checked here, before any kernel starts: unknown keys (reported with their key path),
missing files, parameter names (identifiers, present in the notebook's ``parameters`` cell), values
(JSON-native only, and of the same kind as the notebook default), the study's settings model (types,
ranges, choices: :mod:`cxresearch.studies.settings`, for the study notebooks), and matrix values
against the data.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cxresearch.runtime import sha256_text
from cxresearch.studies.settings import SettingsError, check_study_settings, study_for_notebook
from cxresearch.yamlio import load_yaml

#: The Jupyter kernel every study notebook runs in (registered by ``make setup``).
KERNEL_NAME = "cxresearch"
#: Parameters the runner injects into every notebook, besides the study settings.
RUNNER_PARAMETERS = ("dataset", "segment", "market", "seed")
#: Matrix keywords: one run per value found in the data / one pooled run.
EACH, ALL = "each", "all"

_STUDY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ParamsError(ValueError):
    """A params file that cannot be run; the message names the file and the key path."""


def is_identifier(name: str) -> bool:
    """True when ``name`` can be a Python variable in the notebook (and is not a keyword)."""
    return isinstance(name, str) and bool(_IDENT.match(name)) and not keyword.iskeyword(name)


def json_native_problem(value: Any, where: str) -> str | None:
    """Why ``value`` is not JSON-native (None when it is): only null, bool, int, finite float, str,
    lists and string-keyed mappings of those can reach papermill unchanged."""
    if value is None or isinstance(value, (bool, str, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where}: {value!r} is not a finite number"
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = json_native_problem(item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}: key {key!r} must be a string"
            problem = json_native_problem(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    if hasattr(value, "isoformat"):
        return (
            f"{where}: {type(value).__name__} value {value} is not JSON-native "
            "(quote it in the YAML to pass it as text)"
        )
    return f"{where}: {type(value).__name__} value {value!r} is not JSON-native"


def _selector(value: Any) -> str | list[str]:
    """A matrix selector: 'each', 'all', one value, or a non-empty list of distinct values."""

    def one(item: Any) -> str:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(f"values must be text, got {type(item).__name__} {item!r} (quote it in the YAML)")
        text = str(item)
        if not text.strip():
            raise ValueError("values must not be empty")
        return text

    if isinstance(value, list):
        if not value:
            raise ValueError("an explicit list of values must not be empty")
        values = [one(v) for v in value]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"repeated values {dupes}")
        reserved = [v for v in values if v in (EACH, ALL)]
        if reserved:
            raise ValueError(f"{reserved} cannot appear inside a list: use '{EACH}' or '{ALL}' alone")
        return values
    text = one(value)
    return text if text in (EACH, ALL) else [text]


class MatrixEntry(BaseModel):
    """One block of the run matrix: a segment selector crossed with a market selector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: Any = ALL
    market: Any = ALL

    @field_validator("segment", "market", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        return _selector(value)


class StudyParams(BaseModel):
    """A validated params file (paths still as written; see :class:`LoadedParams` for resolved ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str
    title: str | None = None
    description: str | None = None
    notebook: str
    dataset: str
    out: str | None = None
    matrix: list[MatrixEntry] = Field(default_factory=lambda: [MatrixEntry()])
    seed: int = 1
    execution_timeout: float | None = Field(default=1800, gt=0)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("study")
    @classmethod
    def _study_name(cls, value: str) -> str:
        if not _STUDY_NAME.match(value):
            raise ValueError(
                f"{value!r} must be a short identifier (letters, digits, '_' or '-', not starting with '-'); "
                "it names the output folder"
            )
        return value

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_int(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"seed must be a whole number, got {value!r}")
        return value

    @field_validator("execution_timeout", mode="before")
    @classmethod
    def _timeout_number(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"execution_timeout is seconds per cell (a number), got {value!r}")
        return value

    @field_validator("matrix", mode="before")
    @classmethod
    def _one_or_list(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return [value]
        if isinstance(value, list) and not value:
            raise ValueError("the matrix needs at least one entry")
        return value

    @field_validator("settings", mode="before")
    @classmethod
    def _settings(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"settings must be a mapping of name: value, got {type(value).__name__}")
        for name, item in value.items():
            if not isinstance(name, str) or not is_identifier(name):
                raise ValueError(f"setting name {name!r} must be an identifier (letters, digits, underscore)")
            if name in RUNNER_PARAMETERS:
                raise ValueError(f"setting {name!r} is set by the runner; use the top-level key instead")
            problem = json_native_problem(item, name)
            if problem:
                raise ValueError(problem)
        return dict(value)

    @model_validator(mode="after")
    def _paths(self) -> StudyParams:
        for key in ("notebook", "dataset"):
            if not str(getattr(self, key)).strip():
                raise ValueError(f"'{key}' must be a path")
        return self


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {err['loc'][-1]!r} (not part of a params file; check its spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


@dataclass(frozen=True)
class LoadedParams:
    """A params file with its paths resolved (absolute) against the params file's folder."""

    path: Path
    params: StudyParams
    notebook: Path
    dataset: Path
    out: Path | None


def load_params(path: str | Path) -> LoadedParams:
    """Read and validate one params file; raises :class:`ParamsError` naming the file and key path."""
    path = Path(path).resolve()
    try:
        raw = load_yaml(path)
    except (FileNotFoundError, ValueError) as exc:
        raise ParamsError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: a params file is a mapping of keys, got {type(raw).__name__}")
    try:
        params = StudyParams.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_format_validation_error(exc, str(path))) from None
    base = path.parent

    def resolve(text: str) -> Path:
        p = Path(text).expanduser()
        return (p if p.is_absolute() else base / p).resolve()

    notebook, dataset = resolve(params.notebook), resolve(params.dataset)
    if not notebook.is_file():
        raise ParamsError(f"{path}: notebook: file not found: {notebook}")
    if notebook.suffix != ".ipynb":
        raise ParamsError(f"{path}: notebook: {notebook} is not a .ipynb notebook")
    if not dataset.is_file():
        raise ParamsError(f"{path}: dataset: dataset spec not found: {dataset}")
    return LoadedParams(
        path=path, params=params, notebook=notebook, dataset=dataset, out=resolve(params.out) if params.out else None
    )


# --------------------------------------------------------------------------- notebook parameters


def _literal(text: str | None) -> tuple[bool, Any]:
    if text is None:
        return False, None
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _compatible(default: Any, value: Any) -> bool:
    """Whether ``value`` may replace the notebook default ``default`` (None default: anything)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def notebook_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The parameters declared in the notebook's ``parameters`` cell (papermill's inspection).

    Raises :class:`ParamsError` when the notebook has no cell tagged ``parameters``.
    """
    import nbformat
    import papermill

    notebook = Path(notebook)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook
        raise ParamsError(f"{notebook}: not a readable notebook: {exc}") from None
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ParamsError(f"{notebook}: no cell is tagged 'parameters' (papermill needs one to inject values)")
    if len(tagged) > 1:
        raise ParamsError(f"{notebook}: cells {tagged} are all tagged 'parameters'; tag exactly one")
    return {name: dict(info) for name, info in papermill.inspect_notebook(str(notebook)).items()}


def check_parameters(notebook: str | Path, parameters: Mapping[str, Any], source: str) -> None:
    """Check names (identifiers, declared in the parameters cell) and values (JSON-native, same kind
    as the default) before any kernel starts. ``source`` (the params file) prefixes every message."""
    declared = notebook_parameters(notebook)
    several_kinds = settings_taking_several_kinds(notebook)
    problems = []
    for name, value in parameters.items():
        where = name if name in RUNNER_PARAMETERS else f"settings.{name}"
        if not is_identifier(name):
            problems.append(f"{where}: parameter name {name!r} is not an identifier")
            continue
        if name not in declared:
            problems.append(
                f"{where}: notebook {Path(notebook).name} has no parameter {name!r} in its parameters cell "
                f"(declared: {', '.join(sorted(declared)) or 'none'})"
            )
            continue
        problem = json_native_problem(value, where)
        if problem:
            problems.append(problem)
            continue
        ok, default = _literal(declared[name].get("default"))
        if ok and not _compatible(default, value) and name not in several_kinds:
            problems.append(
                f"{where}: {value!r} is {_kind(value)}, but the notebook default "
                f"{declared[name].get('default')} is {_kind(default)}"
            )
    if problems:
        raise ParamsError("\n".join(f"{source}: {p}" for p in problems))
    check_settings_model(notebook, parameters, source)


def settings_taking_several_kinds(notebook: str | Path) -> set[str]:
    """Settings whose study model takes values of several kinds (e.g. a number or a range [low, high]): the
    settings model checks those, not the notebook default's kind."""
    import types
    import typing

    study = study_for_notebook(notebook)
    if study is None:
        return set()
    from cxresearch.studies.settings import STUDY_MODELS

    out = set()
    for name, info in STUDY_MODELS[study].model_fields.items():
        origin = typing.get_origin(info.annotation)
        if origin is typing.Union or origin is types.UnionType:
            out.add(name)
    return out


def check_settings_model(notebook: str | Path, parameters: Mapping[str, Any], source: str) -> None:
    """Check the parameters against the study's settings model (types, ranges, choices, nested
    structures; :mod:`cxresearch.studies.settings`) when ``notebook`` is a study notebook (by file name).

    Raises :class:`ParamsError` naming ``source`` (the params file), each key and its value.
    """
    study = study_for_notebook(notebook)
    if study is None:
        return
    try:
        check_study_settings(study, parameters, source=source, prefix="settings.")
    except SettingsError as exc:
        raise ParamsError(str(exc)) from None


# --------------------------------------------------------------------------- matrix expansion


def segment_market_pairs(dataset: str | Path) -> set[tuple[str, str]]:
    """Distinct (segment, market) pairs in the dataset's survey table, as text.

    Read by the data loader's own source reader (:func:`cxresearch.data.loading.distinct_values`), so
    whatever ``cxresearch run`` can load, the matrix expansion can read, and vice versa.
    """
    from cxresearch.data.loading import distinct_values  # pandas / DuckDB: loaded when a matrix is expanded
    from cxresearch.data.rules import DataValidationError
    from cxresearch.data.spec import load_spec

    try:
        spec = load_spec(dataset)
        if spec.survey is not None:
            pairs = distinct_values(spec, "survey", ["segment", "market"])
            return {(str(s), str(m)) for s, m in pairs.itertuples(index=False)}
        # a customers table alone: its segment / market columns, "all" where it declares none
        assert spec.customers is not None  # a spec has a survey or a customers table
        declared = [d for d in ("segment", "market") if getattr(spec.customers, d)]
        if not declared:
            return {("all", "all")}
        rows = distinct_values(spec, "customers", declared)
    except (DataValidationError, ValueError) as exc:
        text = str(exc).removeprefix(f"{dataset}: ")  # the spec's own errors already name it
        raise ParamsError(f"{dataset}: cannot read the segments and markets: {text}") from None
    return {(str(r.get("segment", "all")), str(r.get("market", "all"))) for r in rows.to_dict("records")}


def expand_matrix(
    entries: Sequence[MatrixEntry], pairs: set[tuple[str, str]], source: str = "params"
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Expand matrix entries into (segment, market) runs, in order, duplicates removed.

    ``each`` becomes one run per value present in the data, ``all`` the pooled run. Explicit values
    must exist in the data (else :class:`ParamsError`). Combinations with no rows (e.g. a segment not
    sold in a market) are dropped and returned second, so the caller can say so.
    """
    segments = sorted({s for s, _ in pairs})
    markets = sorted({m for _, m in pairs})
    runs: list[tuple[str, str]] = []
    empty: list[tuple[str, str]] = []
    problems = []
    for i, entry in enumerate(entries):
        choices = {}
        for key, found in (("segment", segments), ("market", markets)):
            sel = getattr(entry, key)
            if sel == EACH:
                choices[key] = list(found)
            elif sel == ALL:
                choices[key] = [ALL]
            else:
                missing = [v for v in sel if v not in found]
                if missing:
                    problems.append(
                        f"{source}: matrix.{i}.{key}: {missing} not found in the data "
                        f"(found: {', '.join(found) or 'nothing'})"
                    )
                choices[key] = list(sel)
        for s in choices["segment"]:
            for m in choices["market"]:
                if (s, m) in runs:
                    continue
                has_rows = (
                    (s == ALL or any(p[0] == s for p in pairs))
                    if m == ALL
                    else (any(p[1] == m for p in pairs) if s == ALL else (s, m) in pairs)
                )
                if has_rows:
                    runs.append((s, m))
                elif (s, m) not in empty:
                    empty.append((s, m))
    if problems:
        raise ParamsError("\n".join(problems))
    return runs, empty


# --------------------------------------------------------------------------- safe folder names

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_UNSAFE_CHARS = set('/\\:*?"<>|')


def short_hash(text: str, n: int = 6) -> str:
    """First ``n`` hex digits of the sha256 of ``text`` (to disambiguate names)."""
    return sha256_text(text)[:n]


def safe_name(value: str, max_len: int = 60) -> str:
    """A folder-name-safe, still readable form of a segment / market value.

    Unicode letters are kept (NFC); path separators, control / format characters and characters that
    Windows forbids become ``_``; leading dots and spaces, ``--`` (our separator) and trailing dots
    are removed. Whenever the result differs from ``value``, a short hash of the original is appended,
    so two different values never share a folder.
    """
    text = unicodedata.normalize("NFC", value)
    chars = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _UNSAFE_CHARS or cat.startswith("C") or cat in ("Zl", "Zp"):
            chars.append("_")
        elif ch.isspace():
            chars.append(" ")
        else:
            chars.append(ch)
    name = "".join(chars)
    while "--" in name:
        name = name.replace("--", "-")
    name = name.strip(" ").lstrip(".").rstrip(". ")
    name = re.sub(r"_{2,}", "_", name)
    if len(name.encode("utf-8")) > max_len:
        name = name.encode("utf-8")[:max_len].decode("utf-8", "ignore").rstrip(". ")
    if not name or name in (".", ".."):
        name = "_"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    if name != value:
        name = f"{name}~{short_hash(value)}"
    return name


def run_folder_names(runs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``<segment>--<market>`` folder per run; names that collide (also case-insensitively, for macOS
    and Windows file systems) get a short hash of the (segment, market) pair appended."""
    runs = list(runs)
    names = {run: f"{safe_name(run[0])}--{safe_name(run[1])}" for run in runs}
    folded: dict[str, list[tuple[str, str]]] = {}
    for run, name in names.items():
        folded.setdefault(name.casefold(), []).append(run)
    for group in folded.values():
        if len(group) > 1:
            for run in group:
                names[run] = f"{names[run]}~{short_hash(json.dumps(list(run)))}"
    return names
