"""The document model an item's body is read into at ingest, and its HTML and text renderings."""

from __future__ import annotations

import re

from carecast.document import Document, TextOptions, excerpt_sentences, render_html, render_text
from carecast.html import clean_body
from carecast.language import detect, item_language
from carecast.words import words

BASE = "https://www.oakviewpt.com/blog/post/"


def read(html: str) -> Document:
    return clean_body(html, base_url=BASE).document


def test_a_table_stays_a_table_in_html_and_reads_one_row_a_line_in_text() -> None:
    document = read(
        "<p>Do these twice a week.</p><table><thead><tr><th>Exercise</th><th>Sets</th><th>Reps</th><th>Rest</th>"
        "</tr></thead><tbody><tr><td>Wall slide</td><td>3</td><td>10\u201312</td><td>45 s</td></tr>"
        "<tr><td>Calf raise</td><td>2</td><td>15</td><td>30 s</td></tr></tbody></table>"
    )
    text = render_text(document)
    assert "Wall slide: 3 sets, 10\u201312 reps, rest 45 s\nCalf raise: 2 sets, 15 reps, rest 30 s" in text
    html = render_html(document)
    assert html.count("<tr>") == 3 and "<th " in html and "<td " in html and "310" not in text


def test_a_tables_numbers_are_never_broken_across_lines_on_a_phone() -> None:
    """The newsletter's column breaks long words (MJML's ``word-break: break-word``): on a phone a narrow column
    showed 5040 as "50" over "40". A number, or one with a unit of one or two letters, stays on one line; a cell with a
    word ("Top 10") may still wrap, so a table of many columns still fits."""
    document = read(
        "<table><tr><th>Piloto</th><th>Pontos</th><th>Top 10</th><th>Rest</th></tr>"
        "<tr><td>Brad Keselowski</td><td>5040</td><td>10\u201312</td><td>45 s</td></tr></table>"
    )
    cells = re.findall(r'<t[dh] style="([^"]*)">([^<]*)</t[dh]>', render_html(document))
    whole = {text for style, text in cells if "white-space: nowrap" in style}
    assert whole == {"5040", "10\u201312", "45 s"}


def test_the_spaces_around_a_links_words_stay_outside_the_link() -> None:
    """A feed's ``<a> Learn more here</a>`` was underlined from its leading space on."""
    document = read('<p>Want to see how it works?<a href="/how"> Learn more <strong>here</strong></a>.</p>')
    link = '<a href="https://www.oakviewpt.com/how" rel="noopener noreferrer nofollow">'
    assert render_html(document) == (
        f"<p>Want to see how it works? {link}Learn more</a> {link}<strong>here</strong></a>.</p>"
    )


def test_lazy_images_give_their_real_picture_and_placeholders_none() -> None:
    document = read(
        '<p>Intro.</p><img src="data:image/gif;base64,R0lGOD" data-src="/img/knee.jpg" alt="A knee">'
        '<img src="/img/1x1.gif" data-lazy-src="/img/hip.jpg">'
        '<img src="data:image/gif;base64,R0" data-srcset="/img/s-300.jpg 300w, /img/s-1200.jpg 1200w">'
        '<img src="/img/spacer.gif" class="lazy"><noscript><img src="/img/back.jpg" alt="A back"></noscript>'
        '<img src="data:image/png;base64,iVBOR">'
    )
    urls = [picture.url for picture in document.pictures()]
    assert urls == [
        "https://www.oakviewpt.com/img/knee.jpg",
        "https://www.oakviewpt.com/img/hip.jpg",
        "https://www.oakviewpt.com/img/s-1200.jpg",
        "https://www.oakviewpt.com/img/back.jpg",
    ]
    assert document.pictures()[0].alt == "A knee"
    assert "data:" not in render_html(document)


