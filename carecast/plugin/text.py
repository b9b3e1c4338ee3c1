"""Text helpers a channel may use (public plugin API): measuring and fitting text to a provider's limits, plain
text and HTML from an item's body, the practice's documents, and the words a message is written in."""

from __future__ import annotations

from carecast.document import Document, excerpt_sentences, render_html
from carecast.html import CONTACT_SCHEMES, contact_url, excerpt_html, html_to_text, same_picture
from carecast.text import (
    HASHTAG,
    drop_emoji,
    flatten,
    graphemes,
    numbered_thread,
    opening_sentences,
    shorten,
    shorten_middle,
    sms_measure,
    split_to_fit,
    to_gsm,
    transliterate_to_gsm,
    without_repeats,
    x_measure,
)
from carecast.words import LANGUAGES, words
from carecast.xweight import find_urls

__all__ = [
    "CONTACT_SCHEMES",
    "HASHTAG",
    "LANGUAGES",
    "Document",
    "contact_url",
    "drop_emoji",
    "excerpt_html",
    "excerpt_sentences",
    "find_urls",
    "flatten",
    "graphemes",
    "html_to_text",
    "numbered_thread",
    "opening_sentences",
    "render_html",
    "same_picture",
    "shorten",
    "shorten_middle",
    "sms_measure",
    "split_to_fit",
    "to_gsm",
    "transliterate_to_gsm",
    "without_repeats",
    "words",
    "x_measure",
]
