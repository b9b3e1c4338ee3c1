"""The email newsletter channel: one digest of all new items, as a standards-following email.

``compose`` renders the subject, preheader and both bodies from ``templates/newsletter/`` (RULES.md "Email
newsletter": table layout, CSS inlined with css-inline, hidden preheader first, absolute image URLs with alt text,
postal address and unsubscribe link in both parts). The draft it returns is the same for every recipient: its
unsubscribe links carry a placeholder token that :meth:`NewsletterChannel.build_message` replaces with a
recipient's opaque token, next to the RFC 8058 one-click ``List-Unsubscribe`` headers.

The list is ``audience/newsletter.csv``, or with ``audience:`` an audience of the practice's config (a practice
may have several newsletters, each its own list, templates in ``templates/<channel name>/`` and schedule); an
unsubscribe stops that list, or every list when the recipient asks for all email (:class:`UnsubscribeEndpoint`).

With SMTP ``credentials`` configured, ``publish`` sends one message per consenting subscriber over one
connection (STARTTLS or implicit TLS, then login), each with its own unsubscribe token, a random id the ledger
maps to the address (:mod:`carecast.unsubscribe`). The message is built and encoded once per publication
(:class:`PreparedMessage`); per recipient only ``To``, ``Date``, ``Message-ID`` and the token's characters are
filled into its bytes. Every recipient's delivery is claimed in the ledger before it is sent and recorded after,
so a batch cut short resumes on the next run with only the recipients not yet sent. A connection lost before the
server had the whole message (at ``MAIL``, ``RCPT`` or mid-data) leaves that recipient to the next run; one lost
after, with the server's reply, leaves them ``unknown``: SMTP keeps no list to ask, so staff settle them
(``carecast resolve ID --recipient ADDR --sent|--resend``) and they are never sent again on their own.
Unsubscribed, bounced and non-consenting subscribers are skipped and counted; a ``5xx`` at ``RCPT`` marks the
address bounced.

Without credentials ``publish`` writes one ``.eml`` per publication to the outbox, addressed to the list and
with a list-level token, exactly as it would go on the wire.
"""

from __future__ import annotations

import email.policy
import functools
import html
import ipaddress
import re
import secrets
import smtplib
import ssl
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import css_inline
import jinja2
import nh3
from markupsafe import Markup
from mjml import mjml2html
from pydantic import EmailStr, Field, HttpUrl, SecretStr, field_validator, model_validator

from carecast.plugin import (
    Channel,
    ChannelSettings,
    ContentItem,
    CredentialError,
    DeliveryOutcome,
    Draft,
    PracticeContext,
    PublishContext,
    PublishError,
    Receipt,
    RenderError,
    Request,
    Response,
    Route,
    SecretRef,
    Strict,
    TokenError,
    now_utc,
    resolve,
)
from carecast.plugin import ChannelLedger as Ledger
from carecast.plugin.audience import (
    RecipientLinks,
    Subscriber,
    Token,
    addressed,
    apply_unsubscribe,
    batched,
    list_scope,
    verify_token,
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
from carecast_channels.smtp_transaction import Link, ReplyLost, transact

#: Stands for the recipient's token in the stored draft; URL-safe, so it reads the same escaped or not.
TOKEN_PLACEHOLDER = "CARECAST-UNSUBSCRIBE-TOKEN"
#: The token of the list-level copy the outbox keeps; per-recipient tokens come with SMTP delivery.
LIST_TOKEN = "list"
MJML_TEMPLATE = "body.mjml.j2"
#: A staff template from before MJML: plain HTML, still honoured when the folder has no MJML template.
HTML_TEMPLATE = "body.html.j2"
#: The width of the newsletter's content column in pixels (600 less 24 on each side): no picture is wider.
COLUMN_WIDTH = 552
#: Unsubscribe tokens a fan-out issues per ledger transaction, ahead of the sends, whatever its delivery chunk.
TOKEN_BLOCK = 500
#: Subscribers (and their deliveries) read from the ledger at a time: a long list never sits in memory.
SUBSCRIBER_PAGE = 1000
_WEB_SCHEMES = frozenset({"http", "https"})
#: What SMTP reply codes mean (RFC 5321 4.2.3, RFC 4954), in words that name no one.
SMTP_REPLIES = {
    421: "service not available, closing the connection",
    450: "mailbox unavailable, try again later",
    451: "local error, try again later",
    452: "insufficient storage",
    454: "temporary authentication failure",
    530: "authentication required",
    535: "authentication failed",
    550: "mailbox unavailable",
    551: "user not local",
    552: "storage allocation exceeded",
    553: "mailbox name not allowed",
    554: "transaction failed",
    555: "parameters not recognized",
}
_ENHANCED_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\b")
_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
#: How messages go on the wire: CRLF lines folded at 78 (RFC 5322), ASCII headers (RFC 2047 words for the rest).
_WIRE = email.policy.SMTP
_LINE_LENGTH = 78
#: One header field with its folded lines, in flattened bytes.
_FIELD = re.compile(rb"^([^:\s]+):.*\r\n(?:[ \t].*\r\n)*", re.MULTILINE)
#: The alphabet of the ledger's tokens (URL-safe base64): what quoted-printable, URLs and HTML all leave as it is.
_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")
_SOFT_BREAK = b"=\r\n"
_PREVIEW = re.compile(r'(<body[^>]*>\s*<div style="display:none;)([^"]*)"')


class SmtpCredentials(Strict):
    """``channels.<name>.credentials``: the SMTP submission server and its login; the password by reference."""

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535, description="default: 587 (starttls), 465 (tls), 25 (none)")
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = Field(min_length=1)
    password: SecretRef
    ca_file: Path | None = Field(None, description="PEM of the CA of a server whose certificate no public CA signed")
    timeout: float = Field(30, gt=0, le=300, description="seconds to wait for each reply of the server")

    @model_validator(mode="after")
    def _clear_text_only_on_loopback(self) -> Self:
        # Without TLS the password and every recipient's address cross the network in clear text.
        if self.security == "none" and not _is_loopback(self.host):
            raise ValueError(f"security 'none' is allowed only for a server on 127.0.0.1, not {self.host!r}")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]

    @property
    def server(self) -> str:
        return f"{self.host}:{self.effective_port}"


