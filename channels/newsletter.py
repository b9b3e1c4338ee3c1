"""The email newsletter channel: one digest of all new items, as a standards-following email.

``compose`` renders the subject, preheader and both bodies from ``templates/newsletter/`` (RULES.md "Email
newsletter": table layout, CSS inlined with css-inline, hidden preheader first, absolute image URLs with alt text,
postal address and unsubscribe link in both parts). The draft it returns is the same for every recipient: its
unsubscribe links carry a placeholder token that :meth:`NewsletterChannel.build_message` replaces with each
recipient's signed token, next to the RFC 8058 one-click ``List-Unsubscribe`` headers.

Without SMTP credentials ``publish`` writes one ``.eml`` per publication to the outbox, addressed to the list and
with a list-level token, exactly as it would go on the wire.
"""

from __future__ import annotations

import email.policy
import html
import re
from collections.abc import Sequence
from dataclasses import replace
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import css_inline
import nh3
from markupsafe import Markup
from pydantic import EmailStr, Field, HttpUrl, field_validator

from carecast.config import ChannelSettings
from carecast.errors import PublishError, RenderError
from carecast.model import ContentItem, Draft, Receipt, now_utc
from channels.base import Channel, PublishContext

#: Stands for the recipient's token in the stored draft; URL-safe, so it reads the same escaped or not.
TOKEN_PLACEHOLDER = "CARECAST-UNSUBSCRIBE-TOKEN"
#: The token of the list-level copy the outbox keeps; per-recipient tokens come with SMTP delivery.
LIST_TOKEN = "list"
_WEB_SCHEMES = frozenset({"http", "https"})


class NewsletterConfig(ChannelSettings):
    """``channels.<name>`` of type ``newsletter``: sender, list identity and unsubscribe endpoints."""

    from_name: str = Field(min_length=1, description="the honest sender name shown in the inbox")
    from_address: EmailStr
    reply_to: EmailStr | None = None
    list_name: str = Field(min_length=1, description="shown in the footer and the List-Id header")
    unsubscribe_url: HttpUrl = Field(description="the https one-click endpoint; '?t=<token>' is appended")
    unsubscribe_mailto: EmailStr = Field(description="the address that takes 'unsubscribe' mails")
    max_subject_length: int | None = Field(None, ge=20, le=150, description="lowers the channel's 78")

    @field_validator("unsubscribe_url")
    @classmethod
    def _https_only(cls, value: HttpUrl) -> HttpUrl:
        # RFC 8058: one-click unsubscribe URIs must be https.
        if value.scheme != "https":
            raise ValueError(f"an https URL (RFC 8058 one-click unsubscribe), not {value.scheme!r}")
        return value


