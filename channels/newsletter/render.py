"""The newsletter's rendering: the digest's subject, preheader, text and HTML bodies (MJML or a staff's HTML
template, CSS inlined), its items' links tagged and their HTML made safe for email, and the CAN-SPAM footer checked."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import css_inline
import jinja2
import nh3
from markupsafe import Markup
from mjml import mjml2html

from carecast.plugin import (
    Channel,
    ContentItem,
    Draft,
    RenderError,
)
from carecast.plugin.text import (
    CONTACT_SCHEMES,
    Document,
    contact_url,
    excerpt_html,
    html_to_text,
    render_html,
    same_picture,
    words,
)
from carecast_channels.newsletter.config import NewsletterConfig

#: Stands for the recipient's token in the stored draft; URL-safe, so it reads the same escaped or not.
TOKEN_PLACEHOLDER = "CARECAST-UNSUBSCRIBE-TOKEN"
MJML_TEMPLATE = "body.mjml.j2"
#: A staff template from before MJML: plain HTML, still honoured when the folder has no MJML template.
HTML_TEMPLATE = "body.html.j2"
#: The width of the newsletter's content column in pixels (600 less 24 on each side): no picture is wider.
COLUMN_WIDTH = 552
_WEB_SCHEMES = frozenset({"http", "https"})
_PREVIEW = re.compile(r'(<body[^>]*>\s*<div style="display:none;)([^"]*)"')


class NewsletterRendering(Channel):
    """What a newsletter renders: the draft of a digest (:meth:`compose`) and its unsubscribe link."""

    config: NewsletterConfig

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render the digest of ``items`` (newest first, ties by id) into a recipient-independent draft.

        Raises RenderError when there are no items or the templates leave out the postal address or the
        unsubscribe link; jinja2.TemplateError when a template fails.
        """
        if not items:
            raise RenderError(self.instance, "a newsletter needs at least one item")
        ordered = sorted(sorted(items, key=lambda item: item.id), key=lambda item: item.published, reverse=True)
        entries = [self._entry(item) for item in ordered]
        # RULES.md "Healthcare": never PHI in a subject, so an item naming a patient never leads it.
        lead = next((entry for item, entry in zip(ordered, entries, strict=True) if not item.mentions_patient), None)
        # The email's language: its items' when they share one, else the practice's; the template's words in it.
        languages = {item.language or self.practice.language for item in ordered}
        language = languages.pop() if len(languages) == 1 else self.practice.language
        if lead is not None:  # the room the subject leaves the lead's title: its limit less the name and "and 2 more"
            others = " " + words(language)["and_more"] % (len(entries) - 1) if len(entries) > 1 else ""
            budget = self.limit("max_subject_length") or self.limits["max_subject_length"]
            lead["subject_title"] = subject_title(lead["title"], budget - len(f"{self.practice.short_name}: {others}"))
        context: dict[str, Any] = {
            "language": language,
            "words": words(language),
            "entries": entries,
            "lead": lead,
            "others": len(entries) - 1,
            "unsubscribe_url": self.unsubscribe_link(TOKEN_PLACEHOLDER),
        }
        subject = " ".join(self.template("subject.txt.j2", **context).split())
        preheader = " ".join(self.template("preheader.txt.j2", **context).split())
        text = self.template("body.txt.j2", **context)
        draft = Draft(
            channel=self.instance,
            item_ids=tuple(item.id for item in ordered),
            parts=(text,),
            subject=subject,
            html=self._page(subject=subject, preheader=preheader, **context),
            preheader=preheader,
        )
        if gaps := self.footer_gaps(draft):
            raise RenderError(self.instance, f"the templates leave out {', '.join(gaps)}", draft.item_ids)
        return draft

    def _page(self, **context: Any) -> str:
        """The HTML body: ``body.mjml.j2`` through MJML (responsive tables), or a staff's own ``body.html.j2`` when
        their template folder has no MJML one; its CSS inlined either way.

        Raises jinja2.TemplateError when a template fails, RenderError when MJML cannot read the rendered MJML.
        """
        try:
            source = self.template(MJML_TEMPLATE, **context)
        except jinja2.TemplateNotFound:
            page = self.template(HTML_TEMPLATE, **context)
        else:
            try:
                page = _plain_preheader(mjml2html(source, disable_comments=True, fonts={}))
            except (ValueError, RuntimeError) as exc:  # MRML reports invalid MJML as a ValueError
                raise RenderError(self.instance, f"{MJML_TEMPLATE} is not valid MJML: {exc}") from exc
        # The <style> blocks stay beside the inlined styles: media queries (phones, dark mode) only work there.
        return css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=True).inline(page)

    def _entry(self, item: ContentItem) -> dict[str, Any]:
        """What the templates show of one item: links tagged, image URL absolute, summary HTML re-checked, cut to
        an excerpt (``body: excerpt``), without the hero image, its pictures no wider than the column."""
        base = item.url or str(self.practice.website)
        image = urljoin(base, item.image_url) if item.image_url else None
        if image is not None and urlsplit(image).scheme not in _WEB_SCHEMES:
            image = None
        summary = self._email_safe(item, base, hero=image)
        excerpted = False
        if self.config.body == "excerpt":
            summary, excerpted = excerpt_html(summary, self.config.excerpt_words)
        return {
            "title": item.title,
            # The text part tells the same as the HTML part: the excerpt when that is what the HTML shows.
            "summary_text": html_to_text(summary) if excerpted else item.summary_text,
            "summary_html": Markup(summary),
            "excerpted": excerpted,
            "link": self.link(item),
            "image_url": image,
            "image_alt": item.image_alt or item.title,
            "words": words(item.language or self.practice.language),
        }

    def _email_safe(self, item: ContentItem, base: str, hero: str | None) -> str:
        """The item's summary HTML with absolute, UTM-tagged links, cleaned again by nh3 before it goes out.

        The hero image is not shown twice; other images are at most as wide as the column (Outlook reads the
        ``width`` attribute, not CSS) and keep no fixed height, so they scale.
        """

        def rewrite(tag: str, attribute: str, value: str) -> str | None:
            if tag == "img" and attribute == "height":
                return None
            if tag == "img" and attribute == "width":
                return str(min(int(value), COLUMN_WIDTH)) if value.isdigit() else None
            if attribute not in {"href", "src"}:
                return value
            if tag == "a" and contact_url(value):
                return value  # tel:, mailto:, sms: stay as they are: a reader taps them
            # Mail clients have no base URL: a relative link or image would break in every inbox.
            absolute = urljoin(base, value)
            if tag == "a" and attribute == "href" and urlsplit(absolute).scheme in _WEB_SCHEMES:
                return self.link(replace(item, url=absolute))
            return absolute

        cleaner = nh3.Cleaner(
            # The body's HTML comes from the item's document (carecast.document.render_html), whose tables, images
            # and buttons carry inline styles: Gmail keeps no other.
            attributes={
                **nh3.ALLOWED_ATTRIBUTES,
                "img": {"src", "alt", "width", "height", "style"},
                "table": {"style", "role"},
                "div": {"style"},
                "td": {"style"},
                "th": {"style"},
                "a": {*nh3.ALLOWED_ATTRIBUTES.get("a", ()), "style"},
            },
            attribute_filter=rewrite,
            url_schemes={*_WEB_SCHEMES, *CONTACT_SCHEMES},
        )
        # The hero goes with its caption: a caption without its picture says nothing.
        blocks = [
            block
            for block in item.body.blocks
            if not (hero and block.kind == "figure" and block.picture and same_picture(block.picture.url, hero))
        ]
        return cleaner.clean(render_html(Document(tuple(blocks)), item.language or self.practice.language))

    def footer_gaps(self, draft: Draft) -> list[str]:
        """What of the CAN-SPAM footer (postal address, unsubscribe link) each part of ``draft`` lacks.

        Templates and edits at approval are the practice's to change; these two must survive both.
        """
        link = self.unsubscribe_link(TOKEN_PLACEHOLDER)
        address = self.practice.address.one_line()
        wanted = {"the postal address": address, "the unsubscribe link": link}
        bodies = {"text": (draft.text, wanted), "HTML": (draft.html or "", {k: _as_html(v) for k, v in wanted.items()})}
        return [
            f"{what} in the {part} part"
            for part, (body, needles) in bodies.items()
            for what, needle in needles.items()
            if needle not in body
        ]

    def unsubscribe_link(self, token: str) -> str:
        """The one-click unsubscribe URL for ``token``, keeping any query the configured URL has."""
        parts = urlsplit(str(self.config.unsubscribe_url))
        query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("t", token)], quote_via=quote)
        return urlunsplit(parts._replace(query=query))


