"""The newsletter channel: the digest it composes and the .eml it writes, parsed back as a mail client would."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from carecast.config import Settings
from carecast.errors import PublishError, RenderError
from carecast.model import ContentItem, Draft, content_hash
from carecast.practice import load_settings
from carecast_channels.newsletter import LIST_TOKEN, TOKEN_PLACEHOLDER, NewsletterChannel, NewsletterConfig
from tests.channels.conftest import outbox_context

CONFIG = Path(__file__).resolve().parents[2] / "config" / "carecast.yaml"
ADDRESS = "1200 W Oakview Ave, Suite 210, Chicago, IL 60614"
PRACTICE_HOST = "www.oakviewpt.com"


def make_item(
    item_id: str,
    *,
    title: str = "Five stretches for desk workers",
    url: str | None = "https://www.oakviewpt.com/blog/desk-stretches",
    summary_html: str = "<p>Sitting all day? These <strong>five stretches</strong> take ten minutes.</p>",
    summary_text: str = "Sitting all day? These five stretches take ten minutes.",
    published: datetime = datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
    **extra: Any,
) -> ContentItem:
    return ContentItem(
        id=item_id,
        source="blog",
        kind="post",
        title=title,
        url=url,
        summary_html=summary_html,
        summary_text=summary_text,
        published=published,
        content_hash=content_hash(item_id, title, summary_html),
        **extra,
    )


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONFIG)


def channel_with(settings: Settings, **overrides: Any) -> NewsletterChannel:
    section = settings.channels["newsletter"].model_dump(exclude_unset=True) | overrides
    return NewsletterChannel("newsletter", NewsletterConfig.model_validate(section), settings)


@pytest.fixture
def channel(settings: Settings) -> NewsletterChannel:
    return channel_with(settings)


@pytest.fixture
def items() -> list[ContentItem]:
    return [
        make_item(
            "post-knee",
            title="Runner's knee: what helps & what doesn't",
            url="https://www.oakviewpt.com/blog/runners-knee",
            summary_html=(
                '<p>Ice &amp; rest help. See <a href="/blog/strength">our strength plan</a> and the '
                '<a href="https://www.nih.example/knee">NIH guide</a>.</p>'
            ),
            summary_text="Ice & rest help. See our strength plan and the NIH guide.",
            published=datetime(2026, 3, 4, 12, 0, tzinfo=UTC),
            image_url="/images/knee.jpg",
            image_alt="A runner stretching her quadriceps",
        ),
        make_item("post-desk"),
        make_item("post-balance", title="Balance at any age", url="https://partner.example/balance"),
    ]


@pytest.fixture
def eml(channel: NewsletterChannel, items: list[ContentItem], tmp_path: Path) -> tuple[bytes, EmailMessage]:
    draft = channel.render(items)
    receipt = channel.publish(draft, outbox_context(tmp_path / "outbox"))
    raw = Path(receipt.location).read_bytes()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return raw, message


def bodies(message: EmailMessage) -> tuple[str, str]:
    text, page = (part.get_content() for part in message.iter_parts())
    return text, page


class Elements(HTMLParser):
    """Every start tag of a page with its attributes, and the body's first element with its text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.first_in_body: tuple[str, dict[str, str | None]] | None = None
        self.first_text = ""
        self._in_body = False
        self._in_first = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if self._in_body and self.first_in_body is None:
            self.first_in_body = (tag, dict(attrs))
            self._in_first = True
        self._in_body = self._in_body or tag == "body"

    def handle_endtag(self, tag: str) -> None:
        # The preheader holds text only, so its first end tag closes it.
        self._in_first = False

    def handle_data(self, data: str) -> None:
        if self._in_first:
            self.first_text += data

    def hrefs(self) -> list[str]:
        return [str(attrs["href"]) for tag, attrs in self.tags if tag == "a" and attrs.get("href")]


# -- configuration -----------------------------------------------------------------------------------------------


