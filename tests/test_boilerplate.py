"""Boilerplate told by structure (``carecast/boilerplate.py``, and what ``carecast/furniture.py`` removes before
trafilatura reads a whole page): teaser cards of the site's other posts, hover cards, sign-up widgets. Each rule has
its counter-case: the author's own text of the same shape stays."""

from __future__ import annotations

import lxml.html

from carecast.document import Document, render_text
from carecast.furniture import drop_dates, drop_form_boxes
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


def test_a_hover_card_inlined_in_a_sentence_goes_and_the_sentence_stays_whole() -> None:
    card = (
        "<span class='card'><span><img src='/img/ana.jpg' width='100'><a href='/people/ana'>Ana Ruiz, DPT</a>"
        "<a href='/blog/hips'>Why your hips matter on the stairs</a> <a href='/blog/ankle'>Stiff ankles, sore knees</a>"
        " <a href='/people/ana'>MORE</a></span></span>"
    )
    sentence = f"<p>Our director <span class='person'><a href='/people/ana'>Ana Ruiz</a>{card}</span> (DPT) has treated"
    text = render_text(read(_POST + sentence + " runners for twenty years, most of them after a knee injury.</p>"))
    assert "Our director Ana Ruiz (DPT) has treated runners for twenty years" in text
    assert "Stiff ankles" not in text and not read(_POST + sentence + " runners.</p>").pictures()
    own = (
        "<p><span>We use <a href='/shop/bands'>bands</a>, <a href='/shop/balls'>balls</a> and "
        "<a href='/shop/steps'>steps</a> <img src='/img/kit.jpg' width='40'> in every session, and so can you at "
        "home with a little space.</span></p>"
    )
    assert "in every session, and so can you" in render_text(read(_POST + own))  # the author's links, mostly words


def test_a_sign_up_box_goes_with_its_panes_and_a_post_around_a_form_stays() -> None:
    box = (
        "<div class='signup'><h3>Get one exercise a week</h3><form action='https://list.example/subscribe'>"
        "<p>Send yourself the weekly exercise.</p><input type='email' name='EMAIL'><input type='submit' value='Go'>"
        "</form><div class='pane busy'><p>Please wait...</p></div><div class='pane error'><p>This feature is "
        "temporarily unavailable. Please try again later.</p></div><div class='pane done'><h3>Thanks!</h3><p>Now "
        "check your inbox to confirm your address.</p></div></div>"
    )
    text = render_text(read(_POST + box + "<p>Hold each stretch for thirty seconds, twice a day, on both sides.</p>"))
    assert text.startswith("Knee pain on the stairs") and text.endswith("twice a day, on both sides.")
    assert "exercise a week" not in text and "temporarily" not in text and "inbox" not in text
    short = render_text(read("<p>Book your first visit below; we call back within a day.</p><form><input></form>"))
    assert short == "Book your first visit below; we call back within a day."  # the post itself is no box
    whole = f"<form id='aspnet'><input name='q'><p>Search</p>{_POST * 2}</form>"
    modal = "<div class='modal'><form><input type='email'></form><form><input type='password'></form></div>"
    page = lxml.html.document_fromstring(f"<html><body>{whole}{modal}</body></html>")
    drop_form_boxes(page)
    assert "Knee pain on the stairs" in page.text_content()  # a form around the whole page (ASP.NET's) is no box
    assert next(page.iter("form")).get("id") == "aspnet"  # and a box of two forms goes once


def test_a_post_does_not_end_on_the_sites_legal_line_in_any_language() -> None:
    for legal in (
        "Copyright © 2026, Oakview Physical Therapy. Comments are copyrighted by their authors. Site by Acme",
        "© 2026 Fisioterapia Robles. Todos los derechos reservados.",
        "(c) 2025 Oakview PT",
        "copyright Oakview PT 2025 - ISSN: 1234-5678",
    ):
        assert render_text(read(_POST + f"<p>{legal}</p>")) == render_text(read(_POST)), legal
    own = "<p>The chart is from the 2019 guideline (© APTA), which every clinic in the state follows today.</p>"
    assert render_text(read(_POST + own)).endswith("every clinic in the state follows today.")  # a sentence
    law = "<p>Copyright law changed in 2019, and clinics may now share these sheets</p>"
    assert render_text(read(_POST + law)).endswith("may now share these sheets")  # no owner's name before the year


