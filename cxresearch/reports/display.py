"""Figures and tables for business readers: one seaborn theme, formatted numbers, visible banners."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.diagnostics import as_diagnostics, describe, gate_text

PALETTE = ["#1f4e79", "#c0504d", "#9bbb59", "#8064a2", "#4bacc6", "#f79646", "#7f7f7f", "#2c7c5b"]
NPS_COLORS = {"detractor": "#c0504d", "passive": "#bfbfbf", "promoter": "#2c7c5b"}

_LEVEL_STYLE = {
    "error": ("#fdecea", "#b71c1c"),
    "warning": ("#fff4e5", "#8a4b00"),
    "info": ("#e8f1fb", "#1f4e79"),
    "ok": ("#e9f5ec", "#1b5e20"),
}


def set_theme(context: str = "notebook") -> None:
    """Apply the cxresearch figure theme (seaborn whitegrid, readable fonts, fixed palette)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette=PALETTE, font_scale=1.0)
    mpl.rcParams.update(
        {
            "figure.figsize": (8, 4.5),
            "figure.dpi": 100,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "figure.constrained_layout.use": True,
        }
    )


def format_pct(value: float, digits: int = 0) -> str:
    """0.314 -> '31%'."""
    return "n/a" if value is None or pd.isna(value) else f"{100 * value:.{digits}f}%"


def format_money_exact(value: float | None, currency: str = "€") -> str:
    """-4683.7 -> '-€4,684': whole units with thousands separators, the sign before the currency (an f-string of
    a negative amount gives '€-4,684')."""
    if value is None or not np.isfinite(value):
        return "n/a"
    rounded = round(float(value))
    return f"{'-' if rounded < 0 else ''}{currency}{abs(rounded):,.0f}"


def format_interval(mean: float, low: float, high: float, digits: int = 1, unit: str = "") -> str:
    """'31.2 (90% interval 27.0 to 35.1)'."""
    if any(v is None or pd.isna(v) for v in (mean, low, high)):
        return "n/a"
    return f"{mean:.{digits}f}{unit} ({low:.{digits}f} to {high:.{digits}f}{unit})"


def error_bars(mean: Any, low: Any, high: Any) -> np.ndarray:
    """``xerr`` / ``yerr`` for a point at ``mean`` with an interval (low, high): the two bar lengths.

    A posterior mean can lie outside an equal-tailed interval when the draws are skewed or clipped (Kano
    penalties and rewards are clipped at 0 per draw: with few positive draws the mean exceeds the 95%
    quantile 0). Matplotlib refuses negative bar lengths, so such a side is drawn with length 0: the point
    then sits at the interval's end, which is where it is.
    """
    mean, low, high = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (mean, low, high))
    return np.maximum(np.stack([mean - low, high - mean]), 0.0)


def banner(message: str, level: str = "info", title: str | None = None) -> Any:
    """A coloured box shown at the point of the call (HTML in a notebook, text elsewhere)."""
    bg, fg = _LEVEL_STYLE.get(level, _LEVEL_STYLE["info"])
    head = f"<strong>{html.escape(title)}</strong><br>" if title else ""
    body = (
        f'<div class="cx-banner cx-banner-{html.escape(level)}" style="background:{bg};color:{fg};'
        f'border-left:6px solid {fg};padding:10px 14px;margin:8px 0;font-size:1.05em">'
        f"{head}{html.escape(message)}</div>"
    )
    try:
        from IPython.display import HTML, display

        display(HTML(body))
    except ImportError:  # pragma: no cover - IPython is a dependency
        print(f"[{level.upper()}] {title or ''} {message}")
    return body


def diagnostics_figures(diagnostics: Mapping[str, Any]) -> str:
    """'R-hat max 1.004, bulk ESS min 512, tail ESS min 640, divergences 0, E-BFMI min 0.85; method: ...'."""
    return describe(diagnostics)


