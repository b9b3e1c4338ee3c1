"""Whole web pages carried by a feed: the article found by trafilatura, its data tables kept even when the page lays
them out in another table, indents them in a quote, or sets its menu in a table."""

from __future__ import annotations

from carecast.document import Document, TextOptions, render_html, render_text, table_lines
from carecast.html import clean_body

BASE = "https://www.oakviewpt.com/blog/post/"
_PROSE = (
    "<p>Knee pain after a run is common, and most of it settles with a few weeks of the right loading. "
    "The plan below is the one our therapists give runners who are back after a short break.</p>"
    "<p>Start with the first week, and move to the next only when the exercises feel easy the day after. "
    "Soreness that is gone by the next morning is fine; pain that lingers means stay where you are.</p>"
)
_WEEK_1 = (
    "<table><tr><th>Exercise</th><th>Sets</th><th>Reps</th></tr>"
    "<tr><td>Wall sit</td><td>3</td><td>12</td></tr><tr><td>Step up</td><td>2</td><td>10</td></tr></table>"
)
_WEEK_2 = (
    "<table><tr><th>Exercise</th><th>Sets</th><th>Reps</th></tr>"
    "<tr><td>Split squat</td><td>3</td><td>8</td></tr><tr><td>Hop</td><td>2</td><td>12</td></tr></table>"
)
_MENU = (
    '<table class="nav"><tr><td><a href="/">Home</a></td><td><a href="/team">Team</a></td></tr>'
    '<tr><td><a href="/blog">Blog</a></td><td><a href="/book">Book</a></td></tr></table>'
)

#: Two paragraphs of a post, around which a test sets what it is about.
KNEE_POST = (
    "<p>Knee pain on the stairs is common after forty, and it often starts with weak hips and stiff ankles.</p>"
    "<p>Start with two exercises a day, and add a third when both feel easy the next morning.</p>"
)


def page(article: str) -> str:
    """A practice's page of the 2000s: a menu table, the article in a layout table's cell, a footer."""
    return (
        "<html><head><title>Back to running</title></head><body><table width='100%'><tr><td>"
        f"{_MENU}</td></tr><tr><td><h1>Back to running</h1>{article}</td></tr>"
        "<tr><td><p>© Oakview Physical Therapy · 12 Main St</p></td></tr></table></body></html>"
    )


def tables(document: Document) -> list[tuple[tuple[str, ...], ...]]:
    return [block.rows for block in document.walk() if block.kind == "table"]


def test_data_tables_side_by_side_in_a_layout_table_are_each_kept_and_read_by_row() -> None:
    side_by_side = (
        f"<table><tr><th>Week 1</th><th>Week 2</th></tr><tr><td>{_WEEK_1}</td><td>{_WEEK_2}</td></tr></table>"
    )
    document = clean_body(page(_PROSE + side_by_side + _PROSE.replace("Knee", "Hip")), base_url=BASE).document
    assert tables(document) == [
        (("Exercise", "Sets", "Reps"), ("Wall sit", "3", "12"), ("Step up", "2", "10")),
        (("Exercise", "Sets", "Reps"), ("Split squat", "3", "8"), ("Hop", "2", "12")),
    ]
    text = render_text(document)
    assert "Wall sit: 3 sets, 12 reps\nStep up: 2 sets, 10 reps" in text
    assert "Split squat: 3 sets, 8 reps\nHop: 2 sets, 12 reps" in text
    assert render_html(document).count("<table") == 2
    assert "Home" not in text and "Team" not in text  # the menu's table is not the article's


def test_a_table_indented_in_a_quote_is_kept_as_a_table() -> None:
    document = clean_body(page(_PROSE + f"<blockquote>{_WEEK_1}</blockquote>" + _PROSE), base_url=BASE).document
    (rows,) = tables(document)
    assert rows[1] == ("Wall sit", "3", "12")


