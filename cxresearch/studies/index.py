"""``<out>/index.html``: one table of all runs (study x segment x market) with status, duration, the
headline KPIs from each ``results.json`` and relative links to each ``report.html``. Works offline
(no scripts, inline CSS); every user string is escaped.

Rows come from the run folders on disk (``<out>/<study>/<folder>/manifest.json``) plus the runs the
current command planned but did not run yet ("not run"), so the index covers every study in ``out``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cxresearch.results import write_text_atomic
from cxresearch.studies.manifest import MANIFEST_NAME, REPORT_NAME, RESULTS_NAME

INDEX_NAME = "index.html"


def flatten_numbers(results: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Numeric leaves of a results dict as (dotted key, value), in recording order; booleans and
    anything under a ``diagnostics`` key are left out (they are shown as a flag, not a KPI)."""
    found: list[tuple[str, float]] = []
    if not isinstance(results, Mapping):
        return found
    for key, value in results.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key == "diagnostics":
            continue
        if isinstance(value, Mapping):
            found.extend(flatten_numbers(value, path))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found.append((path, value))
    return found


def headline_kpis(results: Any, limit: int = 6) -> list[tuple[str, float]]:
    """The first ``limit`` numeric results (top-level numbers first, then nested ones)."""
    flat = flatten_numbers(results)
    flat.sort(key=lambda kv: kv[0].count("."))  # stable: keeps recording order within a depth
    return flat[:limit]


def _fmt_headline_number(value: Any, unit: str, signed: bool) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    if isinstance(value, int):
        return f"{value:{sign},}"
    magnitude = abs(value)
    if unit == "%" or magnitude >= 100:
        spec = ",.0f"
    elif magnitude >= 10:
        spec = ".1f"
    else:
        spec = ".2f"
    return f"{value:{sign}{spec}}"


def format_headline(entry: Mapping[str, Any]) -> str:
    """One headline entry as text without its label, e.g. ``+20.5 points (+18.9 to +22.1)`` or ``73%``.

    ``points`` values (NPS, changes) are signed; ``%`` sticks to the number; other units follow it.
    """
    unit = str(entry.get("unit") or "")
    signed = unit == "points"

    def with_unit(value: Any) -> str:
        text = _fmt_headline_number(value, unit, signed)
        if not unit:
            return text
        return f"{text}{unit}" if unit == "%" else f"{text} {unit}"

    text = with_unit(entry.get("value"))
    interval = entry.get("interval")
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        low, high = (_fmt_headline_number(v, unit, signed) for v in interval)
        text += f" ({low} to {high})"
    return text


def headline_entries(results: Any, limit: int = 6) -> list[tuple[str, str]]:
    """(label, formatted value) pairs of the notebook's ``record_headline`` entries, in recording order;
    empty when it recorded none (the index then falls back to :func:`headline_kpis`)."""
    entries = results.get("headline") if isinstance(results, Mapping) else None
    if isinstance(entries, Mapping):  # tolerate a dict keyed by label
        entries = [
            {"label": k, **v} if isinstance(v, Mapping) else {"label": k, "value": v} for k, v in entries.items()
        ]
    shown = [
        (str(e["label"]), format_headline(e))
        for e in (entries or [])
        if isinstance(e, Mapping) and e.get("label") is not None
    ]
    return shown[:limit]