class NewsletterChannel(Channel):
    """A digest newsletter: every new item in one email, newest first."""

    name = "newsletter"
    Config = NewsletterConfig
    utm_source = "newsletter"
    utm_medium = "email"
    digest = True
    limits: ClassVar[dict[str, int]] = {"max_subject_length": 78}

    config: NewsletterConfig

    # -- rendering ---------------------------------------------------------------------------------------------

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
        context: dict[str, Any] = {
            "entries": entries,
            "lead": lead,
            "others": len(entries) - 1,
            "unsubscribe_url": self.unsubscribe_link(TOKEN_PLACEHOLDER),
        }
        subject = " ".join(self.template("subject.txt.j2", **context).split())
        preheader = " ".join(self.template("preheader.txt.j2", **context).split())
        text = self.template("body.txt.j2", **context)
        page = self.template("body.html.j2", subject=subject, preheader=preheader, **context)
        inliner = css_inline.CSSInliner(load_remote_stylesheets=False)
        draft = Draft(
            channel=self.instance,
            item_ids=tuple(item.id for item in ordered),
            parts=(text,),
            subject=subject,
            html=inliner.inline(page),
            preheader=preheader,
        )
        if gaps := self.footer_gaps(draft):
            raise RenderError(self.instance, f"the templates leave out {', '.join(gaps)}", draft.item_ids)
        return draft

    def _entry(self, item: ContentItem) -> dict[str, Any]:
        """What the templates show of one item: links tagged, image URL absolute, summary HTML re-checked."""
        base = item.url or str(self.practice.website)
        image = urljoin(base, item.image_url) if item.image_url else None
        if image is not None and urlsplit(image).scheme not in _WEB_SCHEMES:
            image = None
        return {
            "title": item.title,
            "summary_text": item.summary_text,
            "summary_html": Markup(self._email_safe(item, base)),
            "link": self.link(item),
            "image_url": image,
            "image_alt": item.image_alt or item.title,
        }

    def _email_safe(self, item: ContentItem, base: str) -> str:
        """The item's summary HTML with absolute, UTM-tagged links, cleaned again by nh3 before it goes out."""

        def rewrite(tag: str, attribute: str, value: str) -> str | None:
            if attribute not in {"href", "src"}:
                return value
            # Mail clients have no base URL: a relative link or image would break in every inbox.
            absolute = urljoin(base, value)
            if tag == "a" and attribute == "href" and urlsplit(absolute).scheme in _WEB_SCHEMES:
                return self.link(replace(item, url=absolute))
            return absolute

        return nh3.clean(item.summary_html, attribute_filter=rewrite)

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

    # -- publishing --------------------------------------------------------------------------------------------

    def build_message(self, draft: Draft, *, to: str, unsubscribe_token: str) -> EmailMessage:
        """The email of ``draft`` for one recipient (``to``), unsubscribe links carrying ``unsubscribe_token``.

        Raises PublishError (not transient) when the draft lacks a subject, HTML, the postal address or the
        unsubscribe link.
        """
        if draft.subject is None or draft.html is None:
            raise PublishError(self.instance, "the draft has no subject or HTML body", transient=False)
        if gaps := self.footer_gaps(draft):
            raise PublishError(self.instance, f"the draft lacks {', '.join(gaps)}", transient=False)
        placeholder_url = self.unsubscribe_link(TOKEN_PLACEHOLDER)
        unsubscribe_url = self.unsubscribe_link(unsubscribe_token)
        text = draft.text.replace(placeholder_url, unsubscribe_url)
        page = draft.html.replace(_as_html(placeholder_url), _as_html(unsubscribe_url))
        sender = Address(self.config.from_name, addr_spec=self.config.from_address)

        message = EmailMessage()
        message["From"] = sender
        message["To"] = to
        if self.config.reply_to:
            message["Reply-To"] = self.config.reply_to
        message["Subject"] = draft.subject
        message["Date"] = format_datetime(now_utc())
        message["Message-ID"] = make_msgid(domain=sender.domain)
        message["List-Id"] = f"{self.config.list_name} <{self.list_id()}>"
        # RFC 8058 one-click: Gmail and Yahoo require both headers of bulk senders.
        message["List-Unsubscribe"] = (
            f"<{unsubscribe_url}>, <mailto:{self.config.unsubscribe_mailto}?subject=unsubscribe>"
        )
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text)
        message.add_alternative(page, subtype="html")
        return message

    def list_id(self) -> str:
        """The RFC 2919 list identifier: the list name as a label under the sender's domain."""
        label = re.sub(r"[^a-z0-9]+", "-", self.config.list_name.lower()).strip("-") or "newsletter"
        return f"{label}.{Address(addr_spec=self.config.from_address).domain}"

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Write the list-level copy of ``draft`` to the outbox as one ``.eml``, CRLF lines as on the wire.

        Raises PublishError (not transient) when the draft is not a newsletter or the outbox refuses the file.
        """
        message = self.build_message(
            draft,
            to=str(Address(self.config.list_name, addr_spec=self.config.from_address)),
            unsubscribe_token=LIST_TOKEN,
        )
        path = context.outbox.write(self.instance, context.key, ".eml", message.as_bytes(policy=email.policy.SMTP))
        return context.outbox.receipt(path)


def _as_html(text: str) -> str:
    """``text`` as the inlined HTML spells it, in text and in attribute values alike (``&`` escaped, quotes not)."""
    return html.escape(text, quote=False)