def test_in_a_post_a_layout_table_is_read_as_its_blocks_and_its_data_table_kept() -> None:
    document = clean_body(
        f"<table><tr><td><p>Week one, then week two.</p>{_WEEK_1}</td><td>{_WEEK_2}</td></tr></table>", base_url=BASE
    ).document
    assert [block.kind for block in document.blocks] == ["paragraph", "table", "table"]
    assert table_lines(document.blocks[2]) == ["Split squat: 3 sets, 8 reps", "Hop: 2 sets, 12 reps"]


def article_page(header: str, body: str = _PROSE) -> str:
    """A news site's page: a menu, the article's header (headline, then ``header``), the body trafilatura takes by
    its class (``article-body``), a footer."""
    return (
        "<html><head><title>Back to running</title></head><body>"
        '<nav><ul><li><a href="/">Home</a></li><li><a href="/blog">Blog</a></li></ul></nav>'
        f'<article><header><h1>Back to running after a break</h1>{header}</header><div class="article-body">{body}'
        "</div></article><footer><p>© Oakview Physical Therapy · 12 Main St</p></footer></body></html>"
    )


_LEAD = (
    "Most runners who stop for a month come back too fast; here is how our therapists bring them back "
    "without a sore knee."
)


def test_the_standfirst_above_the_article_body_opens_the_article() -> None:
    for header in (f'<div class="article__intro"><p>{_LEAD}</p></div>', f'<p class="standfirst">{_LEAD}</p>'):
        document = clean_body(article_page(header), base_url=BASE).document
        assert document.blocks[0].text == _LEAD
        assert render_text(document).count("Most runners who stop") == 1
        assert "Knee pain after a run is common" in document.blocks[1].text
    short = "A month off? Come back slowly, week by week."
    document = clean_body(article_page(f'<h2 itemprop="description">{short}</h2>'), base_url=BASE).document
    assert document.blocks[0].text == short


def test_what_is_no_standfirst_stays_out_of_the_article() -> None:
    captioned = f'<figure><img src="/run.jpg"><figcaption class="summary">{_LEAD}</figcaption></figure>'
    linked = f'<p class="teaser"><a href="/blog/other">{_LEAD}</a></p>'
    unnamed = f'<p class="byline">{_LEAD}</p>'
    short = '<p class="intro">By Dana Reyes, DPT.</p>'
    for header in (captioned, linked, unnamed, short):
        text = render_text(clean_body(article_page(header), base_url=BASE).document)
        assert "Most runners who stop" not in text and "Dana Reyes" not in text, header
        assert text.startswith("Knee pain after a run is common"), header


def test_a_figure_keeps_its_caption_which_trafilatura_drops() -> None:
    figure = (
        '<figure><img src="/img/calf.jpg" alt="Calf stretch"><figcaption>The wall calf stretch, done right: heel '
        "down, back knee straight.</figcaption></figure>"
    )
    lazy = (
        '<figure><img src="/img/blank.gif" data-src="/img/hip.jpg"><figcaption>Hip flexor stretch</figcaption></figure>'
    )
    document = clean_body(article_page("", _PROSE + figure + _PROSE.replace("Knee", "Hip") + lazy), base_url=BASE)
    figures = [block for block in document.document.walk() if block.kind == "figure"]
    assert [(block.picture.url.rsplit("/", 1)[-1], block.caption) for block in figures if block.picture] == [
        ("calf.jpg", "The wall calf stretch, done right: heel down, back knee straight."),
        ("hip.jpg", "Hip flexor stretch"),
    ]
    assert figures[0].picture is not None and figures[0].picture.alt == "Calf stretch"
    assert "carecast" not in document.html


def test_a_caption_set_right_after_its_figure_is_the_figures() -> None:
    figure = '<figure><img src="/img/calf.jpg"></figure><figcaption>The wall calf stretch, heel down.</figcaption>'
    document = clean_body(article_page("", _PROSE + figure + _PROSE.replace("Knee", "Hip")), base_url=BASE).document
    [block] = [block for block in document.walk() if block.kind == "figure"]
    assert block.caption == "The wall calf stretch, heel down."