def test_the_pages_dates_marked_by_schema_org_go_and_the_sentence_around_one_stays() -> None:
    page = (
        "<html><body><article><h1>Knee pain on the stairs</h1><div itemprop='articleBody'>"
        "<span itemprop='datePublished'>sexta-feira, 22 de outubro de 2010 às 20:13</span>"
        f"{_POST}<p>Posted on <time itemprop='dateModified'>Monday, 3 March 2026 at 9:15</time></p>"
        f"{_POST.replace('Knee', 'Hip')}</div></article></body></html>"
    )
    text = render_text(read(page))
    assert "outubro" not in text and "Posted on" not in text and "3 March" not in text
    assert text.startswith("Knee pain on the stairs is common") and text.endswith("the next morning.")
    own = lxml.html.fragment_fromstring(
        "<p>We opened on <time itemprop='dateCreated'>2 May 2019</time>, and since then our team has treated more "
        "than two thousand runners from the whole city.</p>",
        create_parent="div",
    )
    drop_dates(own)
    assert "We opened on 2 May 2019, and since then" in own.text_content()  # a date in the author's sentence


def test_an_image_credit_marked_by_its_class_goes_from_a_whole_page_too() -> None:
    credit = "<p>Our new gym opened in March. <span class='credit video-credit'>By OAKVIEW STAFF CAMERA</span></p>"
    page = f"<html><body><article><h1>New gym</h1>{_POST}{credit}{_POST.replace('Knee', 'Hip')}</article></body></html>"
    text = render_text(read(page))
    assert "Our new gym opened in March." in text and "CAMERA" not in text
    long = "<div class='credits'><p>" + "Thanks to every patient who helped us test the new plan this year. " * 4
    assert "Thanks to every patient" in render_text(read(page.replace(credit, long + "</p></div>")))


def test_a_list_of_teasers_inside_the_post_goes_with_its_label_and_the_posts_own_lists_stay() -> None:
    teasers = (
        "<h3>Notas relacionadas</h3><ul><li><a href='/blog/rodilla'>Cómo cuidar la rodilla al subir escaleras</a>"
        "</li><li><a href='https://www.oakviewpt.com/blog/cadera'>Ejercicios de cadera para corredores de fondo</a>"
        "</li></ul>"
    )
    after = "<p>Hold each stretch for thirty seconds, twice a day, on both sides.</p>"
    text = render_text(read(_POST + teasers + after))
    assert "relacionadas" not in text.lower() and "escaleras" not in text
    assert text.endswith("on both sides.") and text.startswith("Knee pain")
    steps = (
        "<h3>Two steps</h3><ul><li><a href='/blog/clam'>Do the clamshell on your side, ten times.</a></li>"
        "<li><a href='https://cdc.example/falls'>Older adult fall prevention facts and figures</a></li></ul>"
    )
    assert "Older adult fall prevention" in render_text(read(_POST + steps + after))  # sentences, a source elsewhere
    contents = (
        "<ul><li><a href='#assess'>Assess how deep your content on knees is</a></li>"
        "<li><a href='https://www.oakviewpt.com/blog/post/#rewrite'>Rewrite it with the depth in mind</a></li></ul>"
    )
    assert "Assess how deep your content" in render_text(read(_POST + contents + after))  # a table of contents


def test_what_a_pages_classes_and_roles_name_furniture_goes_and_a_container_so_named_keeps_its_article() -> None:
    furniture = (
        "<div id='SidebarTheDeck'><p><a href='https://deck.example/'>Ads via The Deck network</a></p></div>"
        "<p class='comments'>Submit comments on this post to <a href='mailto:ana@oakviewpt.com'>Ana</a> today.</p>"
        "<div role='complementary'><p>Try our other clinics, all open on Saturdays this winter!</p></div>"
        "<div class='rail rail--trending'><h3 class='rail__title'>Most read in our clinic news</h3></div>"
        "<p class='brand breadcrumbs'><a href='/'>Blog</a> » <a href='/knees'>Knee care</a> » Stairs and steps</p>"
    )
    body = f"{_POST}{furniture}{_POST.replace('Knee', 'Hip')}"
    text = render_text(read(f"<html><body><article>{body}</article></body></html>"))
    assert text.startswith("Knee pain on the stairs") and text.endswith("the next morning.")
    assert "The Deck" not in text and "Submit comments" not in text and "other clinics" not in text
    assert "Most read" not in text and "Knee care" not in text
    named = f"<html><body><div class='content has-sidebar'>{_POST * 3}</div></body></html>"
    assert render_text(read(named)).startswith("Knee pain on the stairs")  # the article's container, so named