def _as_html(text: str) -> str:
    """``text`` as the inlined HTML spells it, in text and in attribute values alike (``&`` escaped, quotes not)."""
    return html.escape(text, quote=False)


def _plain_preheader(page: str) -> str:
    """``page`` with MJML's hidden preheader (``mj-preview``) hidden without white text, and from Outlook too.

    MJML colours it white: SpamAssassin scores text coloured like its background (HTML_FONT_LOW_CONTRAST), and
    ``display:none`` with ``max-height:0`` hides it anyway; Outlook desktop also wants ``mso-hide:all``.
    """

    def restyle(match: re.Match[str]) -> str:
        return f'{match.group(1)}{match.group(2).replace("color:#ffffff;", "")}mso-hide:all;"'

    return _PREVIEW.sub(restyle, page, count=1)


#: Where a title's phrase ends: a colon, a dash, a question or exclamation mark, a comma.
_PHRASE_END = re.compile(r"(?::|\s[\u2013\u2014-]|[?!]|,)\s")


def subject_title(title: str, room: int) -> str:
    """``title`` as a subject shows it: whole when it fits in ``room`` characters, else up to the end of its last
    phrase that fits ("Shoulder Impingement" of "Shoulder Impingement: A Four-Week Home Program"), else cut on a
    word with an ellipsis. Never "...The Complete..." and 2 more."""
    if len(title) <= room:
        return title
    ends = [found for found in _PHRASE_END.finditer(title) if found.start() + 1 <= room and found.start() >= 12]
    if ends:
        cut = ends[-1]
        return title[: cut.start() + (1 if title[cut.start()] in "?!" else 0)].rstrip()
    words = title[: room - 1].rsplit(" ", 1)[0]
    return words.rstrip(" ,;:-\u2013\u2014") + "\u2026"
