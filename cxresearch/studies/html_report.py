"""``report.html`` for one run: the executed notebook rendered by nbconvert for business readers.

Code is hidden, the papermill injected-parameters cell is removed, a header states study, title,
segment, market, data as-of date, run id, status and duration, and a red banner sits at the top when
the run failed (cell error, cell timeout, dead kernel: papermill stamps nothing for the last two) or a
model did not pass its diagnostics. Every user string in the header is HTML-escaped. The page needs
no network: require.js, MathJax, mermaid and widget scripts are left out (they load from a CDN), CSS
is inlined and figures are inline PNG data. What cells wrote to stderr (warnings, log lines) is moved to
the run's kernel.log before rendering (:func:`move_stderr`); the report keeps one line at the bottom.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cxresearch.diagnostics import as_diagnostics, describe

#: Tag papermill puts on the cell holding the injected parameters.
INJECTED_TAG = "injected-parameters"
#: Tag papermill puts on its two error marker cells.
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
#: Anchor of the cell where a run stopped (ours for timeouts / dead kernels, papermill's for errors).
STOP_ANCHOR = "cx-stopped-here"
PAPERMILL_ANCHOR = "papermill-error-cell"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

FAILURE_TITLES = {
    "cell_error": "RUN FAILED: a notebook cell raised an error",
    "timeout": "RUN FAILED: a notebook cell timed out",
    "dead_kernel": "RUN FAILED: the kernel died (out of memory, or killed)",
    "runner_error": "RUN FAILED: the runner could not execute the notebook",
    "io_error": "RUN FAILED: the run's files could not be written (disk full, or the folder is not writable)",
    "interrupted": "RUN INTERRUPTED: the command was stopped before this notebook finished",
}
#: Where the stderr output of the notebook's cells goes instead of the report (the run's kernel log).
STDERR_NOTE = "see kernel.log"

_CSS = """
.cx-header{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:16px 0 8px;
  padding:14px 18px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;color:#1f2328}
.cx-header h1{font-size:1.5em;margin:0 0 8px}
.cx-header dl{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:4px 16px;margin:0}
.cx-header dt{font-weight:600;color:#57606a}
.cx-header dd{margin:0;overflow-wrap:anywhere}
.cx-status-succeeded{color:#1b5e20;font-weight:700}
.cx-status-failed{color:#b71c1c;font-weight:700}
.cx-status-partial{color:#8a4b00;font-weight:700}
.cx-banner{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;padding:12px 16px;margin:10px 0;
  border-left:8px solid #b71c1c;background:#fdecea;color:#b71c1c;font-size:1.05em}
.cx-banner pre{white-space:pre-wrap;color:#5f0f0f;margin:8px 0 0;font-size:.9em}
.cx-banner a{color:#0b57d0;text-decoration:underline}
.cx-banner ul{margin:4px 0 0;padding-left:20px;font-size:.92em}
.cx-banner-checked{border-left-color:#1b5e20;background:#e9f5ec;color:#1b5e20;font-size:.95em}
.cx-footnote{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#57606a;font-size:.85em;
  margin:24px 0 12px;padding-top:8px;border-top:1px solid #d0d7de}
.cx-status-interrupted{color:#8a4b00;font-weight:700}
.celltag_cx-stop-marker p,.celltag_papermill-error-cell-tag p{color:#b71c1c;font-size:1.4em;font-weight:700;
  font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
"""

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.cx_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}
{{ resources.cx_header }}
{%- endblock body_header -%}
{%- block body_footer -%}{{ resources.cx_footer }}{{ super() }}{%- endblock body_footer -%}
"""


@dataclass
class ReportHeader:
    """What the report header and banners show (all plain text; escaped when rendered)."""

    study: str
    segment: str
    market: str
    run_id: str
    status: str
    title: str | None = None
    as_of: str | None = None
    dataset_name: str | None = None
    started_at: str | None = None
    duration_s: float | None = None
    notebook: str | None = None
    cxresearch_version: str | None = None
    error: Mapping[str, Any] | None = None
    failed_diagnostics: list[str] = field(default_factory=list)
    #: every diagnostics block of results.json by dotted key (the one gate's block, cxresearch.diagnostics)
    diagnostics: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: report sections that could not be computed: ``{section, error}`` (cxresearch.reports.section)
    failed_sections: list[dict[str, str]] = field(default_factory=list)
    #: numbers the data cannot support (results.json blocks with ``"estimable": false``): dotted key -> reason
    not_estimable: dict[str, str] = field(default_factory=dict)
    #: cells whose stderr output (warnings, log lines) was moved to kernel.log (see :func:`move_stderr`)
    stderr_cells: int = 0


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks carry them)."""
    return _ANSI.sub("", text)


def failed_diagnostics(results: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every ``diagnostics`` block in ``results.json`` whose ``passed`` is False."""
    found: list[str] = []
    if isinstance(results, Mapping):
        for key, value in results.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "diagnostics" and isinstance(value, Mapping) and value.get("passed") is False:
                found.append(path)
            found.extend(failed_diagnostics(value, path))
    return found


def not_estimable_results(results: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys of every block in ``results.json`` marked ``"estimable": false``, with its reason: the
    numbers a report must not show, whatever the sampler's diagnostics say."""
    found: dict[str, str] = {}
    if isinstance(results, Mapping):
        if results.get("estimable") is False:
            found[prefix] = str(results.get("reason") or "not estimable from these data")
        for key, value in results.items():
            found.update(not_estimable_results(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def diagnostics_blocks(results: Any, prefix: str = "") -> dict[str, Mapping[str, Any]]:
    """Every ``diagnostics`` block in ``results.json`` by dotted key (nested blocks included)."""
    found: dict[str, Mapping[str, Any]] = {}
    if isinstance(results, Mapping):
        for key, value in results.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "diagnostics" and isinstance(value, Mapping) and "passed" in value:
                found[path] = value
            found.update(diagnostics_blocks(value, path))
    return found


def _diagnostics_lines(blocks: Mapping[str, Mapping[str, Any]], failed_only: bool) -> str:
    """One line per diagnostics block: key, verdict, the gate's figures, and the reasons of a failure."""
    lines = []
    for key, block in blocks.items():
        d = as_diagnostics(block)
        if failed_only and d.passed:
            continue
        reasons = "".join(f"<li>{_esc(r)}</li>" for r in d.reasons)
        lines.append(
            f"<li><code>{_esc(key)}</code>: <strong>{_esc(d.verdict)}</strong>. {_esc(describe(d))}"
            + (f"<ul>{reasons}</ul>" if reasons else "")
            + "</li>"
        )
    return f"<ul>{''.join(lines)}</ul>" if lines else ""


def format_duration(seconds: float | None) -> str:
    """12.3 -> '12.3 s'; 754 -> '12 min 34 s'."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _esc(value: Any) -> str:
    return html.escape("n/a" if value is None else str(value), quote=True)


def header_html(header: ReportHeader) -> str:
    """The header block plus any banners, every user string escaped."""
    heading = header.title or header.study
    fields = [
        ("Study", "study", header.study),
        ("Status", "status", header.status),
        ("Segment", "segment", header.segment),
        ("Market", "market", header.market),
        ("Data as of", "as_of", header.as_of),
        ("Dataset", "dataset", header.dataset_name),
        ("Run id", "run_id", header.run_id),
        ("Duration", "duration", format_duration(header.duration_s)),
        ("Started", "started_at", header.started_at),
        ("cxresearch", "version", header.cxresearch_version),
    ]
    items = []
    for label, key, value in fields:
        css = f' class="cx-status-{_esc(header.status)}"' if key == "status" else ""
        items.append(f'<dt>{label}</dt><dd data-field="{key}"{css}>{_esc(value)}</dd>')
    parts = [f'<header class="cx-header" id="cx-run-header"><h1>{_esc(heading)}</h1><dl>{"".join(items)}</dl></header>']
    if header.status in ("failed", "interrupted"):
        error = dict(header.error or {})
        kind = str(error.get("kind", "interrupted" if header.status == "interrupted" else "runner_error"))
        title = FAILURE_TITLES.get(kind, FAILURE_TITLES["runner_error"])
        anchor = PAPERMILL_ANCHOR if kind == "cell_error" else STOP_ANCHOR
        message = strip_ansi(str(error.get("message") or "no error message"))
        if len(message) > 4000:
            message = message[:4000] + "\n[...]"
        where = ""
        if error.get("cell_index") is not None:
            where = f' <a href="#{anchor}">Go to the cell where it stopped.</a>'
        parts.append(
            '<div class="cx-banner cx-banner-failed" id="cx-failure-banner" role="alert">'
            f"<strong>{_esc(title)}</strong>"
            "<br>The numbers below are incomplete: the notebook is shown up to the point where it stopped."
            f"{where}<pre>{_esc(message)}</pre></div>"
        )
    if header.failed_sections:
        failures = "".join(
            f"<li><strong>{_esc(e.get('section'))}</strong>: {_esc(e.get('error'))}</li>"
            for e in header.failed_sections
        )
        parts.append(
            '<div class="cx-banner cx-banner-partial" id="cx-partial-banner" role="alert">'
            f"<strong>PART OF THIS REPORT COULD NOT BE COMPUTED</strong><br>"
            "These sections show a red box instead of their results; every other section is complete."
            f"<ul>{failures}</ul></div>"
        )
    if header.failed_diagnostics:
        keys = ", ".join(header.failed_diagnostics)
        parts.append(
            f'<div class="cx-banner cx-banner-diagnostics" id="cx-diagnostics-banner" role="alert">'
            f"<strong>MODEL DID NOT PASS ITS DIAGNOSTICS</strong><br>"
            f"Do not use these numbers for decisions until the model is re-run and passes "
            f"(results.json: {_esc(keys)}).{_diagnostics_lines(header.diagnostics, failed_only=True)}</div>"
        )
    elif header.diagnostics:
        # the same block in every report: which fits were checked, with the one gate's figures
        approximate = any(as_diagnostics(b).verdict == "approximate" for b in header.diagnostics.values())
        title = "Model diagnostics passed" + (" (approximate fits: see their check)" if approximate else "")
        css = "cx-banner-checked"
        caveat = ""
        if header.not_estimable:
            # the gate checks the samplers, not whether the data inform a number: never green beside those
            title = (
                f"Sampler diagnostics passed, but {len(header.not_estimable)} numbers are not estimable from these data"
            )
            css = "cx-banner-partial"
            listed = "".join(
                f"<li><strong>{_esc(key)}</strong>: {_esc(reason[:300])}</li>"
                for key, reason in list(header.not_estimable.items())[:8]
            )
            more = len(header.not_estimable) - 8
            listed += f"<li>and {more} more (results.json)</li>" if more > 0 else ""
            caveat = f"<br>The gate checks the samplers; these are not shown as estimates:<ul>{listed}</ul>"
        parts.append(
            f'<div class="cx-banner {css}" id="cx-diagnostics-summary">'
            f"<strong>{_esc(title)}</strong>{caveat}{_diagnostics_lines(header.diagnostics, failed_only=False)}</div>"
        )
    return "\n".join(parts)


def footer_html(header: ReportHeader) -> str:
    """One discreet line at the bottom when cells wrote warnings or other text to stderr (kept in kernel.log)."""
    if not header.stderr_cells:
        return ""
    n = header.stderr_cells
    return (
        f'<p class="cx-footnote" id="cx-stderr-note">{n} {"cell" if n == 1 else "cells"} wrote warnings or other '
        f"messages to stderr: {STDERR_NOTE}</p>"
    )


def move_stderr(nb: Any) -> list[tuple[int, int | None, str]]:
    """Take the stderr stream outputs (warnings, log lines, printed in red) out of the executed notebook
    ``nb`` (in place) and return them as ``(cell index, execution count, text)``, for the kernel log.

    A cell that raised keeps its stderr: with its error output it explains the failure.
    """
    moved = []
    for index, cell in enumerate(nb.cells):
        outputs = cell.get("outputs") if cell.get("cell_type") == "code" else None
        if not outputs or any(o.get("output_type") == "error" for o in outputs):
            continue
        kept, text = [], []
        for output in outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text.append(strip_ansi("".join(output.get("text", ""))))
            else:
                kept.append(output)
        if text:
            cell["outputs"] = kept
            moved.append((index, cell.get("execution_count"), "".join(text)))
    return moved


def last_started_cell(nb: Any) -> int | None:
    """Index of the last cell papermill started executing (the one a timeout / dead kernel stopped)."""
    index = None
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            index = i
    return index


def mark_stop(nb: Any, message: str) -> int | None:
    """Insert a red marker cell before the cell where execution stopped; returns that cell's index."""
    import nbformat

    index = last_started_cell(nb)
    if index is None:
        return None
    marker = nbformat.v4.new_markdown_cell(
        f'<span id="{STOP_ANCHOR}"></span>Execution stopped here: {_esc(strip_ansi(message))}'
    )
    marker.metadata["tags"] = ["cx-stop-marker"]
    nb.cells.insert(index, marker)
    return index


def _report_cells(nb: Any) -> Any:
    nb = copy.deepcopy(nb)
    kept = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags:
            continue
        if PAPERMILL_ERROR_TAG in tags and f'href="#{PAPERMILL_ANCHOR}"' in "".join(cell.source):
            continue  # papermill's top-of-notebook error link: our banner replaces it
        if "parameters" in tags and cell.cell_type == "code" and not cell.get("outputs"):
            continue  # the defaults cell shows nothing with code hidden
        kept.append(cell)
    nb.cells = kept
    return nb


def render_report(nb: Any, header: ReportHeader) -> str:
    """Render an (executed, possibly partial) notebook node to a self-contained HTML page."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if nb is None:
        nb = nbformat.v4.new_notebook()
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"cxreport.html.j2": _TEMPLATE})],
        template_file="cxreport.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    title = f"{header.title or header.study} - {header.segment} / {header.market}"
    resources = {
        "metadata": {"name": title},
        "cx_header": header_html(header),
        "cx_footer": footer_html(header),
        "cx_css": _CSS,
    }
    body, _ = exporter.from_notebook_node(_report_cells(nb), resources=resources)
    return body


def fallback_report(header: ReportHeader, note: str) -> str:
    """A minimal page (header, banners, a note) for when nbconvert itself fails."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(header.study)}</title>'
        f"<style>{_CSS}</style></head><body>{header_html(header)}<pre>{_esc(note)}</pre>{footer_html(header)}"
        "</body></html>"
    )