def test_a_picture_only_in_noscript_replaces_its_lazy_placeholder_and_a_tracking_pixel_stays_out() -> None:
    lazy = (
        "<p><img src='data:image/gif;base64,R0lGODlhAQABAAAAACw=' class='lazyload' alt='Wall sit'>"
        "<noscript><img src='https://cdn.example/wall-sit.jpg' alt='Wall sit' width='800'></noscript></p>"
    )
    pixel = "<noscript><img src='https://www.facebook.com/tr?id=1&amp;ev=PageView' height='1' width='1'></noscript>"
    item = clean_body(page(_PROSE + lazy + _PROSE.replace("Knee", "Hip") + pixel), base_url=BASE)
    assert [picture.url for picture in item.document.pictures()] == ["https://cdn.example/wall-sit.jpg"]
    blurred = (  # Medium's: a blurred preview, the lazy element, and the picture in a <noscript>
        "<figure><div><div><img src='https://cdn.example/60/step-up.png?q=20' width='1894' height='970'></div>"
        "<img width='1894' height='970'><noscript><img src='https://cdn.example/3788/step-up.png' width='1894'>"
        "</noscript></div><figcaption>The step up, done right.</figcaption></figure>"
    )
    item = clean_body(page(_PROSE + blurred + _PROSE.replace("Knee", "Hip")), base_url=BASE)
    assert [picture.url for picture in item.document.pictures()] == ["https://cdn.example/3788/step-up.png"]


def test_a_caption_box_s_caption_is_its_pictures_caption_never_a_paragraph() -> None:
    box = (
        "<div class='wp-caption aligncenter'><img src='https://cdn.example/gym-1.jpg' alt='The gym'>"
        "<p class='wp-caption-text'>Ana Ruiz and Tom Lee open the new gym on Main Street on Tuesday</p></div>"
    )
    post = KNEE_POST
    page = f"<html><body><article><h1>New gym</h1>{post}{box}{post.replace('Knee', 'Hip')}</article></body></html>"
    document = clean_body(page, base_url="https://www.oakviewpt.com/blog/").document
    assert "open the new gym" not in render_text(document, TextOptions(captions="drop"))
    assert "Hip pain on the stairs" in render_text(document, TextOptions(captions="drop"))


def test_a_line_in_small_print_under_a_picture_is_its_caption_and_small_print_in_a_paragraph_stays() -> None:
    post = KNEE_POST
    box = (
        "<div align='center'><div class='article-img'><img src='https://cdn.example/gym-1.jpg' alt='The gym'></div>"
        "<br><span class='minor small gray'>The new gym on Main Street seen from the car park</span></div>"
    )
    page = f"<html><body><article><h1>New gym</h1>{post}{box}{post.replace('Knee', 'Hip')}</article></body></html>"
    document = clean_body(page, base_url="https://www.oakviewpt.com/blog/").document
    assert "seen from the car park" not in render_text(document, TextOptions(captions="drop"))
    own = (
        "<p><img src='https://cdn.example/gym-2.jpg' alt='The gym'> Our new gym is open to every patient since March, "
        "<small>and the car park behind it is free for the first two hours of every visit</small>.</p>"
    )
    document = clean_body(page.replace(box, own), base_url="https://www.oakviewpt.com/blog/").document
    assert "the car park behind it is free" in render_text(document, TextOptions(captions="drop"))


def test_a_container_its_class_names_a_caption_that_holds_the_article_stays_the_article() -> None:
    post = "".join(
        f"<p>Knee pain on the stairs is common after forty, and it often starts with weak hips, week {n}.</p>"
        for n in range(8)
    )
    body = (
        "<div class='article-body has-caption'><img src='https://cdn.example/gym-1.jpg' alt='The gym'>"
        f"<p class='caption'>The new gym on Main Street</p>{post}</div>"
    )
    page = f"<html><body><article><h1>New gym</h1>{body}</article></body></html>"
    document = clean_body(page, base_url="https://www.oakviewpt.com/blog/").document
    assert "often starts with weak hips, week 7." in render_text(document, TextOptions(captions="drop"))