def test_an_embed_is_a_link_with_its_thumbnail_and_a_caption_never_runs_into_the_text() -> None:
    document = read(
        "<p>Before.</p><figure><iframe src='https://www.youtube.com/embed/abcDEF12345'></iframe>"
        "<figcaption>The wall calf stretch, done right.</figcaption></figure><p>The good news is simple.</p>"
        "<figure><img src='/img/a.jpg'><figcaption>Standing tall.</figcaption></figure>"
        "<figure><figcaption>A caption whose picture is gone.</figcaption></figure>"
    )
    [embed] = [block for block in document.blocks if block.kind == "embed"]
    assert embed.url == "https://www.youtube.com/watch?v=abcDEF12345"
    assert embed.picture and embed.picture.url == "https://img.youtube.com/vi/abcDEF12345/hqdefault.jpg"
    html = render_html(document)
    assert 'href="https://www.youtube.com/watch?v=abcDEF12345"' in html and "▶" in html
    assert "A caption whose picture is gone" not in html
    assert render_text(document, TextOptions(captions="drop")) == (
        "Before.\n\nhttps://www.youtube.com/watch?v=abcDEF12345\n\nThe good news is simple."
    )
    assert "(Standing tall.)" in render_text(document, TextOptions(captions="parentheses"))
    assert excerpt_sentences(document) == "Before.\nThe good news is simple."
    wordpress = read(
        '<p>Before.</p><figure class="wp-block-embed is-type-video"><div class="wp-block-embed__wrapper">'
        '<iframe src="https://www.youtube.com/embed/abcDEF12345?feature=oembed"></iframe></div>'
        "<figcaption>The stretch.</figcaption></figure>"
    )
    assert [(block.kind, block.url) for block in wordpress.blocks][1] == (
        "embed",
        "https://www.youtube.com/watch?v=abcDEF12345",
    )


def test_lists_keep_their_numbers_nesting_and_lines_headings_stand_apart_footnotes_go() -> None:
    document = read(
        "<h3>Before you arrive</h3><p>Wear loose clothes and rest in bed<sup><a href='#fn1'>1</a></sup>.</p>"
        "<ol start='3'><li>Bring your insurance card<ul><li>front</li><li>back</li></ul></li><li>Arrive early</li></ol>"
        "<div class='footnotes'><ol><li id='fn1'>Smith J. 2011;41(3):120-8.</li></ol></div>"
    )
    text = render_text(document)
    assert text.startswith("Before you arrive\n\nWear loose clothes and rest in bed.\n\n")
    assert "3. Bring your insurance card\n  * front\n  * back\n4. Arrive early" in text
    assert "2011" not in text and "bed1" not in text
    assert "<sup>1</sup>" in render_html(document)


def test_a_styled_button_stays_a_button_with_its_link() -> None:
    document = read(
        '<p>Sore after your run?</p><div class="wp-block-button"><a class="wp-block-button__link" '
        'href="/book">Book now →</a></div>'
    )
    [button] = [block for block in document.blocks if block.kind == "button"]
    assert (button.caption, button.url) == ("Book now →", "https://www.oakviewpt.com/book")
    assert "Book now →: https://www.oakviewpt.com/book" in render_text(document)
    assert 'style="display: inline-block' in render_html(document)


def test_platform_boilerplate_goes_by_structure_and_in_spanish_too() -> None:
    document = read(
        "<p>Stretch every morning. It helps.</p><p>Thanks for reading Oakview Notes! Subscribe for free.</p>"
        "<p><a href='/s'>Subscribe now</a></p><p><a href='/share'>Share</a></p><p>Leave a comment</p>"
        "<p>Suscríbete a nuestro boletín</p>"
        "<h3>Related posts:</h3><ul><li><a href='/a'>Knee pain 101</a></li><li><a href='/b'>Hip mobility</a></li></ul>"
        "<p><a href='https://facebook.com/x'>Facebook</a> · <a href='https://x.com/y'>X</a></p>"
    )
    assert render_text(document) == "Stretch every morning. It helps."


def test_a_call_to_action_link_at_the_end_is_kept() -> None:
    document = read("<p>Running hurts?</p><p><a href='/running'>Learn about our running clinic</a></p>")
    assert render_text(document).endswith("Learn about our running clinic")


def test_a_contact_box_a_signature_and_a_lead_in_to_nothing_do_not_end_a_post() -> None:
    document = read(
        "<p>Ice helps for the first two days. Then move gently.</p>"
        "<p>Contact for this topic:</p><p>Jane Doe<br>Front desk<br>Phone: 503 555 0148<br>jane@oakviewpt.com</p>"
        "<p>Ana Ruiz<br><a href='mailto:ana@oakviewpt.com'>ana@oakviewpt.com</a></p>"
        "<p><img src='/img/ana.jpg' width='400'></p>"
        "<p>With this button you can add the post to your reading list. Log in first:</p>"
    )
    assert render_text(document) == "Ice helps for the first two days. Then move gently."
    places = read(
        "<p>Three places to walk this winter, all close to a bus stop.</p>"
        "<p><a href='/park'>Laurelhurst Park</a><br>Five minutes from the 15 bus</p>"
    )
    assert render_text(places).endswith("Laurelhurst Park\nFive minutes from the 15 bus")


