"""A draft dataset spec from raw exports (``cxresearch init``): every role guessed, every guess explained.

From the column profiles of :mod:`cxresearch.data.profile` the draft picks the survey table (the one
with rating scales) and a customers table (churn plus tenure or start / end dates), then each column's
role: the id (or row numbers), segment, market, wave, date and unit, the touchpoints (whole-number
rating scales, with their not-applicable codes), the emotion items, the outcome (recommend 0-10 or
recoded 1-11, a yes/no flag, or an ordered rating) and the customers' churn, tenure, value and products.

The YAML is written by hand so that each guess carries a comment saying why and how sure
(``sure`` / ``likely`` / ``CHECK``), and a column that could be read two ways is left commented out
with the reason: nothing is guessed silently. :attr:`Draft.decisions` lists what the user must confirm.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cxresearch.data.profile import (
    ColumnProfile,
    ExportError,
    ExportTable,
    blank_text,
    profile_table,
    read_export,
    slug,
)
from cxresearch.data.rules import natural_key

#: name patterns (matched against the column name's slug) of each role
ID_RE = re.compile(
    r"(^|_)(id|uuid|guid|key|respondent|resp|customer|client|account|member|user|panelist)"
    r"(_?(id|no|nr|num|number|code|key))?$"
)
WAVE_RE = re.compile(r"(^|_)(wave|round|period|quarter|survey_wave|welle|vague|ola)($|_)")
UNIT_RE = re.compile(r"(^|_)(unit|branch|store|shop|agent|team|office|outlet|agency|site)($|_)")
SEGMENT_RE = [
    re.compile(r"(^|_)(segment|segments|seg)($|_)"),
    re.compile(r"(^|_)(cabin|class|tier|plan|contract|customer_type|category|persona|membership)($|_)"),
    re.compile(r"(^|_)(type|group)($|_)"),
]
MARKET_RE = [
    re.compile(r"(^|_)(market|markets|mkt)($|_)"),
    re.compile(r"(^|_)(airline|brand|company|operator|provider|carrier|hotel|bank|retailer|product)($|_)"),
    re.compile(r"(^|_)(country|region|area|city|state|land|pays)($|_)"),
]
RESPONDENT_RE = re.compile(r"^(author|reviewer|respondent|user|customer)_")
RECOMMEND_RE = re.compile(r"(recommend|recomend|recomm|(^|_)nps($|_)|(^|_)ltr($|_)|weiterempf|empfehl)")
EMOTION_RE = re.compile(
    r"(^|_)(emo|emotion|feel|feeling|happy|trust|frustrat\w*|angry|anger|delight\w*|annoy\w*|love|proud"
    r"|worried|anxious|confident|pleased|joy|upset|disappoint\w*)($|_)"
)
NEGATIVE_RE = re.compile(r"(frustrat|angry|anger|annoy|disappoint|worr|anxious|upset|stress|sad|afraid)")
OVERALL_RE = re.compile(r"(^|_)(overall|global|total|general|csat|satisfaction_overall)($|_)")
NOT_RATING_RE = re.compile(
    r"(^|_)(year|years|month|months|day|days|week|weeks|tenure|count|amount|price|revenue|margin|income"
    r"|charges?|spend|qty|quantity|n|num|number|duration)($|_)"
)
#: names of groupings and ids: such a column is never a rating, even when coded 1-5 (SPSS exports)
GROUP_NAME_RE = re.compile(
    r"(^|_)(segment|segments|seg|region|regions|country|countries|market|markets|mkt|city|state|province"
    r"|district|zip|postcode|education|edu|gender|sex|age|age_group|age_band|occupation|industry|sector"
    r"|language|lang|nationality|ethnicity|marital|household|cluster|persona)($|_)"
)
STRICT_ID_RE = re.compile(
    r"((^|_)(id|uuid|guid)$|^(respondent|resp|panelist|case|record|row)$"
    r"|(^|_)(respondent|resp|customer|client|account|member|user|panelist|case|record)_?(id|no|nr|num|number|key)$)"
)
CHURN_RE = re.compile(r"(churn|attrition|exited|cancel\w*|lapsed|defect\w*|(^|_)left($|_)|(^|_)closed($|_))")
TENURE_RE = re.compile(r"(^|_)(tenure|lifetime|duration|months_active|customer_months)($|_)")
START_RE = re.compile(r"(^|_)(start|since|open|opened|join|joined|signup|begin|acquired|first)(_|$)")
END_RE = re.compile(r"(^|_)(end|ended|close|closed|cancel|cancelled|churn|leave|left|stop|exit|last)(_|$)")
MARGIN_RE = re.compile(r"(^|_)(margin|profit|contribution)($|_)")
REVENUE_RE = re.compile(r"(^|_)(revenue|charges|spend|arpu|bill|sales|fee|fees)($|_)")
#: a text column is drafted as free-text comments with at least this many answers of this median word count,
#: nearly all of them different (titles and product names repeat; what people write in their words does not)
COMMENT_MIN_ANSWERS, COMMENT_MIN_WORDS, COMMENT_MIN_DISTINCT = 20, 6, 0.9
PRODUCTS_RE = re.compile(r"(^|_)(n_products|products|num_products|product_count|nproducts|holdings)($|_)")
DATE_RE = re.compile(r"(survey|response|interview|answer|completed|submitted|date)")

#: the ECSI / ACSI questionnaire's item names (Tenenhaus et al. 2005): construct of each prefix
ECSI_BLOCKS = {
    "CUEX": "expectation",
    "CUSA": "satisfaction",
    "CUSCO": "complaints",
    "CUSL": "loyalty",
    "IMAG": "image",
    "PERQ": "perceived quality",
    "PERV": "perceived value",
}
#: ECSI antecedents of satisfaction: the experience side of the path model (touchpoints)
ECSI_DRIVERS = ("IMAG", "CUEX", "PERQ", "PERV")
#: in the ECSI questionnaire CUSL3 asks how likely the respondent is to recommend the operator
ECSI_RECOMMEND = "CUSL3"
_ECSI_ITEM = re.compile(r"^(CUEX|CUSA|CUSCO|CUSL|IMAG|PERQ|PERV)(\d*)$")

STANDARD_MAXIMA = (5, 7, 10, 11, 100)
YES = {"1", "yes", "y", "true", "t", "ja", "oui", "si", "sí"}
NO = {"0", "no", "n", "false", "f", "nein", "non"}
RESERVED_KEYS = {"customer_id", "segment", "market", "wave", "survey_date", "unit", "recommend", "outcome"}


@dataclass
class Guess:
    """One column's guessed role, with the reason and how sure the draft is."""

    table: str
    column: str
    role: str  # id, segment, market, wave, date, unit, touchpoint, emotion, outcome, customers.<field>, none
    why: str
    sure: str = "likely"  # sure | likely | CHECK
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Draft:
    """A drafted spec: its YAML text, the plain spec (what the YAML holds), the guesses and decisions."""

    text: str
    spec: dict[str, Any]
    guesses: list[Guess]
    decisions: list[str]
    studies: list[str]
    notes: list[str]
    waves: list[str]
    segments: list[str]
    markets: list[str]
    copies: list[tuple[Path, str]] = field(default_factory=list)  # (cp1252 export, UTF-8 copy's path in out)

    def guessed(self, role: str) -> list[Guess]:
        return [g for g in self.guesses if g.role == role]