#: A paragraph of an article's length, numbered so that each chunk's is told apart.
_LONG = (
    "Part {} of the plan. Knee pain after a run is common, and most of it settles with a few weeks of the right "
    "loading, which is why our therapists give runners a plan of three weeks, each a little harder than the one "
    "before it, and ask them to move on only when the exercises feel easy the day after."
)


def test_an_article_body_split_into_chunks_between_advertisements_is_read_whole() -> None:
    def chunk(number: int) -> str:
        paragraphs = f"<p>{_LONG.format(number)}</p><p>Step {number}: a wall sit, then calf raises on a step.</p>"
        return f'<div class="row"><div class="article__body">{paragraphs}</div></div>'

    advert = '<div class="rail"><img src="/ads/1.gif" width="300"></div>'
    chunks = f"{chunk(1)}{advert}{chunk(2)}{advert}{chunk(3)}"
    whole = f"<html><body><header><h1>Back to running</h1></header><main>{chunks}</main></body></html>"
    text = render_text(clean_body(whole, base_url=BASE).document)
    assert all(f"Part {number} of the plan." in text for number in (1, 2, 3))
    # A page of several articles, each under its headline: the second is another article, not a chunk of the first.
    two = f"<h1>Back to running</h1>{chunk(1)}<h1>Stairs after forty</h1>{chunk(2)}"
    text = render_text(clean_body(f"<html><body><main>{two}</main></body></html>", base_url=BASE).document)
    assert "Part 1 of the plan." in text and "Part 2 of the plan." not in text


#: The sections of a long plan: long enough (2,500 characters) that trafilatura keeps what it recovers itself.
_WEEKS = tuple(
    f"Week {number}, a little more load" for number in ("one", "two", "three", "four", "five", "six", "seven")
)


def test_the_headings_of_a_page_without_a_frame_stay_over_their_sections_and_its_headline_is_the_title() -> None:
    sections = "".join(
        f'<section class="mb-16 relative"><h2 class="text-2xl font-bold">{heading}</h2>'
        f"<p>{_LONG.format(number)}</p><p>Step {number}: a wall sit, then calf raises on a step, twice a day.</p>"
        "</section>"
        for number, heading in enumerate(_WEEKS, start=1)
    )
    whole = (
        "<html><head><title>Back to running after a break | Oakview</title></head><body>"
        f'<div class="mx-auto max-w-2xl"><h2 class="text-4xl">Back to running after a break</h2>{sections}</div>'
        "</body></html>"
    )
    document = clean_body(whole, base_url=BASE).document
    headings = [block.text for block in document.blocks if block.kind == "heading"]
    assert headings == list(_WEEKS)
    assert render_text(document).count("Part 2 of the plan.") == 1


def test_a_div_or_paragraph_its_class_names_a_heading_is_the_heading_over_its_section() -> None:
    sections = "".join(
        f'<div class="heading-h3"><strong>{heading}</strong></div><p>{_LONG.format(number)}</p>'
        for number, heading in enumerate(("Best toothbrush: a soft one", "Best floss: any you will use"), start=1)
    )
    section = f'<p class="pf_subheadline">Week three, more load</p><p>{_LONG.format(3)}</p>'
    whole = (
        f"<html><body><main><h1>Our picks</h1><div class='article-body'>{sections}{section}</div></main></body></html>"
    )
    document = clean_body(whole, base_url=BASE).document
    headings = [(block.level, block.text) for block in document.blocks if block.kind == "heading"]
    assert headings == [
        (3, "Best toothbrush: a soft one"),
        (3, "Best floss: any you will use"),
        (2, "Week three, more load"),
    ]
    assert render_text(document).count("Part 3 of the plan.") == 1