_STEPS = (
    "Sit on a firm chair with your feet flat and your back tall, hands resting on your thighs.",
    "Stand up slowly without using your hands, then sit down again with control, counting to three.",
    "Keep your knees over your toes, and stop if the pain rises above a three out of ten.",
    "Repeat ten times, rest for a minute, and do a second set when the first one feels easy.",
    "Hold a counter with one hand and rise onto your toes, then lower your heels to the floor.",
    "Walk for ten minutes after the exercises, on flat ground, at a pace that lets you talk.",
)


def test_the_articles_prose_in_blocks_a_page_names_like_furniture_stays_and_the_furniture_goes() -> None:
    links = "".join(f"<a href='/{w.lower()}'>Our {w} page for patients and families</a> " for w in ("Team", "Fees"))
    menu = f"<div class='footer-menu'>{links}</div>" * 3  # a run of blocks of links: menus, not prose
    bio = "<div class='author-box'><p>Ana Ruiz is a physical therapist who has treated runners and dancers for twenty"
    bio += " years, and she writes about knees, hips and ankles for the clinic every month of the year.</p></div>"
    paragraphs = "".join(f"<p class='contextmenu body'>{step} {step}</p>" for step in _STEPS)
    slides = "".join(f"<div class='listicle-slides'><h2>{n}</h2><p>{s} {s} {s}</p></div>" for n, s in enumerate(_STEPS))
    post = "".join(_POST.replace("stairs", f"stairs ({n})") for n in range(20))  # long: trafilatura's own article
    for article in (paragraphs, slides):
        page = f"<html><body><article><h1>Chair stands</h1>{post}{article}{bio}</article>{menu}</body></html>"
        text = render_text(read(page))
        assert all(step in text for step in _STEPS)  # a paragraph called a menu, a listicle's items called slides
        assert "Ana Ruiz" not in text and "Team" not in text  # an author's box alone, a menu of links
    code = " ".join(f"var clinic{n} = 'Oakview';" for n in range(20))  # a script's words are none a reader sees
    embeds = f"<div class='map-embed'><script>{code}</script><p>Loading the map of our clinic…</p></div>" * 3
    page = f"<html><body><article><h1>Chair stands</h1>{post}{embeds}{paragraphs}</article></body></html>"
    assert "Loading the map" not in render_text(read(page))
    table = "<table><tr><th>Exercise</th><th>Sets</th></tr><tr><td>Chair stands</td><td>Two of ten</td></tr></table>"
    boxed = f"<div class='w-embed'><style>table {{ width: 100% }}</style>{table}</div>"  # Webflow's, an embed
    page = f"<html><body><article><h1>Chair stands</h1>{post}{boxed}{_POST}</article></body></html>"
    assert "Two of ten" in render_text(read(page))


def test_a_quote_between_the_articles_paragraphs_stays_though_its_box_is_named_like_furniture() -> None:
    post = "".join(_POST.replace("stairs", f"stairs ({n})") for n in range(20))  # long: trafilatura's own article
    tweet = (
        "<div class='social-media-embed'><blockquote class='twitter-tweet'><p>Our new stair class starts on Monday,"
        " and every seat is free for patients over seventy.</p>— Oakview PT (@oakviewpt)"
        " <a href='https://twitter.com/oakviewpt/status/1'>March 3, 2026</a></blockquote></div>"
    )
    pull = "<p class='body'><span class='contextmenu Quotation'>Weak hips make the knees do the work twice.</span></p>"
    named = "<div class='pullquote-embed'><p>A stiff ankle turns every step into a small jump.</p></div>"
    for quote, words in ((tweet, "every seat is free"), (pull, "Weak hips make"), (named, "A stiff ankle turns")):
        page = f"<html><body><article><h1>Stairs</h1>{post}{quote}{_POST}</article></body></html>"
        assert words in render_text(read(page))  # an embedded post, a pull quote in a paragraph, one named so
    signup = "<div class='newsletter-box'><p>Get our weekly tips on knees and hips in your inbox.</p></div>"
    review = "<div class='widget'><blockquote><p>The best clinic in town, and the nicest staff I have met.</p>"
    review += "</blockquote></div>"  # a review in the sidebar, after the article's paragraphs
    page = f"<html><body><article><h1>Stairs</h1>{post}{signup}{_POST}</article>{review}</body></html>"
    text = render_text(read(page))
    assert "weekly tips" not in text and "nicest staff" not in text