class NewsletterConfig(ChannelSettings):
    """``channels.<name>`` of type ``newsletter``: sender, list identity and unsubscribe endpoints."""

    from_name: str = Field(min_length=1, description="the honest sender name shown in the inbox")
    from_address: EmailStr
    reply_to: EmailStr | None = None
    list_name: str = Field(min_length=1, description="shown in the footer and the List-Id header")
    unsubscribe_url: HttpUrl = Field(description="the https one-click endpoint; '?t=<token>' is appended")
    unsubscribe_mailto: EmailStr = Field(description="the address that takes 'unsubscribe' mails")
    max_subject_length: int | None = Field(None, ge=20, le=150, description="lowers the channel's 78")
    credentials: SmtpCredentials | None = Field(None, description="send over SMTP; absent: write to the outbox")
    unsubscribe_secret: SecretRef | None = Field(None, description="verifies unsubscribe links sent with signed tokens")
    body: Literal["excerpt", "full"] = Field(
        "excerpt", description="each item's opening and 'Read more' (excerpt), or the whole post (full)"
    )
    excerpt_words: int = Field(60, ge=20, le=300, description="about how many words an excerpt has")

    @model_validator(mode="after")
    def _secret_with_credentials(self) -> Self:
        if self.credentials is not None and self.unsubscribe_secret is None:
            raise ValueError(
                "unsubscribe_secret is required with credentials: it verifies the signed links sent before"
            )
        return self

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
    #: Messages per minute one SMTP login may submit (providers throttle beyond such rates); held across workers.
    rate: ClassVar[tuple[int, float] | None] = (60, 60.0)

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

    # -- publishing --------------------------------------------------------------------------------------------

    def build_message(self, draft: Draft, *, to: str, unsubscribe_token: str) -> EmailMessage:
        """The email of ``draft`` for one recipient (``to``), unsubscribe links carrying ``unsubscribe_token``; both
        parts quoted-printable, so :meth:`prepare_message` can find the token in them.

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

        message = EmailMessage()
        message["From"] = self._from()
        message["To"] = to
        if self.config.reply_to:
            message["Reply-To"] = self.config.reply_to
        message["Subject"] = draft.subject
        message["Date"] = format_datetime(now_utc())
        message["Message-ID"] = make_msgid(domain=self._from().domain)
        message["List-Id"] = f"{self.config.list_name} <{self.list_id()}>"
        # RFC 8058 one-click: Gmail and Yahoo require both headers of bulk senders.
        message["List-Unsubscribe"] = ", ".join(self._unsubscribe_uris(unsubscribe_token))
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(page, subtype="html", cte="quoted-printable")
        return message

    def prepare_message(self, draft: Draft, token_length: int) -> PreparedMessage:
        """``draft``'s message encoded once for a whole fan-out, for unsubscribe tokens of ``token_length``
        characters of the URL-safe base64 alphabet (see :class:`PreparedMessage`).

        Raises PublishError (not transient) as :meth:`build_message` does.
        """
        # A stand-in of the real tokens' length and alphabet: quoted-printable writes both as they are, so the soft
        # line breaks fall at the same places and each character of a real token goes where the stand-in's was.
        stand_in = secrets.token_urlsafe(token_length)[:token_length]
        raw = self.build_message(draft, to=str(self._from()), unsubscribe_token=stand_in).as_bytes(policy=_WIRE)
        head_end = raw.index(b"\r\n\r\n") + 2
        pieces: list[bytes | str | slice] = []
        for field in _FIELD.finditer(raw, 0, head_end):
            name = field.group(1).decode("ascii")
            if name in PreparedMessage.PER_RECIPIENT:
                pieces.append(name)
            elif name == "List-Unsubscribe":
                # One URI a line, as they are: the email package would fold a long URL into encoded words, which
                # no mail client reads as a URL (RFC 2369 allows folding only between the URIs).
                uris = "".join(f"\r\n {uri}," for uri in self._unsubscribe_uris(stand_in))
                pieces.append(f"List-Unsubscribe:{uris[:-1]}\r\n".encode("ascii"))
            else:
                pieces.append(field.group())
        pieces.append(raw[head_end:])
        return PreparedMessage(tuple(_at_token(pieces, stand_in.encode("ascii"))), token_length, self._from().domain)

    def _from(self) -> Address:
        return Address(self.config.from_name, addr_spec=self.config.from_address)

    def _unsubscribe_uris(self, token: str) -> tuple[str, str]:
        """``List-Unsubscribe``'s two URIs, each in angle brackets: the one-click link and the mailto."""
        return f"<{self.unsubscribe_link(token)}>", f"<mailto:{self.config.unsubscribe_mailto}?subject=unsubscribe>"

    @classmethod
    def routes(cls, channels: Sequence[Self]) -> Sequence[Route]:
        """``GET`` and ``POST /unsubscribe`` for the newsletters with an ``unsubscribe_secret`` (see
        :class:`UnsubscribeEndpoint`); none without.

        Raises CredentialError when a secret cannot be read.
        """
        signing = [channel for channel in channels if channel.config.unsubscribe_secret is not None]
        return UnsubscribeEndpoint(signing).routes() if signing else ()

    def list_id(self) -> str:
        """The RFC 2919 list identifier: the list name as a label under the sender's domain."""
        label = re.sub(r"[^a-z0-9]+", "-", self.config.list_name.lower()).strip("-") or "newsletter"
        return f"{label}.{Address(addr_spec=self.config.from_address).domain}"

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Send ``draft`` to every consenting subscriber over SMTP, or without credentials write it to the outbox.

        Raises CredentialError, as it is, when the password or the unsubscribe secret cannot be read (nothing was
        sent). Raises PublishError: transient when some recipients are left for the next run (a 4xx reply, the
        server unreachable or gone mid-batch); permanent when nothing can go out (the login or the sender refused, a
        draft without its footer) or the outbox refuses the file.
        """
        if self.config.credentials is None:
            return self._to_outbox(draft, context)
        return self._by_smtp(draft, context, self.config.credentials)

    def sender(self) -> str | None:
        """The SMTP server and the login messages are submitted with."""
        credentials = self.config.credentials
        return None if credentials is None else f"{credentials.server} {credentials.username}"

    def send_staff_mail(self, message: EmailMessage) -> str | None:
        """Send a message to the practice's staff (the weekly report) from this newsletter's sender over its SMTP
        server; None without credentials. Raises PublishError when the server cannot be reached or refuses it."""
        credentials = self.config.credentials
        if credentials is None:
            return None
        del message["From"]
        message["From"] = formataddr((self.config.from_name, str(self.config.from_address)))
        with self._connect(credentials, resolve(credentials.password)) as smtp:
            try:
                smtp.send_message(message)
            except (smtplib.SMTPException, OSError) as exc:
                why = f"the SMTP server {credentials.server} did not take the report: {exc}"
                raise PublishError(self.instance, why, transient=True) from exc
        return f"smtp {credentials.server}"

    def verify(self) -> str:
        """Connect, secure the connection and log in to the SMTP server, then quit without sending.

        Raises CredentialError when the password or the unsubscribe secret is not set or the server refuses the
        login; PublishError when the server cannot be reached or refuses TLS.
        """
        credentials = self.config.credentials
        if credentials is None:
            return super().verify()
        password, _ = self._secrets()
        with self._connect(credentials, password):
            pass
        return f"SMTP {credentials.server} ({credentials.security}): logged in as {credentials.username}, nothing sent"

    def send_notice(self, email: EmailMessage) -> str | None:
        """Mail staff a notice through this newsletter's SMTP login, from its ``from_address``; None without
        credentials.

        Raises CredentialError when the password is not set; PublishError when the server cannot be reached or
        refuses the login or the message.
        """
        credentials = self.config.credentials
        if credentials is None:
            return None
        password = resolve(credentials.password)
        del email["From"]
        email["From"] = str(self.config.from_address)
        with self._connect(credentials, password) as smtp:
            try:
                smtp.send_message(email)
            except smtplib.SMTPException as exc:
                raise PublishError(
                    self.instance, f"the SMTP server {credentials.server} refused: {exc}", transient=True
                ) from exc
        return f"emailed to {email['To']} through {credentials.server}"

    def _to_outbox(self, draft: Draft, context: PublishContext) -> Receipt:
        """The list-level copy of ``draft`` as one ``.eml`` in the outbox, exactly as it would go on the wire."""
        prepared = self.prepare_message(draft, len(LIST_TOKEN))
        raw, _ = prepared.for_recipient(self.config.list_name, self.config.from_address, LIST_TOKEN)
        path = context.outbox.write(self.instance, context.key, ".eml", raw)
        return context.outbox.receipt(path)

    def _secrets(self) -> tuple[SecretStr, SecretStr]:
        """The SMTP password and the unsubscribe secret; raises CredentialError naming the one that is not set."""
        assert self.config.credentials is not None and self.config.unsubscribe_secret is not None  # the config says
        return resolve(self.config.credentials.password), resolve(self.config.unsubscribe_secret)

    def _by_smtp(self, draft: Draft, context: PublishContext, credentials: SmtpCredentials) -> Receipt:
        password, _ = self._secrets()  # the unsubscribe secret only reads links sent before tokens were opaque
        ledger, publication = context.ledger, context.publication_id
        retry_reasons: list[str] = []
        # Encoded once, for the length of the tokens the ledger issues (all alike; cached should one differ).
        prepared = functools.cache(lambda token_length: self.prepare_message(draft, token_length))
        personal = RecipientLinks.of(self.settings, ledger, self.name)  # links.email_per_recipient
        with ExitStack() as stack:
            link = Link(stack, lambda: self._connect(credentials, password))
            # Skipped: counted at the end.
            pending = _pending(ledger, self._recipients(context), publication, Counter())
            for chunk, tokens in self._with_tokens(ledger, pending, context.delivery_chunk):
                context.stop_if_asked(self.instance)
                # Opened for the first chunk only: a resumed batch with nobody left opens no connection.
                link.smtp()
                # The chunk is claimed before any of it is sent (recipients another worker or an earlier attempt
                # has are left out), and its outcomes recorded together after.
                claimed = ledger.claim_deliveries(publication, [subscriber.address for subscriber in chunk])
                mine = set(claimed)
                if personal is not None:
                    personal.expect(claimed)
                outcomes: list[DeliveryOutcome] = []
                usable = True
                try:
                    for subscriber in chunk:
                        if subscriber.address not in mine:
                            continue
                        context.stop_if_asked(self.instance)
                        token = tokens[subscriber.address]
                        message = prepared(len(token)).for_recipient(subscriber.name, subscriber.address, token)
                        if personal is not None:
                            message = (personal.apply(message[0], subscriber.address), message[1])
                        context.pace()
                        after = self._send_one(
                            link.smtp(), message, subscriber.address, ledger, outcomes, retry_reasons
                        )
                        usable = after == "go on" or (after == "reconnect" and link.lost())
                        if not usable:
                            break
                finally:
                    ledger.finish_deliveries(publication, outcomes, claimed)
                if not usable:
                    break
        skipped: Counter[str] = Counter()  # who is left and who is skipped, as the ledger now stands
        left = sum(1 for _ in _pending(ledger, self._recipients(context), publication, skipped))
        summary = f"smtp {credentials.server}: {_summary(ledger.delivery_state_counts(publication), skipped)}"
        if left:
            reason = retry_reasons[0] if retry_reasons else "not sent yet"
            raise PublishError(self.instance, f"{summary}; {left} left for the next run ({reason})", transient=True)
        return Receipt(location=summary, sent_at=now_utc())

    def list_scope(self) -> str:
        """What an unsubscribe from this list suppresses (:func:`carecast.recipients.list_scope`)."""
        return list_scope(self.name, self.instance, self.config.audience)

    def _recipients(self, context: PublishContext) -> Iterator[Subscriber]:
        """Everyone this list addresses (:func:`carecast.recipients.addressed`), read afresh."""
        return addressed(self, context)

    def _with_tokens(
        self, ledger: Ledger, pending: Iterable[Subscriber], chunk_size: int
    ) -> Iterator[tuple[list[Subscriber], dict[str, str]]]:
        """``pending`` in chunks of ``chunk_size``, each with its recipients' unsubscribe tokens.

        Tokens are issued (committed) before any of their recipients is sent to, so every link sent works, and for
        about :data:`TOKEN_BLOCK` recipients at once, in one transaction whatever the chunk: one issued for a
        recipient another worker sends to, or nobody does, is never used and names nobody.
        """
        list_id = self.list_id()
        for block in batched(batched(pending, chunk_size), max(1, TOKEN_BLOCK // chunk_size)):
            addresses = [subscriber.address for chunk in block for subscriber in chunk]
            tokens = ledger.issue_unsubscribe_tokens(self.list_scope(), list_id, addresses)
            for chunk in block:
                yield chunk, tokens

    def _send_one(
        self,
        smtp: smtplib.SMTP,
        message: tuple[bytes, str],
        address: str,
        ledger: Ledger,
        outcomes: list[DeliveryOutcome],
        retry: list[str],
    ) -> Literal["go on", "stop", "reconnect"]:
        """Send one claimed message (its bytes and Message-ID) and append how it went to ``outcomes``; return
        whether the batch goes on over this connection, stops (a 421: the server is closing), or goes on over a new
        one (this one was lost). A reason to try this recipient again later is appended to ``retry``; a bounce
        suppresses the address; a connection lost once the message was written leaves the recipient ``unknown``
        (:mod:`carecast_channels.smtp_transaction`), one lost before is retried by the next run. Raises PublishError
        (not transient) when the server refuses our sender for good: every message would fail alike (the outcome is
        appended first).
        """
        raw, message_id = message
        try:
            sender = self.config.from_address
            transact(smtp, sender, address, raw, _mail_options(smtp, sender, address))
        except ReplyLost as exc:
            # The server read the whole message, then its reply was lost: it may have it, and SMTP keeps no list
            # to ask. Never sent again on its own; staff check with the recipient and settle it.
            lost = f"the connection to the SMTP server was lost after the message was sent ({exc})"
            outcomes.append(DeliveryOutcome(address, "unknown", error=f"{lost}; it may have arrived"))
            return "reconnect"
        except smtplib.SMTPRecipientsRefused as exc:
            [(code, reply)] = exc.recipients.values()
            why = _reply(code, reply)
            if code >= 500:
                ledger.suppress(self.name, address, "bounced", f"SMTP {why}")
                outcomes.append(DeliveryOutcome(address, "failed", error=f"bounced: {why}"))
            else:
                outcomes.append(DeliveryOutcome(address, "failed", error=why, transient=True))
                retry.append(why)
            return "go on"
        except smtplib.SMTPResponseException as exc:
            why = _reply(exc.smtp_code, exc.smtp_error)
            transient = exc.smtp_code < 500
            outcomes.append(DeliveryOutcome(address, "failed", error=why, transient=transient))
            if isinstance(exc, smtplib.SMTPSenderRefused) and not transient:
                raise PublishError(
                    self.instance, f"the SMTP server refused the sender: {why}", transient=False
                ) from exc
            if transient:
                retry.append(why)
            return "stop" if exc.smtp_code == 421 else "go on"  # 421: the server is closing the connection
        except smtplib.SMTPNotSupportedError as exc:
            outcomes.append(DeliveryOutcome(address, "failed", error=f"the server cannot take this message: {exc}"))
            return "go on"
        except OSError as exc:
            # Lost before the message was written whole (at MAIL, RCPT, or mid-data): the server cannot have it.
            lost = f"the connection to the SMTP server was lost before the message was sent ({type(exc).__name__})"
            outcomes.append(DeliveryOutcome(address, "failed", error=lost, transient=True))
            retry.append(lost)
            return "reconnect"
        outcomes.append(DeliveryOutcome(address, "sent", provider_id=message_id))
        return "go on"

    def _connect(self, credentials: SmtpCredentials, password: SecretStr) -> smtplib.SMTP:
        """An SMTP connection, secured as configured and logged in; use it as a context manager (it quits).

        Raises PublishError: transient when the server cannot be reached or answers 4xx; permanent when TLS fails
        (an untrusted certificate, no STARTTLS). Raises CredentialError when the login is refused (retried once the
        staff fix it).
        """
        host, port = credentials.host, credentials.effective_port
        tls = ssl.create_default_context(
            cafile=None if credentials.ca_file is None else self.settings.path(credentials.ca_file)
        )
        where = f"SMTP server {credentials.server}"
        try:
            if credentials.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=credentials.timeout, context=tls)
            else:
                smtp = smtplib.SMTP(host, port, timeout=credentials.timeout)
            try:
                smtp.ehlo()
                if credentials.security == "starttls":
                    smtp.starttls(context=tls)
                    smtp.ehlo()
                smtp.login(credentials.username, password.get_secret_value())
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong or revoked password (535) is mended by a person, then the publication is retried.
            why = _reply(exc.smtp_code, exc.smtp_error)
            raise CredentialError(
                f"channels.{self.instance}.credentials",
                f"the {where} refused the login of {credentials.username!r} ({why}): fix the username or password, "
                "and the next run sends it",
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PublishError(self.instance, f"the {where} does not support {exc}", transient=False) from exc
        except smtplib.SMTPResponseException as exc:
            why = _reply(exc.smtp_code, exc.smtp_error)
            raise PublishError(self.instance, f"the {where} answered {why}", transient=exc.smtp_code < 500) from exc
        except ssl.SSLError as exc:  # certificate not trusted, or not TLS at all: a configuration to fix
            raise PublishError(self.instance, f"TLS with the {where} failed: {exc.reason}", transient=False) from exc
        except OSError as exc:  # refused, unreachable, timed out, disconnected
            raise PublishError(self.instance, f"cannot reach the {where}: {exc}", transient=True) from exc
        return smtp


@dataclass(frozen=True)
class PreparedMessage:
    """A newsletter encoded once for a whole fan-out (:meth:`NewsletterChannel.prepare_message`): the bytes that go
    on the wire, with what differs per recipient left open for :meth:`for_recipient`, which encodes nothing again.

    ``pieces`` are bytes as they are, the name of a header field written per recipient (``To``, ``Date``,
    ``Message-ID``), or a slice of the recipient's token, where the stand-in token's characters were: in
    ``List-Unsubscribe`` and in both quoted-printable parts, where a soft line break may cut it in two.
    """

    PER_RECIPIENT: ClassVar[frozenset[str]] = frozenset({"To", "Date", "Message-ID"})

    pieces: tuple[bytes | str | slice, ...]
    token_length: int
    domain: str

    def for_recipient(self, name: str, address: str, token: str) -> tuple[bytes, str]:
        """The message to ``name`` <``address``> with the unsubscribe ``token``, as bytes, and its Message-ID.

        Raises ValueError when ``token`` is not as long as the one prepared for, or not URL-safe base64.
        """
        if len(token) != self.token_length or not _URLSAFE.fullmatch(token):
            raise ValueError(f"the message was prepared for tokens of {self.token_length} URL-safe characters")
        message_id = make_msgid(domain=self.domain)
        fields = {
            "To": _to_field(name, address),
            "Date": _field("Date", format_datetime(now_utc())),
            "Message-ID": _field("Message-ID", message_id),
        }
        token_bytes = token.encode("ascii")
        raw = b"".join(
            piece if isinstance(piece, bytes) else fields[piece] if isinstance(piece, str) else token_bytes[piece]
            for piece in self.pieces
        )
        return raw, message_id


def _at_token(pieces: Sequence[bytes | str | slice], stand_in: bytes) -> Iterator[bytes | str | slice]:
    """``pieces`` with their bytes split around ``stand_in``'s characters, which become slices of the token: the
    stand-in as it is, or cut by quoted-printable soft line breaks (kept as bytes)."""
    gap = b"(?:" + re.escape(_SOFT_BREAK) + b")?"
    token_pattern = re.compile(gap.join(re.escape(stand_in[i : i + 1]) for i in range(len(stand_in))))
    for piece in pieces:
        if not isinstance(piece, bytes):
            yield piece
            continue
        position = 0
        for match in token_pattern.finditer(piece):
            offset, start = 0, match.start()
            for run in match.group().split(_SOFT_BREAK):
                yield piece[position:start]
                yield slice(offset, offset + len(run))
                offset += len(run)
                position = start + len(run)
                start = position + len(_SOFT_BREAK)
        yield piece[position:]


def _to_field(name: str, address: str) -> bytes:
    """The ``To`` field for ``name`` <``address``>: RFC 2047 words for a non-ASCII name; an internationalized
    address (RFC 6532) in UTF-8, as ``smtplib``'s ``send_message`` would send it."""
    name = " ".join(name.split())  # a line break in a name from the audience file would start a new header
    if address.isascii():
        return _field("To", formataddr((name, address)))
    # Not Address(addr_spec=...), which refuses a non-ASCII local part that RFC 6531 allows and the audience takes.
    username, _, domain = address.rpartition("@")
    return _field("To", str(Address(name, username, domain)), utf8=True)