def test_a_teaser_of_another_post_at_the_end_goes_with_its_picture_and_a_section_of_pictures_stays() -> None:
    document = read(
        "<p>Stretch every morning. It helps.</p><p>Next week</p><h3>Why your knee clicks</h3>"
        "<p><img src='/img/knee.jpg' width='600'></p>"
    )
    assert render_text(document) == "Stretch every morning. It helps."
    assert not document.pictures()
    sections = read(
        "<p>Two exercises for the hip.</p><h3>Clamshell</h3><p><img src='/img/clam.jpg' width='600'></p>"
        "<h3>Bridge</h3><p><img src='/img/bridge.jpg' width='600'></p>"
    )
    assert len(sections.pictures()) == 2 and render_text(sections).endswith("Bridge")
    teasers = read(
        "<p>Stretch every morning. It helps the knee and the hip.</p>"
        "<p><img src='/img/a.jpg' width='600'></p><p><a href='/a'>Knee pain 101: what the click means</a></p>"
        "<p>March 3</p><p><a href='/b'>Hip mobility for runners</a></p><p><a href='/c'>Why we stretch</a></p>"
    )
    assert render_text(teasers) == "Stretch every morning. It helps the knee and the hip."


def test_a_teaser_of_another_post_inside_the_post_goes_and_a_link_elsewhere_or_last_stays() -> None:
    document = read(
        "<p>Tempo de leitura: 2 minutos</p><p>Stretch every morning. It helps the knee.</p>"
        "<p>Read more: <a href='/blog/knee-pain-101'>Knee pain 101: what the click means</a></p>"
        "<p><a href='https://oakviewpt.com/blog/hips'>Hip mobility for runners who sit all day</a> [VIDEO]</p>"
        "<p><a href='https://cdc.example/falls'>Older adult fall prevention facts and figures</a></p>"
        "<p>Hold each stretch for thirty seconds. Like this story? Share it with a friend!</p>"
        "<p>Like this story? Share it with a friend!</p>"
        "<p><a href='/book'>Book your first visit with our team</a></p>"
    )
    text = render_text(document)
    assert "Knee pain 101" not in text and "Hip mobility" not in text and "2 minutos" not in text
    assert "Older adult fall prevention" in text  # a source elsewhere the post points to
    assert text.count("Share it with a friend") == 1  # the call goes, a sentence of the author's stays
    assert text.endswith("Book your first visit with our team")  # the post's own call to action
    split = read(
        "<p>Stretch every morning. Our team has long said that you</p>"
        "<p><a href='/blog/stretch'>should stretch before every single run</a></p><p>, not after.</p><p>Done.</p>"
    )
    assert "should stretch before every single run" in render_text(split)  # a sentence split around its link


def test_a_menu_before_the_post_and_an_image_credit_inside_it_are_not_the_post() -> None:
    document = read(
        "<ul><li><a href='/'>Home</a></li><li><a href='/team'>Team</a><ul><li><a href='/team/pt'>PTs</a></li>"
        "</ul></li><li><a href='/blog'>Blog</a></li></ul>"
        "<p>Knee pain on the stairs is common after forty, and it often starts with weak hips.</p>"
        "<figure><img src='/img/stairs.jpg' width='600'><figcaption>Taking the stairs."
        " <span class='photo-credit'>Photo: J. Doe</span></figcaption></figure>"
        "<p class='media__caption--source'>Oakview archive, 2019</p><p>Start with two exercises.</p>"
        "<ul><li><a href='/a'>Clamshell</a></li><li><a href='/b'>Bridge</a></li></ul><p>Do both daily.</p>"
    )
    text = render_text(document, TextOptions(captions="parentheses"))
    assert text.startswith("Knee pain on the stairs") and "Home" not in text
    assert "(Taking the stairs.)" in text and "J. Doe" not in text and "archive" not in text
    assert "Clamshell" in text  # a list of links inside the post is the post's


def test_the_document_is_stored_as_json_and_read_back_the_same() -> None:
    document = read(
        "<h2>A</h2><p>One <strong>two</strong> <a href='/x'>three</a>.</p><ol><li>a<ul><li>b</li></ul></li></ol>"
        "<table><tr><th>x</th><th>y</th></tr><tr><td>1</td><td>2</td></tr></table>"
        "<figure><img src='/i.jpg' width='600' alt='i'><figcaption>c</figcaption></figure>"
        "<blockquote><p>q</p></blockquote>"
    )
    assert Document.from_json(document.to_json()) == document