def test_the_sample_section_validates(settings: Settings) -> None:
    config = settings.channels["newsletter"]
    assert isinstance(config, NewsletterConfig)
    assert config.from_address == "news@oakviewpt.com"
    assert str(config.unsubscribe_url).startswith("https://")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("unsubscribe_url", "http://www.oakviewpt.com/unsubscribe"),
        ("from_address", "not an address"),
        ("max_subject_length", 10),
        ("max_subject_length", 200),
        ("bcc", "boss@oakviewpt.com"),
    ],
)
def test_the_config_refuses(settings: Settings, key: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        channel_with(settings, **{key: value})
    assert caught.value.errors()[0]["loc"][0] == key


# -- the message on the wire -------------------------------------------------------------------------------------


def test_the_eml_is_text_then_html_alternatives_with_crlf_lines(eml: tuple[bytes, EmailMessage]) -> None:
    raw, message = eml
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in message.iter_parts())
    assert raw.count(b"\n") == raw.count(b"\r\n")


def test_the_headers_name_an_honest_sender_and_the_list(eml: tuple[bytes, EmailMessage]) -> None:
    _, message = eml
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Oakview Physical Therapy", "news@oakviewpt.com")
    assert message["To"].addresses[0].addr_spec == "news@oakviewpt.com"
    assert message["To"].addresses[0].display_name == "Oakview PT Newsletter"
    assert message["Reply-To"].addresses[0].addr_spec == "frontdesk@oakviewpt.com"
    assert message["Subject"] == "Oakview PT: Runner's knee: what helps & what doesn't and 2 more"
    assert message["Date"].datetime.tzinfo is not None
    assert message["Message-ID"].endswith("@oakviewpt.com>")
    assert message["List-Id"] == "Oakview PT Newsletter <oakview-pt-newsletter.oakviewpt.com>"
    assert "Precedence" not in message


def test_one_click_unsubscribe_headers(eml: tuple[bytes, EmailMessage]) -> None:
    _, message = eml
    https, mailto = (uri.strip().strip("<>") for uri in str(message["List-Unsubscribe"]).split(","))
    assert https == f"https://www.oakviewpt.com/unsubscribe?t={LIST_TOKEN}"
    assert mailto == "mailto:unsubscribe@oakviewpt.com?subject=unsubscribe"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_both_parts_carry_the_postal_address_and_the_same_unsubscribe_link(eml: tuple[bytes, EmailMessage]) -> None:
    _, message = eml
    text, page = bodies(message)
    link = f"https://www.oakviewpt.com/unsubscribe?t={LIST_TOKEN}"
    assert ADDRESS in text
    assert ADDRESS in page
    assert f"Unsubscribe: {link}" in text
    assert link in Elements(page).hrefs()
    assert TOKEN_PLACEHOLDER not in text + page


def test_the_preheader_is_the_first_body_element_and_hidden(
    channel: NewsletterChannel, items: list[ContentItem], eml: tuple[bytes, EmailMessage]
) -> None:
    _, message = eml
    page = Elements(bodies(message)[1])
    assert page.first_in_body is not None
    tag, attrs = page.first_in_body
    style = str(attrs.get("style")).replace(" ", "")
    assert tag == "div"
    # Hidden everywhere (Outlook too) without tricks a spam filter scores: no zero-width padding, no white text.
    for rule in ("display:none", "max-height:0px", "opacity:0", "overflow:hidden", "mso-hide:all"):
        assert rule in style
    assert "color:#ffffff" not in style
    preheader = channel.render(items).preheader
    assert preheader == "Ice & rest help. See our strength plan and the NIH guide."
    assert page.first_text.startswith(preheader)


def test_practice_links_are_tagged_and_foreign_links_are_not(eml: tuple[bytes, EmailMessage]) -> None:
    _, message = eml
    text, page = bodies(message)
    hrefs = Elements(page).hrefs()
    tagged = {
        "https://www.oakviewpt.com/blog/runners-knee",
        "https://www.oakviewpt.com/blog/strength",
        "https://www.oakviewpt.com/blog/desk-stretches",
    }
    utm = "utm_source=newsletter&utm_medium=email&utm_campaign=oakview_blog"
    for url in tagged:
        assert f"{url}?{utm}" in hrefs
    lines = text.splitlines()
    assert f"Read more: https://www.oakviewpt.com/blog/runners-knee?{utm}" in lines
    assert "Read more: https://partner.example/balance" in lines
    for foreign in ("https://www.nih.example/knee", "https://partner.example/balance"):
        assert foreign in hrefs
    for href in hrefs:
        query = parse_qs(urlsplit(href).query)
        assert ("utm_source" in query) == (urlsplit(href).hostname == PRACTICE_HOST and "t" not in query)


