"""report.html rendering: header, escaping, banners, hidden code, no external resources (no kernel)."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cxresearch.studies.html_report import (
    ReportHeader,
    diagnostics_blocks,
    failed_diagnostics,
    fallback_report,
    format_duration,
    mark_stop,
    render_report,
)
from cxresearch.studies.index import flatten_numbers, headline_kpis

EVIL = '<script>alert("x")</script>'


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


class _Refs(HTMLParser):
    """Collects every src / href and every <script> / <link> tag."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))
            if name == "id" and value:
                self.ids.add(value)


def _notebook(executed_error: bool = False):
    params = new_code_cell("dataset = 'x'\nsegment = 'all'", metadata={"tags": ["parameters"]})
    injected = new_code_cell(
        "# Parameters\nsegment = 'INJECTED_SECRET_TOKEN'", metadata={"tags": ["injected-parameters"]}
    )
    injected.outputs = [new_output("stream", name="stdout", text="INJECTED_OUTPUT\n")]
    code = new_code_cell("print('visible output'); HIDDEN_CODE_TOKEN = 1")
    code.outputs = [new_output("stream", name="stdout", text=f"visible output {EVIL}\n")]
    plot = new_code_cell("plt.show()")
    plot.outputs = [new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"})]
    md = new_markdown_cell("# Findings\nNPS rose. $x^2$ math is left as text.")
    cells = [md, params, injected, code, plot]
    if executed_error:
        err = new_code_cell("raise ValueError('boom')")
        err.outputs = [
            new_output("error", ename="ValueError", evalue="boom", traceback=["\x1b[31mValueError\x1b[0m: boom"])
        ]
        cells.append(err)
    for i, cell in enumerate(cells):
        cell.metadata.setdefault("papermill", {})["start_time"] = f"2026-01-01T00:00:0{i}"
    return new_notebook(
        cells=cells,
        metadata={"kernelspec": {"name": "cxresearch", "display_name": "Python (cxresearch)", "language": "python"}},
    )


def _header(**kw) -> ReportHeader:
    base = dict(
        study="measurement",
        title=f"Title {EVIL}",
        segment=f"seg {EVIL}",
        market="NO",
        run_id="r1",
        status="succeeded",
        as_of="2026-10-31",
        duration_s=12.34,
        dataset_name="demo",
    )
    base.update(kw)
    return ReportHeader(**base)


def test_report_header_escaped_code_hidden_parameters_removed():
    page = render_report(_notebook(), _header())
    assert EVIL not in page  # every user string escaped (header and notebook output)
    assert "seg &lt;script&gt;alert(" in page and "Title &lt;script&gt;" in page
    assert 'data-field="market">NO<' in page and 'data-field="as_of">2026-10-31<' in page
    assert 'data-field="duration">12.3 s<' in page and 'data-field="status"' in page
    assert "INJECTED_SECRET_TOKEN" not in page and "INJECTED_OUTPUT" not in page
    assert "HIDDEN_CODE_TOKEN" not in page  # code hidden
    assert "visible output" in page and "Findings" in page
    assert "cx-failure-banner" not in page and "cx-diagnostics-banner" not in page


def test_report_is_self_contained():
    page = render_report(_notebook(), _header())
    parser = _Refs()
    parser.feed(page)
    external = [r for r in parser.refs if r[2].lower().startswith(("http:", "https:", "//", "ftp:"))]
    assert external == []  # no CDN: require.js, MathJax, mermaid, widgets all left out
    scripts_with_src = [r for r in parser.refs if r[0] == "script"]
    assert scripts_with_src == []
    images = [r for r in parser.refs if r[0] == "img"]
    assert images and all(v.startswith("data:image/png;base64,") for _, _, v in images)


@pytest.mark.parametrize(
    "kind, title",
    [
        ("cell_error", "RUN FAILED: a notebook cell raised an error"),
        ("timeout", "RUN FAILED: a notebook cell timed out"),
        ("dead_kernel", "RUN FAILED: the kernel died"),
        ("runner_error", "RUN FAILED: the runner could not execute"),
    ],
)
def test_failure_banner_at_the_top(kind, title):
    nb = _notebook(executed_error=kind == "cell_error")
    error = {"kind": kind, "message": f"\x1b[31mboom\x1b[0m {EVIL}", "cell_index": 3}
    page = render_report(nb, _header(status="failed", error=error))
    banner = page.index('id="cx-failure-banner"')
    assert banner < page.index("Findings")  # above the notebook content
    assert title in page and "\x1b" not in page[banner : banner + 2000]
    assert EVIL not in page
    assert 'class="cx-status-failed" data-field="status">failed<' in page


def test_diagnostics_banner_from_nested_results():
    results = {
        "nps": {"mean": 31.0},
        "drivers": {"diagnostics": {"passed": False, "rhat_max": 1.2}},
        "diagnostics": {"passed": True},
    }
    assert failed_diagnostics(results) == ["drivers.diagnostics"]
    results["drivers"]["diagnostics"]["reasons"] = ["R-hat 1.200 > 1.01 on sd_slope[market]: run more draws"]
    page = render_report(
        _notebook(),
        _header(failed_diagnostics=failed_diagnostics(results), diagnostics=diagnostics_blocks(results)),
    )
    assert "MODEL DID NOT PASS ITS DIAGNOSTICS" in page and "drivers.diagnostics" in page
    assert "R-hat 1.200 &gt; 1.01 on sd_slope[market]" in page  # the reason, escaped, in the header banner
    assert 'class="cx-status-succeeded"' in page  # status stays succeeded, flagged


def test_every_report_shows_the_same_diagnostics_block_at_the_top():
    """A passed fit is shown too (one line per results.json diagnostics block, the one gate's figures)."""
    from cxresearch.diagnostics import Diagnostics, exact

    nuts = Diagnostics(
        passed=True,
        method="NUTS (nutpie)",
        chains=2,
        draws=2000,
        rhat_max=1.004,
        ess_bulk_min=812.0,
        ess_tail_min=640.0,
        divergences=0,
        bfmi_min=0.9,
    ).to_dict()
    results = {"diagnostics": nuts, "scorecard": {"diagnostics": exact().to_dict()}}
    page = render_report(_notebook(), _header(diagnostics=diagnostics_blocks(results)))
    assert 'id="cx-diagnostics-summary"' in page and "cx-diagnostics-banner" not in page
    assert "R-hat max 1.004, bulk ESS min 812, tail ESS min 640, divergences 0, E-BFMI min 0.90" in page
    assert "scorecard.diagnostics" in page and "closed form" in page


def test_mark_stop_before_the_last_started_cell():
    nb = _notebook()
    nb.cells.append(new_code_cell("never ran"))  # no papermill start_time
    index = mark_stop(nb, "cell timed out after 5 s")
    assert index == 4 and "Execution stopped here: cell timed out" in nb.cells[4].source
    page = render_report(nb, _header(status="failed", error={"kind": "timeout", "message": "t", "cell_index": 4}))
    parser = _Refs()
    parser.feed(page)
    assert "cx-stopped-here" in parser.ids and ("a", "href", "#cx-stopped-here") in parser.refs


def test_fallback_report_and_empty_notebook():
    page = fallback_report(_header(status="failed", error={"kind": "runner_error", "message": EVIL}), EVIL)
    assert EVIL not in page and "RUN FAILED" in page
    assert 'id="cx-run-header"' in render_report(None, _header())


def test_kpi_flattening_and_durations():
    results = {
        "nps": {"mean": 31.25, "low": 27.0},
        "n": 420,
        "passed": True,
        "label": "x",
        "diagnostics": {"rhat_max": 1.01},
        "deep": {"a": {"b": 1.5}},
        "nan": None,
    }
    assert flatten_numbers(results) == [("nps.mean", 31.25), ("nps.low", 27.0), ("n", 420), ("deep.a.b", 1.5)]
    assert headline_kpis(results, limit=3) == [("n", 420), ("nps.mean", 31.25), ("nps.low", 27.0)]
    assert format_duration(12.34) == "12.3 s" and format_duration(754) == "12 min 34 s"
    assert format_duration(7300) == "2 h 01 min" and format_duration(None) == "n/a"


def test_notebook_node_roundtrip_is_valid():
    nb = _notebook()
    mark_stop(nb, "x")
    nbformat.validate(nb)
