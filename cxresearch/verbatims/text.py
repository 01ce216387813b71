"""Comment text before any theme is found: personal data masked, comments joined, language told, examples shortened.

Privacy first: :func:`mask_personal_data` runs on every comment as it is read (:func:`prepare_comments`), so
the theme model, the tables, the examples and everything stored see only the masked text. It replaces

- e-mail addresses with ``[email]``,
- web links with ``[link]``,
- phone numbers (8-15 digits in groups, with or without ``+`` or brackets; 9-10 digits in one run) with
  ``[phone]``,
- any other run of 6 or more digits, longer grouped numbers (account, card, customer or order numbers), IBANs
  and words holding 6+ digits among letters (a DNI / NIE such as 12345678Z, "order12345678") with
  ``[number]``.

Left alone: dates (``2024-03-09``, ``09/03/2024``, also with a time), ranges of clock times ("0830-0930",
"08.20-09.40") and numbers of fewer than 8 digits in groups, which in comments are prices, years and model
numbers ("747-400", "$100.000", "March 19 2014"), not people. Over-masking is the safe side, so anything else
with enough digits is masked. Names and street addresses are not recognised; they cannot name a theme either,
because a theme's terms must occur in at least ``min_df`` (5) comments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cxresearch.verbatims.stopwords import language_votes, strip_accents

_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# a scheme or www., or any domain followed by a path ("bank.com/reset?user=juan")
_LINK = re.compile(r"\b(?:https?://|www\.)\S+|\b(?:[\w-]+\.)+[A-Za-z]{2,}/\S*", re.IGNORECASE)
# an IBAN, with or without its groups of four (ES91 2100 0418 4502 0005 1332)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")
# a word that holds 6+ digits among letters: a DNI / NIE (12345678Z, X1234567L), an order or customer number
_DIGITS_IN_WORD = re.compile(r"\b(?=\w*\d{6})\w+\b")
# a run of digits with the separators phone and card numbers use; checked by its digit count below
_DIGITS = re.compile(r"(?<![\w@])\+?\(?\d[\d\s().-]*\d(?![\w@])")
# a date, maybe with the hour of a time after it ("2024-03-09 14" of "2024-03-09 14:30")
_DATE = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?:\s+\d{1,2})?$")
# a range of clock times: 08.20-09.40, 0830-0930, 2230-2400
_TIME_RANGE = re.compile(r"^(?:\d{1,2}[.:]\d{2}|[0-2]\d[0-5]\d)\s*-\s*(?:\d{1,2}[.:]\d{2}|[0-2]\d[0-5]\d)$")
_PHONE_DIGITS = (8, 15)
_LONG_RUN = 6

#: the masks, in the order they are applied
MASKS: dict[str, str] = {"email": "[email]", "link": "[link]", "phone": "[phone]", "number": "[number]"}


def _digit_mask(match: re.Match[str], counts: dict[str, int]) -> str:
    """A phone number or a long number masked; dates, times, prices and model numbers kept.

    Masked: a run of 6+ digits with no separator (9-10 digits read as a phone); groups of digits adding up to 8
    or more (a phone up to 15 digits, "612 345678", "07700 900123"; a card or account number above). Kept: dates
    (with the hour of a time after them), ranges of clock times ("0830-0930", "08.20-09.40") and groups adding up
    to fewer than 8 digits ("747-400", "March 19 2014", "$100.000").
    """
    text = match.group(0)
    groups = re.findall(r"\d+", text)
    digits = sum(len(g) for g in groups)
    if _DATE.match(text) or _TIME_RANGE.match(text):
        return text
    if len(groups) == 1:
        if digits < _LONG_RUN:
            return text
        kind = "phone" if digits in (9, 10) else "number"
    else:
        if digits < _PHONE_DIGITS[0]:
            return text
        kind = "phone" if digits <= _PHONE_DIGITS[1] else "number"
    counts[kind] += 1
    return MASKS[kind]


def mask_personal_data(text: str, counts: dict[str, int] | None = None) -> str:
    """``text`` with e-mail addresses, links, phone numbers and long digit runs masked (see the module doc).

    ``counts`` (optional) is increased by the number of masks of each kind.
    """
    tally = counts if counts is not None else {k: 0 for k in MASKS}
    for key in MASKS:
        tally.setdefault(key, 0)

    def email(m: re.Match[str]) -> str:
        tally["email"] += 1
        return MASKS["email"]

    def link(m: re.Match[str]) -> str:
        tally["link"] += 1
        return MASKS["link"]

    def number(m: re.Match[str]) -> str:
        tally["number"] += 1
        return MASKS["number"]

    text = _EMAIL.sub(email, text)
    text = _LINK.sub(link, text)
    text = _IBAN.sub(number, text)
    text = _DIGITS_IN_WORD.sub(lambda m: m.group(0) if m.group(0).isdigit() else number(m), text)
    return _DIGITS.sub(lambda m: _digit_mask(m, tally), text)


def strip_masks(text: str) -> str:
    """``text`` without the masks (a mask is not a word of the comment)."""
    for mask in MASKS.values():
        text = text.replace(mask, " ")
    return text


def shorten(text: str, max_chars: int = 160) -> str:
    """``text`` cut at a word boundary to at most ``max_chars`` characters, with an ellipsis when cut."""
    text = " ".join(str(text).split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


_WORD = re.compile(r"[a-z]{2,}")


def tokens(text: str) -> list[str]:
    """Lower-case words of two or more letters, accents removed (digits and masks are not words)."""
    return _WORD.findall(strip_accents(text.lower()))


def detect_language(text: str, default: str = "en") -> str:
    """``en`` or ``es`` by the stop words only one of the two languages has; ``default`` on a tie."""
    votes = language_votes(tokens(text))
    if votes["en"] == votes["es"]:
        return default
    return "en" if votes["en"] > votes["es"] else "es"


@dataclass(frozen=True)
class PreparedComments:
    """Comments as the themes see them: one masked text per survey answer (missing: no comment).

    ``text``: masked comment per row of the survey (index kept; NaN where the answer has none). ``language``:
    ``en`` / ``es`` per commented row. ``masked``: masks applied, by kind. ``columns``: the canonical comment
    columns joined.
    """

    text: pd.Series
    language: pd.Series
    masked: dict[str, int]
    columns: tuple[str, ...]

    @property
    def has_comment(self) -> pd.Series:
        """True where the answer has a comment."""
        return self.text.notna()

    @property
    def n_comments(self) -> int:
        """Answers with a comment."""
        return int(self.has_comment.sum())


def prepare_comments(survey: pd.DataFrame, columns: Sequence[str], language: str = "auto") -> PreparedComments:
    """Join the comment columns of each answer (" / " between them), mask personal data, tell the language.

    ``columns``: canonical comment columns of ``survey`` (the spec's ``comments.names``); a missing column is an
    error naming it. Blank comments and comments with no word of two letters count as no comment. ``language``:
    ``en``, ``es`` or ``auto`` (per comment, by its stop words; ties go to the corpus's majority).
    """
    missing = [c for c in columns if c not in survey.columns]
    if missing:
        raise KeyError(f"survey: comment column(s) {missing} not found (have {list(survey.columns)})")
    if language not in ("en", "es", "auto"):
        raise ValueError(f"comments language must be one of en, es, auto; got {language!r}")
    stripped = [survey[c].astype("string").str.strip().fillna("").tolist() for c in columns]
    joined = pd.Series([" / ".join(p for p in row if p) for row in zip(*stripped, strict=True)], index=survey.index)
    counts = {k: 0 for k in MASKS}
    masked = joined.map(lambda t: mask_personal_data(t, counts) if t else t)
    has_words = masked.map(lambda t: bool(t) and bool(tokens(strip_masks(t))))
    text = masked.where(has_words).astype(object)
    text = text.where(text.notna(), None)
    if language == "auto":
        first = text.dropna().map(lambda t: detect_language(t, default="?"))
        decided = first[first != "?"]
        majority = decided.value_counts().idxmax() if len(decided) else "en"
        lang = first.replace("?", majority)
    else:
        lang = pd.Series(language, index=text.dropna().index)
    return PreparedComments(text=text, language=lang.astype(object), masked=counts, columns=tuple(columns))
