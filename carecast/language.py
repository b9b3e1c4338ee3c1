"""The language an item is written in: what its feed entry declares, else what its words are, else the feed's.

An entry's own declaration (``xml:lang`` on the entry or its content, ``dc:language``) is the author's and wins. A
feed's ``<language>`` is a platform default, often left at ``en-US`` above a post in Spanish: the item's words are
asked first (py3langid, langid.py's maintained fork: a naive Bayes model over byte n-grams, no network, a few
milliseconds a text), and the feed's declaration is taken only when the text is too short or the model unsure.
Codes are ISO 639-1 primary subtags (``es``), as Mastodon's ``language``, Bluesky's ``langs``, an email's ``lang``
and Google's ``languageCode`` all take.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

#: The languages detection chooses among: those US practices write in, and the big ones of the web. A smaller set
#: makes the model surer on short posts.
_SET = "en es fr de pt it nl pl ru uk zh ja ko vi tl ar hi ht he tr el sv da no fi cs ro hu id th fa bn ur pa so am"
LANGUAGES = tuple(_SET.split())
#: The least share of the text's probability the model must give one language to be believed.
CONFIDENCE = 0.9
#: Shorter texts (in characters) are not asked: a title or a label says too little.
MIN_CHARACTERS = 40
_CODE = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$")


def primary(code: str | None) -> str | None:
    """The primary subtag of a declared language (``en-US`` -> ``en``), lowercased; None when it is not one."""
    match = _CODE.match((code or "").strip())
    return match.group(1).lower() if match else None


@cache
def _identifier() -> LanguageIdentifier:
    # Imported and loaded once, on the first text asked (numpy and the model take a second or more): a run with
    # nothing new pays nothing.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(LANGUAGES)
    return identifier


def detect(text: str) -> str | None:
    """The language of ``text`` when it is long enough and the model sure of it, else None. Raises nothing."""
    words = " ".join(text.split())
    if len(words) < MIN_CHARACTERS:
        return None
    language, probability = _identifier().classify(words[:2000])
    return str(language) if probability >= CONFIDENCE else None


def item_language(entry: str | None, text: str, feed: str | None) -> str | None:
    """The item's language: the ``entry``'s declaration, else ``text``'s detected language, else the ``feed``'s."""
    return primary(entry) or detect(text) or primary(feed)