def test_layout_is_responsive_tables_with_inline_styles_and_absolute_images(eml: tuple[bytes, EmailMessage]) -> None:
    _, message = eml
    page = bodies(message)[1]
    elements = Elements(page)
    tables = [attrs for tag, attrs in elements.tags if tag == "table"]
    assert tables
    assert all(attrs.get("role") == "presentation" for attrs in tables)
    styled = [attrs for _, attrs in elements.tags if attrs.get("class") and "mj-" not in str(attrs.get("class"))]
    assert len(styled) > 3
    assert all(attrs.get("style") for attrs in styled)
    # Fluid up to 600px, one column on phones: MJML's media query stays in a <style> block.
    assert "max-width:600px" in page.replace(" ", "") and "@media only screen and (max-width:479px)" in page
    assert "prefers-color-scheme: dark" in page and '<meta name="color-scheme" content="light dark"' in page
    images = [attrs for tag, attrs in elements.tags if tag == "img"]
    assert images == [
        {
            "alt": "A runner stretching her quadriceps",
            "height": "auto",
            "src": "https://www.oakviewpt.com/images/knee.jpg",
            "width": "552",
            "style": images[0]["style"],
        }
    ]
    assert "width:100%" in str(images[0]["style"]).replace(" ", "")


def test_an_items_image_shows_once_and_no_picture_is_wider_than_the_column(channel: NewsletterChannel) -> None:
    hero = "https://www.oakviewpt.com/images/knee.jpg"
    item = make_item(
        "post-knee",
        image_url=hero,
        summary_html=(
            f'<p><img src="{hero}" alt="hero"></p><p>Ice helps.</p>'
            '<p><img src="https://www.oakviewpt.com/images/figure.jpg" width="1600" height="1200" alt="fig"></p>'
        ),
    )
    images = [attrs for tag, attrs in Elements(channel.render([item]).html or "").tags if tag == "img"]
    assert [attrs["src"] for attrs in images] == [hero, "https://www.oakviewpt.com/images/figure.jpg"]
    figure = images[1]
    assert figure["width"] == "552" and "height" not in figure
    style = str(figure["style"]).replace(" ", "")
    assert "max-width:100%" in style and "height:auto" in style


def test_feed_headings_are_smaller_than_the_item_title(channel: NewsletterChannel) -> None:
    item = make_item("post-knee", summary_html="<h2>Why it hurts</h2><p>Ice helps.</p>")
    page = channel.render([item]).html or ""
    title_size = re.search(r'class="item-title" style="[^"]*font-size: ?(\d+)px', page)
    heading_size = re.search(r'<h2 style="[^"]*font-size: ?(\d+)px[^"]*">Why it hurts', page)
    assert title_size and heading_size
    assert int(heading_size.group(1)) < int(title_size.group(1))


LONG_POST = "".join(
    f"<p>Paragraph {n} tells you something useful about your knees. It has a second sentence too.</p>"
    for n in range(12)
)


def test_an_item_shows_an_excerpt_ending_on_a_sentence_then_read_more(settings: Settings) -> None:
    item = make_item("post-long", summary_html=LONG_POST + '<p>Call <a href="tel:+13125550142">us</a>.</p>')
    page = channel_with(settings).render([item]).html or ""
    assert "Paragraph 3 " in page and "Paragraph 11" not in page
    assert ">Read more</a>" in page
    full = channel_with(settings, body="full").render([item]).html or ""
    assert "Paragraph 11" in full and 'href="tel:+13125550142"' in full


def test_an_email_of_spanish_items_says_its_own_words_in_spanish(settings: Settings) -> None:
    video = '<p>Mire el ejercicio.</p><iframe src="https://www.youtube.com/embed/abcDEF12345"></iframe>'
    spanish = [
        make_item("es-1", title="Dolor de rodilla", summary_html=video, language="es"),
        make_item("es-2", title="Hombro congelado", language="es", published=datetime(2026, 3, 1, tzinfo=UTC)),
    ]
    draft = channel_with(settings, body="full").render(spanish)
    assert draft.subject is not None and draft.subject.endswith("Dolor de rodilla y 1 más")
    page = draft.html or ""
    assert "Ver el video</a>" in page and "Watch the video" not in page and "Leer más" in page
    english = channel_with(settings, body="full").render([replace(item, language="en") for item in spanish])
    assert (english.subject or "").endswith("and 1 more") and "Watch the video</a>" in (english.html or "")


