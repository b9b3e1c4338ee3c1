"""Cutting an SMS summary that does not fit whole: its middle goes, its opening and call to action stay."""

from __future__ import annotations

from collections.abc import Callable

from carecast.plugin.text import opening_sentences, shorten_middle, sms_measure


def cut(summary: str, text: Callable[[str], str], limit: int, *, fewest: bool) -> str:
    """``summary`` cut in its middle so that ``text(summary)`` fits in ``limit`` segments: the opening and the last
    sentence (the call to action) stay, as do the sender prefix, the link and the opt-out footer around it.

    With ``fewest`` (the text carries a link: the story is one tap away, and every segment is billed) the text takes
    the fewest segments that hold the summary's first sentence whole: its middle cut when that keeps the first
    sentence and the last one, else its opening sentences alone. Raises MeasureError when not even a word of the
    summary fits.
    """

    def within(segments: int) -> Callable[[str], bool]:
        return lambda body: sms_measure(text(body)).segments <= segments

    for segments in range(1, limit) if fewest else ():
        lead = opening_sentences(summary, within(segments))
        if lead:
            cut = shorten_middle(summary, within(segments), ellipsis="...")
            # A cut that lost the last sentence ends mid-sentence ("opens at 7 a.m. on..."): whole sentences read
            # better, and the link carries the rest.
            return cut if cut.startswith(lead) and not cut.endswith("...") else lead
    return shorten_middle(summary, within(limit), ellipsis="...")
