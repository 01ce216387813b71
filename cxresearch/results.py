"""Headline numbers a study notebook records for ``results.json`` (instead of scrapbook).

In a notebook: ``record_result("nps.mean", 31.2)``. Dotted keys nest. Under the runner the file named by
the ``CXRESEARCH_RESULTS`` environment variable is rewritten atomically on every call, so a run that fails
halfway still leaves what it recorded. Interactively (JupyterLab) values are kept in memory and can be
read back with :func:`recorded_results`.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_ENV = "CXRESEARCH_RESULTS"
_RESULTS: dict[str, Any] = {}


def to_jsonable(value: Any, where: str = "value") -> Any:
    """Convert numpy / pandas scalars and arrays to JSON-native values; NaN becomes None.

    Raises TypeError naming ``where`` for anything that has no faithful JSON form.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing scalars
        return None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.ndarray):
        return [to_jsonable(v, where) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):  # pandas Series / xarray
        return to_jsonable(value.tolist(), where)
    raise TypeError(f"{where}: cannot record a {type(value).__name__} in results.json")


def _set_nested(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise ValueError(f"result key {dotted!r} has an empty part")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def write_text_atomic(path: str | Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` atomically: a uniquely named temp file in the same folder, then
    ``os.replace``, so a reader never sees a half-written file (also with several writers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (temp file in the same folder, then rename)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n")


def record_result(key: str, value: Any) -> Any:
    """Record one headline number (or a small dict / list of them) under a dotted ``key``."""
    _set_nested(_RESULTS, key, to_jsonable(value, key))
    target = os.environ.get(RESULTS_ENV)
    if target:
        write_json_atomic(target, _RESULTS)
    return value


def recorded_results() -> dict[str, Any]:
    """What has been recorded in this kernel so far."""
    return json.loads(json.dumps(_RESULTS))


HEADLINE_KEY = "headline"


def record_headline(label: str, value: Any, unit: str = "", interval: list | tuple | None = None) -> Any:
    """Record one headline KPI for the study index: ``label`` in words, its ``value``, an optional
    ``unit`` ("%", "points", "EUR", or "" for a plain number) and an optional ``[low, high]`` interval.

    Entries are kept in recording order under ``results["headline"]`` (a list of
    ``{label, value, unit, interval}``); recording the same label again replaces that entry in place.
    The index shows them instead of the first numbers recorded. Returns ``value``.
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"headline label must be non-empty text, got {label!r}")
    if not isinstance(unit, str):
        raise TypeError(f"headline {label!r}: unit must be text, got {type(unit).__name__}")
    where = f"{HEADLINE_KEY}[{label}]"
    entry = {
        "label": label.strip(),
        "value": to_jsonable(value, where),
        "unit": unit,
        "interval": None if interval is None else to_jsonable(list(interval), f"{where}.interval"),
    }
    if entry["interval"] is not None and len(entry["interval"]) != 2:
        raise ValueError(f"headline {label!r}: interval must be [low, high], got {interval!r}")
    entries = _RESULTS.get(HEADLINE_KEY)
    if not isinstance(entries, list):
        entries = []
    labels = [e.get("label") if isinstance(e, dict) else None for e in entries]
    if entry["label"] in labels:
        entries[labels.index(entry["label"])] = entry
    else:
        entries.append(entry)
    _RESULTS[HEADLINE_KEY] = entries
    target = os.environ.get(RESULTS_ENV)
    if target:
        write_json_atomic(target, _RESULTS)
    return value


SECTIONS_FAILED_KEY = "sections_failed"


def record_section_failure(section: str, error: str) -> None:
    """Record that one report section could not be computed (the runner marks such a run ``partial``).

    Kept under ``results["sections_failed"]`` as a list of ``{section, error}`` in the order they failed.
    """
    failures = _RESULTS.setdefault(SECTIONS_FAILED_KEY, [])
    failures.append({"section": str(section), "error": str(error)[:1000]})
    target = os.environ.get(RESULTS_ENV)
    if target:
        write_json_atomic(target, _RESULTS)


def failed_sections(results: Any) -> list[dict[str, str]]:
    """The ``{section, error}`` entries a run recorded with :func:`record_section_failure`."""
    entries = results.get(SECTIONS_FAILED_KEY) if isinstance(results, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and "section" in e]