def _field(name: str, value: str, *, utf8: bool = False) -> bytes:
    """The header field ``name: value`` as the wire has it: as it is when it is a short line of printable ASCII,
    else folded (and encoded) by the email package."""
    line = f"{name}: {value}"
    if len(line) <= _LINE_LENGTH and line.isascii() and line.isprintable():
        return f"{line}\r\n".encode("ascii")
    policy = _WIRE.clone(utf8=True) if utf8 else _WIRE
    return policy.header_factory(name, value).fold(policy=policy).encode("utf-8")


def _mail_options(smtp: smtplib.SMTP, sender: str, address: str) -> tuple[str, ...]:
    """What ``MAIL FROM`` needs when the sender's or the recipient's address is internationalized (RFC 6531), as
    ``smtplib``'s ``send_message`` asks. Raises smtplib.SMTPNotSupportedError when the server cannot take it."""
    if (sender + address).isascii():
        return ()
    if not smtp.has_extn("smtputf8"):
        raise smtplib.SMTPNotSupportedError("an internationalized address needs SMTPUTF8, which the server lacks")
    return ("SMTPUTF8", "BODY=8BITMIME")


def _pending(
    ledger: Ledger, audience: Iterable[Subscriber], publication: int, skipped: Counter[str]
) -> Iterator[Subscriber]:
    """Who of a publication's ``audience`` (:meth:`NewsletterChannel._recipients`, streamed) is still to be sent to,
    read a page of subscribers (and their deliveries) at a time, so memory stays flat however long the list; who is
    skipped is counted in ``skipped`` by reason."""
    for page in batched(audience, SUBSCRIBER_PAGE):
        deliveries = ledger.deliveries(publication, [subscriber.address for subscriber in page])
        for subscriber in page:
            record = deliveries.get(subscriber.address)
            # Settled (sent, failed for good) or in another attempt's hands: never touched again.
            if record is not None and not (
                record.state == "deferred" or (record.state == "failed" and record.transient)
            ):
                continue
            if (reason := subscriber.exclusion_reason) is None:
                yield subscriber
            else:
                skipped[reason] += 1


