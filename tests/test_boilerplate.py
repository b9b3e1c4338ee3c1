"""Boilerplate told by structure (``carecast/boilerplate.py``, and what ``carecast/page.py`` sets aside before
trafilatura reads a whole page): teaser cards of the site's other posts, hover cards, sign-up widgets. Each rule has
its counter-case: the author's own text of the same shape stays."""

from __future__ import annotations

from carecast.document import Document, render_text
from carecast.html import clean_body

BASE = "https://www.oakviewpt.com/blog/post/"
_POST = (
    "<p>Knee pain on the stairs is common after forty, and it often starts with weak hips and stiff ankles.</p>"
    "<p>Start with two exercises a day, and add a third when both feel easy the next morning.</p>"
)


def read(html: str) -> Document:
    return clean_body(html, base_url=BASE).document


def test_teaser_cards_of_the_sites_other_posts_at_the_end_go_with_their_heading() -> None:
    cards = "".join(
        f"<h4>{label} <a href='/blog/{slug}'>{title}</a></h4><p><img src='/img/{slug}.jpg' width='120'></p>"
        f"<p>{author} {lead}</p>"
        for label, slug, title, author, lead in (
            ("Hips", "hips", "Why your hips matter on the stairs", "ANA RUIZ", "THE hip is where it starts."),
            ("Ankles", "ankle", "Stiff ankles, sore knees", "TOM LEE", "ANKLES that do not bend make knees work."),
            ("Running", "run", "Back to running after a break", "ANA RUIZ", "MOST runners come back too fast."),
        )
    )
    document = read(_POST + "<h2>More from our therapists</h2>" + cards)
    assert render_text(document) == render_text(read(_POST))
    assert not document.pictures()


def test_the_posts_own_sections_under_linked_headings_or_linking_elsewhere_stay() -> None:
    elsewhere = "".join(
        f"<h3><a href='https://{host}/guide'>{title}</a></h3><p>{what}</p>"
        for host, title, what in (
            ("cdc.example", "Falls prevention for older adults", "The CDC's advice, with a home checklist."),
            ("nhs.example", "Knee pain: when to see someone", "When pain needs a visit, by symptom."),
            ("apta.example", "Find a physical therapist near you", "The association's directory of clinics."),
        )
    )
    text = render_text(read(_POST + "<h2>Sources</h2>" + elsewhere))
    assert "Falls prevention for older adults" in text and text.endswith("The association's directory of clinics.")
    one = render_text(read(_POST + "<h3><a href='/blog/hips'>Why your hips matter</a></h3><p>Read it next.</p>"))
    assert one.endswith("Read it next.")  # one linked heading is the post's own pointer, not a list of teasers