def test_a_non_ascii_sender_and_subject_are_encoded_and_read_back(settings: Settings, tmp_path: Path) -> None:
    channel = channel_with(settings, from_name="Oakview Physiothérapie")
    draft = channel.render([make_item("post-cafe", title="Café chats — Ask a PT ☕")])
    raw = Path(channel.publish(draft, outbox_context(tmp_path / "outbox")).location).read_bytes()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert raw.isascii()
    assert message["From"].addresses[0].display_name == "Oakview Physiothérapie"
    assert message["Subject"] == "Oakview PT: Café chats — Ask a PT ☕"


# -- per-recipient messages --------------------------------------------------------------------------------------


def test_build_message_puts_each_recipients_token_in_headers_and_both_parts(
    channel: NewsletterChannel, items: list[ContentItem]
) -> None:
    draft = channel.render(items)
    message = channel.build_message(draft, to="Pat Doe <pat@mail.example>", unsubscribe_token="a.b/c+d=")
    text, page = bodies(message)
    link = "https://www.oakviewpt.com/unsubscribe?t=a.b%2Fc%2Bd%3D"
    assert str(message["List-Unsubscribe"]).startswith(f"<{link}>,")
    assert f"Unsubscribe: {link}" in text
    assert link in Elements(page).hrefs()
    assert message["To"].addresses[0].addr_spec == "pat@mail.example"
    assert TOKEN_PLACEHOLDER in draft.text
    assert TOKEN_PLACEHOLDER in (draft.html or "")


def test_the_unsubscribe_url_may_have_its_own_query(settings: Settings, items: list[ContentItem]) -> None:
    channel = channel_with(settings, unsubscribe_url="https://www.oakviewpt.com/u?list=news&lang=en")
    message = channel.build_message(channel.render(items), to="pat@mail.example", unsubscribe_token="tok")
    link = "https://www.oakviewpt.com/u?list=news&lang=en&t=tok"
    assert link in Elements(bodies(message)[1]).hrefs()
    assert f"Unsubscribe: {link}" in bodies(message)[0]


def test_a_draft_without_unsubscribe_link_is_not_sent(channel: NewsletterChannel, items: list[ContentItem]) -> None:
    draft = channel.render(items)
    edited = replace(draft, parts=(draft.text.replace(TOKEN_PLACEHOLDER, "gone"),))
    with pytest.raises(PublishError, match="unsubscribe link in the text part") as caught:
        channel.build_message(edited, to="pat@mail.example", unsubscribe_token="tok")
    assert caught.value.transient is False
    with pytest.raises(PublishError, match="no subject"):
        channel.build_message(Draft("newsletter", ("x",), ("hi",)), to="pat@mail.example", unsubscribe_token="t")


# -- composing ---------------------------------------------------------------------------------------------------


def test_a_long_lead_title_is_cut_to_the_subjects_limit_at_a_phrase(settings: Settings) -> None:
    long_title = make_item("post-long", title="Everything you wanted to know about shoulder mobility " * 2)
    # A title without a phrase to end on is cut on a word, so the subject fits the channel's 78 ...
    subject = channel_with(settings).render([long_title]).subject
    assert subject is not None and len(subject) <= 78 and subject.endswith("…")
    # ... or the practice's lower limit; a title with phrases ends at one, never mid-phrase, "and 1 more" kept.
    subject = channel_with(settings, max_subject_length=40).render([long_title]).subject
    assert subject is not None and len(subject) <= 40 and subject.endswith("…")
    phrased = make_item("post-phrased", title="Shoulder Impingement: A Four-Week Home Program for Lifters")
    older = make_item("post-older", published=datetime(2026, 3, 1, tzinfo=UTC))
    subject = channel_with(settings).render([phrased, older]).subject
    assert subject == "Oakview PT: Shoulder Impingement and 1 more"


def test_item_html_is_neither_double_escaped_nor_unsafe(channel: NewsletterChannel) -> None:
    hostile = make_item(
        "post-hostile",
        title="<script>alert('title')</script> Hip & back",
        summary_html=(
            "<p>Heat &amp; ice <em>both</em> help.</p><script>alert(1)</script>"
            '<img src="x.png" onerror="alert(2)"><a href="javascript:alert(3)">click</a>'
        ),
        summary_text="Heat & ice both help.",
    )
    page = channel.render([hostile]).html or ""
    assert "Heat &amp; ice <em>both</em> help.</p>" in page
    assert "&amp;amp;" not in page
    assert "&lt;p&gt;" not in page
    assert "&lt;script&gt;alert('title')&lt;/script&gt; Hip &amp; back" in page
    tags = Elements(page).tags
    # The title is text everywhere: in an attribute (MJML's aria-label) "<script>" is only characters.
    assert "script" not in [tag for tag, _ in tags]
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    for unsafe in ("onerror", "javascript:"):
        assert unsafe not in page.lower()
    assert 'src="https://www.oakviewpt.com/blog/x.png"' in page


