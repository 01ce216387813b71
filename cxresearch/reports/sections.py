"""One section that cannot be computed never takes a report down.

A notebook wraps each report section in ``with section("Kano classes"):``. If the section raises, the
exception stops there: a red box says which section could not be computed and why, the failure is recorded
in ``results.json`` (``sections_failed``; the runner then marks the run ``partial`` in its manifest, the CLI
and the index), and the notebook goes on with the next section. The setup cell (data, model fit) is not
wrapped: without it there is no report, and the run fails as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cxresearch.reports.display import banner
from cxresearch.results import failed_sections, record_section_failure, recorded_results


@contextmanager
def section(title: str) -> Iterator[None]:
    """Run one report section; on an exception show and record it, and let the report go on."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point: any failure stays inside its section
        reason = f"{type(exc).__name__}: {exc}"
        earlier = [e["section"] for e in failed_sections(recorded_results())]
        if isinstance(exc, NameError) and earlier:
            reason += f" (it needs the result of a section that could not be computed: {', '.join(earlier)})"
        record_section_failure(title, reason)
        banner(
            f"This section could not be computed: {reason}. The rest of the report is not affected.",
            level="error",
            title=f"{title}: not computed",
        )
