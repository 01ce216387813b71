"""Comment text: personal data masked (and only that), comments joined, language told, examples shortened."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from cxresearch.verbatims.stopwords import stop_words, strip_accents
from cxresearch.verbatims.text import detect_language, mask_personal_data, prepare_comments, shorten


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to maria.lopez+bank@example.co.uk please", "email"),
        ("call +34 612 345 678 tomorrow", "phone"),
        ("call (555) 123-4567 tomorrow", "phone"),
        ("my mobile is 612345678", "phone"),
        ("ring 0044 20 7946 0958", "phone"),
        ("card 4539 1488 0343 6467 was blocked", "number"),
        ("account 123456789012 closed", "number"),
        ("order 1234567 lost", "number"),
        ("see https://example.com/track?id=42 and www.bank.es/login", "link"),
        # formats a first version let through (review of the verbatims study)
        ("UK mobile 07700 900123", "phone"),
        ("llámame al 612 345678", "phone"),
        ("US 555 1234567", "phone"),
        ("MX 55 12345678", "phone"),
        ("IBAN ES9121000418450200051332 please", "number"),
        ("IBAN ES91 2100 0418 4502 0005 1332 please", "number"),
        ("GB29NWBK60161331926819", "number"),
        ("mi DNI es 12345678Z", "number"),
        ("NIE X1234567L", "number"),
        ("card 4539-1488-0343-6467 blocked", "number"),
        ("escribid a josé.núñez@correo.es", "email"),
        ("reset at bank.com/reset?user=juan", "link"),
    ],
)
def test_personal_data_is_masked_by_kind(text: str, kind: str) -> None:
    counts: dict[str, int] = {}
    masked = mask_personal_data(text, counts)
    assert counts[kind] >= 1, (masked, counts)
    assert f"[{kind}]" in masked
    # nothing of the personal datum is left: no 6 digits, no @, no name or domain of an e-mail or link
    assert len(re.findall(r"\d", masked)) < 6, masked
    assert "@" not in masked and "example.com" not in masked and "núñez" not in masked and "juan" not in masked


@pytest.mark.parametrize(
    "text",
    [
        "visited on 2014-03-09 and 09/03/2014",
        "busy from 0830-0930 and 08.20-09.40",
        "a 747-400 lounge, $100.000 rph, March 19 2014",
        "rated it 10/10, waited 45 minutes, paid 250 euros",
        "arrived 2024-03-09 14:30 and left 2230-2400",
    ],
)
def test_dates_times_prices_and_model_numbers_are_kept(text: str) -> None:
    counts: dict[str, int] = {}
    assert mask_personal_data(text, counts) == text
    assert sum(counts.values()) == 0


def test_shorten_cuts_at_a_word_and_says_so() -> None:
    text = "The lounge was crowded and the staff were slow to clean the tables after each flight left"
    short = shorten(text, 40)
    assert len(short) <= 40 and short.endswith("…")
    assert text.startswith(short[:-1].rstrip())
    assert shorten("short one", 40) == "short one"


def test_language_is_told_by_stop_words() -> None:
    assert detect_language("la app se cuelga cada vez que intento pagar con la tarjeta") == "es"
    assert detect_language("the app crashes every time I try to pay with my card") == "en"
    assert detect_language("wifi", default="es") == "es"


def test_spanish_stop_words_are_stored_without_accents() -> None:
    words = stop_words("es")
    assert {"el", "la", "de", "que", "esta", "mas"} <= words
    assert all(w == strip_accents(w) for w in words)
    assert stop_words("auto") >= stop_words("en") | words
    with pytest.raises(ValueError, match="en, es, auto"):
        stop_words("fr")


def test_prepare_comments_joins_masks_and_counts() -> None:
    survey = pd.DataFrame(
        {
            "comment_1": ["Great staff", None, "  ", "Call me on +34 612 345 678", "123456"],
            "comment_2": ["but the app crashes", None, None, "muy lento el servicio de la app", None],
        },
        index=[10, 11, 12, 13, 14],
    )
    prepared = prepare_comments(survey, ["comment_1", "comment_2"], "auto")
    assert prepared.text[10] == "Great staff / but the app crashes"
    assert prepared.text[11] is None and prepared.text[12] is None
    assert prepared.text[14] is None  # a masked number alone has no words: no comment
    assert "[phone]" in prepared.text[13] and "612" not in prepared.text[13]
    assert prepared.masked["phone"] == 1 and prepared.masked["number"] == 1
    assert prepared.n_comments == 2
    assert prepared.language[10] == "en" and prepared.language[13] == "es"
    assert survey.loc[13, "comment_1"] == "Call me on +34 612 345 678"  # the source is never modified


def test_prepare_comments_names_a_missing_column() -> None:
    with pytest.raises(KeyError, match="why_text"):
        prepare_comments(pd.DataFrame({"comment": ["x"]}), ["why_text"])
    with pytest.raises(ValueError, match="fr"):
        prepare_comments(pd.DataFrame({"comment": ["x"]}), ["comment"], "fr")
