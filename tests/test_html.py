"""Cleaning feed bodies and choosing an item's picture (carecast.html): what a WordPress post really carries."""

from __future__ import annotations

import re

from carecast.html import Image, choose_image, clean_body, excerpt_html

BASE = "https://www.oakviewpt.com/blog/knee"
EMOJI = (
    '<img draggable="false" role="img" class="emoji" alt="\U0001f4aa" '
    'src="https://s.w.org/images/core/emoji/15.0.3/72x72/1f4aa.png">'
)
PIXEL = '<img src="https://feeds.feedburner.com/~r/OakviewBlog/~4/abc123" height="1" width="1" alt="">'


def test_an_emoji_image_becomes_its_character_and_is_never_the_picture() -> None:
    body = clean_body(f"<p>Stronger knees {EMOJI} in six weeks.</p>", base_url=BASE)
    assert body.html == "<p>Stronger knees \U0001f4aa in six weeks.</p>"
    assert body.images == ()
    assert choose_image([], body.images) is None


def test_tracking_pixels_and_icons_are_removed_from_the_body() -> None:
    html = (
        f"<p>Hello.</p>{PIXEL}"
        '<p><img src="https://stats.wordpress.com/b.gif?x=1" alt=""></p>'
        '<p><img src="https://clinic.example/x.png" width="1" height="1"></p>'
        '<p><img class="avatar avatar-48" src="https://secure.gravatar.com/avatar/abc?s=48" width="48"></p>'
    )
    body = clean_body(html, base_url=BASE)
    assert body.html == "<p>Hello.</p>" and body.images == ()


def test_wordpress_boilerplate_and_share_blocks_are_stripped() -> None:
    html = (
        "<p>Ice helps for the first two days.</p>"
        '<p><a href="https://www.oakviewpt.com/blog/knee#more-12" class="more-link">Continue reading '
        '<span class="screen-reader-text">Knee pain</span> &rarr;</a></p>'
        '<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">Share this:</h3>'
        '<ul><li><a href="https://twitter.com/share">Twitter</a></li></ul></div>'
        '<p>The post <a href="https://www.oakviewpt.com/blog/knee">Knee pain</a> appeared first on '
        '<a href="https://www.oakviewpt.com">Oakview Physical Therapy</a>.</p>'
    )
    assert clean_body(html, base_url=BASE).html == "<p>Ice helps for the first two days.</p>"


def test_contact_links_are_kept() -> None:
    html = (
        '<p>Call <a href="tel:+13125550142">312-555-0142</a>, write to <a href="mailto:hello@oakviewpt.com">us</a> '
        'or <a href="sms:+13125550142">text us</a>; not <a href="javascript:x()">this</a>.</p>'
    )
    cleaned = clean_body(html, base_url=BASE).html
    for href in ("tel:+13125550142", "mailto:hello@oakviewpt.com", "sms:+13125550142"):
        assert f'href="{href}"' in cleaned
    assert "javascript" not in cleaned


def test_a_first_heading_that_repeats_the_title_is_dropped() -> None:
    html = "<h1>Knee Pain: What Helps?</h1><p>Ice and rest.</p><h2>Knee pain: what helps</h2>"
    body = clean_body(html, base_url=BASE, title="Knee pain - what helps")
    assert body.text.startswith("Ice and rest.")


def test_the_pages_heading_that_the_title_holds_is_dropped_with_the_section_label_above_it() -> None:
    # A page's <title> adds the site or a date to the post's heading; "Press releases" labels the section.
    html = (
        "<p>Press releases</p><h1>Knee pain: what helps</h1><p>Ice and rest help.</p>"
        "<h2>What helps</h2><p>Movement.</p>"
    )
    body = clean_body(html, base_url=BASE, title="12.03.2026 | Knee pain: what helps - Riverside PT")
    assert body.text.startswith("Ice and rest help.")
    assert "What helps" in body.text


def test_a_captioned_picture_above_the_pages_heading_stays_when_the_heading_goes() -> None:
    html = (
        '<figure><img src="/img/knee.jpg"><figcaption>Ice helps.</figcaption></figure>'
        "<h1>Knee pain: what helps</h1><p>Ice and rest help.</p>"
    )
    body = clean_body(html, base_url=BASE, title="Knee pain: what helps - Riverside PT")
    assert [block.kind for block in body.document.blocks] == ["figure", "paragraph"]
    assert body.document.blocks[0].caption == "Ice helps."