def test_a_headings_anchor_spelling_its_words_names_no_furniture() -> None:
    heading = "<h2 id='how-to-share-the-load-on-the-stairs'>How to share the load on the stairs</h2>"
    bar = "<div id='share-bar'><a href='https://x.example/share'>Post it</a></div>"
    credit = "<h3 id='a-tax-credit-for-your-visits'>A tax credit for your visits</h3><p id='photo-credit'>Ana Ruiz</p>"
    page = f"<html><body><article>{_POST}{heading}{bar}{_POST}{credit}{_POST}</article></body></html>"
    text = render_text(read(page))
    assert "How to share the load on the stairs" in text and "A tax credit for your visits" in text
    assert "Post it" not in text and "Ana Ruiz" not in text  # a share bar, a picture's credit, so named


def test_a_grid_of_linked_cards_goes_with_its_label_and_linked_pictures_in_the_authors_words_stay() -> None:
    grid = "<section><h2>Featured</h2><div>" + "".join(
        f"<section><a href='/blog/{slug}'><img src='/img/{slug}.jpg' width='200'><span>Read Article</span>"
        f"<div>{title}</div></a></section>"
        for slug, title in (("tutu", "Hip drills for dancers"), ("tulip", "Ankle care in winter"), ("run", "Runs"))
    )
    page = f"<html><body><article>{_POST}{grid}</div></section>{_POST.replace('Knee', 'Hip')}</article></body></html>"
    text = render_text(read(page))
    assert "Featured" not in text and "Read Article" not in text and "dancers" not in text
    assert text.startswith("Knee pain on the stairs") and text.endswith("the next morning.")
    own = "".join(
        f"{words} <a href='/video/{slug}'><img src='/img/{slug}.jpg' width='60'> the {slug} video</a>"
        for words, slug in (("Watch", "clamshell"), (", then", "bridge"), ("and", "squat"))
    )
    own = f"<p>{own} before you start; each takes two minutes and shows the mistakes we see most.</p>"
    assert "the bridge video" in render_text(read(f"<html><body><article>{_POST}{own}</article></body></html>"))


def test_the_line_that_licenses_the_site_goes_and_a_licence_named_in_the_authors_words_stays() -> None:
    licence = (
        "<p>This website and all documents on it are licensed under a <a rel='license' "
        "href='https://creativecommons.org/licenses/by-sa/4.0/'>Creative Commons Attribution-Share Alike License</a>."
        "</p>"
    )
    page = f"<html><body><article>{_POST}{licence}{_POST.replace('Knee', 'Hip')}</article></body></html>"
    assert "licensed" not in render_text(read(page))
    own = (
        "<p>The exercise sheet is yours to share: we publish it under a <a href='https://creativecommons.org/'>"
        "Creative Commons licence</a>, so print it, copy it and hand it to anyone who needs it.</p>"
    )
    assert "The exercise sheet is yours to share" in render_text(read(page.replace(licence, own)))


def test_a_box_of_badge_links_goes_with_its_call_and_linked_pictures_in_the_authors_words_stay() -> None:
    stores = (
        "<a href='https://play.google.com/store/apps/details?id=com.oakview'><img src='/img/android.png'></a>",
        "<a href='https://apps.apple.com/us/app/oakview/id1479666958'><img src='/img/iphone.png'></a>",
    )
    box = f"<div><p><b>Get our exercises straight to your phone with the Oakview app.</b></p><div>{''.join(stores)}"
    page = f"<html><body><article>{_POST}{box}</div></div>{_POST.replace('Knee', 'Hip')}</article></body></html>"
    text = render_text(read(page))
    assert "straight to your phone" not in text and text.endswith("the next morning.")
    own = (
        f"<p>Download the Oakview app {stores[0]} or {stores[1]}: it holds every exercise of your plan with a short "
        "video of each, and it reminds you when it is time for the next set.</p>"
    )
    assert "Download the Oakview app" in render_text(read(page.replace(box + "</div></div>", own)))