# --------------------------------------------------------------------------------------------- helpers
def _scale_of(p: ColumnProfile) -> tuple[list[int], str, str]:
    """The answer scale [min, max] of a rating column, why, and how sure."""
    lo, hi = int(p.low or 0), int(p.high or 0)
    if lo == 0:
        top = 10 if hi <= 10 else 100
        why = f"answers {lo}-{hi}: 0 is an answer, so {0}-{top}"
        if hi != top:
            why += f" (no answer above {hi}: check the questionnaire's scale)"
        return [0, top], why, "sure" if hi == top else "CHECK"
    top = next((m for m in STANDARD_MAXIMA if m >= hi), hi)
    if hi <= 3:
        top = hi
    sure = "sure" if (hi == top and lo == 1) else "likely"
    why = f"answers {lo}-{hi}"
    if hi != top:
        why += f", read as 1-{top} (no {top} seen: check the questionnaire's scale)"
        sure = "CHECK"
    elif lo > 1:
        why += f", read as 1-{top} (lowest answer seen {lo})"
    return [1, top], why, sure


def _grouping_name(p: ColumnProfile) -> bool:
    """A name that says grouping, id or wave: never a rating, whatever its values."""
    name = slug(p.name)
    return bool(GROUP_NAME_RE.search(name) or STRICT_ID_RE.search(name) or WAVE_RE.search(name))


def _is_rating(p: ColumnProfile) -> bool:
    """A whole-number column with at least 3 answers between 0 and 100, its name no grouping or id; a name
    that says amount / count / day (see :func:`_doubtful_rating`) only with a rating scale's values."""
    if p.kind != "integer" or len(p.answers) < 3 or p.low is None or p.high is None:
        return False
    if p.low < 0 or p.high > 100 or _grouping_name(p):
        return False
    name = slug(p.name)
    if NOT_RATING_RE.search(name) and not re.search(r"rating|score|sat", name):
        return p.low in (0, 1) and p.high in (5, 7, 10, 11) and len(p.answers) >= p.high - p.low
    return p.high <= 11 or bool(re.search(r"rating|score|sat|tp_|^q\d", name))


def _doubtful_rating(p: ColumnProfile) -> str:
    """Why a rating-like column may not be a rating (a word such as price, day, number in its name), or ''."""
    name = slug(p.name)
    found = NOT_RATING_RE.search(name)
    if not found or re.search(r"rating|score|sat", name):
        return ""
    return (
        f"its name has {found.group(2)!r} (an amount, count or time?), but its answers "
        f"{_num(p.low)}-{_num(p.high)} look like a rating scale"
    )


def _binary_labels(p: ColumnProfile) -> dict[str, int] | None:
    """Labels {value: 0/1} of a two-valued yes/no column, None when it is not one."""
    return _two_valued_labels(p, ones=YES, zeros=NO)


def _two_valued_labels(p: ColumnProfile, ones: set[str], zeros: set[str]) -> dict[str, int] | None:
    """{value: 1 / 0} of a column with exactly two values, one in ``ones`` and one in ``zeros`` (case and
    spaces ignored), None otherwise."""
    values = [str(k) for k in p.counts]
    if p.distinct != 2 or len(values) != 2:
        return None
    out = {v: 1 if v.strip().lower() in ones else 0 for v in values if v.strip().lower() in ones | zeros}
    return out if sorted(out.values()) == [0, 1] else None


def yaml_scalar(value: Any) -> str:
    """A YAML scalar: bare when it cannot be misread (identifiers, numbers), else JSON-quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(value)
    text = str(value)
    if (
        re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text)
        and text.lower() not in {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "blank"}
    ) or text == "blank":
        return text
    return json.dumps(text, ensure_ascii=False)


def yaml_flow(value: Any) -> str:
    """A YAML flow value (mapping / list / scalar) on one line."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_scalar(k)}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    return yaml_scalar(value)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def relative_path(target: Path, base: Path) -> str:
    """``target`` relative to ``base`` when close by (at most two folders up), else absolute."""
    target = target.resolve()
    try:
        rel = os.path.relpath(target, base.resolve())
    except ValueError:  # another drive (Windows)
        return str(target)
    ups = 0
    for part in Path(rel).parts:
        if part != "..":
            break
        ups += 1
    return Path(rel).as_posix() if ups <= 2 else str(target)


def _comment(guess: Guess) -> str:
    return f"  # {guess.sure}: {guess.why}"


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --------------------------------------------------------------------------------------------- guessing
@dataclass
class _Table:
    export: ExportTable
    profiles: list[ColumnProfile]

    @property
    def name(self) -> str:
        return self.export.name

    def profile(self, column: str) -> ColumnProfile:
        return next(p for p in self.profiles if p.name == column)


def _rating_score(t: _Table) -> int:
    return sum(_is_rating(p) and not _doubtful_rating(p) for p in t.profiles)


def _customers_score(t: _Table) -> int:
    churn = any(CHURN_RE.search(slug(p.name)) and p.distinct == 2 for p in t.profiles)
    duration = any(TENURE_RE.search(slug(p.name)) and p.kind in ("integer", "number") for p in t.profiles) or any(
        p.kind == "date" and START_RE.search(slug(p.name)) for p in t.profiles
    )
    return int(churn) + int(duration)


def _pick_group(
    t: _Table, patterns: Sequence[re.Pattern[str]], used: set[str], max_levels: int
) -> tuple[ColumnProfile | None, list[ColumnProfile], int]:
    """The best text column for a grouping role: name pattern priority, then fewest blanks.
    Returns (chosen, other candidates, priority level)."""
    found: list[tuple[int, float, ColumnProfile]] = []
    for p in t.profiles:
        if p.name in used or p.kind not in ("text", "integer") or not 2 <= p.distinct <= max_levels:
            continue
        if p.kind == "integer" and _is_rating(p):
            continue
        if p.missing_share > 0.5:
            continue
        name = slug(p.name)
        for level, rx in enumerate(patterns):
            if rx.search(name):
                rank = level + (len(patterns) if RESPONDENT_RE.search(name) else 0)
                found.append((rank, p.missing_share, p))
                break
    found.sort(key=lambda x: (x[0], x[1]))
    if not found:
        return None, [], 0
    return found[0][2], [f[2] for f in found[1:]], found[0][0]


