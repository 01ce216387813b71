"""Shared presentation for study notebooks: figure theme, business tables, banners."""

from cxresearch.reports.display import (
    banner,
    diagnostics_banner,
    format_interval,
    format_pct,
    gate_table,
    scope_text,
    set_theme,
    show_table,
)
from cxresearch.reports.sections import section

__all__ = [
    "banner",
    "diagnostics_banner",
    "format_interval",
    "format_pct",
    "gate_table",
    "scope_text",
    "section",
    "set_theme",
    "show_table",
]