def _summary(counts: Counter[tuple[str, bool]], skipped: Counter[str]) -> str:
    """E.g. ``7 sent, 1 not delivered, 3 skipped (1 no consent on file, 2 status is unsubscribed)``."""
    sent = counts[("sent", False)] + counts[("sent", True)]
    lost = counts[("failed", False)]
    parts = [f"{sent} sent"] + ([f"{lost} not delivered"] if lost else [])
    reasons = ", ".join(f"{count} {why}" for why, count in sorted(skipped.items()))
    parts.append(f"{skipped.total()} skipped" + (f" ({reasons})" if reasons else ""))
    return ", ".join(parts)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reply(code: int, reply: bytes | str) -> str:
    """An SMTP reply for the ledger, errors and logs: its code, its enhanced status code (RFC 3463) if it has one,
    and fixed words for the code, e.g. ``550 5.1.1 mailbox unavailable``.

    Never the server's own text: it often echoes the address it is about ("<ann@example.com>: User unknown").
    """
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    enhanced = _ENHANCED_STATUS.match(text.strip())
    words = SMTP_REPLIES.get(code) or ("refused" if code >= 500 else "try again later")
    return " ".join([str(code), *([enhanced.group()] if enhanced else []), words])


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


UNSUBSCRIBE_PATH = "/unsubscribe"
#: The unsubscribe page's field asking to stop every list of the practice, not only the link's one.
ALL_EMAIL_FIELD = "all_email"