def test_items_come_newest_first_and_ties_by_id(channel: NewsletterChannel) -> None:
    noon = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    items = [
        make_item("b", title="Tie B", published=noon),
        make_item("old", title="Old", published=noon - timedelta(days=3)),
        make_item("a", title="Tie A", published=noon),
        make_item("new", title="New", published=noon + timedelta(hours=1)),
    ]
    draft = channel.render(items)
    assert draft.item_ids == ("new", "a", "b", "old")
    text = draft.text
    assert text.index("New") < text.index("Tie A") < text.index("Tie B") < text.index("Old")


def test_rendering_is_deterministic(channel: NewsletterChannel, items: list[ContentItem]) -> None:
    first = channel.render(items)
    assert channel.render(list(reversed(items))) == first


def test_a_patient_story_never_leads_the_subject(channel: NewsletterChannel) -> None:
    story = make_item(
        "story-maria",
        title="Maria walks again after her knee replacement",
        published=datetime(2026, 3, 9, tzinfo=UTC),
        mentions_patient=True,
        authorized_channels=("newsletter",),
    )
    draft = channel.render([story, make_item("post-desk")])
    assert draft.subject == "Oakview PT: Five stretches for desk workers and 1 more"
    assert "Maria" not in (draft.subject or "") + (draft.preheader or "")
    only_story = channel.render([story])
    assert only_story.subject == "Oakview PT: 1 new from the clinic"
    assert "Maria" not in (only_story.preheader or "")


def with_staff_templates(settings: Settings, tmp_path: Path, edits: dict[str, str | None]) -> NewsletterChannel:
    """The newsletter channel over a copy of the sample templates, each file in ``edits`` rewritten (None: removed)."""
    folder = tmp_path / "templates"
    shutil.copytree(settings.path(settings.templates) / "newsletter", folder / "newsletter")
    for name, text in edits.items():
        if text is None:
            (folder / "newsletter" / name).unlink()
        else:
            (folder / "newsletter" / name).write_text(text)
    custom = settings.model_copy(update={"templates": folder})
    return NewsletterChannel("newsletter", settings.channels["newsletter"], custom)


def sample_template(settings: Settings, name: str) -> str:
    return (settings.path(settings.templates) / "newsletter" / name).read_text()


def test_templates_that_drop_the_footer_are_refused(settings: Settings, tmp_path: Path) -> None:
    mjml = sample_template(settings, "body.mjml.j2").replace("{{ practice.address.one_line() }}", "")
    channel = with_staff_templates(settings, tmp_path, {"body.mjml.j2": mjml})
    with pytest.raises(RenderError, match="the postal address in the HTML part"):
        channel.render([make_item("post-desk")])


def test_a_staff_html_template_from_before_mjml_still_renders(settings: Settings, tmp_path: Path) -> None:
    html = (
        "{% autoescape true %}<html><body><div>{{ preheader }}</div>"
        '{% for entry in entries %}<h2 class="t">{{ entry.title }}</h2>{{ entry.summary_html }}{% endfor %}'
        '<p>{{ practice.address.one_line() }} <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
        "<style>.t { color: #123456; }</style></body></html>{% endautoescape %}"
    )
    channel = with_staff_templates(settings, tmp_path, {"body.mjml.j2": None, "body.html.j2": html})
    page = channel.render([make_item("a")]).html
    assert page and 'class="t" style="color: #123456' in page and ADDRESS in page


def test_a_staff_mjml_template_is_used(settings: Settings, tmp_path: Path) -> None:
    mjml = sample_template(settings, "body.mjml.j2").replace("{{ voice.sign_off }}", "Stay strong, Oakview!")
    page = with_staff_templates(settings, tmp_path, {"body.mjml.j2": mjml}).render([make_item("a")]).html
    assert page and "Stay strong, Oakview!" in page


def test_no_items_is_refused(channel: NewsletterChannel) -> None:
    with pytest.raises(RenderError, match="at least one item"):
        channel.render([])