def test_a_post_does_not_end_on_a_credit_a_date_or_a_section_name() -> None:
    html = (
        "<p>Ice and rest help.</p><p>Book a visit at our clinic.</p>"
        "<p>Copyright: Jane Roe</p><p>21. Januar 2022</p><p>Archive</p>"
    )
    body = clean_body(html, base_url=BASE)
    assert body.text.endswith("Book a visit at our clinic.")


def test_the_sources_strip_patterns_remove_their_blocks() -> None:
    html = "<p>Real advice.</p><p>Subscribe to our newsletter for more tips!</p>"
    body = clean_body(html, base_url=BASE, strip=[re.compile(r"^subscribe to our newsletter", re.IGNORECASE)])
    assert body.html == "<p>Real advice.</p>"


def test_the_feeds_own_image_comes_first_then_the_first_big_enough_photo() -> None:
    html = (
        f"<p>{EMOJI}</p>"
        '<p><img src="/icons/badge.png" alt="badge"></p>'
        '<p><img src="/img/small.jpg" width="120" height="90" alt="small"></p>'
        '<p><img src="/img/figure.jpg" width="1600" height="900" alt="A therapist guiding a squat"></p>'
    )
    body = clean_body(html, base_url=BASE)
    assert choose_image([], body.images) == Image(
        "https://www.oakviewpt.com/img/figure.jpg", "A therapist guiding a squat", 1600, 900
    )
    enclosure = Image("https://cdn.example/hero.jpg")
    blogger_thumbnail = Image("https://blogger.googleusercontent.com/img/s72-c/photo.jpg", width=72, height=72)
    assert choose_image([blogger_thumbnail, enclosure], body.images) == enclosure
    assert choose_image([blogger_thumbnail], body.images) == body.images[0]
    assert choose_image([Image("https://cdn.example/anim.gif")], []) is None


def test_an_excerpt_ends_on_a_sentence_near_the_word_count() -> None:
    paragraph = "<p>" + " ".join(f"Sentence {n} has five words." for n in range(30)) + "</p>"
    excerpt, cut = excerpt_html(paragraph, words=60)
    assert cut and excerpt.endswith("Sentence 11 has five words.</p>")
    plain, cut = excerpt_html(" ".join(f"Plain {n} is here." for n in range(40)), words=20)
    assert cut and plain == "<p>" + " ".join(f"Plain {n} is here." for n in range(5)) + "</p>"
    assert excerpt_html("<p>Short.</p><ul><li>One</li></ul>") == ("<p>Short.</p><ul><li>One</li></ul>", False)


def test_an_excerpt_never_ends_on_an_abbreviation_mid_sentence() -> None:
    paragraph = "<p>We open at 8 a.m. on weekdays. Parking is free for every patient who comes in this month.</p>"
    excerpt, cut = excerpt_html(paragraph, words=6)
    assert cut and not excerpt.endswith("a.m.</p>")


def test_links_lose_every_known_tracking_parameter_and_keep_their_own() -> None:
    tracked = (
        "https://www.cdc.example/falls?utm_source=hubspot&hsCtaTracking=abc%7Cdef&_hsenc=p2A&_hsmi=1"
        "&__hstc=1.2&__hssc=3&__hsfp=4&fbclid=x&gclid=y&mc_eid=z&page=2#top"
    )
    body = clean_body(f'<p>Read <a href="{tracked}">the advice</a>.</p>', base_url=BASE)
    [href] = [span.href for block in body.document.blocks for span in block.spans if span.href]
    assert href == "https://www.cdc.example/falls?page=2#top"


def test_a_picture_element_gives_its_images_alt_and_a_candidate_every_client_shows() -> None:
    body = clean_body(
        '<p>Intro.</p><figure><picture><source type="image/webp" data-srcset="/img/p-600.webp 600w, '
        '/img/p-1200.webp 1200w"><source data-srcset="/img/p-600.jpg 600w, /img/p-1200.jpg 1200w">'
        '<img src="data:image/svg+xml,%3Csvg%3E" alt="Pigeon pose"></picture><figcaption>Hold it.</figcaption>'
        "</figure>",
        base_url=BASE,
    )
    pictures = body.document.pictures()
    assert [(picture.url, picture.alt) for picture in pictures] == [
        ("https://www.oakviewpt.com/img/p-1200.jpg", "Pigeon pose")
    ]
    assert [(image.url, image.alt) for image in body.images] == [
        ("https://www.oakviewpt.com/img/p-1200.jpg", "Pigeon pose")
    ]
    [figure] = [block for block in body.document.blocks if block.kind == "figure"]
    assert figure.caption == "Hold it."