class UnsubscribeEndpoint:
    """One-click unsubscribe (RFC 8058) for the newsletters with an ``unsubscribe_secret``.

    ``GET /unsubscribe?t=TOKEN``: a confirmation page with two buttons (this list; all email from the practice), and
    nothing recorded, since mail scanners fetch every link of a message. ``POST /unsubscribe?t=TOKEN`` (the
    one-click POST, body ``List-Unsubscribe=One-Click``, or the page's first button) records the unsubscribe from
    the token's list with :func:`carecast.unsubscribe.apply_unsubscribe`; with ``all_email=yes`` (the second button)
    from every list of the practice. A token the
    ledger never issued, or an old signed one not signed with one of the newsletters' secrets or expired: 400, and
    the reason goes to the log only.
    """

    def __init__(self, channels: Sequence[NewsletterChannel]) -> None:
        """Raises CredentialError when a secret cannot be read: read once now, so the server stops at start."""
        self.channels = channels
        self._secrets()

    def routes(self) -> tuple[Route, ...]:
        announced = tuple(
            (f"channels.{channel.instance}.unsubscribe_url", str(channel.config.unsubscribe_url))
            for channel in self.channels
        )
        return (
            Route("GET", UNSUBSCRIBE_PATH, self.confirmation_page, announced),
            Route("POST", UNSUBSCRIBE_PATH, self.unsubscribe, announced),
        )

    def confirmation_page(self, request: Request, practice: PracticeContext) -> Response:
        token = request.query_value("t")
        try:
            _, unsubscribing = self._verified(token, practice.ledger)
        except TokenError as exc:
            return _bad_link(exc)
        # Posts back to this very URL (token included); the hidden field is what RFC 8058 clients send. The second
        # form stops every list of the practice (CAN-SPAM lets a recipient opt out of all its commercial email).
        action = html.escape(quote(token, safe=""))
        form = (
            f'<form method="post" action="?t={action}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">Unsubscribe from {html.escape(unsubscribing.list_id)}</button></form>'
            f'<form method="post" action="?t={action}">'
            f'<input type="hidden" name="{ALL_EMAIL_FIELD}" value="yes">'
            '<button type="submit">Unsubscribe from all email from us</button></form>'
        )
        name = practice.settings.practice.name
        return _page(
            "Unsubscribe",
            f"Stop receiving emails from {name} ({unsubscribing.list_id})? Press the button to confirm.",
            form,
            "confirmation page",
        )

    def unsubscribe(self, request: Request, practice: PracticeContext) -> Response:
        # The body RFC 8058 clients send (List-Unsubscribe=One-Click) is not required: the token is the proof.
        token = request.query_value("t")
        everything = request.form().get(ALL_EMAIL_FIELD) == "yes"
        try:
            secret, _ = self._verified(token, practice.ledger)
            unsubscribed = apply_unsubscribe(practice.ledger, secret, token, everything=everything)
        except TokenError as exc:
            return _bad_link(exc)
        name = practice.settings.practice.name
        if everything:
            return _page(
                "Unsubscribed",
                f"You will receive no more emails from {name}.",
                note="unsubscribed from all email",
            )
        return _page(
            "Unsubscribed",
            f"You will receive no more emails from {name} ({unsubscribed.list_id}).",
            note=f"unsubscribed from {unsubscribed.list_id}",
        )

    def _verified(self, token: str, ledger: Ledger) -> tuple[SecretStr, Token]:
        """What ``token`` stands for (:func:`carecast.unsubscribe.verify_token`: an opaque token the ledger issued,
        or a signed one from before), with the ``unsubscribe_secret`` it was checked with.

        Raises TokenError when it is neither; CredentialError when a secret cannot be read.
        """
        refusal = TokenError("not a token this practice issued")
        for secret in self._secrets():
            try:
                return secret, verify_token(ledger, secret, token)
            except TokenError as exc:
                refusal = exc
        raise refusal

    def _secrets(self) -> list[SecretStr]:
        return [resolve(c.config.unsubscribe_secret) for c in self.channels if c.config.unsubscribe_secret]


def _page(title: str, paragraph: str, form: str = "", note: str = "") -> Response:
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(paragraph)}</p>{form}</body></html>\n"
    )
    return Response(HTTPStatus.OK, body.encode(), "text/html; charset=utf-8", note)


def _bad_link(exc: TokenError) -> Response:
    # The reason goes to the log only: the page says nothing that would help forge a token.
    return Response.text(HTTPStatus.BAD_REQUEST, "This unsubscribe link is not valid.", f"refused: {exc.reason}")