def test_language_is_the_entrys_else_detected_else_the_feeds() -> None:
    spanish = "Si le duele la rodilla al subir escaleras, llame a nuestra clínica para una evaluación gratuita."
    assert detect(spanish) == "es"
    assert detect("Wall slide") is None  # too short to tell
    assert item_language(None, spanish, "en-US") == "es"
    assert item_language("fr-CA", spanish, "en-US") == "fr"
    assert item_language(None, "Hi!", "en-US") == "en"
    assert words("es")["read_more"] == "Leer más" and words("de")["read_more"] == "Read more"


def test_alt_text_is_decoded_and_one_picture_is_one_picture_in_any_size() -> None:
    from carecast.html import same_picture

    document = read(r'<img src="/img/run.jpg" alt="A runner \u{1F3C3}\u{200d}\u{2640}\u{fe0f} stretching">')
    assert document.pictures()[0].alt == "A runner \U0001f3c3\u200d\u2640\ufe0f stretching"
    top = "https://www.oakviewpt.com/wp-content/uploads/knee-scaled.jpg?resize=1200"
    assert same_picture(top, "https://www.oakviewpt.com/wp-content/uploads/knee-1024x683.jpg")
    assert same_picture(top, "https://www.oakviewpt.com/wp-content/uploads/knee@2x.jpg")
    assert not same_picture(top, "https://www.oakviewpt.com/wp-content/uploads/hip.jpg")


def test_the_authors_tracking_goes_from_body_links_and_their_own_parameters_stay() -> None:
    document = read(
        "<p>Read <a href='https://www.cdc.example/falls?utm_source=hubspot&amp;hsCtaTracking=abc%7Cdef"
        "&amp;__hstc=1.2.3&amp;fbclid=x&amp;page=2'>the advice</a>.</p>"
    )
    [span] = [span for span in document.blocks[0].spans if span.href]
    assert span.href == "https://www.cdc.example/falls?page=2"


def test_a_picture_elements_img_with_a_placeholder_keeps_its_alt_text_and_shows_its_source() -> None:
    document = read(
        "<p>Intro.</p><picture><source data-srcset='/img/pigeon-600.webp 600w, /img/pigeon-1200.webp 1200w'>"
        "<img src='data:image/svg+xml,%3Csvg%3E' alt='Pigeon pose'></picture>"
    )
    [picture] = document.pictures()
    assert (picture.url, picture.alt) == ("https://www.oakviewpt.com/img/pigeon-1200.webp", "Pigeon pose")


def test_a_short_closing_line_is_the_authors_and_a_ui_label_is_not() -> None:
    for closing in ("Stay well", "See you soon", "Take care", "Happy holidays from all of us", "Hasta pronto"):
        document = read(f"<p>Thanks for coming in this year.</p><p>{closing}</p>")
        assert render_text(document).endswith(closing), closing
    for label in ("Archive", "Photo: Getty Images", "March 3, 2026"):
        document = read(f"<p>Thanks for coming in this year.</p><p>{label}</p>")
        assert render_text(document) == "Thanks for coming in this year.", label


def test_the_name_signed_under_a_closing_line_is_the_authors() -> None:
    for closing, signature in (
        ("Stay well,", ["Dana Reyes"]),
        ("Warmly,", ["Dana Reyes", "Physical therapist"]),
        ("See you soon!", ["\u2014 Dana"]),
        ("Hasta pronto,", ["Dra. Ana Ruiz"]),
    ):
        lines = "".join(f"<p>{line}</p>" for line in signature)
        document = read(f"<p>Thanks for coming in this year.</p><p>{closing}</p>{lines}")
        assert render_text(document).endswith(f"{closing}\n\n" + "\n\n".join(signature)), closing
    # a closing is a line of its own: a sentence that starts as one does not sign the labels under it
    document = read("<p>Thanks for coming in this year.</p><p>Archive</p><p>March 3, 2026</p>")
    assert render_text(document) == "Thanks for coming in this year."


def test_a_tables_title_row_spanning_its_columns_is_its_first_line_in_text() -> None:
    document = read(
        "<p>Where our patients come from.</p><table><tr><th colspan='2'>New patients by referral</th></tr>"
        "<tr><td>Physician</td><td>41</td></tr><tr><td>Self-referred</td><td>27</td></tr></table>"
    )
    assert render_text(document).endswith("New patients by referral\nPhysician: 41\nSelf-referred: 27")
