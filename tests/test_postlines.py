"""The lines a site or its editor sets in a post's own flow (``carecast/postlines.py``): the editor's notes in
italics and a banner under the post, its date and byline lines above it, teasers with their standfirsts at its end,
a picture's credit closing its caption, and what a newsroom appends to its last paragraphs
(:func:`carecast.postlines.without_closing_lines`: calls to follow or subscribe, the credit of who else reported, the
page's time stamp). Each rule has its counter-case: the practice's own call, the author's sentence of the same words,
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


def test_an_editors_note_in_italics_under_the_post_goes_and_the_authors_italic_call_stays() -> None:
    picture = "<figure><img src='/img/run.jpg' width='600'></figure>"
    note = (
        "<p><em>Maria Lopez is a physical therapist and a runner. Follow her on "
        "<a href='https://social.example/maria'>Social</a> and read <a href='https://books.example/run'>her book"
        "</a></em>.</p>"
    )
    assert render_text(read(_POST + note + picture)) == render_text(read(_POST + picture))
    page = f"<html><body><article><h1>Knee pain</h1>{_POST * 3}{note}</article></body></html>"
    assert "Maria Lopez" not in render_text(read(page))
    call = (
        "<p><em>Our therapists see new patients every weekday: <a href='https://www.oakviewpt.com/book'>book your "
        "first visit</a> online or <a href='https://maps.example/oakview'>find the clinic</a>.</em></p>"
    )
    assert "book your first visit" in render_text(read(_POST + call))  # one other site: the practice's own call
    plain = note.replace("<em>", "").replace("</em>", "")
    assert "Maria Lopez" in render_text(read(_POST + plain))  # the author's last paragraph, in their print
    assert "Maria Lopez" in render_text(read(note + _POST))  # the post's words follow it
    run = (
        "<p><i>Updated on Monday with the new clinic hours.</i></p>"
        "<p><i>Follow us on </i><a href='https://social.example/oak'>Social</a><i>.</i></p>"
        "<p><i>Hear our podcast every week on </i><a href='https://audio.example/oak'>Audio</a></p>"
    )
    text = render_text(read(_POST + run))
    assert text.endswith("Updated on Monday with the new clinic hours.") and "podcast" not in text


def test_the_posts_date_and_byline_lines_above_its_first_paragraphs_go_and_an_events_date_stays() -> None:
    for line in (
        "<p>Posted 3 March 2026 by <a href='/people/ana'>Ana Ruiz</a></p>",
        "<ul><li>Published March 3, 2026</li><li></li></ul>",
        "<p>9:15 AM 03/03/2026</p>",
        "<p>lunes, 3 de marzo de 2026 a las 9:15</p>",
        "<p>Veröffentlicht: 2026-03-03 09:15</p>",
        "<p>2026年3月3日</p>",
        "<h3>by Ana Ruiz Tuesday, March 3, 2026</h3>",
        "<p>03/03/2026 - Publicado por: Ana Ruiz - Categoría: Rodilla - Etiquetas: escaleras dolor</p>",
    ):
        assert render_text(read(line + _POST)) == render_text(read(_POST)), line
    sentence = "<p>We opened on 2 May 2019.</p>"
    assert render_text(read(sentence + _POST)).startswith("We opened on 2 May 2019.")  # the author's sentence
    event = "<p>Open house: Saturday, 14 March 2026, 10:00</p>"
    assert render_text(read(_POST + event)).endswith("14 March 2026, 10:00")  # under the post's paragraphs
    short = "<p>Join us for our spring open house, with free balance screenings for every visitor.</p>"
    assert render_text(read(short + event)).endswith("14 March 2026, 10:00")  # under a short post's one paragraph


def test_lists_of_teasers_with_their_standfirsts_at_the_end_go_and_the_posts_own_list_of_sources_stay() -> None:
    item = "<li><a href='/blog/{slug}{n}'>{title}, part {n}</a><h4>{lead}</h4></li>"
    teasers = "".join(
        "<ul>" + "".join(item.format(slug=slug, n=n, title=title, lead=lead) for n in range(3)) + "</ul>"
        for slug, title, lead in (
            ("stairs", "Stairs", "Two moves for the knee that take five minutes a day."),
            ("run", "Running", "How to come back after a break, slowly and week by week."),
        )
    )
    assert render_text(read(_POST + teasers)) == render_text(read(_POST))
    sources = teasers.replace("href='/blog/", "href='https://guidelines.example/")
    assert render_text(read(_POST + sources)).endswith("week by week.")  # pages of another site: its sources
    own = "<ul><li><a href='/book'>Book a visit</a><p>Mornings and evenings, every weekday.</p></li></ul>"
    assert render_text(read(_POST + own)).endswith("every weekday.")  # one link: the post's own call to action


def test_a_pictures_credit_closing_its_caption_goes_and_the_captions_own_words_stay() -> None:
    def caption(text: str) -> str:
        figure = read(f"{_POST}<figure><img src='/img/gym.jpg' width='600'><figcaption>{text}</figcaption></figure>")
        return next(block.caption for block in figure.blocks if block.kind == "figure")

    assert caption("Our new gym. Foto: Ana Ruiz | Flickr | CC BY 2.0") == "Our new gym."
    assert caption("Balance work on the wobble board. (lopez / Stockphotos.com)") == "Balance work on the wobble board."
    assert (
        caption("Our new gym. Photo courtesy of Dr. Ruiz.") == "Our new gym. Photo courtesy of Dr. Ruiz."
    )  # a sentence
    assert caption("Hold the knee at 90 degrees. Then 10 s") == "Hold the knee at 90 degrees. Then 10 s"  # no credit
    assert caption("Photo: Stockphotos.com") == "Photo: Stockphotos.com"  # the picture's only words


def test_a_banner_closing_the_post_goes_and_the_authors_last_picture_stays() -> None:
    def captions(html: str) -> list[str]:
        return [block.caption for block in read(html).blocks if block.kind == "figure"]

    shop = "https://magazines.example/run-monthly?utm_source=oakview"
    banner = (
        f"<figure><a href='{shop}'><img src='/img/cover.jpg' width='300'></a><figcaption><a href='{shop}'>"
        "Subscribe to Run Monthly</a> for a new plan every week!</figcaption></figure>"
    )
    assert read(_POST + banner) == read(_POST)
    assert captions(banner + _POST) == ["Subscribe to Run Monthly for a new plan every week!"]  # the post follows
    own = banner.replace(shop, "https://www.oakviewpt.com/store")
    assert captions(_POST + own) == ["Subscribe to Run Monthly for a new plan every week!"]  # the practice's page
    chart = (
        "<figure><a href='https://journal.example/fig2'><img src='/img/chart.jpg' width='600'></a><figcaption>"
        "Pain scores fell by half in twelve weeks (<a href='https://journal.example/fig2'>the trial</a>)."
        "</figcaption></figure>"
    )
    assert captions(_POST + chart) == ["Pain scores fell by half in twelve weeks (the trial)."]  # the author's own