def _guess_survey(t: _Table, customers: _Table | None) -> tuple[list[Guess], list[str]]:
    """Roles of the survey table's columns; also the decisions the user must make."""
    guesses: list[Guess] = []
    decisions: list[str] = []
    used: set[str] = set()
    ecsi = sum(bool(_ECSI_ITEM.match(p.name)) for p in t.profiles) >= 10

    def add(p: ColumnProfile, role: str, why: str, sure: str = "likely", **detail: Any) -> Guess:
        g = Guess(t.name, p.name, role, why, sure, dict(detail))
        guesses.append(g)
        used.add(p.name)
        return g

    # id: an id-like name, almost no blanks, many distinct values (repeats allowed: one row per wave)
    customer_ids: set[str] = set()
    if customers is not None:
        cid = _customers_id(customers)
        if cid is not None:
            customer_ids = {str(v) for v in customers.export.frame[cid.name].dropna().tolist()}
    wave_col = _wave_candidate(t, used)
    frame = t.export.frame

    def overlap(p: ColumnProfile) -> int:
        return len(customer_ids & set(map(str, frame[p.name].dropna())))

    def unique_per_wave(p: ColumnProfile) -> bool:
        return wave_col is not None and not frame.duplicated([p.name, wave_col.name]).any()

    id_like = [p for p in t.profiles if ID_RE.search(slug(p.name)) and p.missing == 0 and p.distinct > 1]
    id_candidates = [
        p
        for p in id_like
        if p.distinct >= 0.5 * p.rows or unique_per_wave(p) or (customer_ids and overlap(p) >= 0.9 * p.distinct)
    ]
    if customer_ids:
        id_candidates.sort(key=lambda p: -overlap(p))
    if id_candidates:
        p = id_candidates[0]
        repeats = p.rows - p.distinct
        why = f"id-like name, {p.distinct:,} distinct values in {p.rows:,} rows"
        sure = "sure"
        if repeats and unique_per_wave(p):
            assert wave_col is not None
            why += f" (one row per customer and {wave_col.name}: a panel)"
        elif repeats:
            why += f" ({repeats:,} repeats: several rows per customer?)"
            sure = "sure" if customer_ids and overlap(p) >= 0.9 * p.distinct else "CHECK"
        if customer_ids:
            why += f"; {overlap(p):,} of its {p.distinct:,} ids are in the customers table"
        add(p, "id", why, sure)
    for p in id_like:
        if p.name not in used and not _is_rating(p) and p.distinct < 0.5 * p.rows and p.kind != "date":
            add(
                p,
                "none",
                f"id-like name, but only {p.distinct:,} distinct values in {p.rows:,} rows: not used as the id "
                "(a grouping? name it as segment or market if it is one)",
                "CHECK",
            )

    # outcome
    outcome = _guess_outcome(t, used, ecsi)
    if outcome is not None:
        guesses.append(outcome)
        used.add(outcome.column)
    else:
        decisions.append(
            "survey.outcome: no column looks like the outcome (recommend 0-10, a yes/no flag): name the column "
            "and its kind in dataset.yaml"
        )

    # wave, unit, date
    wave_col = _wave_candidate(t, used)
    if wave_col is not None:
        shown = ", ".join(sorted(map(str, wave_col.counts), key=natural_key)[:6])
        add(wave_col, "wave", f"wave-like name, {wave_col.distinct} values: {shown}", "sure")
    for p in t.profiles:
        if p.name in used:
            continue
        if UNIT_RE.search(slug(p.name)) and p.kind in ("text", "integer") and 2 <= p.distinct <= max(2, p.rows // 3):
            if p.missing == 0:
                add(p, "unit", f"unit-like name (branch / store / agent), {p.distinct:,} values", "likely")
                break
    dates = [p for p in t.profiles if p.kind == "date" and p.name not in used]
    usable = [p for p in dates if p.missing_share < 0.05]
    usable.sort(key=lambda p: (not DATE_RE.search(slug(p.name)), p.missing_share))
    if usable:
        p = usable[0]
        why = f"dates ({p.date_format}) in {1 - p.missing_share:.0%} of rows"
        epoch = sum(v for k, v in p.counts.items() if str(k).startswith("1970-01-01"))
        if epoch:
            why += f"; {epoch} rows dated 1970-01-01 (a missing date written as 0?)"
        if p.date_also:
            why += "; " + _ambiguous_dates(p)
        sure = "CHECK" if epoch or p.date_also else "likely"
        add(p, "date", why, sure, date_format=p.date_format)
    for p in dates:
        if p.name not in used:
            add(p, "none", f"dates, but {p.missing_share:.0%} blank: not used as the survey date", "likely")

    # segment and market
    for role, patterns, most in (("segment", SEGMENT_RE, 60), ("market", MARKET_RE, 400)):
        chosen, others, _ = _pick_group(t, patterns, used, most)
        if chosen is None:
            decisions.append(
                f"survey.{role}: no column looks like the {role}; every row is {role} 'all' (a constant in the "
                f"table's query); name a column if the data has one"
            )
            guesses.append(Guess(t.name, "", role, f"no {role} column found: one {role}, 'all'", "CHECK"))
            continue
        why = f"{role}-like name, {chosen.distinct:,} values"
        sure = "likely" if others or chosen.missing else "sure"
        if chosen.kind == "integer":
            shown = ", ".join(_num(v) for v in sorted(chosen.counts)[:10])
            why += f" coded as numbers ({shown}): their names are not in the export"
            sure = "CHECK"
        if chosen.missing:
            why += f"; {chosen.missing:,} rows with no {role} are left out by the table's query"
            decisions.append(
                f"survey.{role}: {chosen.missing:,} of {chosen.rows:,} rows have no {role} ({chosen.name!r} blank) "
                "and are left out by the table's query (its 'where'); give them a value instead if they matter"
            )
        if others:
            why += f"; other candidates: {', '.join(o.name for o in others[:3])}"
        add(chosen, role, why, sure, blanks=chosen.missing)

    # emotion items: emotion-like names (or the ECSI satisfaction block), one scale
    emotion = [
        p
        for p in t.profiles
        if p.name not in used
        and _is_rating(p)
        and (EMOTION_RE.search(slug(p.name)) or (ecsi and p.name.startswith("CUSA")))
    ]
    if emotion:
        scales = [tuple(_scale_of(p)[0]) for p in emotion]
        common = max(set(scales), key=scales.count)
        reverse_of = _reverse_items([p for p in emotion if tuple(_scale_of(p)[0]) == common])
        for p in emotion:
            if tuple(_scale_of(p)[0]) != common:
                add(p, "none", f"emotion-like name but scale {_scale_of(p)[0]}, not the items' {list(common)}", "CHECK")
                continue
            reverse, why_rev = reverse_of[p.name]
            why = (
                "ECSI satisfaction item (the mediator between experience and loyalty)" if ecsi else "emotion-like name"
            )
            add(p, "emotion", f"{why}; {why_rev}", "likely", scale=list(common), reverse=reverse)

    # touchpoints: every other rating column
    for p in t.profiles:
        if p.name in used:
            continue
        name = slug(p.name)
        if not _is_rating(p):
            if p.kind == "integer" and p.low is not None and p.high is not None and len(p.answers) >= 3:
                if _grouping_name(p) and p.high <= 100:
                    why = (
                        f"whole numbers {_num(p.low)}-{_num(p.high)}, but its name says grouping or id: "
                        "not a rating (number-coded groups?)"
                    )
                    add(p, "none", why, "CHECK")
                else:
                    add(p, "none", f"whole numbers {_num(p.low)}-{_num(p.high)}: not a rating scale", "likely")
            elif p.decimal_comma:
                add(
                    p,
                    "none",
                    "numbers written with a decimal comma (5,4): read as text; to use them, convert in the "
                    "table's query (replace(col, ',', '.'))",
                    "CHECK",
                )
            continue
        scale, why, sure = _scale_of(p)
        doubt = _doubtful_rating(p)
        if doubt:
            why, sure = f"{why}; {doubt}", "CHECK"
        if p.na_doubtful:
            sure = "CHECK"
        mixed = _mixed_scales(p, scale)
        if ecsi and not p.name.startswith(ECSI_DRIVERS):
            item = _ECSI_ITEM.match(p.name)
            block = ECSI_BLOCKS.get(item.group(1), "?") if item else "?"
            add(p, "none", f"ECSI {block} item: an outcome of satisfaction, not an experience", "likely")
            continue
        if OVERALL_RE.search(name):
            reason = f"an overall rating ({why}{'; ' + mixed if mixed else ''}): a summary, not one touchpoint"
            add(p, "none", reason + "; it could be the outcome instead", "CHECK")
            continue
        if mixed:
            add(p, "none", f"{why}; {mixed}: left out", "CHECK")
            decisions.append(f"column {p.name!r}: {mixed}; recode it or leave it out")
            continue
        if ecsi:
            why = f"ECSI {ECSI_BLOCKS[_ECSI_ITEM.match(p.name).group(1)]} item; {why}"  # type: ignore[union-attr]
        add(p, "touchpoint", why, sure, scale=scale)
    _share_codes(guesses, t)

    # free text ("why?"): long answers in words, most of them different, for the verbatims study
    for p in t.profiles:
        if p.name in used or p.kind != "text":
            continue
        answers = frame[p.name].dropna().astype(str).str.strip()
        answers = answers[answers != ""]
        if len(answers) < COMMENT_MIN_ANSWERS:
            continue
        words = answers.str.split().str.len()
        if words.median() >= COMMENT_MIN_WORDS and answers.nunique() >= COMMENT_MIN_DISTINCT * len(answers):
            add(
                p,
                "comment",
                f"free text: {len(answers):,} answers, a median of {words.median():.0f} words, "
                f"{answers.nunique():,} different",
                "likely",
            )
    return guesses, decisions


def _wave_candidate(t: _Table, used: set[str]) -> ColumnProfile | None:
    for p in t.profiles:
        if p.name not in used and WAVE_RE.search(slug(p.name)) and 1 <= p.distinct <= 24 and p.missing == 0:
            return p
    return None


def _ambiguous_dates(p: ColumnProfile) -> str:
    return (
        f"every date reads as {p.date_format} and as {', '.join(p.date_also)} (no day above 12): "
        "check which one the export uses"
    )


def _mixed_scales(p: ColumnProfile, scale: list[int]) -> str:
    """A reason when a column looks like two scales mixed (most answers 1-5, a few 6-10), else ''."""
    if scale[1] < 10 or p.numeric is None:
        return ""
    answers = p.numeric.dropna()
    answers = answers[~answers.isin(p.na_codes)]
    above = int((answers > 5).sum())
    if 0 < above < 0.1 * len(answers):
        return f"{len(answers) - above:,} answers 1-5 but {above:,} answers 6-10 (two scales mixed?)"
    return ""


def _reverse_items(items: list[ColumnProfile]) -> dict[str, tuple[bool, str]]:
    """Which emotion items are reverse-keyed: the sign of each item on the first principal component
    of their correlations (the minority sign is reversed), else a negative word in the name."""
    import numpy as np
    import pandas as pd

    out: dict[str, tuple[bool, str]] = {}
    signs: dict[str, float] = {}
    if len(items) >= 3 and all(p.numeric is not None for p in items):
        frame = pd.concat(
            [p.numeric.where(~p.numeric.isin(p.na_codes)) for p in items if p.numeric is not None], axis=1
        )
        corr = frame.corr().to_numpy()
        if np.isfinite(corr).all():
            _, vectors = np.linalg.eigh(corr)
            first = vectors[:, -1]
            majority = np.sign(np.sum(np.sign(first))) or 1.0
            signs = {p.name: float(np.sign(v) * majority) for p, v in zip(items, first)}
    for p in items:
        negative = bool(NEGATIVE_RE.search(slug(p.name)))
        if p.name in signs:
            if signs[p.name] < 0:
                out[p.name] = (True, "reverse-keyed: it runs against the other items (their correlations)")
            elif negative:
                out[p.name] = (False, "a negative word, but it runs with the other items: not reversed")
            else:
                out[p.name] = (False, "runs with the other items")
        elif negative:
            out[p.name] = (True, "reverse-keyed: a negative feeling (too few items to check by correlation)")
        else:
            out[p.name] = (False, "not reversed")
    return out


def _share_codes(guesses: list[Guess], t: _Table) -> None:
    """Not-applicable codes per touchpoint: its own, plus those of other touchpoints on the same scale
    (a survey uses one convention; a column where nobody skipped still gets it)."""
    tps = [g for g in guesses if g.role == "touchpoint"]
    by_scale: dict[tuple[int, ...], list[Any]] = {}
    for g in tps:
        p = t.profile(g.column)
        codes = (["blank"] if p.missing else []) + [c for c in p.na_codes if c not in p.na_doubtful]
        by_scale.setdefault(tuple(g.detail["scale"]), [])
        for c in codes:
            if c not in by_scale[tuple(g.detail["scale"])]:
                by_scale[tuple(g.detail["scale"])].append(c)
    for g in tps:
        p = t.profile(g.column)
        scale = g.detail["scale"]
        codes = [c for c in by_scale[tuple(scale)] if c == "blank" or not scale[0] <= c <= scale[1]]
        codes += [c for c in p.na_doubtful if c not in codes]
        g.detail["not_applicable"] = codes
        own = []
        if p.missing:
            own.append(blank_text(p.missing, p.rows))
        own += p.na_reasons
        shared = [_num(c) for c in codes if c != "blank" and c not in p.na_codes]
        if "blank" in codes and not p.missing:
            shared.insert(0, "blank")
        text = "; ".join(own)
        if shared:
            text += ("; " if text else "") + f"{', '.join(shared)} as on other {scale[0]}-{scale[1]} touchpoints"
        if text:
            g.why += f"; not applicable: {text}"


def _guess_outcome(t: _Table, used: set[str], ecsi: bool) -> Guess | None:
    """The outcome: a recommend-like column (0-10, 1-11 recoded, yes/no), else ECSI's CUSL3."""
    candidates = [p for p in t.profiles if p.name not in used and RECOMMEND_RE.search(slug(p.name))]
    if not candidates and ecsi:
        candidates = [p for p in t.profiles if p.name == ECSI_RECOMMEND]
    for p in candidates:
        labels = _binary_labels(p)
        if labels is not None:
            return Guess(
                t.name,
                p.name,
                "outcome",
                f"recommend-like name, yes/no values {', '.join(labels)}: a binary outcome",
                "sure",
                {"kind": "binary", "labels": labels},
            )
        if p.kind == "integer" and p.distinct == 2 and sorted(p.counts) == [1, 2] and not p.na_codes:
            return Guess(
                t.name,
                p.name,
                "outcome",
                "recommend-like name, two values 1 and 2: read as a yes/no outcome with 1 = yes, 2 = no "
                "(the usual coding); check which value means yes",
                "CHECK",
                {"kind": "binary", "labels": {"1": 1, "2": 0}},
            )
        if p.kind != "integer" or not p.answers:
            continue
        lo, hi = int(p.low or 0), int(p.high or 0)
        codes = list(p.na_codes)
        if p.name == ECSI_RECOMMEND:
            why = f"ECSI: {ECSI_RECOMMEND} asks how likely the respondent is to recommend"
        else:
            why = "recommend-like name"
        if p.name != ECSI_RECOMMEND and lo in (0, 1) and 7 < hi <= 10 and not (lo == 0 and hi == 10):
            seen = "nobody answered 0" if lo == 1 else f"nobody answered above {hi}"
            return Guess(
                t.name,
                p.name,
                "outcome",
                f"{why}, answers {lo}-{hi}: read as the 0-10 NPS question where {seen}; if the question was asked "
                f"on a {lo}-{max(hi, 10)} scale, make it kind: ordinal",
                "CHECK",
                {"kind": "recommend", "not_applicable": codes},
            )
        if lo == 0 and hi == 10:
            return Guess(t.name, p.name, "outcome", f"{why}, answers 0-10: NPS scale", "sure", {"kind": "recommend"})
        if lo >= 1 and hi == 11:
            return Guess(
                t.name,
                p.name,
                "outcome",
                f"{why}, answers {lo}-11: recoded to 0-10, because 11 appears and 0 never does",
                "sure",
                {"kind": "recommend", "recode": {"from": [1, 11], "to": [0, 10]}, "not_applicable": codes},
            )
        top = 10 if hi <= 10 and hi > 7 else next((m for m in STANDARD_MAXIMA if m >= hi), hi)
        bottom = 0 if lo == 0 else 1
        labels_ord = {str(v): v - bottom for v in range(bottom, top + 1)}
        return Guess(
            t.name,
            p.name,
            "outcome",
            f"{why}, answers {lo}-{hi} on a {bottom}-{top} scale (not 0-10): an ordered outcome, "
            f"ranks 0-{top - bottom}",
            "likely",
            {"kind": "ordinal", "labels": labels_ord, "not_applicable": codes},
        )
    return None


CHURNED = {"churned", "churn", "left", "lapsed", "cancelled", "canceled", "closed", "exited", "lost", "inactive"}
CHURNED |= {"former", "terminated", "gone", "defected", "ended", "attrited", "attrition", "stopped"}
STAYED = {"active", "retained", "stayed", "current", "open", "existing", "live", "customer", "ongoing", "renewed"}


def _churn_labels(p: ColumnProfile) -> dict[str, int] | None:
    """Churn labels {value: 0/1} of a two-valued text column (churned / active...), None when unclear."""
    return _two_valued_labels(p, ones=CHURNED, zeros=STAYED)


def _customers_id(t: _Table) -> ColumnProfile | None:
    ids = [p for p in t.profiles if ID_RE.search(slug(p.name)) and p.missing == 0 and p.distinct == p.rows]
    return ids[0] if ids else None


def _guess_customers(t: _Table, survey_guesses: list[Guess], survey: _Table | None) -> tuple[list[Guess], list[str]]:
    """Roles of the customers table: id, churn, tenure or start / end, margin or revenue, products."""
    guesses: list[Guess] = []
    decisions: list[str] = []
    used: set[str] = set()

    def add(p: ColumnProfile, role: str, why: str, sure: str = "likely", **detail: Any) -> None:
        guesses.append(Guess(t.name, p.name, "customers." + role, why, sure, dict(detail)))
        used.add(p.name)

    cid = _customers_id(t)
    if cid is not None:
        add(cid, "id", f"id-like name, unique in {cid.rows:,} rows", "sure")
    else:
        decisions.append(f"customers.id: no unique id-like column in table {t.name!r}; name it")
    churn = [p for p in t.profiles if p.name not in used and CHURN_RE.search(slug(p.name)) and p.distinct == 2]
    if churn:
        p = churn[0]
        labels = _binary_labels(p) or _churn_labels(p)
        detail: dict[str, Any] = {}
        why, sure = f"churn-like name, two values {', '.join(map(str, p.counts))}", "sure"
        if labels is None:  # two values with no yes/no meaning: the rarer one read as churned
            rare = min(p.counts, key=lambda k: (p.counts[k], str(k)))
            labels = {str(k): int(k == rare) for k in p.counts}
            why += f"; {rare!s} (the rarer) read as churned: check"
            sure = "CHECK"
        elif set(labels) != {"0", "1"}:
            churned = next(k for k, v in labels.items() if v == 1)
            why += f"; {churned} read as churned"
            sure = "sure" if _binary_labels(p) else "likely"
        if set(labels) != {"0", "1"}:
            detail["churn_labels"] = labels
        add(p, "churn", why, sure, **detail)
    tenure = [p for p in t.profiles if p.name not in used and TENURE_RE.search(slug(p.name)) and p.kind != "text"]
    starts = [p for p in t.profiles if p.name not in used and p.kind == "date" and START_RE.search(slug(p.name))]
    if tenure:
        p = tenure[0]
        name = slug(p.name)
        unit = next((u for u in ("days", "weeks", "years") if u in name), "months")
        add(p, "tenure", f"tenure-like name, {_num(p.low)}-{_num(p.high)}; read as {unit}", "likely", unit=unit)
    elif starts:
        p = starts[0]
        why = f"start-like name, dates ({p.date_format})" + (f"; {_ambiguous_dates(p)}" if p.date_also else "")
        add(p, "start", why, "CHECK" if p.date_also else "likely", date_format=p.date_format)
        ends = [q for q in t.profiles if q.name not in used and q.kind == "date" and END_RE.search(slug(q.name))]
        if ends:
            q = ends[0]
            add(q, "end", f"end-like name, dates ({q.date_format}), blank for {q.missing:,} active customers")
    for rx, role in ((MARGIN_RE, "margin"), (REVENUE_RE, "revenue")):
        found = [p for p in t.profiles if p.name not in used and rx.search(slug(p.name)) and p.kind != "text"]
        if found:
            add(found[0], role, f"{role}-like name, {_num(found[0].low)}-{_num(found[0].high)} (monthly?)", "CHECK")
            break
    for p in t.profiles:
        if p.name not in used and PRODUCTS_RE.search(slug(p.name)) and p.kind == "integer":
            add(p, "cross_sell", "product-count-like name", "likely")
    survey_cols = {g.role: g.column for g in survey_guesses if g.column}
    for role in ("segment", "market", "unit"):
        col = survey_cols.get(role)
        if col and col in {p.name for p in t.profiles} and col not in used:
            p = t.profile(col)
            if p.missing == 0:
                add(p, role, f"same column as the survey's {role}", "sure")
    for p in t.profiles:
        if p.name not in used:
            guesses.append(Guess(t.name, p.name, "none", f"{p.describe()}: no role guessed", "likely"))
    return guesses, decisions


# --------------------------------------------------------------------------------------------- writing
def _source_lines(
    table: _Table,
    out: Path,
    extra: list[str],
    where: list[str],
    date_format: str | None,
    copies: list[tuple[Path, str]],
    decisions: list[str],
) -> list[str]:
    """The ``tables:`` entry of one export: a plain path when it can be read as it is, else a query."""
    e = table.export
    rel = relative_path(e.path, out)
    lines = [f"  {table.name}:"]
    skip = _skip_condition(e)
    needs_query = bool(extra or where or skip or e.kind == "excel")
    encoding = e.encoding
    if needs_query and encoding == "cp1252":  # a query's read_csv cannot decode cp1252: read a UTF-8 copy
        rel = f"data/{table.name}.utf8.csv"
        copies.append((e.path, rel))
        encoding = None
        lines.append(
            f"    # CHECK: {e.path.name} is Windows-1252 (cp1252) and needs a query, which reads UTF-8 only: "
            f"init wrote a UTF-8 copy to {rel}"
        )
        decisions.append(
            f"table {table.name}: {e.path} is saved as Windows-1252 (cp1252); the spec reads the UTF-8 copy "
            f"init wrote ({rel}): redo it (or save the export as CSV UTF-8 and point the query at it) when "
            "the export changes"
        )
    if skip:
        where = [skip] + where
    if e.kind == "duckdb":
        lines.append(f"    database: {yaml_scalar(rel)}")
        if not needs_query:
            lines.append(f"    table: {yaml_scalar(e.db_table)}")
            source = ""
        else:
            source = _sql_name(e.db_table or "")
    elif not needs_query:
        lines.append(f"    path: {yaml_scalar(rel)}")
        if encoding == "cp1252":
            lines.append(f"    encoding: {encoding}  # likely: not UTF-8; Windows-1252 characters (Excel on Windows)")
        elif encoding:
            lines.append(f"    encoding: {encoding}  # likely: not UTF-8; read as Latin-1")
        source = ""
    elif e.kind == "csv":
        opts = ["all_varchar = true"]
        if encoding:
            opts.append(f"encoding = {_sql_text(encoding)}")
        if e.delimiter:
            opts.append("delim = '\\t'")
        opts.append("header = true")
        source = f"read_csv({_sql_text(rel)}, {', '.join(opts)})"
    elif e.kind == "parquet":
        source = f"read_parquet({_sql_text(rel)})"
    else:
        source = f"read_xlsx({_sql_text(rel)}, all_varchar = true, header = true)"
    if source:
        if skip:
            lines.append(
                f"    # under the header the export holds {' and '.join(e.extra_rows)}: the query's first "
                "condition leaves them out"
            )
        sql = "select *" + "".join(f", {x}" for x in extra) + f"\n      from {source}"
        if where:
            sql += "\n      where " + "\n        and ".join(where)
        lines.append("    query: |-")
        lines += ["      " + line.strip() if i else "      " + line for i, line in enumerate(sql.splitlines())]
    if date_format and date_format != "%Y-%m-%d":
        lines.append(f"    date_format: {yaml_scalar(date_format)}  # likely: the dates' format in this export")
    return lines


def _skip_condition(e: ExportTable) -> str:
    """A SQL condition that leaves out the rows under the header (question texts, Qualtrics import ids):
    on a column whose skipped values are one line each and never occur among its data values."""
    if not e.skip_values:
        return ""
    best: tuple[int, str] | None = None
    for col, skipped in e.skip_values.items():
        if not skipped or len(skipped) != len(e.extra_rows):
            continue
        if any(not v.strip() or any(ch in v for ch in "\r\n\t") for v in skipped):
            continue
        if set(skipped) & set(map(str, e.frame[col].dropna())):
            continue
        size = sum(map(len, skipped)) + (0 if e.frame[col].notna().all() else 1000)
        if best is None or size < best[0]:
            values = ", ".join(_sql_text(v) for v in skipped)
            best = (size, f"coalesce({_sql_name(col)}, '') not in ({values})")
    if best is None:
        raise ExportError(
            f"{e.path}: the rows under the header ({', '.join(e.extra_rows)}) cannot be told apart from the "
            "data in any column; delete them from the file and run cxresearch init again"
        )
    return best[1]


def _touchpoint_keys(guesses: list[Guess]) -> dict[str, str]:
    """column -> identifier key: the column's slug without a prefix / suffix every touchpoint shares."""
    cols = [g.column for g in guesses]
    slugs = [slug(c) or "touchpoint" for c in cols]
    if len(slugs) >= 2:
        first = [s.split("_")[0] + "_" for s in slugs]
        last = ["_" + s.split("_")[-1] for s in slugs]
        if len(set(first)) == 1 and all(len(s) > len(first[0]) for s in slugs):
            slugs = [s[len(first[0]) :] for s in slugs]
        if len(set(last)) == 1 and all(len(s) > len(last[0]) for s in slugs):
            slugs = [s[: -len(last[0])] for s in slugs]
    keys: dict[str, str] = {}
    taken: set[str] = set(RESERVED_KEYS)
    for col, s in zip(cols, slugs):
        base = s if s and not s[0].isdigit() else f"tp_{s}"
        key, n = base, 2
        while key in taken:
            key, n = f"{base}_{n}", n + 1
        taken.add(key)
        keys[col] = key
    return keys


def _write(
    name: str,
    out: Path,
    survey: _Table | None,
    sg: list[Guess],
    customers: _Table | None,
    cg: list[Guess],
    others: list[_Table],
    as_of: str | None,
    copies: list[tuple[Path, str]],
    decisions: list[str],
) -> tuple[str, dict[str, Any]]:
    """The YAML text (with comments) and the plain spec it holds."""
    from cxresearch.yamlio import load_yaml_text

    lines = [
        "# DRAFT written by `cxresearch init`: every guess carries a comment saying why and how sure",
        "# (sure / likely / CHECK). Confirm the CHECK lines, then run `cxresearch validate` on this file.",
        "version: 1",
        f"name: {yaml_scalar(name)}",
    ]
    if as_of:
        lines.append(f"as_of: {yaml_scalar(as_of)}  # CHECK: the data's extract date, guessed as the latest date in it")
    lines.append("tables:")
    by_role = {g.role: g for g in sg}
    if survey is not None:
        extra, where = [], []
        for role in ("segment", "market"):
            g = by_role.get(role)
            if g is None:
                continue
            if not g.column:
                extra.append(f"'all' AS cx_{role}")
            elif g.detail.get("blanks"):
                where.append(f"coalesce(trim({_sql_name(g.column)}), '') <> ''")
        fmt = by_role["date"].detail.get("date_format") if "date" in by_role else None
        lines += _source_lines(survey, out, extra, where, fmt, copies, decisions)
    if customers is not None:
        fmts = [g.detail.get("date_format") for g in cg if g.detail.get("date_format")]
        lines += _source_lines(customers, out, [], [], fmts[0] if fmts else None, copies, decisions)
    if survey is not None:
        lines += _survey_lines(survey, sg)
    if customers is not None:
        lines += _customers_lines(customers, cg)
    for t in others:
        lines.append(
            f"# table {t.name} ({relative_path(t.export.path, out)}): not used: init drafts one survey and one "
            "customers table (a benchmark or another table: add it by hand, see the README's 'Dataset spec')"
        )
    text = "\n".join(lines) + "\n"
    return text, load_yaml_text(text, "draft dataset.yaml")


def _survey_lines(t: _Table, guesses: list[Guess]) -> list[str]:
    by_role = {g.role: g for g in guesses if g.role not in ("touchpoint", "emotion", "none", "comment")}
    lines = ["survey:", f"  table: {t.name}"]
    if "id" in by_role:
        lines.append(f"  id: {yaml_scalar(by_role['id'].column)}" + _comment(by_role["id"]))
    else:
        lines.append(
            "  # id: no id column found: each row is numbered (1 = first data row); answers cannot be joined "
            "to customers"
        )
    for role in ("segment", "market"):
        g = by_role[role]
        column = g.column or f"cx_{role}"
        lines.append(f"  {role}: {yaml_scalar(column)}" + _comment(g))
    for role in ("wave", "date", "unit"):
        if role in by_role:
            lines.append(f"  {role}: {yaml_scalar(by_role[role].column)}" + _comment(by_role[role]))
    tps = [g for g in guesses if g.role == "touchpoint"]
    keys = _touchpoint_keys(tps)
    if tps:
        lines.append("  touchpoints:")
        for g in tps:
            p = t.profile(g.column)
            body: dict[str, Any] = {"column": g.column}
            if p.label or slug(g.column) != g.column:
                body["label"] = p.label or g.column
            body["scale"] = g.detail["scale"]
            if g.detail.get("not_applicable"):
                body["not_applicable"] = g.detail["not_applicable"]
            lines.append(f"    {keys[g.column]}: {yaml_flow(body)}" + _comment(g))
    else:
        lines.append("  # touchpoints: no rating columns found (the drivers and measurement studies need some)")
    emotion = [g for g in guesses if g.role == "emotion"]
    if emotion:
        codes: list[Any] = []
        for g in emotion:
            p = t.profile(g.column)
            for c in (["blank"] if p.missing else []) + list(p.na_codes):
                if c not in codes:
                    codes.append(c)
        lines += ["  emotion:", "    items:"]
        taken = set(keys.values()) | RESERVED_KEYS
        for g in emotion:
            p = t.profile(g.column)
            key = slug(g.column) or "item"
            key = key if key not in taken and not key[0].isdigit() else f"emo_{key}"
            taken.add(key)
            body = {"column": g.column}
            if p.label or slug(g.column) != g.column:
                body["label"] = p.label or g.column
            body["reverse"] = g.detail["reverse"]
            lines.append(f"      {key}: {yaml_flow(body)}" + _comment(g))
        lines.append(f"    scale: {yaml_flow(emotion[0].detail['scale'])}")
        if codes:
            lines.append(f"    not_applicable: {yaml_flow(codes)}")
    if "outcome" in by_role:
        g = by_role["outcome"]
        p = t.profile(g.column)
        lines.append("  outcome:" + _comment(g))
        lines.append(f"    kind: {g.detail['kind']}")
        lines.append(f"    column: {yaml_scalar(g.column)}")
        if p.label:
            lines.append(f"    label: {yaml_scalar(p.label)}")
        if "recode" in g.detail:
            lines.append(f"    recode: {yaml_flow(g.detail['recode'])}")
        if "labels" in g.detail:
            lines.append(f"    labels: {yaml_flow(g.detail['labels'])}")
        if g.detail.get("not_applicable"):
            lines.append(f"    not_applicable: {yaml_flow(g.detail['not_applicable'])}")
    else:
        lines.append("  outcome: {kind: recommend, column: CHOOSE_THE_OUTCOME_COLUMN}  # CHECK: no outcome found")
    comments = [g for g in guesses if g.role == "comment"]
    if comments:
        columns: Any = comments[0].column if len(comments) == 1 else [g.column for g in comments]
        why = "; ".join(f"{g.column}: {g.why}" for g in comments)
        lines.append(f"  comments: {yaml_flow({'column': columns, 'language': 'auto'})}  # likely: {why}")
    left = [g for g in guesses if g.role == "none"]
    others = [p for p in t.profiles if p.name not in {g.column for g in guesses}]
    if left or others:
        lines.append("  # columns left out (uncomment or use them if they matter):")
        for g in left:
            p = t.profile(g.column)
            lines.append(f"  #   {yaml_scalar(g.column)}: {p.describe()}  # {g.sure}: {g.why}")
        for p in others:
            lines.append(f"  #   {yaml_scalar(p.name)}: {p.describe()}")
    return lines


def _customers_lines(t: _Table, guesses: list[Guess]) -> list[str]:
    lines = ["customers:", f"  table: {t.name}"]
    for g in guesses:
        if not g.role.startswith("customers.") or g.role == "customers.cross_sell":
            continue
        field_name = g.role.split(".", 1)[1]
        lines.append(f"  {field_name}: {yaml_scalar(g.column)}" + _comment(g))
        if field_name == "tenure":
            lines.append(f"  tenure_unit: {g.detail['unit']}")
        if "churn_labels" in g.detail:
            lines.append(f"  churn_labels: {yaml_flow(g.detail['churn_labels'])}")
    cross = [g for g in guesses if g.role == "customers.cross_sell"]
    if cross:
        lines.append(f"  cross_sell: {yaml_flow([g.column for g in cross])}" + _comment(cross[0]))
    left = [g for g in guesses if g.role == "none"]
    if left:
        lines.append("  # columns left out:")
        lines += [f"  #   {yaml_scalar(g.column)}: {g.why}" for g in left]
    return lines


# --------------------------------------------------------------------------------------------- entry
def _latest_date(tables: list[tuple[_Table, list[Guess]]]) -> str | None:
    latest: datetime | None = None
    for t, guesses in tables:
        for g in guesses:
            fmt = g.detail.get("date_format")
            if not fmt:
                continue
            for value in t.export.frame[g.column].dropna().unique():
                try:
                    d = datetime.strptime(str(value).strip(), fmt)
                except ValueError:
                    continue
                latest = d if latest is None or d > latest else latest
    return latest.date().isoformat() if latest else None


def draft_spec(exports: Sequence[str | Path], out: str | Path, name: str | None = None) -> Draft:
    """Profile ``exports`` and draft the dataset spec for folder ``out`` (nothing is written here)."""
    out = Path(out)
    taken: set[str] = set()
    tables = [_Table(e, profile_table(e)) for path in exports for e in read_export(path, taken)]
    survey = max(tables, key=_rating_score) if tables else None
    if survey is not None and _rating_score(survey) == 0:
        survey = None
    rest = [t for t in tables if t is not survey]
    customers = max(rest, key=_customers_score) if rest else None
    if customers is not None and _customers_score(customers) < 2:
        customers = None
    if survey is None and customers is None:
        raise ValueError(
            "no table with rating columns (a survey) or with churn and tenure columns (customers) in "
            + ", ".join(str(p) for p in exports)
        )
    sg, decisions = _guess_survey(survey, customers) if survey is not None else ([], [])
    cg: list[Guess] = []
    if customers is not None:
        cg, more = _guess_customers(customers, sg, survey)
        decisions += more
        if survey is not None and not any(g.role == "id" for g in sg):
            decisions.append("survey.id: a customers table needs the survey's customer id column; name it")
    as_of = None
    if customers is not None and any(g.role == "customers.start" for g in cg):
        as_of = _latest_date([(customers, cg)] + ([(survey, sg)] if survey is not None else []))
        decisions.append(f"as_of: {as_of} is the latest date in the data; set the real extract date")
    others = [t for t in rest if t is not customers]
    for t in others:
        kind = "a second survey?" if _rating_score(t) else "a benchmark or another table?"
        decisions.append(
            f"table {t.name} ({t.export.path}): not used ({kind}): init drafts one survey and one customers "
            "table; add it by hand if it matters, or pass the files one survey at a time"
        )
    name = name or (survey or customers).name  # type: ignore[union-attr]
    copies: list[tuple[Path, str]] = []
    text, spec = _write(name, out, survey, sg, customers, cg, others, as_of, copies, decisions)
    for g in sg + cg:
        if g.sure == "CHECK" and g.column:
            decisions.append(f"column {g.column!r} ({g.role}): {g.why}")
    survey_spec = spec.get("survey") or {}
    outcome = survey_spec.get("outcome", {})
    studies = []
    if survey_spec and survey_spec.get("touchpoints"):
        if outcome.get("kind") == "recommend":
            studies.append("measurement")
        studies.append("drivers")
    if survey_spec.get("comments"):
        studies.append("verbatims")
    if customers is not None and outcome.get("kind") == "recommend" and survey_spec.get("id"):
        studies.append("economics")
        if survey_spec.get("touchpoints"):
            studies.append("initiatives")
    notes = []
    if survey is not None and outcome.get("kind") not in (None, "recommend"):
        notes.append(
            f"measurement: not drafted (it reports NPS, which needs a 0-10 recommend outcome; the outcome is "
            f"{outcome.get('kind')})"
        )
    if customers is None:
        notes.append("economics and initiatives: not drafted (no customers table with churn and tenure)")
    elif survey is None:
        notes.append(
            "economics: not drafted (its default classes are NPS classes from a survey; with a customers table "
            "alone, copy params/economics.yaml and set classes: {from: <a grouping>, order: [...]})"
        )

    def values(role: str) -> list[str]:
        g = next((g for g in sg if g.role == role and g.column), None)
        if survey is None or g is None:
            return ["all"] if role in ("segment", "market") else []
        p = survey.profile(g.column)
        return sorted((str(k) for k in p.counts), key=natural_key)

    return Draft(
        text=text,
        spec=spec,
        guesses=sg + cg,
        decisions=list(dict.fromkeys(decisions)),
        studies=studies,
        notes=notes,
        waves=values("wave"),
        segments=values("segment"),
        markets=values("market"),
        copies=copies,
    )
