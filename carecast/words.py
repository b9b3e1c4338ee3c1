"""The words CareCast's own templates say around a practice's content, in the item's language.

A post in Spanish gets "Leer más", not "Read more": the templates take these words from ``words`` (the reader's
language: the item's, else the practice's), and English stands in for a language without a translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "read_more": "Read more",
        "subscribed": "You receive this because you subscribed to",
        "unsubscribe": "Unsubscribe",
        "sms_opt_out": "Reply STOP to opt out",
        "and_more": "and %d more",
        "new_from_clinic": "%d new from the clinic",
        "news_from": "News and stories from",
        "watch_video": "Watch the video",
    },
    "es": {
        "read_more": "Leer más",
        "subscribed": "Recibe este correo porque se suscribió a",
        "unsubscribe": "Cancelar la suscripción",
        "sms_opt_out": "Responda STOP para darse de baja",  # GSM-7: no accent, so a text stays in 160s
        "and_more": "y %d más",
        "new_from_clinic": "%d novedades de la clínica",
        "news_from": "Noticias e historias de",
        "watch_video": "Ver el video",
    },
}
#: The languages the templates' words exist in.
LANGUAGES = frozenset(_WORDS)


def words(language: str | None) -> Mapping[str, str]:
    """The templates' words in ``language`` (an ISO 639-1 code), English when there is no translation."""
    return MappingProxyType(_WORDS.get((language or "en").lower(), _WORDS["en"]))
