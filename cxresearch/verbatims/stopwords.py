"""Stop words for the themes of free-text comments: English (scikit-learn's list) and Spanish.

Spanish: the function words of the Snowball / NLTK Spanish list (articles, pronouns, prepositions, the forms of
*estar*, *haber*, *ser* and *tener*) plus common survey filler ("muy", "bien", "nada", "gracias", "saludos"); English:
scikit-learn's list plus the same kind of filler ("thanks", "regards", "nothing to add"). Words are compared
after lower-casing and removing accents (``strip_accents``), so the lists are stored that way too.
"""

from __future__ import annotations

import unicodedata

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS


def strip_accents(text: str) -> str:
    """``text`` without combining accents (``"está" -> "esta"``, ``"niño" -> "nino"``), as the vectoriser reads it."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_SPANISH = """
a al algo algun alguna algunas alguno algunos ante antes asi aun aunque bajo bien cada casi como con contra cual
cuales cuando cuanto de del desde donde dos el ella ellas ello ellos en entre era erais eramos eran eras eres es
esa esas ese eso esos esta estaba estabais estabamos estaban estabas estad estada estadas estado estados estais
estamos estan estando estar estara estaran estaras estare estareis estaremos estaria estariais estariamos
estarian estarias estas este esteis estemos esten estes esto estos estoy estuve estuviera estuvieron estuvimos
estuvo fue fuera fueron fui fuimos ha habeis habia habian habias habido han has hasta hay haya hayan he hemos
hubo la las le les lo los mas me mi mis mucho muchos muy nada ni no nos nosotras nosotros nuestra nuestras
nuestro nuestros o os otra otras otro otros para pero poco por porque que quien quienes se sea sean ser sera
seran si sido siempre sin sino sobre sois solo somos son soy su sus suya suyas suyo suyos tambien tampoco tan
tanto te tenemos tener tengo tenia tenian tiene tienen toda todas todo todos tu tus tuve tuvo un una unas uno
unos usted ustedes va vamos van vez vosotras vosotros vuestra vuestro y ya yo cosa cosas hace hacer hecho hizo
puede pueden pues ser ahi aqui alli ok vale gracias saludos nada mas anadir comentario comentarios
"""

#: Spanish stop words, accents removed
SPANISH_STOP_WORDS: frozenset[str] = frozenset(_SPANISH.split())
#: English stop words (scikit-learn's list) plus survey filler
ENGLISH_STOP_WORDS_CX: frozenset[str] = frozenset(ENGLISH_STOP_WORDS) | {
    "ok",
    "okay",
    "thank",
    "thanks",
    "regards",
    "just",
    "really",
    "add",
    "comment",
    "comments",
}

STOP_WORDS: dict[str, frozenset[str]] = {"en": ENGLISH_STOP_WORDS_CX, "es": SPANISH_STOP_WORDS}
#: words that tell the two languages apart (in one list only)
_ONLY = {
    "en": STOP_WORDS["en"] - STOP_WORDS["es"],
    "es": STOP_WORDS["es"] - STOP_WORDS["en"],
}


def stop_words(language: str) -> frozenset[str]:
    """The stop words of ``language`` (``en``, ``es``; ``auto``: both lists, for a corpus in either language)."""
    if language == "auto":
        return STOP_WORDS["en"] | STOP_WORDS["es"]
    if language not in STOP_WORDS:
        raise ValueError(f"comments language must be one of en, es, auto; got {language!r}")
    return STOP_WORDS[language]


def language_votes(tokens: list[str]) -> dict[str, int]:
    """How many of ``tokens`` (lower-case, accents removed) are stop words of one language only."""
    return {lang: sum(t in words for t in tokens) for lang, words in _ONLY.items()}