@dataclass
class IndexRow:
    """One run in the index."""

    study: str
    segment: str
    market: str
    folder: str  # relative to out, posix
    status: str
    title: str | None = None
    duration_s: float | None = None
    finished_at: str | None = None
    run_id: str | None = None
    as_of: str | None = None
    error: str | None = None
    kpis: list[tuple[str, float]] = field(default_factory=list)
    headline: list[tuple[str, str]] = field(default_factory=list)  # (label, formatted value) shown in the index
    diagnostics_failed: list[str] = field(default_factory=list)
    has_report: bool = False


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def collect_rows(out_root: str | Path, planned: Iterable[Any] = ()) -> list[IndexRow]:
    """Rows for every run folder under ``out_root`` with a manifest, plus planned runs not on disk."""
    out_root = Path(out_root)
    rows: dict[str, IndexRow] = {}
    for manifest_path in sorted(out_root.glob(f"*/*/{MANIFEST_NAME}")):
        manifest = _read_json(manifest_path)
        if not isinstance(manifest, dict) or not {"study", "segment", "market", "status"} <= manifest.keys():
            continue
        run_dir = manifest_path.parent
        folder = run_dir.relative_to(out_root).as_posix()
        results = _read_json(run_dir / RESULTS_NAME) or {}
        error = manifest.get("error") or {}
        rows[folder] = IndexRow(
            study=str(manifest["study"]),
            segment=str(manifest["segment"]),
            market=str(manifest["market"]),
            folder=folder,
            status=str(manifest["status"]),
            title=manifest.get("title"),
            duration_s=manifest.get("duration_s"),
            finished_at=manifest.get("finished_at"),
            run_id=manifest.get("run_id"),
            as_of=(manifest.get("data") or {}).get("as_of"),
            error=(f"{error.get('kind')}: {error.get('message')}" if error else None),
            kpis=headline_kpis(results),
            headline=headline_entries(results),
            diagnostics_failed=list(manifest.get("diagnostics_failed") or []),
            has_report=(run_dir / REPORT_NAME).is_file(),
        )
    for plan in planned:
        if plan.folder not in rows:
            rows[plan.folder] = IndexRow(
                study=plan.study,
                segment=plan.segment,
                market=plan.market,
                folder=plan.folder,
                status="not run",
                title=plan.title,
                as_of=(plan.data or {}).get("as_of"),
            )

    def order(row: IndexRow) -> tuple:
        return (
            row.study.casefold(),
            row.segment != "all",
            row.segment.casefold(),
            row.market != "all",
            row.market.casefold(),
            row.folder,
        )

    return sorted(rows.values(), key=order)


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#1f2328}
h1{font-size:1.6em;margin:0 0 4px} p.meta{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse;width:100%;font-size:.95em}
th,td{border-bottom:1px solid #d0d7de;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}
.status{font-weight:700;white-space:nowrap}
.status-succeeded{color:#1b5e20} .status-failed{color:#b71c1c} .status-running{color:#8a4b00}
.status-partial{color:#8a4b00} .status-interrupted{color:#8a4b00}
.status-not-run{color:#57606a;font-weight:400}
.flag{display:inline-block;margin-top:2px;padding:1px 6px;border-radius:4px;background:#fdecea;color:#b71c1c;
  font-size:.85em;font-weight:700}
tr.failed td{background:#fff5f5}
ul.kpis{list-style:none;margin:0;padding:0} ul.kpis li{white-space:nowrap}
ul.kpis code{color:#57606a} ul.kpis .kpi-label{font-weight:600}
.err{color:#b71c1c;font-size:.85em;max-width:32em;overflow-wrap:anywhere}
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt_number(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3g}" if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-2) else f"{value:,.2f}"


def _fmt_duration(seconds: float | None) -> str:
    from cxresearch.studies.html_report import format_duration

    return "" if seconds is None else format_duration(seconds)


def index_html(rows: list[IndexRow], title: str = "cxresearch study reports") -> str:
    """The index page for ``rows``."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    flagged = sum(1 for r in rows if r.diagnostics_failed and r.status in ("succeeded", "partial"))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if flagged:
        summary += f"; {flagged} with failed model diagnostics"
    body = []
    for row in rows:
        status_class = "status-" + row.status.replace(" ", "-")
        flag = (
            (
                '<br><span class="flag" title="results.json: '
                + _esc(", ".join(row.diagnostics_failed))
                + '">model did not pass its diagnostics</span>'
            )
            if row.diagnostics_failed
            else ""
        )
        shows_error = bool(row.error) and row.status in ("failed", "interrupted")
        err = f'<div class="err">{_esc((row.error or "")[:300])}</div>' if shows_error else ""
        if row.headline:
            kpis = "".join(
                f'<li class="headline"><span class="kpi-label">{_esc(k)}</span> {_esc(v)}</li>' for k, v in row.headline
            )
        else:  # no record_headline entries: the first numbers recorded, under their keys
            kpis = "".join(f"<li><code>{_esc(k)}</code> {_esc(_fmt_number(v))}</li>" for k, v in row.kpis)
        if row.has_report:
            href = quote(f"{row.folder}/{REPORT_NAME}", safe="/~")
            link = f'<a class="report-link" href="{_esc(href)}">report</a>'
        else:
            link = '<span class="no-report">none</span>'
        study = _esc(row.study) + (
            f"<br><small>{_esc(row.title)}</small>" if row.title and row.title != row.study else ""
        )
        body.append(
            f'<tr class="run {"failed" if row.status == "failed" else ""}" data-study="{_esc(row.study)}" '
            f'data-segment="{_esc(row.segment)}" data-market="{_esc(row.market)}" data-status="{_esc(row.status)}">'
            f"<td>{study}</td><td>{_esc(row.segment)}</td><td>{_esc(row.market)}</td>"
            f'<td><span class="status {status_class}">{_esc(row.status)}</span>{flag}{err}</td>'
            f'<td class="num">{_esc(_fmt_duration(row.duration_s))}</td>'
            f'<td><ul class="kpis">{kpis}</ul></td><td>{_esc(row.as_of)}</td>'
            f"<td>{_esc(row.finished_at)}<br><small>{_esc(row.run_id)}</small></td><td>{link}</td></tr>"
        )
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_esc(title)}</h1><p class="meta">{len(rows)} runs: {_esc(summary)}. Generated {_esc(generated)}.</p>'
        '<table id="runs"><thead><tr><th>Study</th><th>Segment</th><th>Market</th><th>Status</th>'
        "<th>Duration</th><th>Headline KPIs</th><th>Data as of</th><th>Finished (UTC) / run id</th>"
        "<th>Report</th></tr></thead><tbody>" + "".join(body) + "</tbody></table></body></html>\n"
    )


def write_index(out_root: str | Path, planned: Iterable[Any] = (), title: str = "cxresearch study reports") -> Path:
    """Write ``<out_root>/index.html`` atomically and return its path."""
    out_root = Path(out_root)
    path = out_root / INDEX_NAME
    write_text_atomic(path, index_html(collect_rows(out_root, planned), title=title))
    return path