def test_a_platform_credit_in_small_print_goes_and_a_call_to_action_to_a_home_page_stays() -> None:
    masthead = (
        "<table><tr><td><h1>Oakview News</h1></td><td><a href='http://tumblr.com/'><font size='-2'>Powered by "
        "Tumblr</font></a></td></tr></table>"
    )
    book = "<p><a href='https://booking.oakviewpt.com/'>Book your first visit online today</a></p>"
    source = "<p><small>Source: <a href='https://www.cdc.gov/falls/facts.html'>CDC facts on falls</a></small></p>"
    body = f"{masthead}<h2>Stairs</h2>{_POST}{source}{_POST.replace('Knee', 'Hip')}{book}"
    text = render_text(read(f"<html><body><table><tr><td>{body}</td></tr></table></body></html>"))
    assert "Tumblr" not in text
    assert "Book your first visit online today" in text and "CDC facts on falls" in text


def test_the_posts_own_permalink_line_goes_and_a_heading_or_sentence_linking_to_the_post_stays() -> None:
    head = "<head><link rel='canonical' href='https://www.oakviewpt.com/blog/knee-stairs'></head>"
    line = "<div><span><a href='/blog/knee-stairs?source=post_page'>Oct 18, 2019</a></span> · 8 min read</div>"
    own = (
        "<p>We first wrote <a href='https://www.oakviewpt.com/blog/knee-stairs'>this post</a> in 2019, and we "
        "have brought it up to date with what our therapists teach now.</p>"
    )
    body = f"<h1><a href='/blog/knee-stairs'>Knee pain on the stairs in 2026</a></h1>{line}{_POST}{own}"
    text = render_text(read(f"<html>{head}<body><article>{body}</article></body></html>"))
    assert "Oct 18" not in text and "min read" not in text
    assert "We first wrote this post in 2019" in text and text.startswith("Knee pain on the stairs")


def test_a_caption_outside_any_figure_is_its_pictures_caption_never_a_paragraph() -> None:
    gallery = (
        "<ul class='gallery'><li><div class='img-wrap'><img src='https://cdn.example/gym-1.jpg' alt='The gym'></div>"
        "<div class='caption'><div class='caption-full'>Ana Ruiz, left, and Tom Lee open the new gym on Main Street "
        "on Tuesday.</div><span class='credit'>Photo: Oakview staff</span></div></li></ul>"
    )
    body = f"<h1>New gym</h1>{gallery}{_POST}{_POST.replace('Knee', 'Hip')}"
    document = read(f"<html><body><article>{body}</article></body></html>")
    assert "open the new gym" not in render_text(document)  # captions dropped: no paragraph holds it
    assert "Knee pain on the stairs is common" in render_text(document)
    own = (
        "<div class='image'><img data-src='https://cdn.example/gym-2.jpg' alt='The gym'>"
        "<p class='caption'>Our new gym on Main Street has been open to every patient since March.</p></div>"
    )
    page = f"<html><body><article>{_POST}{own}{_POST.replace('Knee', 'Hip')}</article></body></html>"
    assert "Our new gym on Main Street" in render_text(read(page))  # a story's lead set as its picture's caption


def test_a_note_in_small_print_over_the_comments_goes_and_the_posts_last_paragraph_stays() -> None:
    note = (
        "<p style='font-size:10px; font-weight:bold'>ATENÇÃO: Comentários com textos ininteligíveis ou que faltem com "
        "respeito ao usuário não serão aprovados pelo moderador.</p>"
    )
    last = "<p>See you at the clinic, and bring your running shoes!</p>"
    body = f"<div>{_POST}{_POST.replace('Knee', 'Hip')}{last}{note}</div><div id='disqus_thread'></div>"
    text = render_text(read(f"<html><body><article><h1>Stairs</h1>{body}</article></body></html>"))
    assert "moderador" not in text and text.endswith("bring your running shoes!")
    body = body.replace(note, "")
    assert render_text(read(f"<html><body><article>{body}</article></body></html>")).endswith("running shoes!")


def test_another_posts_entry_inside_the_article_goes_and_the_posts_own_entry_stays() -> None:
    head = "<head><link rel='canonical' href='https://www.oakviewpt.com/blog/knee-stairs'></head>"
    other = (
        "<article class='post-17 post'><a href='/blog/hip-stretches' rel='bookmark'><img src='/img/hip.jpg'></a>"
        "<p>Five hip stretches for desk workers, each held for thirty seconds, morning and evening.</p></article>"
    )
    own = "<h1><a href='/blog/knee-stairs' rel='bookmark'>Knee pain on the stairs</a></h1>"
    body = f"<article class='post-12 post'>{own}{_POST}{other}{_POST.replace('Knee', 'Hip')}</article>"
    text = render_text(read(f"<html>{head}<body>{body}</body></html>"))
    assert "Five hip stretches" not in text and "Knee pain on the stairs is common" in text
    quoted = other.replace(" rel='bookmark'", "")  # a card the author embeds, no entry of the site's
    text = render_text(read(f"<html>{head}<body>{body.replace(other, quoted)}</body></html>"))
    assert "Five hip stretches" in text


