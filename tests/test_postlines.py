"""The lines a site or a newsroom appends to the post's last paragraphs (``carecast/postlines.py``,
:func:`carecast.postlines.without_closing_lines`): calls to follow or subscribe, the credit of who else reported, the
page's time stamp. Each rule has its counter-case: the practice's own call, the author's sentence of the same words,
an event's date."""

from __future__ import annotations

from carecast.document import Block, Document, Span, render_text
from carecast.html import clean_body
from carecast.postlines import without_closing_lines

BASE = "https://www.oakviewpt.com/blog/post/"
_POST = (
    "<p>Knee pain on the stairs is common after forty, and it often starts with weak hips and stiff ankles.</p>"
    "<p>Start with two exercises a day, and add a third when both feel easy the next morning.</p>"
)
_LAST = "Try both tonight."


def read(html: str) -> Document:
    return clean_body(html, base_url=BASE).document


def test_the_calls_to_follow_or_subscribe_closing_the_post_go_and_the_practices_call_to_book_stays() -> None:
    for calls in (
        " Follow us on <a href='https://www.instagram.com/oakviewpt'>Instagram</a> for a new move every week.",
        " Siga-nos no <a href='https://facebook.com/oakviewpt'>Facebook</a>. <a href='/newsletter'>Assine</a> já!",
        " Más en https://twitter.com/oakviewpt",
        " Get our tips by e-mail: <a href='https://eepurl.com/abc'>sign up here</a>.",
    ):
        text = render_text(read(f"{_POST}<p>{_LAST}{calls}</p>"))
        assert text == render_text(read(f"{_POST}<p>{_LAST}</p>")), calls
    only = "<p>Follow us on <a href='https://www.instagram.com/oakviewpt'>Instagram</a>.</p>"
    assert render_text(read(_POST + only)) == render_text(read(_POST))  # a paragraph of calls goes whole
    for own in (
        " <a href='/book'>Book your visit</a> or call us at <a href='tel:+15551234567'>555 123 4567</a>.",
        " As <a href='https://twitter.com/drruiz/status/123'>Dr. Ruiz wrote</a>, slow is fast.",  # a source cited
    ):
        assert render_text(read(f"{_POST}<p>{_LAST}{own}</p>")).endswith(own.rsplit(">", 1)[-1]), own
    video = Block(
        "paragraph",
        (
            Span(f"{_LAST} "),
            Span("Watch the moves", href="https://youtube.com/watch?v=a1"),
        ),
    )
    assert without_closing_lines([video]) == [video]  # a video the author shows, not a channel to follow
    middle = f"<p>{_LAST} Follow us on <a href='https://www.instagram.com/oakviewpt'>Instagram</a>.</p>{_POST}"
    assert "Instagram" in render_text(read(middle))  # the post's words follow it


def test_the_credit_of_who_else_reported_closing_the_post_goes_and_the_authors_sentence_stays() -> None:
    for credit in (
        "<p>Ana Ruiz and Tom Lee contributed reporting from Denver.</p>",
        "<p>Additional reporting by Ana Ruiz</p>",
        "<p>Con información de Ana Ruiz y Tom Lee.</p>",
    ):
        assert render_text(read(_POST + credit)) == render_text(read(_POST)), credit
    own = "<p>Our therapists contributed to the Denver Marathon medical tent this year.</p>"
    assert render_text(read(_POST + own)).endswith("medical tent this year.")
    reporting = "<p>additional reporting by the team</p>"  # names no one
    assert render_text(read(_POST + reporting)).endswith("by the team")


def test_the_pages_time_stamp_under_the_post_goes_and_an_events_date_stays() -> None:
    def page(lines: str) -> str:
        return (
            "<html><head><title>Knee pain</title>"
            "<meta property='article:published_time' content='2026-03-03T09:15:00'></head><body><article>"
            f"<h1>Knee pain</h1>{_POST * 2}{lines}</article></body></html>"
        )

    stamp = "<p>First published: Tuesday, March 3, 2026 09:15 AM</p>"
    event = "<p>Open house: Saturday, March 14, 2026 10:00 AM</p>"
    text = render_text(read(page(stamp + event)))
    assert "First published" not in text and text.endswith("March 14, 2026 10:00 AM")
    fragment = _POST + stamp  # a feed's post: its dates are the author's words
    assert "First published" in render_text(read(fragment))