def diagnostics_banner(diagnostics: Mapping[str, Any]) -> Any:
    """Banner stating the one gate's verdict with the figures and the reasons (see cxresearch.diagnostics).

    Passed NUTS fits are green; approximate fits are never green (amber, "approximate"); failures are red
    and list what to change.
    """
    d = as_diagnostics(diagnostics)
    figures = diagnostics_figures(d)
    reasons = " ".join(f"({i}) {r}." for i, r in enumerate(d.reasons, 1))
    gate = gate_text()
    if d.verdict == "passed":
        return banner(f"{figures}. Gate: {gate}.", level="ok", title="Model diagnostics passed")
    if d.verdict == "approximate":
        return banner(
            f"{figures}. Approximate fit: its own check passed, but it is not a sampled posterior; "
            "confirm decisions with a NUTS fit.",
            level="warning",
            title="Approximate model (not NUTS)",
        )
    return banner(
        f"{figures}. Gate: {gate}. What failed: {reasons} Do not use these numbers for decisions until the "
        "model is re-run and passes.",
        level="error",
        title="MODEL FAILED ITS DIAGNOSTICS GATE",
    )


def gate_table(diagnostics: Mapping[str, Any] | None, extra: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The one gate's figures as a Check / Value table for a report's model-checks section (``extra`` rows last)."""
    from cxresearch.diagnostics import GATE, as_dict

    d = as_dict(diagnostics)
    if d is None:
        raise ValueError("gate_table: no diagnostics to show")

    def number(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    chains = d.get("chains") or 1
    rows = [("Method", d["method"]), ("Chains x draws", f"{chains} x {(d.get('draws') or 0) // max(chains, 1)}")]
    if d.get("approximate"):
        rows.append((f"Pareto-k (gate < {GATE['pareto_k_max']})", number(d.get("pareto_k"), ".2f")))
    else:
        rows += [
            (f"R-hat (max, gate <= {GATE['rhat_max']})", number(d.get("rhat_max"), ".3f")),
            (f"Bulk ESS (min, gate >= {GATE['ess_bulk_min']:.0f})", number(d.get("ess_bulk_min"), ".0f")),
            (f"Tail ESS (min, gate >= {GATE['ess_tail_min']:.0f})", number(d.get("ess_tail_min"), ".0f")),
            (f"Divergences (gate <= {100 * GATE['divergence_share_max']:.1f}% of draws)", str(d.get("divergences"))),
            (f"E-BFMI (min, gate >= {GATE['bfmi_min']})", number(d.get("bfmi_min"), ".2f")),
        ]
    passed = (
        ("yes (approximate)" if d.get("approximate") else "yes") if d["passed"] else "NO: " + "; ".join(d["reasons"])
    )
    rows.append(("Passed", passed))
    rows += list((extra or {}).items())
    return pd.DataFrame(rows, columns=["Check", "Value"])


def show_table(
    frame: pd.DataFrame,
    formats: Mapping[str, str] | None = None,
    caption: str | None = None,
    hide_index: bool = True,
    highlight: Sequence[str] = (),
) -> Any:
    """Display a DataFrame formatted for business readers (number formats, caption, no index)."""
    # escape="html": segment / market / unit names come from user data and must not become markup
    styler = frame.style.format(formats or {}, na_rep="n/a", escape="html")
    if formats:  # columns with their own format still need their text escaped
        styler = styler.format_index(escape="html", axis=1)
    if caption:
        styler = styler.set_caption(html.escape(caption))
    if hide_index:
        styler = styler.hide(axis="index")
    text_columns = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if text_columns:  # words read left-aligned, numbers right-aligned
        styler = styler.set_properties(subset=text_columns, **{"text-align": "left"})
    if highlight:
        styler = styler.set_properties(subset=list(highlight), **{"font-weight": "bold"})
    styler = styler.set_table_styles(
        [
            {"selector": "caption", "props": "caption-side: top; font-weight: bold; text-align: left;"},
            {"selector": "th", "props": "text-align: left; background: #f2f2f2;"},
        ]
    )
    try:
        from IPython.display import display

        display(styler)
    except ImportError:  # pragma: no cover
        print(frame.to_string())
    return styler


def scope_text(segment: str, market: str) -> str:
    """'all customers' / 'customers in segment mass' / 'customers in market NO' / both.

    HTML-escaped: the values come from user data and end up in Markdown and HTML of the reports.
    """
    parts = []
    if str(segment) != "all":
        parts.append(f"segment {html.escape(str(segment))}")
    if str(market) != "all":
        parts.append(f"market {html.escape(str(market))}")
    return "customers in " + " and ".join(parts) if parts else "all customers"