def test_the_posts_tag_line_goes_and_a_sentence_linking_to_a_tag_stays() -> None:
    tags = (
        "<p><a href='/tag/knees' rel='category tag'>Knee pain</a>, "
        "<a href='/tag/stairs' rel='category tag'>Stairs and steps</a></p>"
    )
    body = f"<article><h1>Stairs</h1>{_POST}{_POST.replace('Knee', 'Hip')}{tags}</article>"
    text = render_text(read(f"<html><body>{body}</body></html>"))
    assert "Stairs and steps" not in text
    own = (
        "<p>Every post we wrote on <a href='/tag/knees' rel='tag'>knee pain</a> is gathered on one page, with the "
        "exercises of each, so that you can print them all at once.</p>"
    )
    assert "gathered on one page" in render_text(read(f"<html><body>{body.replace(tags, own)}</body></html>"))


def test_the_post_itself_under_a_permalink_written_otherwise_stays() -> None:
    head = "<head><link rel='canonical' href='https://www.oakviewpt.com/knee-stairs'></head>"
    post = (
        "<article class='post-12 post'><h1><a href='/2026/03/knee-stairs/' rel='bookmark'>Knee pain on the stairs"
        f"</a></h1>{_POST}{_POST.replace('Knee', 'Hip')}</article>"
    )
    intro = "<p>Every week our therapists answer one question that patients ask us at the front desk of the clinic.</p>"
    text = render_text(read(f"<html>{head}<body><article class='page'>{intro}{post}</article></body></html>"))
    assert "Knee pain on the stairs is common" in text and "Hip pain on the stairs is common" in text


def test_a_list_of_the_sites_stories_under_the_post_goes_and_a_list_of_sources_or_of_prose_stays() -> None:
    def stories(host: str) -> str:
        return (
            "<ul>"
            + "".join(
                f"<li>{lead} <a href='https://{host}/blog/{slug}'>{title}</a></li>"
                for lead, slug, title in (
                    ("Runners who climb stairs at work, read", "hips", "why your hips matter"),
                    ("Stiff ankles after a long winter off", "ankle", "make sore knees"),
                    ("Back to running after a break of months?", "run", "Come back slowly"),
                )
            )
            + "</ul>"
        )

    assert render_text(read(_POST + stories("www.oakviewpt.com"))) == render_text(read(_POST))
    assert "make sore knees" in render_text(read(_POST + stories("www.cdc.example")))
    steps = (
        "<ol>"
        + "".join(
            f"<li>{step}, as in <a href='/blog/{slug}'>our guide</a>.</li>"
            for step, slug in (
                ("Warm up for five minutes on a bike or a brisk walk before any of the exercises below", "warm"),
                ("Do the wall sit three times, holding each for as long as you can keep good form", "wall"),
                ("Finish with the calf raises on a step, slowly down and quickly up, for two sets", "calf"),
            )
        )
        + "</ol>"
    )
    assert "Finish with the calf raises" in render_text(read(_POST + steps))


def test_a_sign_up_box_whose_form_a_script_mounts_goes_though_its_style_and_script_are_long() -> None:
    style = "<style>#weekly-signup { margin: 1rem; display: flex; gap: 0.5rem; border: 1px solid #eee; }" * 12
    box = (
        f"<div id='weekly-signup'>{style}</style><h3>Sign up for our Moving Well letter</h3>"
        "<p>Moving Well is a weekly letter for runners, walkers and everyone who takes the stairs at work.</p>"
        "<p>Delivered once a week, it is our therapists' short guide to the exercises, habits and small changes "
        "that keep knees and hips working well.</p>"
        "<div role='form' aria-live='polite'></div><script>var form = {id: 48, title: 'Letter'};</script></div>"
    )
    text = render_text(read(f"<html><body><article>{_POST}{box}{_POST.replace('Knee', 'Hip')}</article></body></html>"))
    assert text.startswith("Knee pain on the stairs") and text.endswith("the next morning.")
    assert "Moving Well" not in text and "Delivered once a week" not in text
