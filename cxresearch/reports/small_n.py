"""One small-sample rule for every study: below ``min_answers`` a group gets counts, not estimates.

A group with a handful of answers cannot support a mean, a share or an NPS with an interval that means
anything to a reader (one respondent gives "NPS +0.1 (-53 to +54)"), and numbers borrowed from the whole
sample would not describe it. The drivers and measurement studies apply the same rule, with the same
default (``min_answers = 30``) and the same wording, from here.
"""

from __future__ import annotations

from typing import Any

#: the default of every study's ``min_answers`` setting
DEFAULT_MIN_ANSWERS = 30


def enough_answers(n_answers: int, min_answers: int = DEFAULT_MIN_ANSWERS) -> bool:
    """True when a group has at least ``min_answers`` answers (and at least one)."""
    return int(n_answers) >= max(int(min_answers), 1)


def run_scope(segment: Any = "all", market: Any = "all") -> str:
    """'segment mass, market NO' / 'market NO' / 'this run' (the words of a run's filters)."""
    parts = [
        f"{name} {value}" for name, value in (("segment", segment), ("market", market)) if value not in (None, "all")
    ]
    return ", ".join(parts) or "this run"


def too_few_line(n_answers: int) -> str:
    """The short form shown in a table cell or the index: 'too few answers (n=1)'."""
    return f"too few answers (n={int(n_answers):,})"


def too_few_answers(
    n_answers: int,
    min_answers: int = DEFAULT_MIN_ANSWERS,
    segment: Any = "all",
    market: Any = "all",
    what: str = "driver estimates",
    shown: str = "No driver numbers are shown for this group",
) -> str | None:
    """The statement a report shows instead of estimates when its group has fewer than ``min_answers``
    answers (None when there are enough). ``what`` names the estimates, ``shown`` says what the report
    shows instead."""
    if enough_answers(n_answers, min_answers):
        return None
    return (
        f"**Too few answers for {what}** ({run_scope(segment, market)}: n={int(n_answers):,}, fewer than "
        f"min_answers = {min_answers}). {shown}: whole-sample numbers would not describe it, and its own answers "
        "cannot support them."
    )
